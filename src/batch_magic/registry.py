"""The jobs this process has started, running or ended: the one registry the Python
API and the magics share.

Keyed by (journal folder, job id), the latest started last. A re-run cell gets
its running job back instead of a second driver, and ``%batch wait`` finds a
job that ``batch_magic.submit()`` started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job import BatchJob
    from .journal import Journal

_JOBS: dict[tuple[str, str], BatchJob] = {}


def _key(journal: Journal, job_id: str) -> tuple[str, str]:
    return str(journal.root.resolve()), job_id


def register(job: BatchJob) -> None:
    """``job`` is the one this process drives for its id now (the latest started, last)."""
    key = _key(job.journal, job.id)
    _JOBS.pop(key, None)
    _JOBS[key] = job


def live_job(journal: Journal, job_id: str) -> BatchJob | None:
    """The job's object in this process if it is still being driven."""
    job = _JOBS.get(_key(journal, job_id))
    return job if job is not None and not job.done else None


def session_job(journal: Journal, job_id: str) -> BatchJob | None:
    """The job's object in this process, running or ended (None: not started here)."""
    return _JOBS.get(_key(journal, job_id))


def session_jobs(journal: Journal | None = None) -> list[BatchJob]:
    """The jobs started in this process (of one journal, or of all), oldest first."""
    root = None if journal is None else str(journal.root.resolve())
    return [job for (where, _), job in _JOBS.items() if root is None or where == root]


def forget_all() -> None:
    """Forget every job (the jobs themselves go on): for a fresh session in tests."""
    _JOBS.clear()
