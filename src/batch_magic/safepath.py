"""The one path rule of the journal: every file under ``.batch_magic/`` is read
and written through here.

A journal can come from elsewhere (a zip, a shared drive, a course repository),
so a path inside it is untrusted: a symlink anywhere below the journal's root
(or a ``..``) could lead a read or a write to any file of this machine. The rule:
no symlink below the root (the root itself may be one: a journal kept on another
disk), every path resolves inside the root, and files are opened with
``O_NOFOLLOW`` (a link swapped in after the check is not followed either) and
must be regular files (a FIFO would block a read forever).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from .errors import JournalError

_ALTERED = (
    "this journal was altered or came from elsewhere, so batch_magic does not follow it. "
    "Remove that link or that job's folder."
)


def checked(root: Path, path: Path) -> Path:
    """``path``, refused if a part of it below ``root`` is a symlink or it leads outside ``root``."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise JournalError(f"{str(path)!r} is not inside the journal {str(root)!r}.") from None
    if ".." in relative.parts:
        raise JournalError(f"{str(path)!r} leads outside the journal {str(root)!r}; {_ALTERED}")
    current = root
    for part in relative.parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            break  # nothing below a missing part exists yet: no link to follow
        except OSError as exc:
            raise JournalError(f"{str(current)!r} in the journal cannot be read ({exc.strerror or exc}).") from None
        if stat.S_ISLNK(mode):
            raise JournalError(f"{str(current)!r} is a symlink inside the journal {str(root)!r}; {_ALTERED}")
    if not path.resolve().is_relative_to(root.resolve()):
        raise JournalError(f"{str(path)!r} leads outside the journal {str(root)!r}; {_ALTERED}")
    return path


def open_fd(root: Path, path: Path, flags: int, mode: int = 0o600) -> int:
    """A descriptor of the regular file ``path`` (checked, never through a link)."""
    checked(root, path)
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise JournalError(f"{str(path)!r} in the journal is not a regular file; {_ALTERED}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(root: Path, path: Path) -> bytes:
    """The bytes of a journal file (FileNotFoundError if there is none)."""
    try:
        fd = open_fd(root, path, os.O_RDONLY)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise JournalError(f"{str(path)!r} in the journal cannot be read ({exc.strerror or exc}); {_ALTERED}") from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def is_file(root: Path, path: Path) -> bool:
    """Is there a regular file (not a link) at ``path``? A link is refused, not skipped."""
    checked(root, path)
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def make_dirs(root: Path, folder: Path) -> None:
    """Create ``folder`` and any missing parents below ``root``, each readable by the owner only."""
    checked(root, folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(p, 0o700)  # mkdir's mode is filtered by the umask
    checked(root, folder)


def write_atomic(root: Path, path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either the old file or the new one. The rename
    replaces a link at ``path`` itself, never the file it points to."""
    make_dirs(root, path.parent)
    checked(root, path)
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


def unlink(root: Path, path: Path) -> None:
    """Remove a journal file if it is there (a link is removed itself, never followed)."""
    checked(root, path.parent)
    path.unlink(missing_ok=True)
