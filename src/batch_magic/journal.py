"""The on-disk record of every job: the source of truth.

``.batch_magic/`` (configurable) holds one folder per job::

    jobs/<job_id>/manifest.json      the ``JobRecord``: options, fingerprint, batches, states
    jobs/<job_id>/prompts.json       the unique rendered prompts (request k = r<k>)
    jobs/<job_id>/rows.npy           row position -> request number (-1: skipped)
    jobs/<job_id>/index.json         the DataFrame's index at plan time: names, dtypes, ...
    jobs/<job_id>/index.parquet      ... and its labels (see ``index_codec.py``)
    jobs/<job_id>/keys.arrow         a Polars frame's key columns at plan time (no column:
                                     no key; the file marks a job of a Polars frame)
    jobs/<job_id>/results/<batch>.jsonl   raw results, exactly as downloaded
    jobs/<job_id>/media.json         the job's images and PDFs: sha256, kind, size, path...
    jobs/<job_id>/media/<sha>.<ext>  bytes of media given in memory (bytes, PIL images),
                                     kept until uploaded
    uploads/...                      the Files API uploads of every job (``uploads.py``)

This module is the folder: where each file is, reading and writing it through the
path rule, locks, and finding jobs. What the files hold is read by their codecs:
the manifest by ``record.py`` (format 1 through ``migrate.py``), the index by
``index_codec.py``, the media list by ``media.py``. Reading never writes.

Every file is written to a temporary name, flushed and renamed, so a reader
(or a process killed mid-write) sees the old file or the new one, never half.
Files are readable by the owner only. No API key is ever written here.

A journal travels with its notebook (course repositories, shared drives, zip
files), so reading one is reading untrusted input: nothing in it is loaded as
code (no pickle, no eval), every file is read and written through one path
rule (``safepath.py``: no symlink below the root, nothing outside it), every
count is checked against the job's own files before anything is sized by it,
and a file that does not parse is refused with an error naming it (an
unreadable job is still listed, by ``scan``). See docs/architecture.md, "A
journal from elsewhere".
The one exception is asked for by name: ``trust_pickled_index`` converts the
``index.pkl`` of a format-1 journal once the user says they trust it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from . import safepath
from .errors import JobNotFoundError, JournalError
from .index_codec import (
    INDEX_DATA,
    INDEX_META,
    PICKLED_INDEX,
    IndexNotStored,
    index_files,
    index_from_files,
)
from .media import MediaItem, iter_items
from .plan import NOT_SENT
from .record import FORMAT_VERSION, SAFE_NAME, JobRecord, checked_batch_id, now_iso

DEFAULT_ROOT = ".batch_magic"
MANIFEST = "manifest.json"
MEDIA = "media.json"
#: A Polars frame's key columns (``frames.py``), as an Arrow IPC file.
KEYS_DATA = "keys.arrow"
#: A job id as ``new_job_id`` makes it; group 1 is the fingerprint's first characters.
_JOB_ID = re.compile(r"^\d{8}-\d{6}-([0-9a-f]{6})[0-9a-f]{2}$")


@dataclass(frozen=True)
class UnreadableJob:
    """A job folder whose manifest cannot be read: listed with why, never dropped silently."""

    job_id: str
    #: The manifest's path.
    path: str
    error: str


class Journal:
    """A folder of jobs. Cheap to create; touches the disk only when asked."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root if root is not None else os.environ.get("BATCH_MAGIC_DIR", DEFAULT_ROOT))
        # Prompts this instance just wrote, handed once to the job that reads them next
        # (a million prompts are ~300 MB of JSON: parsing them again costs seconds).
        self._written_prompts: dict[str, list[str]] = {}

    @classmethod
    def of(cls, journal: Journal | str | os.PathLike[str] | None) -> Journal:
        """``journal`` itself, or the journal at that folder (None: the default folder)."""
        return journal if isinstance(journal, Journal) else cls(journal)

    def __repr__(self) -> str:
        return f"Journal({str(self.root)!r})"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    def job_dir(self, job_id: str) -> Path:
        """The job's folder; refused if the id or a symlink would lead out of the journal."""
        if not SAFE_NAME.match(job_id) or ".." in job_id:
            raise JournalError(
                f"{job_id!r} is not a job id of this journal (ids are like 20260101-120000-ab12cd34)."
            )
        return safepath.checked(self.root, self.jobs_dir / job_id)

    def job_file(self, job_id: str, *parts: str) -> Path:
        """A file of the job's folder, refused if it (through a symlink) leads elsewhere."""
        return safepath.checked(self.root, self.job_dir(job_id).joinpath(*parts))

    def new_job_id(self, fingerprint: str) -> str:
        """Readable, sortable, unique: date, time, a slice of the fingerprint."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return f"{stamp}-{fingerprint[:6]}{secrets.token_hex(1)}"

    # -- files: every read and write under the root goes through the path rule (safepath.py)
    def write_file(self, path: Path, data: bytes) -> None:
        safepath.write_atomic(self.root, path, data)

    def read_file(self, path: Path) -> bytes:
        """A journal file's bytes (FileNotFoundError if there is none; a link is refused)."""
        return safepath.read_bytes(self.root, path)

    def is_file(self, path: Path) -> bool:
        return safepath.is_file(self.root, path)

    # -- records -----------------------------------------------------------
    def write_record(self, record: JobRecord) -> None:
        """Write the job's manifest (format 2). The first write of a record read from an
        older format keeps that file beside it (``manifest.v1.json``)."""
        record.updated_at = now_iso()
        path = self.job_file(record.job_id, MANIFEST)
        if record.read_from_format != FORMAT_VERSION:
            kept = self.job_file(record.job_id, f"manifest.v{record.read_from_format}.json")
            if not self.is_file(kept):
                with contextlib.suppress(FileNotFoundError):
                    self.write_file(kept, self.read_file(path))
            record.read_from_format = FORMAT_VERSION
        self.write_file(path, record.to_json())

    def read_record(self, job_id: str) -> JobRecord:
        """The job's record, checked against its own files. Reading writes nothing: a
        format-1 manifest is migrated in memory, and written in format 2 when the job
        next changes (or by ``migrate.upgrade``)."""
        path = self.job_file(job_id, MANIFEST)
        try:
            raw = self.read_file(path)
        except FileNotFoundError:
            raise JobNotFoundError(
                f"No job {job_id!r} in the journal at {str(self.root)!r}; "
                "`batch_magic.jobs()` or `%batch list` shows the jobs there."
            ) from None
        record = JobRecord.from_json(raw, job_id, str(path))
        self._check_plan_files(record)
        return record

    def _check_plan_files(self, record: JobRecord) -> None:
        """The manifest's counts against the sizes of the job's own files, before anything
        is allocated from them: ``rows.npy`` holds exactly ``n_rows`` numbers, and
        ``prompts.json`` is large enough for ``n_requests`` texts (each at least ``"",``).
        The contents are checked when read (``read_rows``, ``read_prompts``)."""
        job_id = record.job_id
        rows_path = self.job_file(job_id, "rows.npy")
        n_rows = _npy_length(self, rows_path, job_id)
        if n_rows != record.n_rows:
            raise JournalError(
                f"Job {job_id}: its manifest says {record.n_rows} rows, but {str(rows_path)!r} holds "
                f"{n_rows}; this journal was altered. Remove that job's folder."
            )
        prompts_path = self.job_file(job_id, "prompts.json")
        try:
            size = os.lstat(prompts_path).st_size
        except OSError:
            size = 0
        if record.n_requests and size < 3 * record.n_requests + 1:
            raise JournalError(
                f"Job {job_id}: its manifest says {record.n_requests} requests, but {str(prompts_path)!r} "
                f"({size} bytes) cannot hold that many; this journal was altered. Remove that job's folder."
            )

    def job_ids(self) -> list[str]:
        """Every job folder (one whose manifest is a link or unreadable too: ``scan`` says why)."""
        if not self.jobs_dir.is_dir():
            return []
        safepath.checked(self.root, self.jobs_dir)
        return sorted(
            p.name for p in self.jobs_dir.iterdir()
            if SAFE_NAME.match(p.name) and (p.is_symlink() or os.path.lexists(p / MANIFEST))
        )

    def scan(self) -> tuple[list[JobRecord], list[UnreadableJob]]:
        """Every job's record, and the jobs whose record cannot be read, with why."""
        records: list[JobRecord] = []
        unreadable: list[UnreadableJob] = []
        for job_id in self.job_ids():
            try:
                records.append(self.read_record(job_id))
            except JournalError as exc:
                unreadable.append(UnreadableJob(job_id, str(self.jobs_dir / job_id / MANIFEST), str(exc)))
        return records, unreadable

    def records(self) -> Iterator[JobRecord]:
        """Every readable job's record (``scan`` also lists the unreadable ones)."""
        for job_id in self.job_ids():
            with contextlib.suppress(JournalError):
                yield self.read_record(job_id)

    def resolve(self, job_id: str) -> str:
        """A full job id from an id or a unique prefix (or ``last``)."""
        ids = self.job_ids()
        if job_id in ids:
            return job_id
        if job_id in ("last", "latest") and ids:
            return self._newest(ids)
        matches = [i for i in ids if i.startswith(job_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise JobNotFoundError(
                f"No job {job_id!r} in the journal at {str(self.root)!r}"
                + (f"; the latest is {ids[-1]!r}." if ids else "; it holds no jobs yet.")
            )
        raise JobNotFoundError(
            f"{job_id!r} matches {len(matches)} jobs ({', '.join(matches[:5])}); give more of the id."
        )

    def _newest(self, ids: list[str]) -> str:
        """The job made last: ids sort by the second they were made in, and those of one
        second by their fingerprint, so the records of that second say which came last."""
        second = ids[-1].split("-")[:2]
        same = [i for i in ids if i.split("-")[:2] == second]
        if len(same) == 1:
            return same[0]
        created = {}
        for job in same:
            try:
                created[job] = self.read_record(job).created_at
            except JournalError:
                continue  # unreadable: not a job to go on with
        return max(created, key=lambda job: created[job]) if created else ids[-1]

    def find_by_fingerprint(
        self, fingerprint: str, scanned: tuple[list[JobRecord], list[UnreadableJob]] | None = None
    ) -> JobRecord | None:
        """The record of the newest job with this fingerprint (a failed one too: it resumes).
        ``scanned``: this journal's ``scan()``, when the caller has just made it.

        A job whose manifest cannot be read has no fingerprint to compare, but its
        folder's name carries the fingerprint's first characters (``new_job_id``).
        When no readable job matches and an unreadable one's name does, it may be
        this very job, already paid for: refused, rather than sent again (a chance
        match of 24 bits costs the user one ``--force``, never a second payment).
        """
        records, unreadable = scanned if scanned is not None else self.scan()
        found = [r for r in records if r.fingerprint == fingerprint]
        if found:  # newest by creation time: the ids of one second sort by their random end
            return max(found, key=lambda r: r.created_at)
        for job in reversed(unreadable):
            match = _JOB_ID.match(job.job_id)
            if match and match.group(1) == fingerprint[:6]:
                raise JournalError(
                    f"Job {job.job_id} may be this cell's job, but it cannot be read: {job.error} "
                    "Nothing was sent (running it again could pay twice for the same rows). Either fix "
                    f"or remove its folder {str(self.jobs_dir / job.job_id)!r} (its downloaded results "
                    "are in results/), or run the cell with --force (force=True) to send a new job."
                )
        return None

    def claimed_batch_ids(self) -> set[str]:
        """Every batch id any job of this journal has met (its own, rejected, duplicates)."""
        ids: set[str] = set()
        for record in self.records():
            ids |= record.batch_ids
        return ids

    def try_lock(self, job_id: str) -> JobLock | None:
        """Take the job's driver lock, or None if a live process holds it.

        Only one driver per job, across processes and within one: two drivers
        would download into the same file. The OS drops the lock when its
        holder dies, so a job whose kernel died is free to pick up.
        """
        return JobLock.acquire(self.root, self.job_file(job_id, "lock"))

    # -- plan data ---------------------------------------------------------
    def write_plan_data(
        self, job_id: str, prompts: list[str], row_requests: np.ndarray, index: pd.Index
    ) -> None:
        self.write_file(self.job_file(job_id, "prompts.json"), orjson.dumps(prompts))
        self.write_file(self.job_file(job_id, "rows.npy"), _npy_bytes(row_requests))
        self._write_index(job_id, index)
        self._written_prompts[job_id] = list(prompts)  # exactly what is on disk

    def _write_index(self, job_id: str, index: pd.Index) -> None:
        meta, data = index_files(index)
        if data is not None:
            self.write_file(self.job_file(job_id, INDEX_DATA), data)
        self.write_file(self.job_file(job_id, INDEX_META), orjson.dumps(meta))  # last: it names the data

    def write_media(self, job_id: str, items: list[MediaItem]) -> None:
        """The job's files: their facts, and the bytes of those that exist only in memory
        (written first: the list names them), so a driver started after a crash can
        still upload them."""
        for item in items:
            if item.path is None and item.data is not None:
                staged = self.staged_media(job_id, item)
                if not self.is_file(staged):
                    self.write_file(staged, item.data)
        self.write_file(self.job_file(job_id, MEDIA), orjson.dumps([i.to_dict() for i in items]))

    def read_media(self, job_id: str) -> dict[str, MediaItem]:
        path = self.job_file(job_id, MEDIA)
        if not self.is_file(path):
            return {}
        try:
            data = orjson.loads(self.read_file(path))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise JournalError(f"The media list of job {job_id} ({str(path)!r}) is unreadable ({exc}).") from None
        return {item.sha256: item for item in iter_items(data, str(path))}

    def staged_media(self, job_id: str, item: MediaItem) -> Path:
        """Where the bytes of a file given in memory wait for their upload."""
        return self.job_file(job_id, "media", f"{item.sha256}.{item.extension}")

    def drop_staged_media(self, job_id: str) -> None:
        """Remove the staged bytes of an ended job (its uploads are recorded; a retry is a
        new job, which stages its own)."""
        import shutil

        folder = self.job_file(job_id, "media")  # checked: not a link (rmtree follows none below it)
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)

    def read_prompts(self, job_id: str, record: JobRecord | None = None) -> list[str]:
        """The job's unique prompts, checked against its record (``record``: the one the
        caller holds, so the manifest is not read again)."""
        written = self._written_prompts.pop(job_id, None)
        if written is not None:
            return written
        path = self.job_file(job_id, "prompts.json")
        try:
            data = orjson.loads(self.read_file(path))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise JournalError(f"The prompts of job {job_id} ({str(path)!r}) are unreadable ({exc}).") from None
        if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
            raise JournalError(f"The prompts of job {job_id} ({str(path)!r}) are not a list of texts.")
        expected = (record if record is not None else self.read_record(job_id)).n_requests
        if len(data) != expected:
            raise JournalError(
                f"Job {job_id}: {str(path)!r} holds {len(data)} prompts, its manifest {expected} requests; "
                "this journal was altered. Remove that job's folder."
            )
        return data

    def read_rows(self, job_id: str, record: JobRecord | None = None) -> np.ndarray:
        """Each row's request number (-1: skipped, -2: not in the sample), checked against
        the job's record (``record``: the one the caller holds, else read)."""
        path = self.job_file(job_id, "rows.npy")
        _npy_length(self, path, job_id)  # its header, checked before an array is made
        if record is None:
            record = self.read_record(job_id)
        try:
            rows = np.load(io.BytesIO(self.read_file(path)), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise JournalError(f"The row map of job {job_id} ({str(path)!r}) is unreadable ({exc}).") from None
        if not isinstance(rows, np.ndarray) or rows.ndim != 1 or rows.dtype.kind != "i":
            raise JournalError(f"The row map of job {job_id} ({str(path)!r}) is not a list of request numbers.")
        if len(rows) != record.n_rows or (rows.size and not (rows.min() >= NOT_SENT and rows.max() < record.n_requests)):
            raise JournalError(
                f"The row map of job {job_id} ({str(path)!r}) does not match its manifest "
                f"({record.n_rows} rows, requests 0 to {record.n_requests - 1}); this journal was altered."
            )
        return rows

    def read_index(self, job_id: str) -> pd.Index | IndexNotStored:
        """The DataFrame's index at submission, or why it cannot be read.

        Never unpickles: a format-1 journal's ``index.pkl`` is reported, not
        loaded, until the user trusts it (``trust_pickled_index``).
        """
        meta_path = self.job_file(job_id, INDEX_META)
        if not self.is_file(meta_path):
            if self.is_file(self.job_file(job_id, PICKLED_INDEX)):
                return IndexNotStored(
                    f"job {job_id} was written by an older batch_magic, which saved the index as "
                    f"a pickle ({PICKLED_INDEX}); loading a pickle runs whatever code it holds, so "
                    "it is read only if you trust where this journal came from",
                    pickled=True,
                )
            return IndexNotStored(f"job {job_id} has no stored index ({INDEX_META} is missing)", pickled=False)
        try:
            meta = orjson.loads(self.read_file(meta_path))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise JournalError(f"The index of job {job_id} ({str(meta_path)!r}) is unreadable ({exc}).") from None
        if isinstance(meta, dict) and meta.get("unstorable"):
            digest = meta.get("digest")
            return IndexNotStored(
                f"the index of job {job_id} could not be stored ({str(meta['unstorable'])[:200]})",
                pickled=False, digest=digest if isinstance(digest, str) else None,
            )
        data_path = self.job_file(job_id, INDEX_DATA)
        data = self.read_file(data_path) if self.is_file(data_path) else None
        try:
            return index_from_files(meta, data)
        except JournalError as exc:
            raise JournalError(f"The index of job {job_id} ({str(meta_path)!r}): {exc}") from None
        except Exception as exc:  # a damaged Parquet file: say which file
            raise JournalError(f"The index of job {job_id} ({str(data_path)!r}) is unreadable ({exc}).") from None

    def trust_pickled_index(self, job_id: str) -> pd.Index:
        """Convert a format-1 job's ``index.pkl`` to labels stored as data, and remove it.

        Unpickling runs whatever code the file holds: call this only for a
        journal you trust (your own, or from someone you trust). It is the only
        place batch_magic loads a pickle, and only when asked by name.
        """
        path = self.job_file(job_id, PICKLED_INDEX)
        if not self.is_file(path):
            found = self.read_index(job_id)
            if isinstance(found, pd.Index):
                return found  # already converted
            raise JournalError(f"Job {job_id} has no {PICKLED_INDEX} to trust ({found.reason}).")
        index = _unpickle_trusted_index(self.read_file(path))
        if not isinstance(index, pd.Index):
            raise JournalError(
                f"{str(path)!r} does not hold a pandas index (it holds a {type(index).__name__}); "
                "it was left as it is."
            )
        self._write_index(job_id, index)
        safepath.unlink(self.root, path)
        return index

    # -- a Polars frame's keys ---------------------------------------------------
    def write_keys(self, job_id: str, keys: Any) -> None:
        """The key columns of a Polars frame at plan time (a ``pyarrow.Table``), as an Arrow
        IPC file: data, read back without a copy."""
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, keys.schema) as writer:
            writer.write_table(keys)
        self.write_file(self.job_file(job_id, KEYS_DATA), sink.getvalue().to_pybytes())

    def read_keys(self, job_id: str) -> Any:
        """The ``pyarrow.Table`` ``write_keys`` stored, or None (a job of a pandas frame)."""
        import pyarrow as pa

        path = self.job_file(job_id, KEYS_DATA)
        if not self.is_file(path):
            return None
        try:
            table = pa.ipc.open_file(pa.BufferReader(self.read_file(path))).read_all()
            table.validate(full=True)  # offsets and lengths checked before anything reads them
        except Exception as exc:  # a damaged or foreign file: say which
            raise JournalError(f"The keys of job {job_id} ({str(path)!r}) are unreadable ({exc}).") from None
        return table

    # -- results -----------------------------------------------------------
    def results_path(self, job_id: str, batch_id: str) -> Path:
        return self.job_file(job_id, "results", f"{checked_batch_id(batch_id)}.jsonl")

    def partial_results_path(self, job_id: str, batch_id: str) -> Path:
        """Where a download goes until it is complete (its folder made, owner only)."""
        safepath.make_dirs(self.root, self.job_file(job_id, "results"))
        return self.job_file(job_id, "results", f".{checked_batch_id(batch_id)}.jsonl.part")

    def ingest_results(self, table: Any, job_id: str, batch_id: str) -> int:
        """Read a batch's results file into ``table`` (a ``ResultTable``); a file that does
        not parse, or names requests the job does not have, is refused by name."""
        path = self.results_path(job_id, batch_id)
        with os.fdopen(safepath.open_fd(self.root, path, os.O_RDONLY), "rb") as fh:
            try:
                return int(table.ingest_lines(fh))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                raise JournalError(
                    f"The results of batch {batch_id} of job {job_id} ({str(path)!r}) are not understood "
                    f"({type(exc).__name__}: {str(exc)[:200]}); the file was cut short or altered."
                ) from None

    def commit_results(self, job_id: str, batch_id: str) -> Path:
        """Publish a fully downloaded results file (flush, then rename)."""
        part = self.partial_results_path(job_id, batch_id)
        final = self.results_path(job_id, batch_id)
        fd = safepath.open_fd(self.root, part, os.O_RDWR)
        try:
            os.fsync(fd)
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        os.replace(part, final)
        return final


class JobLock:
    """An advisory ``flock`` on a job's lock file, held while a driver runs."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, root: Path, path: Path) -> JobLock | None:
        """The lock of ``path``, a file of the journal at ``root`` (made if missing)."""
        import fcntl

        fd = safepath.open_fd(root, path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _unpickle_trusted_index(data: bytes) -> Any:
    """Load a format-1 ``index.pkl``: only from ``trust_pickled_index``, which the user asks for."""
    import pickle

    return pickle.loads(data)


def _npy_length(journal: Journal, path: Path, job_id: str) -> int:
    """The number of items a ``.npy`` file of one dimension holds, from its header and
    checked against the file's size (read before any array is made from it)."""
    try:
        fd = safepath.open_fd(journal.root, path, os.O_RDONLY)
    except FileNotFoundError:
        raise JournalError(f"Job {job_id} has no row map ({str(path)!r} is missing); remove that job's folder.") from None
    try:
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            version = np.lib.format.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"an .npy format {version} batch_magic does not write")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            data_bytes = size - fh.tell()
    except (OSError, ValueError) as exc:
        raise JournalError(f"The row map of job {job_id} ({str(path)!r}) is unreadable ({exc}).") from None
    if len(shape) != 1 or dtype.kind != "i" or shape[0] * dtype.itemsize != data_bytes:
        raise JournalError(
            f"The row map of job {job_id} ({str(path)!r}) is not a list of request numbers whose "
            "length matches its size; this journal was altered. Remove that job's folder."
        )
    return int(shape[0])
