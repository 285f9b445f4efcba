"""What the job tests share: engine settings that poll and back off fast, and a
``submit`` against the test simulator.

``JobSettings`` is imported here and nowhere else in the tests, so a test file
names its settings as ``FAST`` or ``fast(max_attempts=1)``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

import batch_magic as bm
from batch_magic.job import BatchJob
from batch_magic.journal import Journal
from batch_magic.settings import JobSettings
from batch_magic.simulator import Simulator

#: Polls and backoffs of 0.05-0.2 s: a job on the simulator ends a moment after its batch.
#: ``create_grace`` keeps its default; tests that lose a create pass a short one.
FAST = JobSettings(poll_min=0.05, poll_max=0.2, backoff_min=0.05, backoff_max=0.2)


def fast(**changes: Any) -> JobSettings:
    """``FAST`` with some settings changed, e.g. ``fast(max_attempts=1)``."""
    return replace(FAST, **changes)


def submit(df: pd.DataFrame, template: str, sim: Simulator, journal: Journal, **options: Any) -> BatchJob:
    """``batch_magic.submit`` to the test simulator, with ``FAST`` settings and a client
    that does not retry by itself (the engine's own retries are what the tests watch),
    unless the test passes its own ``settings`` or ``client``."""
    options.setdefault("settings", FAST)
    if "client" not in options:
        options["client"] = sim.client(max_retries=0)
    return bm.submit(df, template, journal=journal, **options)
