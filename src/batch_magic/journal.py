"""The on-disk record of every job: the source of truth.

``.batch_magic/`` (configurable) holds one folder per job::

    jobs/<job_id>/manifest.json      the ``JobRecord``: options, fingerprint, batches, states
    jobs/<job_id>/prompts.json       the unique rendered prompts (request k = r<k>)
    jobs/<job_id>/rows.npy           row position -> request number (-1: skipped)
    jobs/<job_id>/index.json         the DataFrame's index at plan time: names, dtypes, ...
    jobs/<job_id>/index.parquet      ... and its labels (see ``index_files``)
    jobs/<job_id>/keys.arrow         a Polars frame's key columns at plan time (no column:
                                     no key; the file marks a job of a Polars frame)
    jobs/<job_id>/results/<batch>.jsonl   raw results, exactly as downloaded
    jobs/<job_id>/media.json         the job's images and PDFs: sha256, kind, size, path...
    jobs/<job_id>/media/<sha>.<ext>  bytes of media given in memory (bytes, PIL images),
                                     kept until uploaded
    uploads/...                      the Files API uploads of every job (``uploads.py``)

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
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from . import safepath
from .errors import ConfigError, JobNotFoundError, JournalError, PlanError
from .media import MediaItem, iter_items
from .plan import NOT_SENT, RequestOptions
from .pricing import Estimate
from .schemas import check_schema
from .structured import KINDS, SCHEMA, OutputSpec

DEFAULT_ROOT = ".batch_magic"
MANIFEST = "manifest.json"
MEDIA = "media.json"
#: The manifest's format: 2 is the typed ``JobRecord``; format 1 (an untyped dict with the
#: wire params) is migrated when first opened, the old file kept as ``manifest.v1.json``.
FORMAT_VERSION = 2
#: A job folder's name, and a batch id (the API's are ``msgbatch_<base62>``): names that
#: cannot lead out of their folder.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: A job id as ``new_job_id`` makes it; group 1 is the fingerprint's first characters.
_JOB_ID = re.compile(r"^\d{8}-\d{6}-([0-9a-f]{6})[0-9a-f]{2}$")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
        if not _SAFE_NAME.match(job_id) or ".." in job_id:
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
        record.updated_at = now_iso()
        self.write_file(self.job_file(record.job_id, MANIFEST), record.to_json())

    def read_record(self, job_id: str) -> JobRecord:
        """The job's record, checked against its own files; a format-1 manifest is
        migrated (and rewritten) on first open."""
        path = self.job_file(job_id, MANIFEST)
        try:
            raw = self.read_file(path)
        except FileNotFoundError:
            raise JobNotFoundError(
                f"No job {job_id!r} in the journal at {str(self.root)!r}; "
                "`batch_magic.jobs()` or `%batch list` shows the jobs there."
            ) from None
        record, version = JobRecord.from_json(raw, job_id, str(path))
        self._check_plan_files(record)
        if version < FORMAT_VERSION:
            with contextlib.suppress(OSError):  # a read-only journal still opens
                self.write_file(self.job_file(job_id, f"manifest.v{version}.json"), raw)
                self.write_record(record)
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
            if _SAFE_NAME.match(p.name) and (p.is_symlink() or os.path.lexists(p / MANIFEST))
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
            return ids[-1]
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

    def find_by_fingerprint(self, fingerprint: str) -> str | None:
        """The newest job with this fingerprint (a failed one too: it resumes).

        A job whose manifest cannot be read has no fingerprint to compare, but its
        folder's name carries the fingerprint's first characters (``new_job_id``).
        When no readable job matches and an unreadable one's name does, it may be
        this very job, already paid for: refused, rather than sent again (a chance
        match of 24 bits costs the user one ``--force``, never a second payment).
        """
        records, unreadable = self.scan()
        found = [r for r in records if r.fingerprint == fingerprint]
        if found:  # newest by creation time: the ids of one second sort by their random end
            return max(found, key=lambda r: r.created_at).job_id
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

    def read_prompts(self, job_id: str) -> list[str]:
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
        expected = self.read_record(job_id).n_requests
        if len(data) != expected:
            raise JournalError(
                f"Job {job_id}: {str(path)!r} holds {len(data)} prompts, its manifest {expected} requests; "
                "this journal was altered. Remove that job's folder."
            )
        return data

    def read_rows(self, job_id: str) -> np.ndarray:
        """Each row's request number (-1: skipped, -2: not in the sample), checked against the job's manifest."""
        path = self.job_file(job_id, "rows.npy")
        _npy_length(self, path, job_id)  # its header, checked before an array is made
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
        return self.job_file(job_id, "results", f"{_checked_batch_id(batch_id)}.jsonl")

    def partial_results_path(self, job_id: str, batch_id: str) -> Path:
        """Where a download goes until it is complete (its folder made, owner only)."""
        safepath.make_dirs(self.root, self.job_file(job_id, "results"))
        return self.job_file(job_id, "results", f".{_checked_batch_id(batch_id)}.jsonl.part")

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


# -- the DataFrame's index, stored as data -------------------------------------------------
#
# Why Parquet (through pyarrow) for the labels: it is a data format, not code, so reading
# a journal that came from elsewhere runs nothing; and pyarrow already round-trips what an
# index holds (integers, floats, strings, bytes, tz-aware datetimes at their unit,
# timedeltas, periods, intervals, nullable integers, categoricals with their categories
# and order) in compact columns, where a JSON layout of our own would re-implement each
# dtype. The little Parquet cannot say is kept beside it in ``index.json``: each level's
# exact dtype (cast back on read: e.g. ``datetime64[s]``, which Parquet widens to ms),
# the level names (any JSON scalar or tuple), a RangeIndex as three numbers, and object
# levels of mixed Python types (``[1, "a"]``, which Arrow cannot type) as tagged scalars.
# pyarrow >= 14.0.1 never unpickles extension types from a file (CVE-2023-47248).
INDEX_META = "index.json"
INDEX_DATA = "index.parquet"
#: What format-1 journals held: the index pickled. Read only when the user trusts it.
PICKLED_INDEX = "index.pkl"
#: A Polars frame's key columns (``frames.py``), as an Arrow IPC file.
KEYS_DATA = "keys.arrow"
INDEX_LAYOUT = 1


@dataclass(frozen=True)
class IndexNotStored:
    """Why a job's index labels cannot be read (its rows merge by position only into
    the labels of ``digest``, or when the user asks for it)."""

    reason: str
    #: An ``index.pkl`` of an older journal is there, to convert once trusted.
    pickled: bool
    #: For labels that cannot be stored as data: a digest of their text, to tell
    #: whether a DataFrame still has exactly those labels in that order.
    digest: str | None = None

    def matches(self, index: pd.Index) -> bool:
        return self.digest is not None and labels_digest(index) == self.digest


def labels_digest(index: pd.Index) -> str:
    """A digest of an index's names and labels, in order, by their text."""
    import hashlib

    digest = hashlib.sha256(repr(list(index.names)).encode())
    for label in index:
        digest.update(repr(label).encode() + b"\x00")
    return digest.hexdigest()


