"""Results -> typed columns aligned to the DataFrame's rows.

Everything is computed per unique request, then fanned out to the rows with one
vectorised take (duplicates share their request's answer; skipped rows read a
sentinel slot). Columns go into the user's own DataFrame object. If the
DataFrame changed shape or order since submission, rows are matched by the
index labels recorded at plan time when those are unique; otherwise the merge
is refused and the results stay in the journal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .columns import job_columns
from .errors import MergeError
from .plan import NOT_SENT
from .results import CONTEXT_WINDOW, MAX_TOKENS, REFUSAL, STATUS_NAMES, SUCCEEDED, ResultTable
from .states import RowStatus
from .structured import OutputSpec

if TYPE_CHECKING:
    from .journal import JobRecord

#: A row's outcome: ``refused`` when the model declined (its category and reason in
#: ``{out}_error``; never retried), ``invalid`` when an answer is unusable or missing
#: (no text left after thinking: ``{out}_error`` says which limit to raise).
ROW_STATUSES = [str(s) for s in RowStatus]


@dataclass(frozen=True)
class MergeSummary:
    columns: list[str]
    status_counts: dict[str, int]
    aligned_by: str  # "position" or "index labels"


def build_columns(
    out: str,
    spec: OutputSpec,
    table: ResultTable,
    row_requests: np.ndarray,
    skip_reasons: dict[int, str] | None = None,
) -> dict[str, pd.Series | np.ndarray | pd.api.extensions.ExtensionArray]:
    """The new columns, in plan row order (positions 0..n_rows-1)."""
    n_req = len(table)
    succeeded = table.status == SUCCEEDED
    no_answer = succeeded & (table.answer == None)  # noqa: E711 (elementwise)
    parsed = spec.parse(table.answer, succeeded & ~no_answer)

    status_names = np.array([str(STATUS_NAMES[c]) for c in range(len(STATUS_NAMES))], dtype=object)
    req_status = status_names[table.status]
    req_status = np.where(parsed.invalid | no_answer, str(RowStatus.INVALID), req_status)
    # The API's own account (an error, a refusal, a budget that ran out) comes first;
    # then why an answer did not parse.
    noted = _error_text(table)
    unexplained = no_answer & (noted == None)  # noqa: E711
    noted[unexplained] = [f"the answer had no text (stop_reason {table.stop_reason[k]})" for k in np.flatnonzero(unexplained)]
    req_error = np.where(noted != None, noted, parsed.reasons)  # noqa: E711

    # Slot n_req is the sentinel that rows without a request read (skipped, or not in a sample).
    take = np.where(row_requests < 0, n_req, row_requests)

    def fan(values: np.ndarray, fill: Any = None) -> np.ndarray:
        extended = np.empty(n_req + 1, dtype=values.dtype)
        extended[:n_req] = values
        extended[n_req] = fill
        return extended[take]

    names = job_columns(out)
    columns: dict[str, Any] = {}
    for key, values in parsed.columns.items():
        columns[names.field(key)] = typed_array(fan(values), parsed.dtypes.get(key))
    if spec.kind == "labels":  # schema and JSON keep the raw text in {out} already
        raw = np.where(parsed.invalid, table.answer, np.full(len(table), None, dtype=object))
        if parsed.invalid.any():
            columns[names.raw] = typed_array(fan(raw), "string")

    status = fan(req_status.astype(object), str(RowStatus.SKIPPED))
    status[row_requests == NOT_SENT] = str(RowStatus.NOT_SENT)
    columns[names.status] = pd.Categorical(status, categories=ROW_STATUSES)
    errors = fan(req_error.astype(object))
    if skip_reasons:
        positions = np.fromiter(skip_reasons.keys(), dtype=np.int64, count=len(skip_reasons))
        errors[positions] = np.fromiter(skip_reasons.values(), dtype=object, count=len(skip_reasons))
    columns[names.error] = typed_array(errors, "string")
    columns[names.input_tokens] = _tokens(fan(table.input_tokens, -1))
    columns[names.output_tokens] = _tokens(fan(table.output_tokens, -1))
    # Already inside output_tokens (billed as output); shown apart so a row's cost is legible.
    columns[names.thinking_tokens] = _tokens(fan(table.thinking_tokens, -1))
    columns[names.stop_reason] = typed_array(fan(table.stop_reason), "string")
    return columns


#: ``error_type``s whose message is a whole sentence.
_SENTENCES = frozenset({"expired", "canceled", REFUSAL, MAX_TOKENS, CONTEXT_WINDOW})


def _error_text(table: ResultTable) -> np.ndarray:
    out = np.full(len(table), None, dtype=object)
    has = np.flatnonzero(table.error_type != None)  # noqa: E711 (elementwise)
    for k in has:
        kind, message = table.error_type[k], table.error_message[k]
        # An API error category leads ("overloaded_error: ..."); the others are
        # whole sentences (expired, canceled, refused, out of room).
        out[k] = message if kind in _SENTENCES else f"{kind}: {message}".rstrip(": ")
    return out


def typed_array(values: np.ndarray, dtype: Any) -> Any:
    """Values as a pandas array of ``dtype`` (a CategoricalDtype, "string", "Int64", ...)."""
    if dtype is None:
        return values
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Categorical(values, dtype=dtype)
    return pd.array(values, dtype=dtype)


def _tokens(values: np.ndarray) -> Any:
    """Nullable integers: -1 (unknown, e.g. errored) becomes <NA>."""
    missing = values < 0
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype("int64"), missing)


def stale_columns(
    record: JobRecord, others: Iterable[JobRecord], present: Iterable[Any], new: Collection[str]
) -> list[str]:
    """Columns of ``present`` that an earlier job writing the same ``out`` made and this one
    does not (another schema's fields, a raw-answer column): removed before the merge, so no
    old answer sits beside new ones."""
    stale = {job_columns(record.out).raw}
    for other in others:
        if other.out == record.out and other.job_id != record.job_id:
            stale.update(other.columns)
    return [c for c in present if c in stale and c not in new]


def row_positions(df: pd.DataFrame, plan_index: pd.Index) -> tuple[np.ndarray | None, str]:
    """Map each current row to its plan-time position (None: unchanged)."""
    if len(df) == len(plan_index) and df.index.equals(plan_index):
        return None, "position"
    if not plan_index.is_unique:
        raise MergeError(
            f"The DataFrame changed since submission ({len(plan_index)} rows then, {len(df)} now, "
            "or reordered) and its index at submission had duplicate labels, so rows cannot be "
            "matched safely. The results are kept in the journal: attach the job to the "
            "DataFrame as it was (same rows, same order), or reset its index before submitting."
        )
    positions = plan_index.get_indexer(df.index)
    if (positions < 0).all():
        raise MergeError(
            "None of the DataFrame's index labels were in the job's rows; this looks like a "
            "different DataFrame. The results are kept in the journal."
        )
    return positions, "index labels"


def merge_into(df: pd.DataFrame, columns: dict[str, Any], plan_index: pd.Index, *, out: str) -> MergeSummary:
    """Put the columns of the job writing ``out`` into ``df`` itself, aligned to its rows."""
    positions, how = row_positions(df, plan_index)
    for name, values in columns.items():
        if positions is None:
            df[name] = values
        else:
            series = pd.Series(values)
            present = positions >= 0
            aligned = series.iloc[np.where(present, positions, 0)].reset_index(drop=True)
            aligned = aligned.where(pd.Series(present))
            aligned.index = df.index
            df[name] = aligned
    counts = pd.Series(columns[job_columns(out).status]).value_counts()
    return MergeSummary(
        list(columns), {str(k): int(v) for k, v in counts.items() if v}, how
    )
