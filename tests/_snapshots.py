"""A job snapshot to render: what the panel, the text fallback and ``format.py`` are shown
in their tests (a running job of 10 rows in 2 batches, 65 s in), changed as a test needs."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from batch_magic.states import DisplayState
from batch_magic.status import JobStatus


def snapshot(*, expires_in: float = 3600, **changes: Any) -> JobStatus:
    """The running job, its batches expiring in ``expires_in`` seconds, with ``changes``."""
    now = time.time()
    base = JobStatus(
        job_id="20260101-000000-abcdef01",
        state=DisplayState.IN_PROGRESS,
        model="claude-haiku-4-5",
        out="answer",
        simulated=False,
        n_rows=10,
        n_requests=10,
        n_skipped=0,
        n_deduplicated=0,
        batches_total=2,
        batches_submitted=2,
        batches_ended=0,
        attempt=1,
        counts={},
        started_at=now - 65,
        finished_at=None,
        expires_at=now + expires_in,
        estimated_cost=0.0123,
        estimated_cost_upper=0.05,
        actual_cost=None,
    )
    return replace(base, **changes)
