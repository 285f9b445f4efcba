"""Send again only the rows of an ended job that failed, and write the answers
back into those rows.

A retry is a job (its own batches, journal entry and cost) over the failed
rows, with the original job's options; when it ends its columns are copied into
the original DataFrame at those rows, so the other rows keep their answers. The
same rows retried again are the retry job made for them before (nothing sent),
unless that one ended leaving rows to retry: then a new job, which takes from the
answer store what was answered.

A retry job's folder records its origin (``retry_of.json``: the job whose rows it
retried and their positions there). Retrying a retry job over a frame that is not
its own (the whole DataFrame, after its answers were written back) retries the
failed rows of the job that frame holds, its origin: so ``%batch retry last df``
works any number of times, whatever the index's labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from . import api, frames
from .columns import job_columns
from .errors import BatchMagicError, JournalError, TemplateError
from .job import BatchJob, plan_index
from .journal import Journal
from .merge import row_positions
from .options import JobOptions
from .record import JobRecord, JobState
from .settings import JobSettings
from .states import RETRIABLE_ROW_STATUSES
from .template import Template

#: Row statuses another attempt may fix (canceled rows were stopped on purpose).
RETRY_STATUSES = tuple(str(s) for s in RETRIABLE_ROW_STATUSES)
#: In a retry job's folder: the job whose rows it retried, and their positions there.
ORIGIN_FILE = "retry_of.json"

if TYPE_CHECKING:
    from .frames import Frame


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

    ``job_id`` may be a retry job and ``df`` the whole frame its answers were written
    back into: the rows still failing of the job it retried are sent (``job_of_frame``).
    """
    jr = Journal.of(journal)
    full = jr.resolve(job_id)
    record = jr.read_record(full)
    if not record.ended:
        hint = (
            f"it resumes where it stopped: re-run its cell or %batch attach {full} DF"
            if record.state is JobState.FAILED
            else f"wait for it: %batch wait {full}, or stop it: %batch cancel {full}"
        )
        raise BatchMagicError(f"Job {full} is {record.state.value}; retry its failed rows once it has ended ({hint}).")
    # The template is read back from the manifest, and a journal may come from elsewhere:
    # its names are checked again as at submission (columns, index levels, media
    # functions) before anything is merged or sent; it renders in the sandbox.
    polars = frames.is_polars(df)
    index_names = [] if polars else list(df.index.names)  # type: ignore[union-attr]
    try:
        Template.compile(record.template).check_columns(list(df.columns), index_names)
    except TemplateError as exc:
        raise TemplateError(f"Job {full}'s template, as its manifest records it, cannot be used: {exc}") from None
    if polars:
        return frames.retry_failed(full, record, df, client=client, journal=jr, settings=settings, start=start)
    assert isinstance(df, pd.DataFrame)
    record = job_of_frame(jr, record, df)
    planned = plan_retry(df, record, jr)
    if planned is None:
        return nothing_to_retry(full, jr)
    subset, positions, job_rows = planned
    before = set(jr.job_ids())
    try:
        job = submit_retry(subset, record, JobOptions.from_record(record), client=client, journal=jr, settings=settings)
    except BatchMagicError as exc:  # the options come from the manifest: say whose they are
        raise type(exc)(f"Retrying job {record.job_id} with the options its manifest records: {exc}") from None
    if job.id not in before:  # a new retry job (one found again has its origin already)
        write_origin(jr, job.id, RetryOrigin(record.job_id, job_rows))
    job.after_merge(WriteBack(df, positions))
    if start:
        job.start()
    return job


def submit_retry(
    rows: Frame, record: JobRecord, options: JobOptions, *, client: Any, journal: Journal,
    settings: JobSettings | None,
) -> BatchJob:
    """The job (not started) that retries ``rows`` of the job ``record``, with ``options``.

    The same rows retried again (a re-run of the retry's cell, the same notebook run
    twice in one folder) are the job made for them before, found by its fingerprint:
    nothing is sent and no new job is made. Unless that job ended leaving rows to retry
    itself: then a new job, which takes from the answer store whatever was answered."""

    def send(force: bool) -> BatchJob:
        return api.submit(
            rows, record.template, options=replace(options, force=force), client=client, journal=journal,
            settings=settings, start=False,
        )

    job = send(False)
    earlier = job.record
    if earlier.ended and any(earlier.row_counts.get(status, 0) for status in RETRY_STATUSES):
        job = send(True)
    return job


