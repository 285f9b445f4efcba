"""The Files API: uploads, their metadata, limits and persistence.

An upload is read once (``media.read_upload``): its facts (image size and
colour, PDF text and metadata) are kept with its metadata, so a request that
names the file never reads its bytes again. With a state directory each file
is two files under ``<state>/files/``: ``<id>.bin`` (the bytes, written
first) and ``<id>.json`` (the metadata, written atomically), so a simulator
restarted from its state still knows every file; without one the bytes stay
in memory. Thread-safe: one lock guards the records and the storage count.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .media import (
    PDF_TYPE,
    TEXT_TYPE,
    FileView,
    MediaInfo,
    info_from_json,
    info_to_json,
    read_upload,
    sniff,
)
from .protocol import (
    APIError,
    new_file_id,
    read_state,
    rfc3339,
    rfc3339_or_none,
    state_folder,
    write_atomic,
)

MB = 1024 * 1024
GB = 1024 * MB
#: ``expires_in_seconds`` bounds (SDK ``types/file_upload_params.py``).
MIN_EXPIRY, MAX_EXPIRY = 3600, 7_776_000
#: Characters a filename may not contain (Files API page, "Invalid filename").
_FORBIDDEN = re.compile(r'[<>:"|?*\\/\x00-\x1f]')
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
               PDF_TYPE: ".pdf", TEXT_TYPE: ".txt"}


def not_found(file_id: str) -> APIError:
    return APIError("not_found_error", f"File not found: {file_id}")


@dataclass
class StoredFile:
    """One file's metadata and the facts read from it."""

    id: str
    seq: int
    filename: str
    mime_type: str
    size_bytes: int
    created_at: float
    downloadable: bool = False
    expires_at: float | None = None  # the time reported (created + expires_in_seconds)
    expires_effective: float | None = None  # when it takes effect on the simulator's clock (speed applied)
    info: MediaInfo | None = None
    problem: str | None = None
    purged: bool = False  # expired: the bytes are gone, the metadata stays

    def expired(self, now: float) -> bool:
        return self.expires_effective is not None and now >= self.expires_effective

    def to_json(self) -> dict[str, Any]:
        """The ``FileMetadata`` object (SDK ``types/file_metadata.py``)."""
        return {
            "id": self.id,
            "type": "file",
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": self.size_bytes,
            "created_at": rfc3339(self.created_at),
            "downloadable": self.downloadable,
            "expires_at": rfc3339_or_none(self.expires_at),
        }

    def view(self, now: float) -> FileView:
        return FileView(file_id=self.id, mime_type=self.mime_type, info=self.info, problem=self.problem,
                        expired=self.expired(now))

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id, "seq": self.seq, "filename": self.filename, "mime_type": self.mime_type,
            "size_bytes": self.size_bytes, "created_at": self.created_at, "downloadable": self.downloadable,
            "expires_at": self.expires_at, "expires_effective": self.expires_effective,
            "info": None if self.info is None else info_to_json(self.info), "problem": self.problem,
            "purged": self.purged,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> StoredFile:
        return cls(
            id=r["id"], seq=int(r["seq"]), filename=r["filename"], mime_type=r["mime_type"],
            size_bytes=int(r["size_bytes"]), created_at=float(r["created_at"]), downloadable=bool(r["downloadable"]),
            expires_at=r.get("expires_at"), expires_effective=r.get("expires_effective"),
            info=None if r.get("info") is None else info_from_json(r["info"]), problem=r.get("problem"),
            purged=bool(r.get("purged")),
        )


def clean_filename(raw: str | None, mime_type: str) -> str:
    """The stored filename: the last path component of the part's filename (an empty one becomes
    ``unnamed`` plus the type's extension), or the 400 the API answers for a bad one."""
    name = re.split(r"[\\/]", raw or "")[-1]
    if not name:
        name = "unnamed" + _EXTENSIONS.get(mime_type, "")
    bad = _FORBIDDEN.search(name)
    if bad is not None or len(name) > 255:
        why = f"it contains {bad.group(0)!r}" if bad is not None else f"it has {len(name)} characters"
        raise APIError(
            "invalid_request_error",
            f"Invalid filename {name!r}: {why}; a filename has 1-255 characters and none of "
            '< > : " | ? * \\ / or control characters',
        )
    return name


