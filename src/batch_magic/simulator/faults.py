"""Scripted HTTP failures and deterministic per-request outcomes.

Two kinds of trouble, kept apart because they live at different levels:

* :class:`Fault` - an HTTP-level failure of one endpoint (a 429 with
  ``retry-after``, a 500/529/504, a slow answer, a results stream cut after N
  lines). They exercise a client's retry and resume logic.
* :func:`draw` - a stable pseudo-random number from a seed and some strings.
  The store uses it to error or expire individual requests inside a batch so
  that the same batch always gives the same results, while the same
  ``custom_id`` resubmitted in a new batch (a new batch id) gets a new draw.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field

from .protocol import ERROR_OF_STATUS

#: Endpoint names a fault can target ("*" targets all of them).
ENDPOINTS: tuple[str, ...] = (
    "create",
    "retrieve",
    "list",
    "cancel",
    "delete",
    "results",
    "messages",
    "count_tokens",
    "models",
    "model",
    "file_upload",
    "file_list",
    "file_metadata",
    "file_delete",
    "file_content",
)

#: Error categories a per-request error rate may name, with the message used.
REQUEST_ERROR_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}


@dataclass
class Fault:
    """One scripted failure of an endpoint.

    ``status`` None means no error answer (useful with ``delay`` alone or with
    ``drop_after_lines``). ``times`` limits how often it fires; ``probability``
    makes it fire at random (seeded); with neither it fires on every match
    until removed.
    """

    endpoint: str = "*"
    status: int | None = None
    error_type: str | None = None
    message: str | None = None
    times: int | None = None
    probability: float | None = None
    retry_after: float | None = None
    delay: float = 0.0
    drop_after_lines: int | None = None
    fired: int = 0

    def __post_init__(self) -> None:
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(
                f"unknown endpoint {self.endpoint!r}: expected one of {', '.join(ENDPOINTS)} or '*'"
            )
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"fault status must be 4xx or 5xx, not {self.status!r}")
        if self.status is not None and self.error_type is None:
            self.error_type = ERROR_OF_STATUS.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")
        if self.status == 429 and self.retry_after is None:
            self.retry_after = 0.01
        if self.retry_after is not None and not 0 <= self.retry_after <= 60:
            raise ValueError("retry_after must be between 0 and 60 seconds: clients obey it")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise ValueError(f"probability must be in [0, 1], not {self.probability!r}")
        if self.times is not None and self.times < 0:
            raise ValueError(f"times must be >= 0, not {self.times!r}")
        if self.drop_after_lines is not None:
            if self.endpoint not in ("results", "*"):
                raise ValueError("drop_after_lines only applies to the 'results' endpoint")
            if self.drop_after_lines < 0:
                raise ValueError("drop_after_lines must be >= 0")
        if self.status is None and not self.delay and self.drop_after_lines is None:
            raise ValueError("a fault needs a status, a delay or drop_after_lines")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, endpoint: str) -> bool:
        if self.drop_after_lines is not None and endpoint != "results":
            return False
        return self.endpoint in ("*", endpoint)


@dataclass
class FaultPlan:
    """The ordered list of faults of one simulator; thread-safe."""

    seed: int = 0
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self.faults:
                self.faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self._rng = random.Random(self.seed)

    def pick(self, endpoint: str) -> Fault | None:
        """The first live fault for ``endpoint`` that fires now, counted as fired."""
        with self._lock:
            for fault in self.faults:
                if fault.exhausted or not fault.matches(endpoint):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                fault.fired += 1
                return fault
        return None


def draw(seed: int, *parts: str) -> float:
    """A stable number in [0, 1) from ``seed`` and ``parts``."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(seed).encode())
    for p in parts:
        h.update(b"\x1f")
        h.update(p.encode())
    return int.from_bytes(h.digest(), "big") / 2.0**64


def pick_error(seed: int, batch_id: str, custom_id: str, rates: dict[str, float]) -> str | None:
    """The error category a request draws from ``rates``, or None to succeed.

    The batch id is part of the draw so a resubmitted request gets a new chance.
    """
    if not rates:
        return None
    u = draw(seed, "error", batch_id, custom_id)
    acc = 0.0
    for category, rate in rates.items():
        acc += rate
        if u < acc:
            return category
    return None


def validate_error_rates(rates: dict[str, float]) -> dict[str, float]:
    """Check categories and that the rates sum to at most 1; return a clean copy."""
    clean: dict[str, float] = {}
    for category, rate in rates.items():
        if category not in REQUEST_ERROR_MESSAGES:
            raise ValueError(
                f"unknown error category {category!r}: expected one of {', '.join(REQUEST_ERROR_MESSAGES)}"
            )
        rate = float(rate)
        if not 0 <= rate <= 1:
            raise ValueError(f"error rate for {category} must be in [0, 1], not {rate!r}")
        if rate:
            clean[category] = rate
    if sum(clean.values()) > 1 + 1e-9:
        raise ValueError(f"error rates add up to more than 1: {clean!r}")
    return clean