def _encode_name(name: Any) -> Any:
    if isinstance(name, tuple):
        return {"tuple": [_encode_name(n) for n in name]}
    if name is None or isinstance(name, (str, bool, int)):
        return name
    if isinstance(name, float):
        return {"float": repr(name)}
    return str(name)  # a label name of another type keeps its text


def _decode_name(value: Any) -> Any:
    if isinstance(value, dict):
        if "tuple" in value and isinstance(value["tuple"], list):
            return tuple(_decode_name(v) for v in value["tuple"])
        if "float" in value:
            return float(value["float"])
        raise JournalError(f"An index name in the journal is not understood: {value!r}.")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    raise JournalError(f"An index name in the journal is not understood: {value!r}.")


def _encode_scalar(value: Any) -> list[Any]:
    """One label of a mixed-type object level as [tag, value]; raises TypeError otherwise."""
    if value is None:
        return ["none"]
    if isinstance(value, (bool, np.bool_)):
        return ["bool", bool(value)]
    if isinstance(value, (int, np.integer)):
        return ["int", int(value)]
    if isinstance(value, (float, np.floating)):
        return ["float", repr(float(value))]  # JSON has no NaN or inf
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, pd.Timestamp):
        return ["timestamp", value.isoformat()]
    raise TypeError(f"a label of type {type(value).__name__}")


