"""A local HTTP simulator of Anthropic's Message Batches API.

The official ``anthropic`` SDK (or any client) is pointed at it with
``base_url`` and cannot tell it from the real service on the paths it uses:
create / retrieve / list / cancel / delete / results, plus realtime
``/v1/messages`` and ``/v1/messages/count_tokens``, the Models API and the
Files API, all answered by a deterministic fake model that reads the images
and PDFs it is shown (colour and size, text and metadata). It speaks API versions 2023-06-01
and 2026-10-21 and applies each model's rules from its model table
(``catalog.py``). See ``docs/simulator.md``.

This package imports nothing else of batch_magic.
"""

from __future__ import annotations

from .app import Options
from .clock import Clock, FakeClock, RealClock
from .faults import ENDPOINTS, Fault
from .model import Responder
from .server import RequestRecord
from .simulator import Simulator, is_simulator_url, running_simulators

__all__ = [
    "ENDPOINTS",
    "Clock",
    "FakeClock",
    "Fault",
    "Options",
    "RealClock",
    "RequestRecord",
    "Responder",
    "Simulator",
    "is_simulator_url",
    "running_simulators",
]
