"""Each distinct image or PDF uploaded once through the Files API, and remembered.

A batch of 10,000 photos that carries each one as base64 passes the API's
256 MB batch limit and sends every photo again on a re-run. Instead each
distinct file (by sha256) is uploaded once and every request names it by its
``file_id``.

The journal keeps one uploads table for all its jobs,
``.batch_magic/uploads/<server>/<sha256>.json``, keyed by the server's base
URL (an upload exists on one server only; the simulator built into this
process is one server whatever its port) and the file's hash: re-runs,
retries and other jobs of the same files reuse what is recorded, and nothing
is sent before the uploads it names are recorded.

Crash safety follows the batch create's rule (an answer lost does not mean
nothing happened): before each upload an *intent* is written (``<sha>.intent
.json``); a driver that finds an intent without a record (its predecessor
died mid-upload, or an answer was lost) first lists the server's files
(``GET /v1/files``, newest first, back to the intent's time less five minutes)
for one named ``bm-<sha256>.<ext>`` of the same size, and adopts it; it uploads
only if none is there. A per-file lock (``flock``, released by the OS when its
holder dies) keeps two drivers, in one process or several, from uploading the
same file at once.

Uploads run on a few threads (6 by default) with retries and backoff: 429/529
wait as asked, other transient failures look for the upload before sending
again, a refusal (a 4xx) stops the step with the API's message.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from . import safepath
from .client import (
    FailureKind,
    FileInfo,
    FilesClient,
    classify,
    describe_error,
    in_process_simulator,
)
from .destination import BUILTIN_SIMULATOR, destination_url
from .errors import APIError, BatchMagicError, JournalError
from .journal import JobLock, Journal
from .media import MediaItem
from .record import JobRecord, now_iso
from .status import epoch

if TYPE_CHECKING:
    import pandas as pd

_FILE_ID = re.compile(r"^file_[A-Za-z0-9_-]{1,200}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class UploadSettings:
    #: Uploads at once (the Files API takes concurrent uploads; a few threads hide latency).
    threads: int = 6
    #: Tries per file, the first included.
    attempts: int = 5
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    #: How far before an intent an upload is looked for (clocks of client and server differ).
    clock_skew: float = 300.0


@dataclass(frozen=True)
class Upload:
    """A file uploaded to one server: its id there, under the name that carries its hash."""

    sha256: str
    base_url: str
    file_id: str
    upload_name: str
    #: What the user gave (a file name, "bytes", "PIL image").
    name: str
    size: int
    mime: str
    uploaded_at: str
    #: Found on the server after a lost answer or a crash, rather than seen uploaded.
    adopted: bool = False

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> Upload:
        try:
            data = orjson.loads(raw)
            upload = cls(**{k: data[k] for k in ("sha256", "base_url", "file_id", "upload_name", "name",
                                                  "size", "mime", "uploaded_at")},
                         adopted=bool(data.get("adopted")))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise JournalError(f"The upload record {where!r} is not understood ({exc}); remove it.") from None
        if not (_SHA.match(str(upload.sha256)) and _FILE_ID.match(str(upload.file_id))
                and isinstance(upload.size, int) and isinstance(upload.base_url, str)):
            raise JournalError(f"The upload record {where!r} is not one batch_magic wrote; remove it.")
        return upload


@dataclass(frozen=True)
class Intent:
    sha256: str
    upload_name: str
    size: int
    #: When the first try was sent (an upload that landed is at most this old, less the skew).
    first_at: str


def server_key(base_url: str) -> str:
    """Which server a client's uploads are recorded under: its URL without credentials,
    or one name for the simulator built into this process. That simulator keeps its
    files in the journal folder across kernel restarts but gets a new port each time;
    recorded uploads are checked on the server before they are reused, so one it does
    not have is uploaded again."""

    return BUILTIN_SIMULATOR if in_process_simulator(base_url) else destination_url(base_url)


class UploadStore:
    """The journal's uploads table: records, intents and locks, one file each."""

    def __init__(self, journal: Journal) -> None:
        # Every file through the journal's path rule: a symlinked server folder or record
        # of a journal from elsewhere is refused, never followed (the folder's name, a
        # hash of the base URL, is predictable).
        self.journal = journal
        self.root = journal.root / "uploads"
        self._folders: dict[str, Path] = {}

    def folder(self, base_url: str) -> Path:
        folder = self._folders.get(base_url)
        if folder is None:
            folder = self.root / hashlib.sha256(base_url.encode()).hexdigest()[:16]
            marker = folder / "server.json"
            if not self.journal.is_file(marker):
                self.journal.write_file(marker, orjson.dumps({"base_url": base_url}))
            self._folders[base_url] = folder
        return folder

    def _path(self, base_url: str, sha: str, suffix: str) -> Path:
        if not _SHA.match(sha):
            raise JournalError(f"{sha!r} is not a sha256.")
        return self.folder(base_url) / f"{sha}{suffix}"

    def get(self, base_url: str, sha: str) -> Upload | None:
        path = self._path(base_url, sha, ".json")
        try:
            raw = self.journal.read_file(path)
        except FileNotFoundError:
            return None
        upload = Upload.from_json(raw, str(path))
        return upload if upload.base_url == base_url and upload.sha256 == sha else None

    def save(self, upload: Upload) -> None:
        self.journal.write_file(self._path(upload.base_url, upload.sha256, ".json"), orjson.dumps(asdict(upload)))

    def forget(self, base_url: str, sha: str) -> None:
        safepath.unlink(self.journal.root, self._path(base_url, sha, ".json"))

    def intent(self, base_url: str, sha: str) -> Intent | None:
        path = self._path(base_url, sha, ".intent.json")
        try:
            data = orjson.loads(self.journal.read_file(path))
            return Intent(str(data["sha256"]), str(data["upload_name"]), int(data["size"]), str(data["first_at"]))
        except FileNotFoundError:
            return None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return Intent(sha, "", -1, "1970-01-01T00:00:00Z")  # unreadable: assume the oldest

    def write_intent(self, base_url: str, intent: Intent) -> None:
        self.journal.write_file(self._path(base_url, intent.sha256, ".intent.json"), orjson.dumps(asdict(intent)))

    def clear_intent(self, base_url: str, sha: str) -> None:
        safepath.unlink(self.journal.root, self._path(base_url, sha, ".intent.json"))

    @contextlib.contextmanager
    def lock(self, base_url: str, sha: str) -> Iterator[None]:
        """This file's upload lock, waited for (another driver may be uploading it now)."""
        path = self._path(base_url, sha, ".lock")
        while True:
            held = JobLock.acquire(self.journal.root, path)
            if held is not None:
                break
            time.sleep(0.05)
        try:
            yield
        finally:
            held.release()

    def servers(self) -> list[str]:
        """Base URLs with uploads recorded."""
        found = []
        if self.root.is_dir():
            for folder in sorted(self.root.iterdir()):
                # A folder that is not what batch_magic writes (a link, no server.json) is skipped.
                with contextlib.suppress(OSError, JournalError, orjson.JSONDecodeError, KeyError, TypeError):
                    found.append(str(orjson.loads(self.journal.read_file(folder / "server.json"))["base_url"]))
        return found

    def records(self, shas: Iterable[str]) -> list[Upload]:
        """Every recorded upload of these files, on every server."""
        wanted = set(shas)
        out = []
        for base_url in self.servers():
            for sha in sorted(wanted):
                upload = self.get(base_url, sha)
                if upload is not None:
                    out.append(upload)
        return out