def _decode_scalar(item: Any) -> Any:
    if not isinstance(item, list) or not item:
        raise JournalError(f"An index label in the journal is not understood: {item!r}.")
    tag, *rest = item
    if tag == "none":
        return None
    if tag == "bool" and rest and isinstance(rest[0], bool):
        return rest[0]
    if tag == "int" and rest and isinstance(rest[0], int):
        return rest[0]
    if tag == "float" and rest and isinstance(rest[0], str):
        return float(rest[0])
    if tag == "str" and rest and isinstance(rest[0], str):
        return rest[0]
    if tag == "timestamp" and rest and isinstance(rest[0], str):
        return pd.Timestamp(rest[0])
    raise JournalError(f"An index label in the journal is not understood: {item!r}.")


def index_files(index: pd.Index) -> tuple[dict[str, Any], bytes | None]:
    """``index.json`` content and ``index.parquet`` bytes (None: no Parquet needed)."""
    names = [_encode_name(n) for n in index.names]
    if isinstance(index, pd.RangeIndex):
        return {"layout": INDEX_LAYOUT, "range": [index.start, index.stop, index.step], "names": names}, None
    levels = [index.get_level_values(i) for i in range(index.nlevels)]
    meta: dict[str, Any] = {
        "layout": INDEX_LAYOUT,
        "names": names,
        "multi": isinstance(index, pd.MultiIndex),
        "dtypes": [str(level.dtype) for level in levels],
        "tagged": {},
    }
    columns: dict[str, Any] = {}
    import pyarrow as pa

    for i, level in enumerate(levels):
        values = pd.Series(level, copy=False).reset_index(drop=True)
        try:
            pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            try:  # object labels of mixed types: one tagged scalar each
                meta["tagged"][str(i)] = [_encode_scalar(v) for v in level]
            except TypeError as exc:
                meta["unstorable"] = f"level {i} holds {exc}, which cannot be stored as data"
                meta["digest"] = labels_digest(index)
                return meta, None
            continue
        columns[f"l{i}"] = values
    if not columns:
        return meta, None
    buf = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buf, engine="pyarrow", index=False)
    return meta, buf.getvalue()


def index_from_files(meta: Any, data: bytes | None) -> pd.Index:
    """The index ``index_files`` stored, exactly (dtypes, names, duplicates, order)."""
    if not isinstance(meta, dict) or meta.get("layout") != INDEX_LAYOUT:
        raise JournalError(f"The stored index is not in a layout this version reads: {str(meta)[:80]!r}.")
    raw_names = meta.get("names")
    if not isinstance(raw_names, list):
        raise JournalError("The stored index has no list of names.")
    names = [_decode_name(n) for n in raw_names]
    if "range" in meta:
        r = meta["range"]
        if not (isinstance(r, list) and len(r) == 3 and all(isinstance(x, int) for x in r)):
            raise JournalError(f"The stored RangeIndex is not three integers: {r!r}.")
        return pd.RangeIndex(r[0], r[1], r[2], name=names[0] if names else None)
    dtypes, tagged = meta.get("dtypes"), meta.get("tagged") or {}
    if not isinstance(dtypes, list) or len(dtypes) != len(names) or not isinstance(tagged, dict):
        raise JournalError("The stored index's levels do not match its names.")
    table = None
    if data is not None:
        table = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    levels = []
    for i, dtype in enumerate(dtypes):
        if str(i) in tagged:
            items = tagged[str(i)]
            if not isinstance(items, list):
                raise JournalError(f"The stored index's level {i} is not a list of labels.")
            level = pd.Index([_decode_scalar(v) for v in items], dtype=object)
        else:
            if table is None or f"l{i}" not in table.columns:
                raise JournalError(f"The stored index lacks its level {i} ({INDEX_DATA}).")
            level = pd.Index(table[f"l{i}"])
        if str(level.dtype) != dtype:
            try:
                level = level.astype(pd.api.types.pandas_dtype(dtype))
            except (TypeError, ValueError) as exc:
                raise JournalError(f"The stored index's level {i} cannot be read as {dtype!r} ({exc}).") from None
        levels.append(level)
    if meta.get("multi"):
        return pd.MultiIndex.from_arrays(levels, names=names)
    if len(levels) != 1:
        raise JournalError("The stored index has no level.")
    return levels[0].rename(names[0])