def detect_type(data: bytes, declared: str | None, filename: str | None) -> str:
    """The stored MIME type: the bytes' signature for images and PDFs, else the part's type,
    else the filename's extension, else ``application/octet-stream``."""
    sniffed = sniff(data)
    if sniffed is not None:
        return sniffed
    base = (declared or "").split(";")[0].strip().lower()
    if base and base != "application/octet-stream":
        return base
    guessed = mimetypes.guess_type(filename or "")[0]
    return guessed or "application/octet-stream"


class FileStore:
    """Every file of one simulator; thread-safe; optionally on disk."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.lock = threading.RLock()
        self._files: dict[str, StoredFile] = {}
        self._memory: dict[str, bytes] = {}
        self._tombstones: dict[str, int] = {}  # deleted id -> seq, so list cursors survive
        self._next_seq = 1
        self._used = 0  # bytes of the files that count toward the storage limit
        self.dir = state_folder(Path(state_dir) / "files") if state_dir is not None else None

    # -- adding -----------------------------------------------------------------------------
    def add(
        self,
        data: bytes,
        *,
        filename: str | None,
        declared_type: str | None,
        now: float,
        max_file_bytes: int,
        storage_bytes: int,
        expires_in: int | None = None,
        speed: float = 1.0,
        downloadable: bool = False,
    ) -> StoredFile:
        """Store an upload, or answer the API's error (size, storage, filename, expiry)."""
        if len(data) > max_file_bytes:
            raise file_too_large(len(data), max_file_bytes)
        mime_type = detect_type(data, declared_type, filename)
        name = clean_filename(filename, mime_type)
        if expires_in is not None and not MIN_EXPIRY <= expires_in <= MAX_EXPIRY:
            raise APIError(
                "invalid_request_error",
                f"expires_in_seconds: Input should be between {MIN_EXPIRY} and {MAX_EXPIRY}, not {expires_in}",
            )
        info, problem = read_upload(data, mime_type)
        with self.lock:
            self._purge_expired(now)
            if self._used + len(data) > storage_bytes:
                raise APIError(
                    "invalid_request_error",
                    f"Your organization's file storage is full ({self._used} of {storage_bytes} bytes used); "
                    f"this upload needs {len(data)} more. Delete files to free up space, then retry the upload.",
                    details={"error_code": "storage_quota_exceeded"},
                )
            self._used += len(data)  # reserved now, so two uploads cannot both squeeze in
            seq = self._next_seq
            self._next_seq += 1
        stored = StoredFile(
            id=new_file_id(), seq=seq, filename=name, mime_type=mime_type, size_bytes=len(data), created_at=now,
            downloadable=downloadable, info=info, problem=problem,
            expires_at=None if expires_in is None else now + expires_in,
            expires_effective=None if expires_in is None else now + expires_in / speed,
        )
        try:
            if self.dir is not None:
                write_atomic(self.dir / f"{stored.id}.bin", data)  # bytes first: metadata never points at nothing
                write_atomic(self.dir / f"{stored.id}.json", json.dumps(stored.record()).encode())
        except BaseException:
            with self.lock:
                self._used -= len(data)
            raise
        with self.lock:
            self._files[stored.id] = stored
            if self.dir is None:
                self._memory[stored.id] = data
        return stored

    # -- reading ----------------------------------------------------------------------------
    def get(self, file_id: str) -> StoredFile:
        with self.lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise not_found(file_id)
        return stored

    def view(self, file_id: str, now: float) -> FileView | None:
        """What a Messages request sees of a file, or None if there is no such file (or it was deleted)."""
        with self.lock:
            stored = self._files.get(file_id)
        return None if stored is None else stored.view(now)

    def ids(self) -> list[str]:
        """File ids, oldest first."""
        with self.lock:
            return list(self._files)

    def content(self, file_id: str, now: float) -> tuple[StoredFile, bytes]:
        """A downloadable file's bytes, or the API's error."""
        stored = self.get(file_id)
        if stored.expired(now):
            raise APIError("not_found_error", f"File {file_id} has expired; its content is no longer available.",
                           details={"error_code": "file_expired"})
        if not stored.downloadable:
            raise APIError("invalid_request_error", "File is not downloadable",
                           details={"error_code": "file_not_downloadable"})
        with self.lock:
            data = self._memory.get(file_id)
        if data is None:
            assert self.dir is not None
            data = read_state(self.dir / f"{file_id}.bin")
        return stored, data

    def page(
        self, limit: int, after_id: str | None, before_id: str | None, ids: list[str] | None = None,
    ) -> tuple[list[StoredFile], bool]:
        """A page newest first, with the cursor semantics of the API's list endpoints."""
        with self.lock:
            newest_first = sorted(self._files.values(), key=lambda f: f.seq, reverse=True)
            if ids is not None:
                wanted = set(ids)
                return [f for f in newest_first if f.id in wanted], False
            if after_id is not None:
                cseq = self._seq_of(after_id, "after_id")
                rest = [f for f in newest_first if f.seq < cseq]
                return rest[:limit], len(rest) > limit
            if before_id is not None:
                cseq = self._seq_of(before_id, "before_id")
                head = [f for f in newest_first if f.seq > cseq]
                return head[-limit:], len(head) > limit
            return newest_first[:limit], len(newest_first) > limit

    def _seq_of(self, file_id: str, name: str) -> int:
        if file_id in self._files:
            return self._files[file_id].seq
        if file_id in self._tombstones:
            return self._tombstones[file_id]
        raise APIError("invalid_request_error", f"{name}: no file found with id '{file_id}'.")

    # -- changes ----------------------------------------------------------------------------
    def delete(self, file_id: str) -> None:
        with self.lock:
            stored = self._files.pop(file_id, None)
            if stored is None:
                raise not_found(file_id)
            self._tombstones[file_id] = stored.seq
            self._memory.pop(file_id, None)
            if not stored.purged:
                self._used -= stored.size_bytes
        if self.dir is not None:
            for suffix in (".json", ".bin"):
                (self.dir / f"{file_id}{suffix}").unlink(missing_ok=True)

    def clear(self) -> None:
        with self.lock:
            ids = list(self._files)
            self._files.clear()
            self._memory.clear()
            self._tombstones.clear()
            self._used = 0
        if self.dir is not None:
            for file_id in ids:
                for suffix in (".json", ".bin"):
                    (self.dir / f"{file_id}{suffix}").unlink(missing_ok=True)

    def _purge_expired(self, now: float) -> None:
        """Drop the bytes of expired files (caller holds the lock); their metadata stays."""
        for stored in self._files.values():
            if not stored.purged and stored.expired(now):
                stored.purged = True
                self._used -= stored.size_bytes
                self._memory.pop(stored.id, None)
                if self.dir is not None:
                    (self.dir / f"{stored.id}.bin").unlink(missing_ok=True)
                    write_atomic(self.dir / f"{stored.id}.json", json.dumps(stored.record()).encode())

    # -- persistence ------------------------------------------------------------------------
    def load(self) -> None:
        """Read every file of the state directory (metadata only; bytes are read when downloaded)."""
        if self.dir is None:
            return
        loaded: list[StoredFile] = []
        for meta_path in self.dir.glob("*.json"):
            try:
                stored = StoredFile.from_record(json.loads(read_state(meta_path)))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a half-written, foreign or linked file
            if stored.id != meta_path.stem:
                continue  # an id that is not its file's name could lead elsewhere
            if not stored.purged and not meta_path.with_suffix(".bin").exists():
                continue
            loaded.append(stored)
        with self.lock:
            for stored in sorted(loaded, key=lambda f: f.seq):
                self._files[stored.id] = stored
                self._next_seq = max(self._next_seq, stored.seq + 1)
                if not stored.purged:
                    self._used += stored.size_bytes


def file_too_large(size: int | None, limit: int) -> APIError:
    """The 413 of an upload over the size limit (``size`` None: known only from the body's length)."""
    what = f"{size} bytes exceeds" if size is not None else "the upload exceeds"
    return APIError(
        "request_too_large",
        f"File too large: {what} the maximum file size of {limit / MB:g} MB ({limit} bytes).",
        413,
    )