@dataclass(frozen=True)
class UploadProgress:
    total: int
    #: Files ready: recorded before, uploaded now, or found on the server.
    done: int
    uploaded: int
    reused: int
    adopted: int

    def describe(self) -> str:
        parts = [f"{self.uploaded:,} uploaded"]
        if self.reused:
            parts.append(f"{self.reused:,} already uploaded")
        if self.adopted:
            parts.append(f"{self.adopted:,} found on the server after an interruption")
        return f"{self.done:,}/{self.total:,} files ready ({', '.join(parts)})"


class UploadsStopped(BatchMagicError):
    """The upload step stopped early because the job was canceled."""


def upload_all(
    files: FilesClient,
    store: UploadStore,
    items: Sequence[MediaItem],
    base_url: str,
    *,
    read: Callable[[MediaItem], bytes],
    settings: UploadSettings | None = None,
    on_progress: Callable[[UploadProgress], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> tuple[dict[str, Upload], UploadProgress]:
    """Make sure every item is uploaded to ``base_url``: recorded uploads are reused,
    the rest uploaded (or adopted), each recorded before this returns."""
    s = settings or UploadSettings()
    done: dict[str, Upload] = {}
    pending: list[MediaItem] = []
    for item in items:
        known = store.get(base_url, item.sha256)
        if known is not None:
            done[item.sha256] = known
            # A driver killed between recording an upload and removing its intent left it.
            store.clear_intent(base_url, item.sha256)
        else:
            pending.append(item)
    if done:
        # A recorded upload deleted on the server since (the Console, another copy of this
        # journal) would fail every request naming it: forget it and upload the file again.
        # The check only helps: when it cannot be made, the records are trusted.
        try:
            present = files.existing([u.file_id for u in done.values()])
        except Exception:
            present = None
        if present is not None:
            for item in items:
                known = done.get(item.sha256)
                if known is not None and known.file_id not in present:
                    store.forget(base_url, item.sha256)
                    del done[item.sha256]
                    pending.append(item)
    counts = {"uploaded": 0, "reused": len(done), "adopted": 0}

    def progress() -> UploadProgress:
        return UploadProgress(len(items), len(done), counts["uploaded"], counts["reused"], counts["adopted"])

    if on_progress is not None:
        on_progress(progress())
    if not pending:
        return done, progress()
    finder = _Finder(files, s.clock_skew)
    failed = threading.Event()

    def one(item: MediaItem) -> tuple[Upload, str] | None:
        if failed.is_set() or stop():
            return None
        return _upload_one(files, store, item, base_url, read=read, settings=s, finder=finder,
                           stop=lambda: failed.is_set() or stop())

    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, min(s.threads, len(pending))),
                            thread_name_prefix="batch_magic-upload") as pool:
        futures = [pool.submit(one, item) for item in pending]
        for future in as_completed(futures):
            try:
                result = future.result()
            except BaseException as exc:  # the first refusal stops the others
                failed.set()
                errors.append(exc)
                continue
            if result is None:
                continue
            upload, how = result
            done[upload.sha256] = upload  # only this thread writes them
            counts[how] += 1
            if on_progress is not None:
                on_progress(progress())
    if errors:
        raise errors[0]
    if len(done) < len(items):
        raise UploadsStopped(f"uploads stopped at {len(done)}/{len(items)} files (the job was canceled)")
    return done, progress()