# -- the job record ------------------------------------------------------------------------
class JobState(StrEnum):
    """Where a job stands, as recorded. Transitions: ``JOB_TRANSITIONS``."""

    PLANNED = "planned"  # written, nothing sent yet
    RUNNING = "running"  # batches being sent, polled, collected, retried
    CANCELING = "canceling"  # the user asked to stop: nothing new is sent
    DONE = "done"  # every batch ended and was collected: ended
    CANCELED = "canceled"  # every batch ended or was dropped after a cancel: ended
    FAILED = "failed"  # the driver stopped on an error; not ended: the next run resumes


class BatchState(StrEnum):
    """Where one batch of a job stands. Transitions: ``BATCH_TRANSITIONS``."""

    PENDING = "pending"  # not sent
    SUBMITTING = "submitting"  # a create was sent and its answer not seen: it may exist
    IN_PROGRESS = "in_progress"  # the API has it (created, or adopted after a lost answer)
    CANCELING = "canceling"  # a cancel was sent, or the API reports it canceling
    ENDED = "ended"  # the API ended it and its results are in the journal
    DROPPED = "dropped"  # never sent: the job was canceled first


#: Every allowed move of a job's state; anything else is a bug and raises.
JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PLANNED: frozenset(
        {JobState.RUNNING, JobState.CANCELING, JobState.DONE, JobState.FAILED}
    ),  # DONE: a job with no request (every row skipped)
    JobState.RUNNING: frozenset({JobState.CANCELING, JobState.DONE, JobState.FAILED}),
    JobState.CANCELING: frozenset({JobState.CANCELED, JobState.FAILED}),
    # Failed is not ended: a new run resumes it (back to where it was going).
    JobState.FAILED: frozenset({JobState.RUNNING, JobState.CANCELING, JobState.FAILED}),
    JobState.DONE: frozenset(),
    JobState.CANCELED: frozenset(),
}

#: Every allowed move of a batch's state.
BATCH_TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    BatchState.PENDING: frozenset({BatchState.SUBMITTING, BatchState.DROPPED}),
    # PENDING: the create was refused outright (4xx), so no batch exists.
    BatchState.SUBMITTING: frozenset({BatchState.IN_PROGRESS, BatchState.PENDING, BatchState.DROPPED}),
    # PENDING: an adopted batch whose results are not this job's; ours is sent.
    BatchState.IN_PROGRESS: frozenset({BatchState.CANCELING, BatchState.ENDED, BatchState.PENDING}),
    BatchState.CANCELING: frozenset({BatchState.ENDED, BatchState.PENDING}),
    # IN_PROGRESS: its results file went missing from the journal; fetched again.
    BatchState.ENDED: frozenset({BatchState.IN_PROGRESS}),
    BatchState.DROPPED: frozenset(),
}

ENDED_JOB_STATES = frozenset({JobState.DONE, JobState.CANCELED})
#: Batches the API may be working on (or about to: a create without an answer yet).
LIVE_BATCH_STATES = frozenset(
    {BatchState.PENDING, BatchState.SUBMITTING, BatchState.IN_PROGRESS, BatchState.CANCELING}
)