def nothing_to_retry(job_id: str, journal: Journal) -> BatchJob:
    """No row to retry: say so, and give back the ended job itself (not bound to a frame)."""
    print(
        f"Job {job_id}: no row errored, expired or was invalid; nothing to retry, nothing sent "
        "(the DataFrame is unchanged). The job itself is returned."
    )
    return api.attach(job_id, None, journal=journal, start=False)


def plan_retry(
    df: pd.DataFrame, record: JobRecord, journal: Journal
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """(the failed rows, their positions in ``df``, their positions in the job), or None
    if none failed."""
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
    job_rows = positions if pos is None else pos[positions]
    return df.iloc[positions].copy(), positions, job_rows


@dataclass(frozen=True)
class RetryOrigin:
    """What a retry job retried: job ``job_id``'s rows at ``rows`` (positions in that job)."""

    job_id: str
    rows: np.ndarray


def write_origin(journal: Journal, retry_id: str, origin: RetryOrigin) -> None:
    data = {"job": origin.job_id, "rows": origin.rows.tolist()}
    journal.write_file(journal.job_file(retry_id, ORIGIN_FILE), orjson.dumps(data))


def read_origin(journal: Journal, job_id: str) -> RetryOrigin | None:
    """The origin ``write_origin`` recorded, or None (a job that is not a retry).
    A journal may come from elsewhere: the file is checked before it is believed."""
    path = journal.job_file(job_id, ORIGIN_FILE)
    if not journal.is_file(path):
        return None
    try:
        data = orjson.loads(journal.read_file(path))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise JournalError(f"The retry origin of job {job_id} ({str(path)!r}) is unreadable ({exc}).") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not (
        isinstance(data, dict) and isinstance(data.get("job"), str) and data["job"] != job_id
        and isinstance(rows, list) and all(type(r) is int and r >= 0 for r in rows)
    ):
        raise JournalError(
            f"The retry origin of job {job_id} ({str(path)!r}) is not a job id and row positions; "
            "this journal was altered. Retry the job whose rows the DataFrame holds by its id."
        )
    return RetryOrigin(journal.resolve(data["job"]), np.array(rows, dtype=np.int64))


def job_of_frame(journal: Journal, record: JobRecord, df: pd.DataFrame) -> JobRecord:
    """The job whose rows ``df`` holds: ``record``'s own, or, for a retry job over a frame
    that is not its own (not its rows in its order), the job it retried, followed back.

    After a retry's answers are written back, the whole frame holds the first job's
    rows with every retry's latest outcome: its failed rows are those to send again."""
    seen = {record.job_id}
    while (origin := read_origin(journal, record.job_id)) is not None:
        own = journal.read_index(record.job_id)
        if isinstance(own, pd.Index) and len(own) == len(df) and own.equals(df.index):
            break  # the retry job's own frame
        if origin.job_id in seen:
            raise JournalError(
                f"The retry origins of job {record.job_id} lead back to it ({ORIGIN_FILE}); this journal "
                "was altered. Retry the job whose rows the DataFrame holds by its id."
            )
        seen.add(origin.job_id)
        record = journal.read_record(origin.job_id)
    return record


class WriteBack:
    """The last step of a retry job's merge: copy its columns into the original rows.
    It runs as part of the merge, so a failure here fails the job (``wait()`` raises
    it, the panel shows it) rather than passing unseen."""

    def __init__(self, df: pd.DataFrame, positions: Any) -> None:
        self.df = df
        self.positions = positions

    def __call__(self, merged: pd.DataFrame, columns: list[str]) -> None:
        try:
            write_back(self.df, self.positions, merged, columns)
        except Exception as exc:
            raise BatchMagicError(
                f"The retried rows were answered but not written back into the DataFrame "
                f"({type(exc).__name__}: {exc}). Their answers are kept in the journal."
            ) from exc


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
