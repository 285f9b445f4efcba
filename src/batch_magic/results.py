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
from typing import Any

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
        """Read result lines; return how many there were (blank lines aside).

        Each line's fields go into plain lists (no dict is kept, no numpy item
        is set per line), then into the arrays with one vectorised assignment
        per field: what is left per line is orjson's parse and a few appends.
        """
        loads = orjson.loads
        codes_of = _CODES.get
        ks: list[int] = []
        codes: list[int] = []
        # Succeeded lines, in order.
        answers: list[str] = []
        stops: list[str | None] = []
        tokens: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
        # Other lines, in order: the error (None for a 'pending' line, which sets only the status).
        errors: list[tuple[str, str] | None] = []
        add_k, add_code, add_answer, add_stop, add_error = (
            ks.append, codes.append, answers.append, stops.append, errors.append
        )
        add_in, add_out, add_read, add_write = (t.append for t in tokens)
        for line in lines:
            if not line or line.isspace():
                continue
            record = loads(line)
            add_k(request_number(record["custom_id"]))
            result = record["result"]
            kind = result.get("type")
            code = codes_of(kind, ERRORED)
            add_code(code)
            if code == SUCCEEDED:
                message = result["message"]
                content = message.get("content")
                if (
                    content and len(content) == 1 and content[0].get("type") == "text"
                    and type(text := content[0].get("text", "")) is str
                ):
                    add_answer(text)  # the common case of message_answer
                else:
                    add_answer(message_answer(message))
                add_stop(message.get("stop_reason"))
                usage = message.get("usage") or {}
                add_in(usage.get("input_tokens") or 0)
                add_out(usage.get("output_tokens") or 0)
                add_read(usage.get("cache_read_input_tokens") or 0)
                add_write(usage.get("cache_creation_input_tokens") or 0)
            elif code == ERRORED:
                # The category sits one level down: result.error.error.type.
                outer: dict = result.get("error") or {}
                nested = outer.get("error")
                inner: dict = nested if isinstance(nested, dict) else outer
                add_error((inner.get("type") or "unknown_error", inner.get("message") or ""))
            elif code == PENDING:
                add_error(None)
            else:  # expired or canceled
                add_error((kind, _UNRUN[code]))
        if not ks:
            return 0
        k = np.asarray(ks, dtype=np.int64)
        code_arr = np.asarray(codes, dtype=np.uint8)
        ok = code_arr == SUCCEEDED
        if len(np.unique(k)) != len(k):
            # A custom_id twice in one file: apply the lines in the order they came.
            next_ok = iter(range(len(answers)))
            next_error = iter(errors)
            for i, code in enumerate(codes):
                if code == SUCCEEDED:
                    j = next(next_ok)
                    self._apply(ks[i], code, answers[j], stops[j], tuple(t[j] for t in tokens), None)
                else:
                    self._apply(ks[i], code, None, None, None, next(next_error))
            return len(ks)
        self.status[k] = code_arr
        if answers:
            at = k[ok]
            self.answer[at] = _objects(answers)
            self.stop_reason[at] = _objects(stops)
            for column, values in zip(self._token_columns(), tokens):
                column[at] = values
            self.error_type[at] = None
            self.error_message[at] = None
        if errors:
            failed = k[~ok]
            touched = np.fromiter((e is not None for e in errors), dtype=bool, count=len(errors))
            self.error_type[failed[touched]] = _objects([e[0] for e in errors if e is not None])
            self.error_message[failed[touched]] = _objects([e[1] for e in errors if e is not None])
        return len(ks)

    def _token_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens

    def _apply(
        self,
        k: int,
        code: int,
        answer: str | None,
        stop: str | None,
        tokens: tuple[int, ...] | None,
        error: tuple[str, str] | None,
    ) -> None:
        """One line's outcome, from the fields ``ingest_lines`` read from it."""
        self.status[k] = code
        if code == SUCCEEDED:
            assert tokens is not None
            self.answer[k] = answer
            self.stop_reason[k] = stop
            for column, value in zip(self._token_columns(), tokens):
                column[k] = value
            self.error_type[k] = self.error_message[k] = None
        elif error is not None:
            self.error_type[k], self.error_message[k] = error

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
        # PENDING here means a batch ended without a result for it: send it again.
        return idx[(status == EXPIRED) | (status == PENDING) | retriable_error]

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


def _objects(values: list[Any]) -> np.ndarray:
    """A list as a 1-d object array (never a 2-d one, whatever the items are)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


#: The error message of a request that never ran, by status code.
_UNRUN = {
    EXPIRED: "the batch expired before this request ran",
    CANCELED: "the batch was canceled before this request ran",
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
