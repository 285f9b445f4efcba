"""The on-disk record of every job: the source of truth.

``.batch_magic/`` (configurable) holds one folder per job::

    jobs/<job_id>/manifest.json      options, fingerprint, batches and their states
    jobs/<job_id>/prompts.json       the unique rendered prompts (request k = r<k>)
    jobs/<job_id>/rows.npy           row position -> request number (-1: skipped)
    jobs/<job_id>/index.pkl          the DataFrame's index at plan time
    jobs/<job_id>/results/<batch>.jsonl   raw results, exactly as downloaded

Every file is written to a temporary name, flushed and renamed, so a reader
(or a process killed mid-write) sees the old file or the new one, never half.
Files are readable by the owner only. No API key is ever written here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .errors import JobNotFoundError, JournalError

DEFAULT_ROOT = ".batch_magic"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents, each readable by the owner only."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(p, 0o700)  # mkdir's mode is filtered by the umask


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either the old file or the new one."""
    _private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Journal:
    """A folder of jobs. Cheap to create; touches the disk only when asked."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root if root is not None else os.environ.get("BATCH_MAGIC_DIR", DEFAULT_ROOT))
        # Prompts this instance just wrote, handed once to the job that reads them next
        # (a million prompts are ~300 MB of JSON: parsing them again costs seconds).
        self._written_prompts: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"Journal({str(self.root)!r})"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def new_job_id(self, fingerprint: str) -> str:
        """Readable, sortable, unique: date, time, a slice of the fingerprint."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return f"{stamp}-{fingerprint[:6]}{secrets.token_hex(1)}"

    # -- manifests ---------------------------------------------------------
    def write_manifest(self, job_id: str, manifest: dict[str, Any]) -> None:
        manifest["updated_at"] = now_iso()
        write_atomic(
            self.job_dir(job_id) / MANIFEST,
            orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS),
        )

    def read_manifest(self, job_id: str) -> dict[str, Any]:
        path = self.job_dir(job_id) / MANIFEST
        try:
            data: dict[str, Any] = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise JobNotFoundError(
                f"No job {job_id!r} in the journal at {str(self.root)!r}; "
                "`batch_magic.jobs()` or `%batch list` shows the jobs there."
            ) from None
        except orjson.JSONDecodeError as exc:
            raise JournalError(f"The manifest {str(path)!r} is unreadable ({exc}).") from None
        return data

    def job_ids(self) -> list[str]:
        if not self.jobs_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.jobs_dir.iterdir() if (p / MANIFEST).is_file()
        )

    def manifests(self) -> Iterator[dict[str, Any]]:
        for job_id in self.job_ids():
            with contextlib.suppress(JournalError):
                yield self.read_manifest(job_id)

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
        """The newest job with this fingerprint that was not abandoned."""
        found = [
            m["job_id"]
            for m in self.manifests()
            if m.get("fingerprint") == fingerprint and m.get("state") != "abandoned"
        ]
        return found[-1] if found else None

    def claimed_batch_ids(self) -> set[str]:
        """Every batch id any job of this journal has recorded."""
        ids: set[str] = set()
        for m in self.manifests():
            for b in m.get("batches", []):
                if b.get("batch_id"):
                    ids.add(b["batch_id"])
        return ids

    def try_lock(self, job_id: str) -> JobLock | None:
        """Take the job's driver lock, or None if a live process holds it.

        Only one driver per job, across processes and within one: two drivers
        would download into the same file. The OS drops the lock when its
        holder dies, so a job whose kernel died is free to pick up.
        """
        return JobLock.acquire(self.job_dir(job_id) / "lock")

    # -- plan data ---------------------------------------------------------
    def write_plan_data(
        self, job_id: str, prompts: list[str], row_requests: np.ndarray, index: pd.Index
    ) -> None:
        d = self.job_dir(job_id)
        write_atomic(d / "prompts.json", orjson.dumps(prompts))
        buf = _npy_bytes(row_requests)
        write_atomic(d / "rows.npy", buf)
        write_atomic(d / "index.pkl", _pickle_bytes(index))
        self._written_prompts[job_id] = list(prompts)  # exactly what is on disk

    def read_prompts(self, job_id: str) -> list[str]:
        written = self._written_prompts.pop(job_id, None)
        if written is not None:
            return written
        data: list[str] = orjson.loads((self.job_dir(job_id) / "prompts.json").read_bytes())
        return data

    def read_rows(self, job_id: str) -> np.ndarray:
        return np.load(self.job_dir(job_id) / "rows.npy", allow_pickle=False)

    def read_index(self, job_id: str) -> pd.Index:
        # Our own file, written by this user's process (owner-only permissions).
        index: pd.Index = pd.read_pickle(self.job_dir(job_id) / "index.pkl")
        return index

    # -- results -----------------------------------------------------------
    def results_path(self, job_id: str, batch_id: str) -> Path:
        return self.job_dir(job_id) / "results" / f"{batch_id}.jsonl"

    def partial_results_path(self, job_id: str, batch_id: str) -> Path:
        """Where a download goes until it is complete (its folder made, owner only)."""
        folder = self.job_dir(job_id) / "results"
        _private_dir(folder)
        return folder / f".{batch_id}.jsonl.part"

    def commit_results(self, job_id: str, batch_id: str) -> Path:
        """Publish a fully downloaded results file (flush, then rename)."""
        part = self.partial_results_path(job_id, batch_id)
        final = self.results_path(job_id, batch_id)
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(part, 0o600)
        os.replace(part, final)
        return final


class JobLock:
    """An advisory ``flock`` on a job's lock file, held while a driver runs."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> JobLock | None:
        import fcntl

        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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


def _pickle_bytes(obj: object) -> bytes:
    import pickle

    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
