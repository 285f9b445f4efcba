"""Read raw batch results (JSONL) into one table indexed by request number.

The journal keeps the results exactly as downloaded; this module reads them
(once per file) into flat arrays so that merging a million rows is a few
vectorised takes, not a million ``df.loc`` assignments. Results are joined on
``custom_id``, never on order. A later attempt of a request (a retry) replaces
the earlier outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .answer_store import API_USAGE, KnownAnswers
from .answer_store import FIELDS as STORED_FIELDS
from .plan import request_number
from .states import RowStatus

#: A request's outcome in the table: a small code per ``RowStatus`` a result can have.
PENDING, SUCCEEDED, ERRORED, EXPIRED, CANCELED, REFUSED = range(6)
STATUS_NAMES: dict[int, RowStatus] = {
    PENDING: RowStatus.PENDING,
    SUCCEEDED: RowStatus.SUCCEEDED,
    ERRORED: RowStatus.ERRORED,
    EXPIRED: RowStatus.EXPIRED,
    CANCELED: RowStatus.CANCELED,
    REFUSED: RowStatus.REFUSED,
}
#: Result types of the JSONL. A refusal comes as ``succeeded`` with stop_reason
#: ``refusal``; it is told apart when read.
_CODES = {name: code for code, name in STATUS_NAMES.items() if code != REFUSED}

#: Error categories worth another attempt: the fault was the service's, not the request's.
#: A refusal is never retried: the same request on the same model is refused again.
RETRIABLE_ERRORS = frozenset(
    {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}
)

#: The ``error_type`` of answered requests whose answer needs explaining (the
#: ``error_message`` is a whole sentence): a refusal, and answers that ran out of room.
REFUSAL = "refusal"
MAX_TOKENS = "max_tokens"
CONTEXT_WINDOW = "model_context_window_exceeded"
THINKING_ATE_BUDGET = (
    "the output budget (max_tokens) ran out while the model was thinking, before any answer: "
    "raise --max-tokens or lower --effort"
)
NO_ROOM_TO_ANSWER = "the output budget (max_tokens) ran out before any answer: raise --max-tokens"
CONTEXT_WINDOW_EXCEEDED = "the prompt plus the answer exceeded the model's context window"
#: Refusal explanations are the API's prose; a row keeps a short one.
EXPLANATION_CHARS = 200


@dataclass
class ResultTable:
    """Outcome of every unique request of a job, filled in as batches end."""

    status: np.ndarray  # uint8 codes above
    answer: np.ndarray  # object: the text, the tool input as JSON text, or None (no answer)
    error_type: np.ndarray  # object: an API error category, or a note on an answer (above)
    error_message: np.ndarray  # object
    stop_reason: np.ndarray  # object
    input_tokens: np.ndarray  # int64, -1 when unknown
    output_tokens: np.ndarray  # thinking included, as billed
    cache_read_tokens: np.ndarray
    cache_write_tokens: np.ndarray  # all cache writes
    cache_write_5m_tokens: np.ndarray  # the part of them with the 5-minute TTL
    thinking_tokens: np.ndarray  # the part of output_tokens spent thinking
    #: Answered from the journal's answer store: not sent, not paid for by this job.
    reused: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        if len(self.reused) != len(self.status):
            self.reused = np.zeros(len(self.status), dtype=bool)

    @classmethod
    def empty(cls, n: int) -> ResultTable:
        def obj() -> np.ndarray:
            return np.full(n, None, dtype=object)

        def ints() -> np.ndarray:
            return np.full(n, -1, dtype=np.int64)

        return cls(
            np.zeros(n, dtype=np.uint8), obj(), obj(), obj(), obj(),
            ints(), ints(), ints(), ints(), ints(), ints(),
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
        # Lines with a message (succeeded or refused), in order.
        answers: list[str | None] = []
        stops: list[str | None] = []
        tokens: tuple[list[int], ...] = ([], [], [], [], [], [])
        # Notes on some of those lines: (position among them, (type, sentence)).
        notes: list[tuple[int, tuple[str, str]]] = []
        # Other lines, in order: the error (None for a 'pending' line, which sets only the status).
        errors: list[tuple[str, str] | None] = []
        add_k, add_code, add_answer, add_stop, add_error = (
            ks.append, codes.append, answers.append, stops.append, errors.append
        )
        add_in, add_out, add_read, add_write, add_write_5m, add_thinking = (t.append for t in tokens)
        for line in lines:
            if not line or line.isspace():
                continue
            record = loads(line)
            add_k(request_number(record["custom_id"]))
            result = record["result"]
            kind = result.get("type")
            code = codes_of(kind, ERRORED)
            if code == SUCCEEDED:
                message = result["message"]
                content = message.get("content")
                if (
                    content and len(content) == 1 and content[0].get("type") == "text"
                    and type(text := content[0].get("text", "")) is str
                ):
                    answer: str | None = text  # the common case of answer_text
                else:
                    answer = answer_text(message)
                stop = message.get("stop_reason")
                usage = message.get("usage") or {}
                details = usage.get("output_tokens_details")
                thinking = (details.get("thinking_tokens") or 0) if details else 0
                if stop == REFUSAL:
                    code = REFUSED
                    answer = None
                    notes.append((len(answers), (REFUSAL, refusal_text(message))))
                elif stop == CONTEXT_WINDOW:
                    notes.append((len(answers), (CONTEXT_WINDOW, CONTEXT_WINDOW_EXCEEDED)))
                elif stop == MAX_TOKENS and answer is None:
                    spent_thinking = thinking or any(b.get("type") == "thinking" for b in content or ())
                    notes.append(
                        (len(answers), (MAX_TOKENS, THINKING_ATE_BUDGET if spent_thinking else NO_ROOM_TO_ANSWER))
                    )
                add_answer(answer)
                add_stop(stop)
                add_in(usage.get("input_tokens") or 0)
                add_out(usage.get("output_tokens") or 0)
                add_read(usage.get("cache_read_input_tokens") or 0)
                add_write(usage.get("cache_creation_input_tokens") or 0)
                creation = usage.get("cache_creation")
                add_write_5m((creation.get("ephemeral_5m_input_tokens") or 0) if creation else 0)
                add_thinking(thinking)
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
            add_code(code)
        if not ks:
            return 0
        k = np.asarray(ks, dtype=np.int64)
        if k.min() < 0 or k.max() >= len(self):  # never another request's slot (-1 is the last)
            raise ValueError(f"a custom_id names request {int(k.min() if k.min() < 0 else k.max())}, not one of the job's {len(self)}")
        code_arr = np.asarray(codes, dtype=np.uint8)
        answered = (code_arr == SUCCEEDED) | (code_arr == REFUSED)
        if len(np.unique(k)) != len(k):
            # A custom_id twice in one file: apply the lines in the order they came.
            next_answered = iter(range(len(answers)))
            next_error = iter(errors)
            noted = dict(notes)
            for i, code in enumerate(codes):
                if answered[i]:
                    j = next(next_answered)
                    self._apply(ks[i], code, answers[j], stops[j], tuple(t[j] for t in tokens), noted.get(j))
                else:
                    self._apply(ks[i], code, None, None, None, next(next_error))
            return len(ks)
        self.status[k] = code_arr
        if answers:
            at = k[answered]
            self.answer[at] = _objects(answers)
            self.stop_reason[at] = _objects(stops)
            for column, values in zip(self._token_columns(), tokens):
                column[at] = values
            self.error_type[at] = None
            self.error_message[at] = None
            if notes:
                noted_at = at[[j for j, _ in notes]]
                self.error_type[noted_at] = _objects([note[0] for _, note in notes])
                self.error_message[noted_at] = _objects([note[1] for _, note in notes])
        if errors:
            failed = k[~answered]
            touched = np.fromiter((e is not None for e in errors), dtype=bool, count=len(errors))
            self.error_type[failed[touched]] = _objects([e[0] for e in errors if e is not None])
            self.error_message[failed[touched]] = _objects([e[1] for e in errors if e is not None])
        return len(ks)

    def take_known(self, known: KnownAnswers) -> None:
        """Fill in answers taken from the answer store (succeeded, never billed to this job)."""
        k = known.numbers
        if not k.size:
            return
        self.status[k] = SUCCEEDED
        for name in STORED_FIELDS:  # the store keeps the table's own columns, by their names
            getattr(self, name)[k] = known.columns[name]
        self.error_type[k] = None
        self.error_message[k] = None
        self.reused[k] = True

    def known(self, numbers: np.ndarray) -> KnownAnswers:
        """The answers of requests ``numbers`` as the answer store keeps them."""
        return KnownAnswers(numbers, {name: getattr(self, name)[numbers] for name in STORED_FIELDS})

    def _token_columns(self) -> tuple[np.ndarray, ...]:
        return (
            self.input_tokens, self.output_tokens, self.cache_read_tokens,
            self.cache_write_tokens, self.cache_write_5m_tokens, self.thinking_tokens,
        )

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
        if tokens is not None:  # an answered line (succeeded or refused)
            self.answer[k] = answer
            self.stop_reason[k] = stop
            for column, value in zip(self._token_columns(), tokens):
                column[k] = value
            self.error_type[k], self.error_message[k] = error if error is not None else (None, None)
        elif error is not None:
            self.error_type[k], self.error_message[k] = error

    def retriable(self, candidates: np.ndarray | None = None) -> np.ndarray:
        """Request numbers that failed for a reason another attempt may fix
        (never a refusal, nor an answer that ran out of room: the same request
        would end the same way)."""
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

    def billed(self) -> np.ndarray:
        """Requests that are paid for: every answered one, except a refusal before
        any output (the API does not bill those), and an answer this job took from the
        journal's answer store (paid for once, by the job that asked first)."""
        paid = (self.status == SUCCEEDED) | ((self.status == REFUSED) & (self.output_tokens > 0))
        return paid & ~self.reused

    def billed_usage(self) -> dict[str, np.ndarray]:
        """Per-request usage of the billed requests, keyed as the API names it
        (what ``pricing.actual_cost`` reads; each request has its own price tier)."""
        billed = self.billed()

        def of(a: np.ndarray) -> np.ndarray:
            return np.clip(a[billed], 0, None)

        return {api: of(getattr(self, column)) for api, column in API_USAGE.items()}

    def usage_totals(self) -> dict[str, int]:
        """The billed usage summed (thinking is part of output_tokens, shown apart)."""
        return {key: int(values.sum()) for key, values in self.billed_usage().items()}


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


def answer_text(message: dict) -> str | None:
    """The answer of a Messages API response, read by block type (a thinking block
    comes first on newer models): its text, or a forced tool call's input as JSON;
    None when it has neither (a refusal, or a budget spent before any answer)."""
    texts = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "tool_use":
            return orjson.dumps(block.get("input")).decode()
        if kind == "text":
            texts.append(block.get("text", ""))
    return "".join(texts) if texts else None


def message_answer(message: dict) -> str:
    """The answer of a Messages API response as text ("" when there is none)."""
    return answer_text(message) or ""


def refusal_text(message: dict) -> str:
    """A refusal as a row's error: its category and a short explanation."""
    details = message.get("stop_details") or {}
    category = details.get("category")
    explanation = " ".join(str(details.get("explanation") or "").split())
    if len(explanation) > EXPLANATION_CHARS:
        explanation = explanation[: EXPLANATION_CHARS - 3].rstrip() + "..."
    head = f"refused ({category})" if category else "refused"
    return f"{head}: {explanation}" if explanation else f"{head} by the model's safety classifier"
