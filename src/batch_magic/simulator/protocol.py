"""Wire-level helpers shared by every module: ids, timestamps, error bodies.

Kept apart so that the shapes the SDK parses (ids, RFC 3339 strings, the
``{"type": "error", ...}`` envelope) are defined exactly once.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: HTTP status for each error category the API uses.
STATUS_OF_ERROR: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

#: Error category for each HTTP status a fault may script.
ERROR_OF_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

#: Default human message for each category, close to what the API says.
DEFAULT_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "conflict_error": "Conflict",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}


def random_base62(n: int) -> str:
    """``n`` cryptographically random base62 characters (ids must not collide)."""
    return "".join(secrets.choice(BASE62) for _ in range(n))


_BASE62_TABLE = bytes(ord(BASE62[i % 62]) for i in range(256))


def hashed_base62(n: int, *parts: str) -> str:
    """``n`` (at most 64) base62 characters derived from ``parts``: stable ids for stable results."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=max(1, min(n, 64))).digest()
    return digest.translate(_BASE62_TABLE).decode()


def new_batch_id() -> str:
    return "msgbatch_01" + random_base62(22)


def new_message_id() -> str:
    return "msg_01" + random_base62(22)


def new_file_id() -> str:
    return "file_011C" + random_base62(20)


def new_request_id() -> str:
    return "req_011C" + random_base62(20)


def rfc3339(ts: float) -> str:
    """Unix seconds -> ``2024-08-20T18:37:24.100435Z`` (what the API sends)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_or_none(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


def error_body(
    error_type: str, message: str | None, request_id: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The envelope of every non-2xx answer; ``details`` (``{"error_code": ...}``) names the cause
    where the API gives one (SDK ``types/shared/error_details.py``)."""
    error: dict[str, Any] = {"type": error_type, "message": message or DEFAULT_MESSAGES.get(error_type, "Error")}
    if details:
        error["details"] = details
    return {"type": "error", "error": error, "request_id": request_id}


class APIError(Exception):
    """Raised inside the simulator to answer with an error status and body."""

    def __init__(
        self, error_type: str, message: str, status: int | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status if status is not None else STATUS_OF_ERROR.get(error_type, 400)
        self.details = details


def state_folder(path: Path) -> Path:
    """A folder of the state directory (made if missing). The directory may sit in a
    notebook's journal that came from elsewhere: the folder and its parent (the state
    directory) must not be symlinks, so nothing is kept or read outside it."""
    for p in (path.parent, path):
        if p.is_symlink():
            raise ValueError(f"{str(p)!r} is a symlink; the simulator keeps its state only in a real folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_state(path: Path) -> bytes:
    """A state file's bytes, never through a symlink (``O_NOFOLLOW``: an ``OSError``), and
    only from a regular file (a FIFO would block)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{str(path)!r} is not a regular file")
        return f.read()


def write_atomic(path: Path, *chunks: bytes) -> None:
    """Write ``chunks`` to ``path`` through a temporary file, so a reader (or a restart
    after a crash) sees the old file or the new one, never half of one. The temporary
    file is made anew (never written through a link); the rename replaces a link at
    ``path`` itself, not what it points to."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.{threading.get_ident()}")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.writelines(chunks)
    os.replace(tmp, path)
