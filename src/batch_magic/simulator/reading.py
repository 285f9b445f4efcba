"""The image and document blocks of a Messages request, resolved to what they show.

A block's source is one of the API's: ``base64`` (decoded here), ``url``
(never fetched: the simulator has no network), ``file`` (an upload, looked up
through a :data:`FileLookup`), and for documents also ``text`` and
``content``. :func:`resolve` answers a :class:`~.media.MediaInfo` or raises
:class:`MediaProblem` with the API's error. Base64 payloads are decoded once
per distinct payload (a small cache keyed by a digest), so a batch that
repeats an image pays for it once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .media import (
    IMAGE_TYPES,
    PDF_TYPE,
    TEXT_TYPE,
    FileView,
    MediaError,
    MediaInfo,
    PdfInfo,
    TextInfo,
    UrlInfo,
    read_image,
)
from .pdf import INVALID_PDF, read_pdf

#: file_id -> what a request sees of it (None: no such file, or deleted).
FileLookup = Callable[[str], FileView | None]

_IMAGE_SOURCES = ("base64", "url", "file")
_DOCUMENT_SOURCES = ("base64", "text", "content", "url", "file")


class MediaProblem(Exception):
    """A media block the API refuses: (error type, message, details)."""

    def __init__(self, message: str, details: dict[str, Any] | None = None,
                 error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.details = details


@dataclass(frozen=True)
class MediaBlock:
    """An image or document block and where it sits (``messages.0.content.1``)."""

    path: str
    kind: str  # "image" or "document"
    block: dict[str, Any]
    role: str


def media_blocks(params: dict[str, Any]) -> Iterator[MediaBlock]:
    """Every image and document block of the messages, in order, tool results included."""
    messages = params.get("messages")
    if not isinstance(messages, list):
        return
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("content"), list):
            continue
        yield from _blocks_in(msg["content"], f"messages.{i}.content", str(msg.get("role")))


def _blocks_in(content: list[Any], prefix: str, role: str) -> Iterator[MediaBlock]:
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("image", "document"):
            yield MediaBlock(f"{prefix}.{j}", str(kind), block, role)
        elif kind == "tool_result" and isinstance(block.get("content"), list):
            yield from _blocks_in(block["content"], f"{prefix}.{j}.content", role)


def resolve(item: MediaBlock, files: FileLookup | None) -> MediaInfo:
    """What a media block shows, or ``MediaProblem`` with the API's answer."""
    kind, path = item.kind, item.path
    source = item.block.get("source")
    if not isinstance(source, dict):
        raise MediaProblem(f"{path}.{kind}.source: Field required")
    tag = source.get("type")
    allowed = _IMAGE_SOURCES if kind == "image" else _DOCUMENT_SOURCES
    if tag not in allowed:
        raise MediaProblem(
            f"{path}.{kind}.source: Input tag {tag!r} found using 'type' does not match any of the expected tags: "
            + ", ".join(repr(t) for t in allowed)
        )
    if tag == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise MediaProblem(f"{path}.{kind}.source.url: Input should be a valid URL, not {url!r}")
        return UrlInfo(block=kind, url=url)
    if tag == "file":
        return _from_file(item, source.get("file_id"), files)
    if tag == "text":
        data = source.get("data")
        if not isinstance(data, str):
            raise MediaProblem(f"{path}.document.source.text.data: Input should be a valid string")
        if source.get("media_type", TEXT_TYPE) != TEXT_TYPE:
            raise MediaProblem(f"{path}.document.source.text.media_type: Input should be 'text/plain'")
        return TextInfo(text=data)
    if tag == "content":
        return TextInfo(text=_content_text(source.get("content")))
    # base64
    data = source.get("data")
    media_type = source.get("media_type")
    if kind == "image" and media_type not in IMAGE_TYPES:
        raise MediaProblem(f"{path}.image.source.base64.media_type: Input should be "
                           "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
    if kind == "document" and media_type != PDF_TYPE:
        raise MediaProblem(f"{path}.document.source.base64.media_type: Input should be 'application/pdf'")
    if not isinstance(data, str):
        raise MediaProblem(f"{path}.{kind}.source.base64.data: Input should be a valid string")
    found = _decoded(str(media_type), data)
    if isinstance(found, str):
        raise MediaProblem(found if found == INVALID_PDF else f"{path}.{kind}.source.base64.data: {found}")
    return found


_CACHE: OrderedDict[tuple[str, bytes], MediaInfo | str] = OrderedDict()
_CACHE_SIZE = 512
_CACHE_LOCK = threading.Lock()


def _decoded(media_type: str, data: str) -> MediaInfo | str:
    """The facts of a base64 payload, or the message of why it cannot be read.

    Cached by a digest of the payload (not the payload itself: a few hundred
    cached photos must not hold their megabytes).
    """
    key = (media_type, hashlib.blake2b(data.encode("ascii", "replace"), digest_size=16).digest())
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    found = _read_base64(media_type, data)
    with _CACHE_LOCK:
        _CACHE[key] = found
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return found


def _read_base64(media_type: str, data: str) -> MediaInfo | str:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return "The data is not valid base64"
    try:
        if media_type == PDF_TYPE:
            return read_pdf(raw)
        return read_image(raw, media_type)
    except MediaError as exc:
        return str(exc)


def _from_file(item: MediaBlock, file_id: object, files: FileLookup | None) -> MediaInfo:
    kind, path = item.kind, item.path
    if not isinstance(file_id, str) or not file_id:
        raise MediaProblem(f"{path}.{kind}.source.file.file_id: Field required")
    view = files(file_id) if files is not None else None
    if view is None:
        raise MediaProblem(f"File not found: {file_id}")
    if view.expired:
        raise MediaProblem(f"File {file_id} has expired and can no longer be used in a request; upload it again")
    fits = view.mime_type in IMAGE_TYPES if kind == "image" else view.mime_type in (PDF_TYPE, TEXT_TYPE)
    if not fits:
        place = ("image blocks take image/jpeg, image/png, image/gif or image/webp files" if kind == "image"
                 else "document blocks take application/pdf and text/plain files")
        raise MediaProblem(f"{path}.{kind}.source: file {file_id} has type {view.mime_type}, which does not match "
                           f"the content block type ({place})")
    if view.problem is not None or view.info is None:
        problem = view.problem or "Could not process file"
        raise MediaProblem(problem if problem == INVALID_PDF else f"{path}.{kind}.source: {problem}")
    return view.info


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


def last_turn_media(params: dict[str, Any], files: FileLookup | None) -> list[MediaInfo]:
    """What the media blocks of the last user turn show (unreadable ones skipped: the request
    was validated before the model reads it)."""
    messages = params.get("messages")
    if not isinstance(messages, list):
        return []
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if not isinstance(content, list):
                return []  # a plain string turn: the common case, nothing to read
            out: list[MediaInfo] = []
            for item in _blocks_in(content, f"messages.{i}.content", "user"):
                try:
                    out.append(resolve(item, files))
                except MediaProblem:
                    continue
            return out
    return []


def is_pdf(info: MediaInfo, item: MediaBlock) -> bool:
    """Whether a document block holds a PDF (a PDF URL counts: the API reads it as one)."""
    return isinstance(info, PdfInfo) or (isinstance(info, UrlInfo) and item.kind == "document")