class _Finder:
    """Looks for uploads that landed although their answer was lost (or their driver died).

    One listing, back to the oldest intent asked about, serves the intents a crashed
    driver left; a lost answer in this run lists again."""

    def __init__(self, files: FilesClient, skew: float) -> None:
        self.files = files
        self.skew = skew
        self.lock = threading.Lock()
        self.listed_at = 0.0  # when the listing was read (epoch)
        self.since = float("inf")
        self.by_name: dict[str, FileInfo] = {}

    def find(self, name: str, size: int, intent_at: str, *, fresh: bool = False) -> FileInfo | None:
        """``fresh``: list again (after a lost answer in this run, the upload may have landed
        since the last listing)."""
        since = (epoch(intent_at) or 0.0) - self.skew
        with self.lock:
            if fresh or since < self.since:
                self._list(min(since, self.since))
            found = self.by_name.get(name)
        return found if found is not None and found.size_bytes == size else None

    def _list(self, since: float) -> None:
        listed_at = time.time()
        by_name: dict[str, FileInfo] = {}
        for info in self.files.newest():
            created = epoch(info.created_at) or listed_at
            if created < since:
                break
            by_name.setdefault(info.filename, info)  # newest first: keep the newest of a name
        self.by_name, self.since, self.listed_at = by_name, since, listed_at