class IllegalTransition(JournalError):
    """A move the transition table does not allow (a bug of batch_magic, not the user's)."""


@dataclass(frozen=True)
class SentTo:
    """Where a job's batches were sent: its base URL and whether that was a simulator
    (``builtin``: the one inside the notebook's own process). Never the key."""

    base_url: str
    simulator: bool
    builtin: bool = False


@dataclass
class BatchEntry:
    """One batch of a job: which requests, and what the API did with them."""

    n: int
    attempt: int
    size: int
    #: Request numbers ``[start, stop)`` (first attempts) ...
    first: int | None = None
    stop: int | None = None
    #: ... or an explicit list (retries of scattered requests).
    ids: list[int] | None = None
    state: BatchState = BatchState.PENDING
    batch_id: str | None = None
    #: Found on the server after an unanswered create rather than created by an answer.
    adopted: bool = False
    #: When the current create was sent; when the first one ever was.
    intent_at: str | None = None
    first_intent_at: str | None = None
    #: When a create last failed without saying whether the batch was made.
    unsure_at: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    ended_at: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: Batches adopted then found not to be this job's (same size, same minutes).
    rejected: list[str] = field(default_factory=list)
    #: Late copies of this batch's create that landed after it was sent again: canceled.
    duplicates: list[str] = field(default_factory=list)

    def move_to(self, state: BatchState) -> None:
        if state not in BATCH_TRANSITIONS[self.state]:
            raise IllegalTransition(f"batch {self.n}: {self.state.value} -> {state.value} is not a move a batch makes")
        self.state = state

    def request_numbers(self) -> np.ndarray:
        if self.ids is not None:
            return np.asarray(self.ids, dtype=np.int64)
        return np.arange(self.first or 0, self.stop or 0, dtype=np.int64)

    @property
    def live(self) -> bool:
        return self.state in LIVE_BATCH_STATES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> BatchEntry:
        if not isinstance(data, dict):
            raise JournalError(f"{where}: a batch entry is not an object: {str(data)[:60]!r}.")
        known = {f.name for f in fields(cls)}
        try:
            entry = cls(**{k: v for k, v in data.items() if k in known})
            entry.state = BatchState(entry.state)
        except (TypeError, ValueError) as exc:
            raise JournalError(f"{where}: batch entry {str(data)[:80]!r} is not understood ({exc}).") from None
        _check_types(
            where, entry, n=int, attempt=int, size=int, first=(int, type(None)), stop=(int, type(None)),
            ids=(list, type(None)), adopted=bool, counts=dict, rejected=list, duplicates=list,
        )
        for bid in (entry.batch_id, *entry.rejected, *entry.duplicates):
            if bid is not None:
                try:
                    _checked_batch_id(bid)
                except JournalError as exc:
                    raise JournalError(f"{where}: {exc}") from None
        if entry.ids is None and (entry.first is None or entry.stop is None):
            raise JournalError(f"{where}: batch {entry.n} names no requests.")
        return entry


