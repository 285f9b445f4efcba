"""Read raw batch results (JSONL) into one table indexed by request number.

The journal keeps the results exactly as downloaded; this module reads them
(once per file) into flat arrays so that merging a million rows is a few
vectorised takes, not a million ``df.loc`` assignments. Results are joined on
``custom_id``, never on order. A later attempt of a request (a retry) replaces
the earlier outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from .plan import request_number

PENDING, SUCCEEDED, ERRORED, EXPIRED, CANCELED = range(5)
STATUS_NAMES = {
    PENDING: "pending",
    SUCCEEDED: "succeeded",
    ERRORED: "errored",
    EXPIRED: "expired",
    CANCELED: "canceled",
}
_CODES = {name: code for code, name in STATUS_NAMES.items()}

#: Error categories worth another attempt: the fault was the service's, not the request's.
RETRIABLE_ERRORS = frozenset(
    {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}
)


@dataclass
class ResultTable:
    """Outcome of every unique request of a job, filled in as batches end."""

    status: np.ndarray  # uint8 codes above
    answer: np.ndarray  # object: the text, or the tool input as JSON text
    error_type: np.ndarray  # object
    error_message: np.ndarray  # object
    stop_reason: np.ndarray  # object
    input_tokens: np.ndarray  # int64, -1 when unknown
    output_tokens: np.ndarray
    cache_read_tokens: np.ndarray
    cache_write_tokens: np.ndarray

    @classmethod
    def empty(cls, n: int) -> ResultTable:
        def obj() -> np.ndarray:
            return np.full(n, None, dtype=object)

        def ints() -> np.ndarray:
            return np.full(n, -1, dtype=np.int64)

        return cls(
            np.zeros(n, dtype=np.uint8), obj(), obj(), obj(), obj(), ints(), ints(), ints(), ints()
        )

    def __len__(self) -> int:
        return len(self.status)

    def ingest_file(self, path: Path) -> int:
        """Read one downloaded results file; return how many lines it held."""
        with open(path, "rb") as fh:
            return self.ingest_lines(fh)

    def ingest_lines(self, lines: Iterable[bytes]) -> int:
        count = 0
        loads = orjson.loads
        for line in lines:
            if not line.strip():
                continue
            record = loads(line)
            self._ingest(record)
            count += 1
        return count

    def _ingest(self, record: dict) -> None:
        k = request_number(record["custom_id"])
        result = record["result"]
        kind = result.get("type")
        code = _CODES.get(kind, ERRORED)
        self.status[k] = code
        if code == SUCCEEDED:
            message = result["message"]
            self.answer[k] = message_answer(message)
            self.stop_reason[k] = message.get("stop_reason")
            usage = message.get("usage") or {}
            self.input_tokens[k] = usage.get("input_tokens") or 0
            self.output_tokens[k] = usage.get("output_tokens") or 0
            self.cache_read_tokens[k] = usage.get("cache_read_input_tokens") or 0
            self.cache_write_tokens[k] = usage.get("cache_creation_input_tokens") or 0
            self.error_type[k] = self.error_message[k] = None
        elif code == ERRORED:
            # The category sits one level down: result.error.error.type.
            outer: dict = result.get("error") or {}
            nested = outer.get("error")
            inner: dict = nested if isinstance(nested, dict) else outer
            self.error_type[k] = inner.get("type") or "unknown_error"
            self.error_message[k] = inner.get("message") or ""
        elif code in (EXPIRED, CANCELED):
            self.error_type[k] = kind
            self.error_message[k] = (
                "the batch expired before this request ran"
                if code == EXPIRED
                else "the batch was canceled before this request ran"
            )

    def retriable(self, candidates: np.ndarray | None = None) -> np.ndarray:
        """Request numbers that failed for a reason another attempt may fix."""
        idx = np.arange(len(self)) if candidates is None else candidates
        status = self.status[idx]
        errored = status == ERRORED
        kinds = self.error_type[idx]
        retriable_error = np.fromiter(
            (bool(e) and k in RETRIABLE_ERRORS for e, k in zip(errored, kinds)),
            dtype=bool,
            count=len(idx),
        )
        return idx[(status == EXPIRED) | retriable_error]

    def counts(self) -> dict[str, int]:
        values = np.bincount(self.status, minlength=len(STATUS_NAMES))
        return {STATUS_NAMES[c]: int(values[c]) for c in STATUS_NAMES}

    def usage_totals(self) -> dict[str, int]:
        ok = self.status == SUCCEEDED

        def total(a: np.ndarray) -> int:
            return int(np.clip(a[ok], 0, None).sum())

        return {
            "input_tokens": total(self.input_tokens),
            "output_tokens": total(self.output_tokens),
            "cache_read_input_tokens": total(self.cache_read_tokens),
            "cache_creation_input_tokens": total(self.cache_write_tokens),
        }


def message_answer(message: dict) -> str:
    """The answer of a Messages API response: its text, or a forced tool call's input."""
    texts = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "tool_use":
            return orjson.dumps(block.get("input")).decode()
        if kind == "text":
            texts.append(block.get("text", ""))
    return "".join(texts)