def _upload_one(
    files: FilesClient, store: UploadStore, item: MediaItem, base_url: str, *,
    read: Callable[[MediaItem], bytes], settings: UploadSettings, finder: _Finder, stop: Callable[[], bool],
) -> tuple[Upload, str] | None:
    with store.lock(base_url, item.sha256):
        known = store.get(base_url, item.sha256)
        if known is not None:  # another driver finished it while this one waited
            return known, "reused"
        intent = store.intent(base_url, item.sha256)
        if intent is not None:
            # An upload was started and its answer never recorded: it may be on the server.
            found = _find(finder, item, intent.first_at)
            if found is not None:
                return _record(store, item, base_url, found, adopted=True), "adopted"
        data = read(item)
        first_at = intent.first_at if intent is not None else now_iso()
        backoff = settings.backoff_min
        for attempt in range(1, settings.attempts + 1):
            if stop():
                return None
            store.write_intent(base_url, Intent(item.sha256, item.upload_name, item.size, first_at))
            try:
                info = files.upload(item.upload_name, data, item.mime)
            except Exception as exc:
                # An upload is like a create: a lost answer may hide a file that landed.
                failure = classify(exc, create=True)
                if not failure.retriable:
                    store.clear_intent(base_url, item.sha256)  # refused: nothing was stored
                    raise APIError(f"Uploading {item.describe()} was refused: {failure.detail}") from None
                if attempt == settings.attempts:
                    raise APIError(
                        f"Uploading {item.describe()} failed {attempt} times ({failure.detail}); "
                        "run the cell again to go on (what was uploaded is kept)."
                    ) from None
                time.sleep(failure.retry_after or backoff)
                backoff = min(settings.backoff_max, backoff * 2)
                if failure.kind is FailureKind.AMBIGUOUS:
                    # It may have landed: look before sending it again.
                    found = _find(finder, item, first_at, fresh=True)
                    if found is not None:
                        return _record(store, item, base_url, found, adopted=True), "adopted"
                continue
            return _record(store, item, base_url, info, adopted=False), "uploaded"
    return None  # pragma: no cover - the loop returns or raises


def _find(finder: _Finder, item: MediaItem, intent_at: str, *, fresh: bool = False) -> FileInfo | None:
    try:
        return finder.find(item.upload_name, item.size, intent_at, fresh=fresh)
    except Exception as exc:
        # Not knowing is not sending: the step fails and resumes later, never uploads twice.
        raise APIError(
            f"Listing the server's files (to find an interrupted upload of {item.describe()}) failed: "
            f"{describe_error(exc)}; run the cell again to go on."
        ) from None


def _record(store: UploadStore, item: MediaItem, base_url: str, info: FileInfo, *, adopted: bool) -> Upload:
    upload = Upload(
        sha256=item.sha256, base_url=base_url, file_id=info.id, upload_name=item.upload_name, name=item.name,
        size=item.size, mime=item.mime, uploaded_at=info.created_at or now_iso(), adopted=adopted,
    )
    store.save(upload)  # recorded before the intent goes: a crash between them adopts nothing twice
    store.clear_intent(base_url, item.sha256)
    return upload


# -- housekeeping ----------------------------------------------------------------------------------
def job_files(job_id: str, *, journal: Journal | str | None = None) -> pd.DataFrame:
    """A job's uploads, one row per file and server: ``file_id``, ``name`` (as given),
    ``size``, ``mime``, ``server``, ``uploaded_at`` and ``other_jobs`` (jobs of this
    journal showing the same file, which use the same upload). Files not uploaded
    (yet) have no ``file_id``."""
    import pandas as pd

    jr = Journal.of(journal)
    full = jr.resolve(job_id)
    items = jr.read_media(full)
    store = UploadStore(jr)
    users = _users(jr, set(items))
    by_sha: dict[str, list[Upload]] = {}
    for record in store.records(items):
        by_sha.setdefault(record.sha256, []).append(record)
    rows = []
    for sha, item in items.items():  # in the order the job first shows them
        others = sorted(users.get(sha, set()) - {full})
        uploaded: list[Upload | None] = list(by_sha.get(sha, []))
        for upload in uploaded or [None]:
            rows.append(_row(item, upload, others))
    columns = ["file_id", "name", "size", "mime", "server", "uploaded_at", "sha256", "other_jobs"]
    return pd.DataFrame(rows, columns=columns)


