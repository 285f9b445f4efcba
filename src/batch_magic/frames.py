"""Polars frames in and out: what a job reads from one, and the new frame it gives back.

The engine plans from pandas and builds its result columns as pandas arrays
(``plan.py``, ``merge.py``). A Polars frame meets it here, and only here:

* **in**: only the columns the template reads are handed to the planner, as
  pandas Series over the same Arrow buffers where pandas can hold them
  (strings, numbers, dates, bytes), so the user's frame is never copied whole
  and never converted to pandas;
* **out**: the result columns become Polars columns of their own types (labels
  and statuses as ``pl.Enum`` of exactly their words, schema fields as
  ``Int64``, ``Float64``, ``Boolean``, ``String``, ``Enum``, ``Struct`` or
  ``List``, token counts as ``Int64``) and go into a *new* frame
  (``with_columns``: the user's columns are shared, not copied), because a
  Polars frame cannot change;
* **row identity**: a Polars frame has no index. A job's rows are its rows at
  submission, by position; ``key=`` names the columns that identify a row, and
  those are kept in the journal as data (``keys.arrow``, an Arrow IPC file), so the answers
  find their rows in a filtered, reordered or freshly loaded frame. Without a
  key, a frame of another height, or whose rows no longer render the prompts
  that were sent, is refused, never merged by position.

Polars is optional: nothing here imports it until a Polars frame is met, and a
frame is recognised by its type's module name, never by importing Polars.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import numpy as np
import orjson
import pandas as pd

from .columns import job_columns
from .errors import BatchMagicError, ConfigError, JournalError, MergeError
from .merge import MergeSummary, stale_columns
from .states import RETRIABLE_ROW_STATUSES, DisplayState
from .template import Template

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from .job import BatchJob
    from .journal import Journal
    from .record import JobRecord
    from .settings import JobSettings
    from .status import JobStatus

    #: A frame a job reads from and gives back: pandas (filled in place) or Polars (a new one).
    Frame: TypeAlias = pd.DataFrame | pl.DataFrame

log = logging.getLogger("batch_magic")

#: A row's position in the job, while rows are matched by key (a name no user column has).
_POSITION = "__batch_magic_position__"


def is_polars(obj: Any) -> bool:
    """Is ``obj`` a ``polars.DataFrame``? (Asked of its type: Polars is not imported.)"""
    kind = type(obj)
    return kind.__name__ == "DataFrame" and kind.__module__.startswith("polars")


# -- in: what the planner reads ------------------------------------------------------------
def planning_input(
    frame: Any, template: Template, key: Any = None, *, also: Sequence[str] = ()
) -> tuple[pd.DataFrame, pa.Table]:
    """The columns ``template`` reads (and ``also``: a sample's stratifying column), as a
    pandas frame for the planner, and the key columns as an Arrow table (no column
    without a key), checked before anything is sent."""
    if not is_polars(frame):
        raise ConfigError(
            f"key={key!r} names the columns that identify a row of a Polars frame; a pandas "
            "DataFrame's rows are matched by its index, so leave key out (or set the index)."
        )
    keys = key_table(frame, key)
    names = list(frame.columns)
    used = names if template.needs_whole_row else template.check_columns(names)
    used += [name for name in also if name in names and name not in used]
    data = {name: pandas_column(frame.get_column(name)) for name in used}
    return pd.DataFrame(data, index=pd.RangeIndex(frame.height), copy=False), keys


def pandas_column(series: pl.Series) -> pd.Series:
    """One Polars column as the planner reads it, without a copy where pandas can hold
    the Arrow data itself (strings as pandas' Arrow-backed ``string`` type, which the
    planner checks for blanks like any text column)."""
    import polars as pl
    import pyarrow as pa

    if series.dtype == pl.Object:  # Python objects (PIL images, Paths): Arrow cannot hold them
        return pd.Series(series.to_list(), dtype=object, copy=False)
    if isinstance(series.dtype, pl.Categorical | pl.Enum):
        series = series.cast(pl.String)
    if series.dtype == pl.String:
        chunks = pa.chunked_array(series.to_arrow().cast(pa.large_string()))
        return pd.Series(_arrow_text(chunks), copy=False)
    return series.to_pandas(use_pyarrow_extension_array=True)


def _arrow_text(chunks: pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    """Arrow strings as pandas' own text type, no copy: ``str`` (NaN for missing) where
    pandas has it, whose values become Python strings twice as fast as those of the
    ``string`` type (NA for missing), which older pandas (before 2.3) has alone."""
    try:
        return pd.arrays.ArrowStringArray(chunks, dtype=pd.StringDtype("pyarrow", na_value=np.nan))
    except TypeError:
        return pd.arrays.ArrowStringArray(chunks)


def key_names(key: Any) -> list[str]:
    """``"id"``, ``"a,b"`` or ``["a", "b"]`` as a list of column names."""
    if key is None:
        return []
    if isinstance(key, str):
        names = [part.strip() for part in key.split(",")]
    elif isinstance(key, Sequence) and all(isinstance(part, str) for part in key):
        names = [part.strip() for part in key]
    else:
        raise ConfigError(f"key={key!r} must be a column name, names separated by commas, or a list of names.")
    if not names or not all(names):
        raise ConfigError(f"key={key!r} names an empty column; give e.g. key='ticket_id' or key=['day', 'shop'].")
    if len(set(names)) < len(names):
        raise ConfigError(f"key={key!r} names a column twice; list each once.")
    return names


def key_table(frame: pl.DataFrame, key: Any) -> pa.Table:
    """The key columns at submission, checked: present, no missing value, no row twice."""
    import polars as pl

    names = key_names(key)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ConfigError(
            f"key={key!r}: the frame has no column {', '.join(map(repr, missing))}. "
            f"Columns: {', '.join(map(repr, frame.columns[:30]))}."
        )
    keys = frame.select(names)
    if any(keys.schema[n] == pl.Object for n in names):
        raise ConfigError(f"key={key!r}: a key column must hold plain values (text, numbers, dates), not objects.")
    nulls = [n for n in names if keys.get_column(n).null_count()]
    if nulls:
        raise ConfigError(
            f"key={key!r}: {', '.join(map(repr, nulls))} has missing values, so those rows cannot "
            "be found again; fill them or choose a key every row has."
        )
    if names:
        repeated = keys.filter(keys.is_duplicated())
        if repeated.height:
            first = repeated.row(0)
            raise ConfigError(
                f"key={key!r} does not identify a row: {repeated.height:,} rows share a key with "
                f"another (e.g. {first if len(first) > 1 else first[0]!r}); add columns to the key "
                "(key='a,b') or choose one with a different value in every row."
            )
    return keys.to_arrow()


# -- which frame a job was planned from ----------------------------------------------------
#: The frame each job of this process was planned from (or found again by its fingerprint):
#: its rows are the job's rows, so it merges by position with no check.
_PLANNED: weakref.WeakValueDictionary[tuple[str, str], Any] = weakref.WeakValueDictionary()


def note_planned(journal: Journal, job_id: str, frame: Any) -> None:
    """Remember that ``frame`` holds exactly the rows of job ``job_id`` (Polars frames only)."""
    if is_polars(frame):
        _PLANNED[(str(journal.root.resolve()), job_id)] = frame


def _planned_from(journal: Journal, job_id: str, frame: Any) -> bool:
    return _PLANNED.get((str(journal.root.resolve()), job_id)) is frame


def is_polars_job(journal: Journal, job_id: str) -> bool:
    """Was the job submitted from a Polars frame? (Its keys are then in the journal.)"""
    from .journal import KEYS_DATA

    return journal.is_file(journal.job_file(job_id, KEYS_DATA))


# -- out: the result columns as Polars -------------------------------------------------------
def polars_column(name: str, values: Any) -> pl.Series:
    """One result column (as ``merge.build_columns`` makes it) as a typed Polars column."""
    import polars as pl
    import pyarrow as pa

    if isinstance(values, pd.Categorical):
        categories = list(values.categories)
        if all(isinstance(c, str) for c in categories):
            codes = np.asarray(values.codes, dtype=np.int32)
            words = pa.DictionaryArray.from_arrays(
                pa.array(codes, mask=codes < 0), pa.array(categories, pa.large_string())
            )
            return pl.Series(name, words).cast(pl.Enum(categories))
        # An enum field of numbers or booleans: their own type.
        values = np.asarray(values.astype(object))
    if isinstance(values, pd.api.extensions.ExtensionArray):  # string, Int64, Float64, boolean
        return pl.Series(name, pa.array(values))
    items = list(values)
    try:
        series = pl.Series(name, items, strict=False)
    except Exception:
        series = None
    mixed = series is None or (
        series.dtype == pl.String and not all(v is None or isinstance(v, str) for v in items)
    )
    if mixed:  # values of several kinds (an answer's free JSON): kept as their JSON text
        text = [None if v is None else orjson.dumps(v).decode() for v in items]
        return pl.Series(name, text, dtype=pl.String)
    assert series is not None
    return series


def merge(
    journal: Journal, record: JobRecord, columns: Mapping[str, Any], target: Any
) -> tuple[MergeSummary, pl.DataFrame]:
    """The job's columns in a new Polars frame: ``target`` with them, or (no target) the
    key columns and them. Rows are matched by key when the job has one, else by position
    into the frame the job was planned from, or a frame whose rows render the same prompts."""
    import polars as pl

    stored = journal.read_keys(record.job_id)
    keys = pl.from_arrow(stored) if stored is not None else None
    assert keys is None or isinstance(keys, pl.DataFrame)
    if keys is not None and keys.width and keys.height != record.n_rows:
        raise JournalError(
            f"The keys of job {record.job_id} hold {keys.height:,} rows and the job has "
            f"{record.n_rows:,}; the journal was altered. The results are kept in it."
        )
    positions, how = _positions(journal, record, target, keys)
    new = []
    for name, values in columns.items():
        series = polars_column(name, values)
        new.append(series if positions is None else series.gather(positions))
    if target is None:
        base = keys if keys is not None and keys.width else pl.DataFrame()
    else:
        base = target.drop(stale_columns(record, journal.records(), target.columns, columns))
    result = base.with_columns(new)
    counts = pd.Series(columns[job_columns(record.out).status]).value_counts()
    return MergeSummary(list(columns), {str(k): int(v) for k, v in counts.items() if v}, how), result


def _positions(
    journal: Journal, record: JobRecord, target: Any, keys: pl.DataFrame | None
) -> tuple[pl.Series | None, str]:
    """Each row of ``target``'s position in the job (None: the same rows, in order)."""
    if target is None or _planned_from(journal, record.job_id, target):
        return None, "position"  # the job's own rows, in order
    if keys is not None and keys.width:
        return _positions_by_key(record, target, keys), "key"
    how = (
        "this job has no key, so its rows are matched by position; submit with key='COLUMN' "
        "(--key COLUMN) naming columns that identify a row, and a filtered, reordered or "
        "reloaded frame finds its answers by key"
    )
    if target.height != record.n_rows:
        raise MergeError(
            f"The frame has {target.height:,} rows and job {record.job_id} had {record.n_rows:,}: "
            f"{how}. Attach it to the frame as it was submitted (same rows, same order) and filter "
            "after. The results are kept in the journal."
        )
    if not _same_rows(journal, record, target):
        raise MergeError(
            f"The frame's rows differ from job {record.job_id}'s (reordered, or other values in "
            f"the columns the template reads): {how}. Attach it to the frame as it was submitted "
            "(same rows, same order). The results are kept in the journal."
        )
    return None, "position"


def _positions_by_key(record: JobRecord, target: pl.DataFrame, keys: pl.DataFrame) -> pl.Series:
    import polars as pl

    names = keys.columns
    missing = [n for n in names if n not in target.columns]
    if missing:
        raise MergeError(
            f"Job {record.job_id} finds its rows by the key {', '.join(map(repr, names))}, and the "
            f"frame has no column {', '.join(map(repr, missing))}. The results are kept in the journal."
        )
    try:
        current = target.select(names).cast(keys.schema)
    except pl.exceptions.PolarsError as exc:
        raise MergeError(
            f"The frame's key columns {', '.join(map(repr, names))} cannot be read as the job's "
            f"({dict(keys.schema)}): {exc}. The results are kept in the journal."
        ) from None
    found = current.join(
        keys.with_row_index(_POSITION), on=names, how="left", maintain_order="left"
    ).get_column(_POSITION)
    if found.null_count() == found.len():
        raise MergeError(
            f"None of the frame's keys ({', '.join(map(repr, names))}) is one of job "
            f"{record.job_id}'s rows; this looks like another frame. The results are kept in the journal."
        )
    return found


def _same_rows(journal: Journal, record: JobRecord, target: pl.DataFrame) -> bool:
    """Do ``target``'s rows render, in order, exactly the prompts the job sent?"""
    from .plan import NOT_SENT, build_plan

    rows = journal.read_rows(record.job_id)
    sample = np.flatnonzero(rows != NOT_SENT) if record.n_not_sent else None
    try:
        template = Template.compile(record.template)
        frame, _ = planning_input(target, template)
        plan = build_plan(frame, template, record.options, send_rows=sample)
    except BatchMagicError:
        return False
    return bool(np.array_equal(plan.row_requests, rows)) and plan.prompts == journal.read_prompts(record.job_id)


# -- retry: the failed rows again, written back into a new frame -----------------------------
def retry_failed(
    job_id: str,
    record: JobRecord,
    frame: pl.DataFrame,
    *,
    client: Any,
    journal: Journal,
    settings: JobSettings | None,
    start: bool,
) -> BatchJob:
    """``retry.retry_failed`` for a Polars frame: a job over its errored, expired or
    invalid rows, whose ``result()`` is ``frame`` with those rows' answers replaced."""
    from dataclasses import replace

    import polars as pl

    from . import api
    from .options import JobOptions
    from .retry import nothing_to_retry, submit_retry

    status = job_columns(record.out).status
    if status not in frame.columns:  # the ended job's answers first (from the journal alone)
        merged = api.attach(record.job_id, frame, journal=journal).wait()
        assert isinstance(merged, pl.DataFrame)
        frame = merged
    retriable = [str(s) for s in RETRIABLE_ROW_STATUSES]
    failed = frame.get_column(status).cast(pl.String).is_in(retriable).fill_null(False)
    positions = np.flatnonzero(failed.to_numpy())
    if positions.size == 0:
        return nothing_to_retry(job_id, journal)
    stored = journal.read_keys(record.job_id)
    key = stored.column_names if stored is not None and stored.num_columns else None
    options = replace(JobOptions.from_record(record), key=key)
    job = submit_retry(frame.filter(failed), record, options, client=client, journal=journal, settings=settings)
    job.after_merge(WriteBack(frame, positions))
    if start:
        job.start()
    return job


class WriteBack:
    """The last step of a Polars retry job's merge: the job's result becomes the whole
    frame with the retried rows' columns replaced (a new frame; the one given is left as
    it is). A failure here fails the job, as any step of the merge."""

    def __init__(self, frame: pl.DataFrame, positions: np.ndarray) -> None:
        self.frame = frame
        self.positions = positions

    def __call__(self, merged: Any, columns: list[str]) -> pl.DataFrame:
        try:
            return write_back(self.frame, self.positions, merged, columns)
        except Exception as exc:
            raise BatchMagicError(
                f"The retried rows were answered but not written back into the frame "
                f"({type(exc).__name__}: {exc}). Their answers are kept in the journal."
            ) from exc


def write_back(frame: pl.DataFrame, positions: np.ndarray, subset: Any, columns: list[str]) -> pl.DataFrame:
    """``frame`` with ``subset``'s columns put at row ``positions`` (same order)."""
    import polars as pl

    where = np.full(frame.height, -1, dtype=np.int64)
    where[positions] = np.arange(len(positions))
    take = pl.Series(where).set(pl.Series(where < 0), None).cast(pl.UInt32)
    retried = pl.Series(where >= 0)
    updated = []
    for name in columns:
        if name not in subset.columns:
            continue
        values = subset.get_column(name).gather(take)
        if name in frame.columns:
            old = frame.get_column(name)
            if old.dtype != values.dtype:
                values = values.cast(old.dtype, strict=False)
            values = pl.select(pl.when(retried).then(values).otherwise(old)).to_series()
        updated.append(values.alias(name))
    return frame.with_columns(updated)


# -- the magic: the user's name for the frame now holds the new one -------------------------
class Rebind:
    """Observer of a job started by ``%%batch FRAME``: when it ends, ``FRAME`` (the
    notebook's variable) is bound to the new frame with the answers, and one line says so."""

    #: Jobs whose frame was rebound already (a re-run cell adds a second observer).
    _rebound: ClassVar[weakref.WeakSet[BatchJob]] = weakref.WeakSet()

    def __init__(self, namespace: dict[str, Any], name: str | None, frame: Any, job: BatchJob) -> None:
        self.namespace = namespace
        if name is None or not name.isidentifier():  # the variable the frame is bound to
            name = next((k for k, v in namespace.items() if v is frame and not k.startswith("_")), None)
        self.name = name
        self.frame = frame
        self.job = job
        self.done = False

    def __call__(self, status: JobStatus) -> None:
        # An ended job attached shows "done" before it has merged: wait until it has.
        if self.done or status.state not in (DisplayState.DONE, DisplayState.CANCELED) or not self.job.done:
            return
        self.done = True
        if self.job in Rebind._rebound:
            return
        Rebind._rebound.add(self.job)
        try:
            result = self.job.result()
        except BatchMagicError:
            return
        if self.name is None or self.namespace.get(self.name) is not self.frame:
            print(f"Job {self.job.id}: the new Polars frame with the answers is job.result().")
            return
        self.namespace[self.name] = result
        shown = ", ".join(status.columns[:4]) + (", ..." if len(status.columns) > 4 else "")
        print(
            f"{self.name} is now a new Polars frame with the answers ({shown}); "
            "Polars frames cannot change, so the name was rebound."
        )


__all__ = [
    "Rebind", "WriteBack", "is_polars", "is_polars_job", "key_names", "merge", "note_planned",
    "planning_input", "polars_column", "retry_failed", "write_back",
]