@dataclass
class JobRecord:
    """A job as the journal records it: what was asked, and how far it got.

    The request options, output spec, template and ``out`` are kept as the user
    gave them (the wire params are rebuilt from them when sending), so a retry
    or a resumed job asks exactly what the first run asked.
    """

    job_id: str
    fingerprint: str
    created_at: str
    out: str
    template: str
    output: OutputSpec
    options: RequestOptions
    id_tag: str
    chunk_size: int
    n_rows: int
    n_requests: int
    n_skipped: int
    n_deduplicated: int
    batches: list[BatchEntry]
    state: JobState = JobState.PLANNED
    simulated: bool = False
    skip_reasons: dict[int, str] = field(default_factory=dict)
    #: The cost estimate at submission (None: the manifest holds none).
    estimate: Estimate | None = None
    started_at: str | None = None
    finished_at: str | None = None
    cancel_requested_at: str | None = None
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    actual_cost: float | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    updated_at: str | None = None
    #: The server the batches went to (after a restart, says where to find them).
    sent_to: SentTo | None = None
    #: Distinct images and PDFs the prompts show (``media.json``); uploaded before any create.
    n_media: int = 0
    #: Rows left out of a sample (``--sample``), and the sample's seed and stratifying column.
    n_not_sent: int = 0
    sample_seed: int | None = None
    sample_stratify: str | None = None
    #: Requests answered from the journal's answer store (``reused.parquet``): not sent;
    #: what they would have cost at today's batch prices.
    n_reused: int = 0
    saved_cost: float | None = None
    #: This job's good answers are in the answer store (kept once, when first merged).
    answers_kept: bool = False

    # -- states ----------------------------------------------------------------------------
    def move_to(self, state: JobState) -> None:
        if state not in JOB_TRANSITIONS[self.state]:
            raise IllegalTransition(
                f"job {self.job_id}: {self.state.value} -> {state.value} is not a move a job makes"
            )
        self.state = state

    @property
    def ended(self) -> bool:
        """Done or canceled: everything is in the journal; nothing more to ask the API."""
        return self.state in ENDED_JOB_STATES

    def batches_in(self, *states: BatchState) -> list[BatchEntry]:
        return [b for b in self.batches if b.state in states]

    @property
    def batch_ids(self) -> set[str]:
        """Every batch id this job has met: its own, rejected adoptions, canceled duplicates."""
        ids = {b.batch_id for b in self.batches if b.batch_id}
        for b in self.batches:
            ids.update(b.rejected)
            ids.update(b.duplicates)
        return ids

    def add_batch(self, attempt: int, ids: list[int]) -> BatchEntry:
        entry = BatchEntry(n=len(self.batches), attempt=attempt, size=len(ids), ids=ids)
        self.batches.append(entry)
        return entry

    # -- on disk ---------------------------------------------------------------------------
    def to_json(self) -> bytes:
        data: dict[str, Any] = {"version": FORMAT_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "state":
                value = value.value
            elif f.name == "batches":
                value = [b.to_dict() for b in value]
            elif f.name == "options":
                value = asdict(value)
            elif f.name == "output":
                value = {"kind": value.kind, "labels": list(value.labels), "schema": value.schema}
            elif f.name == "skip_reasons":
                value = {str(k): v for k, v in value.items()}
            elif f.name == "sent_to":
                value = asdict(value) if value is not None else None
            elif f.name == "estimate":
                value = value.as_dict() if value is not None else {}
            data[f.name] = value
        return orjson.dumps(data, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes, job_id: str, where: str) -> tuple[JobRecord, int]:
        """The record from a manifest's bytes (and the format it was in), checked as
        untrusted input: a file that is not a manifest of this job is refused."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise JournalError(f"The manifest {where!r} is unreadable ({exc}); this job cannot be opened.") from None
        if not isinstance(data, dict):
            raise JournalError(f"The manifest {where!r} is not a JSON object; this job cannot be opened.")
        version = data.get("version")
        if version == 1:
            data = _migrate_v1(data, where)
        elif version != FORMAT_VERSION:
            raise JournalError(
                f"The manifest {where!r} is in format {version!r}; this batch_magic reads formats 1 "
                f"to {FORMAT_VERSION}. Upgrade batch_magic to open it."
            )
        if data.get("job_id") != job_id:
            raise JournalError(
                f"The manifest {where!r} is of job {data.get('job_id')!r}, not of its folder {job_id!r}; "
                "a journal whose folders were renamed or altered is not opened."
            )
        try:
            output = data["output"]
            options = data["options"]
            if not isinstance(output, dict) or not isinstance(options, dict):
                raise TypeError("output and options must be objects")
            known = {f.name for f in fields(RequestOptions)}
            record = cls(
                **{f.name: data[f.name] for f in fields(cls) if f.name in data and f.name not in ("output", "options", "batches", "state", "skip_reasons", "sent_to", "estimate")},
                output=OutputSpec(
                    kind=str(output["kind"]), labels=tuple(output.get("labels") or ()), schema=output.get("schema")
                ),
                options=RequestOptions(**{k: v for k, v in options.items() if k in known}),
                batches=[BatchEntry.from_dict(b, where) for b in data["batches"]],
                state=JobState(data["state"]),
                skip_reasons={int(k): str(v) for k, v in (data.get("skip_reasons") or {}).items()},
                sent_to=_sent_to(data.get("sent_to")),
                estimate=_estimate(data.get("estimate")),
            )
        except JournalError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise JournalError(f"The manifest {where!r} is not understood ({type(exc).__name__}: {exc}).") from None
        if record.output.kind not in KINDS:
            raise JournalError(f"The manifest {where!r} names the output kind {record.output.kind!r}, not one of {KINDS}.")
        none = type(None)
        _check_types(
            where, record.options, model=str, max_tokens=int, system=(str, none), effort=(str, none),
            thinking=(dict, none), output_schema=(dict, none), use_tool=bool, cache_system=bool, extra=dict,
        )
        try:
            record.options.validate()
            if record.output.kind == SCHEMA:
                # Checked again as at submission: a reference leaving the schema is refused.
                check_schema(record.output.schema)
        except (PlanError, ConfigError) as exc:
            raise JournalError(f"The manifest {where!r} holds options that are not valid: {exc}") from None
        _check_types(
            where, record, fingerprint=str, out=str, template=str, id_tag=str, chunk_size=int, n_rows=int,
            n_requests=int, n_skipped=int, n_deduplicated=int, simulated=bool, usage=dict,
            row_counts=dict, columns=list, n_media=int, n_not_sent=int, n_reused=int,
            sample_seed=(int, type(None)), sample_stratify=(str, type(None)),
            saved_cost=(float, int, type(None)), answers_kept=bool,
        )
        if not record.out.isidentifier():
            raise JournalError(f"The manifest {where!r} names the column {record.out!r}, which is not a name.")
        _check_counts(where, record)
        return record, int(version)


def _check_counts(where: str, record: JobRecord) -> None:
    """The manifest's counts and request numbers agree with each other (``read_record``
    then checks them against the job's files), before any sizes an array."""
    n = record.n_requests
    counts = (record.n_rows, n, record.n_skipped, record.n_deduplicated, record.n_not_sent, record.n_reused)
    if (
        min(counts) < 0
        or record.n_rows != n + record.n_skipped + record.n_deduplicated + record.n_not_sent
        or record.n_reused > n
    ):
        raise JournalError(
            f"The manifest {where!r} holds counts that do not add up (rows {record.n_rows}, requests {n}, "
            f"skipped {record.n_skipped}, deduplicated {record.n_deduplicated}, not sent {record.n_not_sent}, "
            f"reused {record.n_reused}); this journal was altered."
        )
    for b in record.batches:
        if b.ids is not None:
            fits = b.size == len(b.ids) and all(type(k) is int and 0 <= k < n for k in b.ids)
        else:
            assert b.first is not None and b.stop is not None  # from_dict refuses an entry without either
            fits = 0 <= b.first <= b.stop <= n and b.size == b.stop - b.first
        if not fits:
            raise JournalError(
                f"The manifest {where!r} has batch {b.n} of {b.size} requests that are not among the "
                f"job's {n} (or not {b.size}); this journal was altered."
            )
    if any(not 0 <= k < record.n_rows for k in record.skip_reasons):
        raise JournalError(f"The manifest {where!r} gives skip reasons for rows the job does not have.")


def _sent_to(data: Any) -> SentTo | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("base_url"), str):
        raise TypeError("sent_to must be an object with a base_url")
    return SentTo(data["base_url"], bool(data.get("simulator")), bool(data.get("builtin")))


