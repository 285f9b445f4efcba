"""The columns a job adds to a DataFrame: every name is made here, and only here.

A job with ``out="x"`` adds its answer column ``x`` (for a schema or JSON
answer, also one column per field: ``x_<field>``) and bookkeeping columns
``x_status``, ``x_error``, ``x_raw``, token counts and the stop reason. Other
modules ask :func:`job_columns` for a name; none builds one from a suffix or
finds one by how it ends, so a schema field called ``order_status``
(``x_order_status``) is never taken for the row statuses (``x_status``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bookkeeping columns, ``{out}_<suffix>``: the row's status and error, the raw answer
#: of a label that did not parse, token counts (thinking apart), the stop reason.
STATUS, ERROR, RAW = "status", "error", "raw"
INPUT_TOKENS, OUTPUT_TOKENS, THINKING_TOKENS, STOP_REASON = (
    "input_tokens", "output_tokens", "thinking_tokens", "stop_reason"
)
BOOKKEEPING_SUFFIXES = (STATUS, ERROR, RAW, INPUT_TOKENS, OUTPUT_TOKENS, THINKING_TOKENS, STOP_REASON)


@dataclass(frozen=True)
class JobColumns:
    """The names of one job's columns."""

    out: str

    @property
    def answer(self) -> str:
        return self.out

    @property
    def status(self) -> str:
        return self._named(STATUS)

    @property
    def error(self) -> str:
        return self._named(ERROR)

    @property
    def raw(self) -> str:
        return self._named(RAW)

    @property
    def input_tokens(self) -> str:
        return self._named(INPUT_TOKENS)

    @property
    def output_tokens(self) -> str:
        return self._named(OUTPUT_TOKENS)

    @property
    def thinking_tokens(self) -> str:
        return self._named(THINKING_TOKENS)

    @property
    def stop_reason(self) -> str:
        return self._named(STOP_REASON)

    def field(self, name: str) -> str:
        """The column of a schema or JSON field (or the answer itself for ``""``)."""
        return self._named(name) if name else self.out

    @property
    def bookkeeping(self) -> tuple[str, ...]:
        """Every bookkeeping column a job may add, in the order they are listed."""
        return tuple(self._named(s) for s in BOOKKEEPING_SUFFIXES)

    @property
    def details(self) -> tuple[str, ...]:
        """Token counts and the stop reason: kept, not worth a preview."""
        return (self.input_tokens, self.output_tokens, self.thinking_tokens, self.stop_reason)

    def _named(self, suffix: str) -> str:
        return f"{self.out}_{suffix}"


def job_columns(out: str) -> JobColumns:
    """The names of the columns a job with this ``out`` adds."""
    return JobColumns(out)


__all__ = ["BOOKKEEPING_SUFFIXES", "JobColumns", "job_columns"]
