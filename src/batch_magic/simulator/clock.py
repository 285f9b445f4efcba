"""Time sources for the simulator.

Batch status is computed lazily from a clock on every call, so tests can
inject a :class:`FakeClock` and jump hours ahead with :meth:`FakeClock.advance`
instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the time as Unix seconds."""

    def now(self) -> float:
        """Return the current time in seconds since the epoch."""
        ...


class RealClock:
    """The wall clock (the default)."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "RealClock()"


class FakeClock:
    """A clock that only moves when told to, for deterministic tests.

    It starts at ``start`` (default: the real time when it was made, so that
    timestamps still look current) and is safe to advance from any thread.
    """

    def __init__(self, start: float | None = None) -> None:
        self._t = float(time.time() if start is None else start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        with self._lock:
            self._t += float(seconds)
            return self._t

    def set(self, t: float) -> None:
        """Jump to the absolute time ``t`` (Unix seconds)."""
        with self._lock:
            self._t = float(t)

    def __repr__(self) -> str:
        return f"FakeClock({self.now():.3f})"