def _estimate(data: Any) -> Estimate | None:
    """The stored estimate (an object of ``Estimate``'s fields; empty or absent: none)."""
    if not data:
        return None
    if not isinstance(data, dict):
        raise TypeError("estimate must be an object")
    known = {f.name for f in fields(Estimate)}
    return Estimate(**{k: v for k, v in data.items() if k in known})


def _check_types(where: str, obj: Any, **expected: Any) -> None:
    for name, kind in expected.items():
        value = getattr(obj, name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise JournalError(f"{where}: {name}={str(value)[:60]!r} is not what a manifest holds there.")


def _migrate_v1(old: dict[str, Any], where: str) -> dict[str, Any]:
    """A format-1 manifest (an untyped dict with the wire params) as a format-2 one."""
    params = dict(old.get("params") or {})
    output = old.get("output") or {}
    system = params.pop("system", None)
    cache_system = isinstance(system, list)  # cached: [{"type": "text", "text": ..., "cache_control": ...}]
    if cache_system:
        system = "".join(block.get("text", "") for block in system if isinstance(block, dict))
    schema = None
    config = params.pop("output_config", None)
    if isinstance(config, dict):
        schema = (config.get("format") or {}).get("schema")
    tools = params.pop("tools", None)
    params.pop("tool_choice", None)
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        schema = tools[0].get("input_schema")
    options = {
        "model": params.pop("model", None),
        "max_tokens": params.pop("max_tokens", None),
        "system": system or None,
        "output_schema": schema,
        "use_tool": tools is not None,
        "cache_system": cache_system,
        "extra": params,
    }
    states = {"planned": "planned", "in_progress": "running", "done": "done", "canceled": "canceled", "failed": "failed"}
    state = states.get(old.get("state"))  # type: ignore[arg-type]
    if state is None:
        raise JournalError(f"{where}: the job state {old.get('state')!r} is not one batch_magic wrote.")
    batches = []
    for b in old.get("batches") or []:
        if not isinstance(b, dict):
            raise JournalError(f"{where}: a batch entry is not an object.")
        entry = {k: b[k] for k in ("n", "attempt", "size", "ids", "batch_id", "adopted", "intent_at",
                                   "created_at", "expires_at", "ended_at", "counts", "rejected") if k in b}
        if "range" in b and isinstance(b["range"], list) and len(b["range"]) == 2:
            entry["first"], entry["stop"] = b["range"]
        entry["state"] = b.get("state")
        entry["first_intent_at"] = b.get("intent_at")
        entry["counts"] = entry.get("counts") or {}
        batches.append(entry)
    cancel = bool(old.get("cancel_requested"))
    live = [b for b in batches if b["state"] in ("pending", "submitting", "in_progress", "canceling")]
    if state in ("done", "canceled") and live:
        # Format 1 marked a failed job done when it was re-run, its batches still in
        # flight: resume it instead (its collected results are kept).
        state = "failed"
        old["error"] = old.get("error") or "marked ended with batches still in flight; resumes where it stopped"
    keep = ("job_id", "fingerprint", "created_at", "out", "template", "id_tag", "chunk_size", "simulated",
            "n_rows", "n_requests", "n_skipped", "n_deduplicated", "skip_reasons", "estimate", "started_at",
            "finished_at", "error", "usage", "actual_cost", "row_counts", "columns", "updated_at")
    new = {k: old[k] for k in keep if k in old and old[k] is not None}
    new.update(
        version=FORMAT_VERSION,
        state=state,
        options=options,
        output={"kind": output.get("kind"), "labels": output.get("labels") or [], "schema": output.get("schema")},
        batches=batches,
        cancel_requested_at=(old.get("updated_at") or now_iso()) if cancel else None,
    )
    new.setdefault("id_tag", "")  # format-1 jobs from before tags: custom_ids without one
    if state == "failed" and new.get("finished_at") is not None:
        new["finished_at"] = None  # it has not finished: it resumes
    return new


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


def _checked_batch_id(batch_id: str) -> str:
    if not isinstance(batch_id, str) or not _SAFE_NAME.match(batch_id) or ".." in batch_id:
        raise JournalError(
            f"The journal names a batch {batch_id!r}, which is not a batch id (msgbatch_...); "
            "this journal was altered or came from elsewhere: remove that job's folder."
        )
    return batch_id
