"""Defaults for the magic from ``[tool.batch_magic]`` in ``pyproject.toml``.

A project can pin its model, token limit or budget next to its notebooks::

    [tool.batch_magic]
    model = "claude-haiku-5-5"
    effort = "low"
    max_tokens = 512
    max_cost = 5.0

The file is the notebook's project's: the first ``pyproject.toml`` found from
the notebook's folder (the kernel's working directory) upward, as jupysql
looks for its own, stopping at the root of a repository (a folder holding
``.git``, ``.hg`` or ``.svn``) or of the filesystem.

Keys are the ``BatchMagic`` trait names (``%config BatchMagic`` lists them).
An unknown key is a warning that names it and suggests the closest known one;
a value of the wrong type is a warning too. Nothing here stops the extension
from loading.
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from pathlib import Path
from typing import Any

SECTION = ("tool", "batch_magic")
#: Keys of earlier versions, and why they are gone.
REMOVED_KEYS = {
    name: f"{name} was removed: the API no longer takes it (see the README, 'Why no temperature'); "
    "set effort to \"low\" (or medium, high, xhigh, max) to trade quality for speed and cost"
    for name in ("temperature", "top_p", "top_k")
}
FILENAME = "pyproject.toml"
#: A folder holding one of these is a repository's root: the search stops there.
VCS_MARKERS = (".git", ".hg", ".svn")


class ConfigWarning(UserWarning):
    """Something in ``[tool.batch_magic]`` was ignored."""


def _toml_loads() -> Any:
    import tomllib

    return tomllib.loads
    try:
        import tomli
    except ImportError:
        return None
    return tomli.loads


def find_pyproject(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The first ``pyproject.toml`` from ``start`` (default: the working directory, which
    is the notebook's folder in a kernel) upward; the search ends at a repository's root
    (its own file counts) or the filesystem's. None if there is none."""
    folder = Path(start if start is not None else os.getcwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / FILENAME
        if path.is_file():
            return path
        if any((candidate / marker).exists() for marker in VCS_MARKERS):
            return None
    return None


def read_section(path: str | os.PathLike[str] | None = None) -> tuple[dict[str, Any], Path | None]:
    """The ``[tool.batch_magic]`` table and the file it came from ({} if none)."""
    file = Path(path) if path is not None else find_pyproject()
    if file is None or not file.is_file():
        return {}, None
    loads = _toml_loads()
    if loads is None:
        warnings.warn(
            f"{file} was not read: Python {sys.version_info.major}.{sys.version_info.minor} needs "
            "the 'tomli' package to read TOML (pip install tomli).",
            ConfigWarning,
            stacklevel=2,
        )
        return {}, file
    try:
        data = loads(file.read_text(encoding="utf-8"))
    except Exception as exc:
        warnings.warn(f"{file} was not read: {exc}", ConfigWarning, stacklevel=2)
        return {}, file
    section: Any = data
    for key in SECTION:
        section = section.get(key) if isinstance(section, dict) else None
    if section is None:
        return {}, file
    if not isinstance(section, dict):
        warnings.warn(f"[tool.batch_magic] in {file} is not a table; ignored.", ConfigWarning, stacklevel=2)
        return {}, file
    return dict(section), file


def suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"


def apply_to(configurable: Any, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Set the configurable's traits from the pyproject section; return what was applied.

    Values set explicitly with ``%config`` or an IPython profile win: the file
    only sets the traits the IPython config leaves alone.
    """
    section, file = read_section(path)
    if not section:
        return {}
    known = sorted(configurable.class_trait_names(config=True))
    cls_name = type(configurable).__name__
    already = set()
    config = getattr(configurable, "config", None)
    if config is not None and cls_name in config:
        already = set(config[cls_name].keys())
    applied: dict[str, Any] = {}
    for key, value in section.items():
        if key in REMOVED_KEYS and key not in known:
            warnings.warn(f"[tool.batch_magic] {key} in {file} is ignored: {REMOVED_KEYS[key]}.", ConfigWarning, stacklevel=2)
            continue
        if key not in known:
            warnings.warn(
                f"Unknown key {key!r} in [tool.batch_magic] of {file}{suggest(key, known)}",
                ConfigWarning,
                stacklevel=2,
            )
            continue
        if key in already:
            continue
        try:
            setattr(configurable, key, value)
        except Exception as exc:
            warnings.warn(
                f"[tool.batch_magic] {key} = {value!r} in {file} was ignored: {exc}",
                ConfigWarning,
                stacklevel=2,
            )
            continue
        applied[key] = value
    return applied


__all__ = ["ConfigWarning", "apply_to", "find_pyproject", "read_section", "suggest"]
