"""Send again only the rows of an ended job that failed, and write the answers
back into those rows.

A retry is a new job (its own batches, journal entry and cost) over the failed
rows, with the original job's options; when it ends its columns are copied into
the original DataFrame at those rows, so the other rows keep their answers.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import api, frames
from .columns import job_columns
from .errors import BatchMagicError
from .job import BatchJob, JobSettings, JobStatus, plan_index
from .journal import JobRecord, JobState, Journal
from .merge import row_positions
from .states import RETRIABLE_ROW_STATUSES
from .structured import JSON, LABELS, SCHEMA

if TYPE_CHECKING:
    from .frames import Frame

#: Row statuses another attempt may fix (canceled rows were stopped on purpose).
RETRY_STATUSES = tuple(str(s) for s in RETRIABLE_ROW_STATUSES)


def retry_failed(
    job_id: str,
    df: Frame,
    *,
    client: Any | None = None,
    journal: Journal | str | os.PathLike[str] | None = None,
    settings: JobSettings | None = None,
    start: bool = True,
) -> BatchJob:
    """A new job over ``df``'s rows that job ``job_id`` left errored, expired or
    invalid; its answers are written back into ``df``.

    When no row is left to retry, nothing is sent: a line says so, and the ended
    job itself comes back (read from the journal, not bound to ``df``, which is
    left as it is), so ``retry_failed(...).wait()`` works either way; tell the
    two apart by ``job.id``. A Polars ``df`` cannot change: the retry job's
    ``result()`` is a new frame, ``df`` with the retried rows' answers.
    """
    jr = journal if isinstance(journal, Journal) else Journal(journal)
    full = jr.resolve(job_id)
    record = jr.read_record(full)
    if not record.ended:
        hint = (
            f"it resumes where it stopped: re-run its cell or %batch attach {full} DF"
            if record.state is JobState.FAILED
            else f"wait for it: %batch wait {full}, or stop it: %batch cancel {full}"
        )
        raise BatchMagicError(f"Job {full} is {record.state.value}; retry its failed rows once it has ended ({hint}).")
    if frames.is_polars(df):
        return frames.retry_failed(full, record, df, client=client, journal=jr, settings=settings, start=start)
    assert isinstance(df, pd.DataFrame)
    planned = plan_retry(df, record, jr)
    if planned is None:
        return nothing_to_retry(full, jr)
    subset, positions = planned
    job = api.submit(
        subset, record.template, **submit_options(record), force=True, client=client, journal=jr,
        settings=settings, start=False,
    )
    job.observe(WriteBack(df, positions, job))
    if start:
        job.start()
    return job


def nothing_to_retry(job_id: str, journal: Journal) -> BatchJob:
    """No row to retry: say so, and give back the ended job itself (not bound to a frame)."""
    print(
        f"Job {job_id}: no row errored, expired or was invalid; nothing to retry, nothing sent "
        "(the DataFrame is unchanged). The job itself is returned."
    )
    return api.attach(job_id, None, journal=journal, start=False)


def submit_options(record: JobRecord) -> dict[str, Any]:
    """The submit() options that ask again exactly what the job asked: its recorded
    request options and output shape (text, labels, schema or JSON) as given."""
    o = record.options
    kwargs: dict[str, Any] = {
        "out": record.out,
        "model": o.model,
        "max_tokens": o.max_tokens,
        "system": o.system,
        # The effort as asked; thinking is chosen again by prepare from the same answers
        # (off for labels and schemas where the model allows it), as it was the first time.
        "effort": o.effort,
        "cache_system": o.cache_system,
        "use_tool": o.use_tool,
        "extra_params": dict(o.extra),
        "chunk_size": record.chunk_size,
    }
    spec = record.output
    if spec.kind == LABELS:
        kwargs["labels"] = list(spec.labels)
    elif spec.kind == SCHEMA:
        kwargs["schema"] = spec  # the spec itself: its schema as the user gave it
    elif spec.kind == JSON:
        kwargs["json"] = True
    return kwargs


def plan_retry(df: pd.DataFrame, record: JobRecord, journal: Journal) -> tuple[pd.DataFrame, Any] | None:
    """(the failed rows, their positions in ``df``), or None if none failed."""
    status_col = job_columns(record.out).status
    if status_col not in df.columns:
        # Merge the ended job's results first (from the journal alone: no API call).
        api.attach(record.job_id, df, journal=journal).wait()
    # Rows of df that were part of the job (the DataFrame may have grown since).
    index = plan_index(journal, record.job_id, record.n_rows, df)
    pos, _ = row_positions(df, index)
    in_job = np.ones(len(df), dtype=bool) if pos is None else pos >= 0
    failed = df[status_col].astype("object").isin(RETRY_STATUSES).to_numpy() & in_job
    positions = np.flatnonzero(failed)
    if positions.size == 0:
        return None
    return df.iloc[positions].copy(), positions


class WriteBack:
    """Observer of a retry job: when it ends, copy its columns into the original rows."""

    def __init__(self, df: pd.DataFrame, positions: Any, job: BatchJob) -> None:
        self.df = df
        self.positions = positions
        self.job = job
        self.done = False
        self.error: str | None = None

    def __call__(self, status: JobStatus) -> None:
        if self.done or status.state not in ("done", "canceled"):
            return
        self.done = True
        try:
            write_back(self.df, self.positions, self.job.result(), list(status.columns))
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            logging.getLogger("batch_magic").error(
                "job %s: retried rows not written back: %s", status.job_id, self.error
            )


def write_back(df: pd.DataFrame, positions: Any, subset: pd.DataFrame, columns: list[str]) -> None:
    """Put ``subset``'s columns into ``df`` at row ``positions`` (same order)."""
    for col in columns:
        if col not in subset.columns:
            continue
        values = subset[col]
        if col in df.columns:
            target = df[col].copy()
        else:
            target = pd.Series(None, index=df.index, dtype=values.dtype)
        if isinstance(target.dtype, pd.CategoricalDtype) and isinstance(values.dtype, pd.CategoricalDtype):
            missing = [c for c in values.cat.categories if c not in target.cat.categories]
            if missing:
                target = target.cat.add_categories(missing)
        target.iloc[positions] = values.to_numpy(dtype=object)
        df[col] = target