def _row(item: MediaItem, upload: Upload | None, others: list[str]) -> dict[str, Any]:
    return {
        "file_id": upload.file_id if upload else None,
        "name": item.name,
        "size": item.size,
        "mime": item.mime,
        "server": upload.base_url if upload else None,
        "uploaded_at": upload.uploaded_at if upload else None,
        "sha256": item.sha256,
        "other_jobs": ", ".join(others),
    }


def _users(
    jr: Journal, shas: set[str] | None = None, *, keep: Callable[[JobRecord], bool] = lambda r: True
) -> dict[str, set[str]]:
    """Which jobs of the journal (those ``keep`` accepts) show each file (of ``shas``, or all)."""
    users: dict[str, set[str]] = {}
    for record in jr.records():
        if not record.n_media or not keep(record):
            continue
        with contextlib.suppress(JournalError):
            for sha in jr.read_media(record.job_id):
                if shas is None or sha in shas:
                    users.setdefault(sha, set()).add(record.job_id)
    return users


@dataclass(frozen=True)
class DeleteReport:
    deleted: list[str]
    #: (file_id, why) for uploads left in place.
    kept: list[tuple[str, str]]

    def __str__(self) -> str:
        lines = [f"{len(self.deleted)} upload{'s' if len(self.deleted) != 1 else ''} deleted"]
        lines += [f"kept {fid}: {why}" for fid, why in self.kept]
        return "\n".join(lines)


def delete_job_files(
    job_id: str, *, client: Any | None = None, journal: Journal | str | None = None
) -> DeleteReport:
    """Delete a job's uploads from the server and from the journal (asked for by name,
    never done automatically).

    Refused while the job has not ended (a failed job resumes and would send
    requests naming them); an upload another job of the journal still needs
    (one that has not ended) is kept. A later retry of an ended job uploads
    its files again.
    """
    from .destination import client_for_job

    jr = Journal.of(journal)
    full = jr.resolve(job_id)
    record = jr.read_record(full)
    if not record.ended:
        raise BatchMagicError(
            f"Job {full} is {record.state.value}: its uploads are kept while it can still go on "
            f"(a failed job resumes). Delete them once it is done or canceled (%batch cancel {full})."
        )
    items = jr.read_media(full)
    store = UploadStore(jr)
    batch_client = client_for_job(full, record.sent_to, client)
    here = server_key(batch_client.base_url)
    live_users = _users(jr, keep=lambda other: other.job_id != full and not other.ended)
    deleted: list[str] = []
    kept: list[tuple[str, str]] = []
    for upload in store.records(items):
        if upload.base_url != here:
            kept.append((upload.file_id, f"on another server ({upload.base_url})"))
            continue
        users = live_users.get(upload.sha256)
        if users:
            kept.append((upload.file_id, f"job {sorted(users)[0]} still uses it"))
            continue
        with store.lock(here, upload.sha256):
            try:
                batch_client.files.delete(upload.file_id)
            except Exception as exc:
                if classify(exc).kind is not FailureKind.NOT_FOUND:  # not found: already gone
                    kept.append((upload.file_id, f"delete failed: {describe_error(exc)}"))
                    continue
            store.forget(here, upload.sha256)
        deleted.append(upload.file_id)
    return DeleteReport(deleted, kept)


__all__ = [
    "DeleteReport", "Upload", "UploadProgress", "UploadSettings", "UploadStore", "delete_job_files",
    "job_files", "server_key", "upload_all",
]
