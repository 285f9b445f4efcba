"""Images and PDFs in a column: values become checked, content-addressed files.

A template shows a row's image or PDF with ``{{ image(photo) }}``,
``{{ pdf(invoice) }}`` or ``{{ media(attachment) }}`` (either kind, told by
its bytes). A value may be a local path (``str`` or ``pathlib.Path``), the
file's ``bytes``, or a PIL image. Each function reads the value once, checks
it and returns a *marker*: a short piece of text naming the kind and the
sha256 of the bytes. The rendered prompt therefore stays a ``str``: identical
rows (same text, same files) are still one request, the fingerprint covers
the content hash of every file, and the journal keeps prompts as JSON text.
Only when a request is sent is a prompt with markers cut into content blocks,
text and media in template order, each medium pointing at its upload.

Checked before anything is uploaded or sent (``MediaProblem`` per row,
reported together): the file exists, its bytes are PNG, JPEG, GIF, WebP or
PDF (by their signature, whatever the name says), an image is at most 5 MB
and 8000 px a side, any file at most the Files API's 500 MB, a PDF is not
encrypted and has pages. Limits that depend on the request or the model
(images per request, 2000 px when a request has more than 20, PDF pages per
request, whether the model reads images or PDFs) are checked by
``check_requests`` and ``check_model`` once the model is known.

Sizes are read from the image headers here, not by decoding: no dependency is
needed to send images, and 10,000 files are measured in milliseconds. Pillow
is used only to encode a PIL image a user put in the column (whoever has PIL
images has Pillow).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import JournalError, MediaError
from .format import plural

if TYPE_CHECKING:
    from .models import ModelCard

IMAGE = "image"
PDF = "pdf"
KINDS = (IMAGE, PDF)
#: The template functions, by name: the kind each one accepts (None: either, told by the bytes).
FUNCTIONS: dict[str, str | None] = {"image": IMAGE, "pdf": PDF, "media": None}

PNG, JPEG, GIF, WEBP = "image/png", "image/jpeg", "image/gif", "image/webp"
PDF_MIME = "application/pdf"
EXTENSIONS = {PNG: "png", JPEG: "jpg", GIF: "gif", WEBP: "webp", PDF_MIME: "pdf"}
#: File name endings taken as media when a ``%%batch df.column`` column holds paths.
MEDIA_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf")

# -- the API's limits, each with its source ----------------------------------------------------
#: Files API page, "File storage and limits": 500 MB per file.
MAX_FILE_BYTES = 500 * 1000 * 1000
#: Vision page: images the API takes are at most 5 MB each. A larger photo gains nothing:
#: the API scales every image down to at most 1568 px (2576 px on newer models) first.
MAX_IMAGE_BYTES = 5 * 1000 * 1000
#: Vision page, "General limits": 8000x8000 px per image; 2000x2000 px when a request
#: holds more than 20 images.
MAX_IMAGE_SIDE = 8000
MAX_IMAGE_SIDE_MANY = 2000
MANY_IMAGES = 20
#: Vision page: 100 images per request on models with a 200K-token window, 600 on others.
MAX_IMAGES_SMALL_WINDOW = 100
MAX_IMAGES = 600
#: PDF support page: 100 pages per request (models under a 1M-token window), 600 otherwise.
MAX_PDF_PAGES_SMALL_WINDOW = 100
MAX_PDF_PAGES = 600
LARGE_WINDOW = 1_000_000
#: Rows listed in an error about media (the rest are counted).
SHOWN_PROBLEMS = 5

# A marker: private-use characters around "kind:sha256", which no template text is expected
# to hold; a prompt is cut into blocks only where such a marker names a file of its job.
MARK_OPEN = "\ue000"
MARK_CLOSE = "\ue001"
_MARKER = re.compile("\ue000(image|pdf):([0-9a-f]{64})\ue001")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def marker(kind: str, sha256: str) -> str:
    return f"{MARK_OPEN}{kind}:{sha256}{MARK_CLOSE}"


def has_markers(prompt: str) -> bool:
    return MARK_OPEN in prompt and _MARKER.search(prompt) is not None


def markers(prompt: str) -> list[tuple[str, str]]:
    """(kind, sha256) of each medium of a prompt, in order."""
    return [(m.group(1), m.group(2)) for m in _MARKER.finditer(prompt)] if MARK_OPEN in prompt else []


def text_of(prompt: str) -> str:
    """The prompt without its markers (its text alone, for counting characters)."""
    return _MARKER.sub("", prompt) if MARK_OPEN in prompt else prompt


# -- what a file is ------------------------------------------------------------------------------
def sniff(data: bytes) -> str | None:
    """The media type the bytes' signature says (PNG, JPEG, GIF, WebP, PDF), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    # A PDF's header may follow a little junk (the spec allows it within the first 1024 bytes).
    if b"%PDF-" in data[:1024]:
        return PDF_MIME
    return None


def image_size(data: bytes, mime: str) -> tuple[int, int] | None:
    """(width, height) from the image's header, without decoding it; None if unreadable."""
    try:
        if mime == PNG:
            if data[12:16] != b"IHDR":
                return None
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if mime == GIF:
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if mime == WEBP:
            return _webp_size(data)
        if mime == JPEG:
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


#: JPEG start-of-frame markers (C0-CF except DHT C4, JPG C8 and DAC CC) carry the size.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            i += 1  # tolerate padding between segments
            continue
        code = data[i + 1]
        if code == 0xFF:
            i += 1
            continue
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
            i += 2  # markers without a length
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if code in _SOF and i + 9 <= n:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        if code == 0xDA:  # start of scan: no frame header before it
            return None
        i += 2 + length
    return None


@dataclass(frozen=True)
class PdfFacts:
    pages: int
    #: Characters of text its content streams show (what the API extracts beside each page image).
    text_chars: int
    encrypted: bool


_STREAM = re.compile(rb">>\s*stream\r?\n")
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", re.S)
_SHOWN = re.compile(rb"\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>(?=\s*\]|\s*Tj|\s*\(|\s*<|\s*-?\d)")
_TEXT_OP = re.compile(rb"\[(?:[^\]\\]|\\.)*\]\s*TJ|(?:\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>)\s*(?:Tj|'|\")", re.S)


def pdf_facts(data: bytes) -> PdfFacts:
    """Pages, shown text and encryption of a PDF, read without a PDF library.

    Pages are ``/Type /Page`` objects, in the file or in its compressed object
    streams (else the page tree's ``/Count``); text is what ``Tj``/``TJ``
    operators show in content streams, plain or Flate-compressed. Enough for an
    estimate and for refusing a file the API would refuse (no page, encrypted).
    """
    bodies = [data]
    text_chars = 0
    for m in _STREAM.finditer(data):
        start = m.end()
        end = data.find(b"endstream", start)
        if end < 0:
            continue
        raw = data[start:end]
        # The stream's dictionary: from its object's header to the "stream" keyword.
        low = max(0, m.start() - 4000)
        obj = data.rfind(b"obj", low, m.start())
        head = data[obj if obj >= 0 else low : m.start()]
        if b"/FlateDecode" in head:
            try:
                raw = zlib.decompressobj().decompress(raw, 50_000_000)
            except zlib.error:
                continue
        elif b"/Filter" in head:
            continue  # images and other encodings: no text to read
        if b"/ObjStm" in head:
            bodies.append(raw)
        else:
            text_chars += _shown_chars(raw)
    pages = sum(len(_PAGE.findall(b)) for b in bodies)
    if pages == 0:
        counts = [int(a or b) for body in bodies for a, b in _COUNT.findall(body)]
        pages = max(counts, default=0)
    encrypted = b"/Encrypt" in data[-4096:] or re.search(rb"trailer\s*<<[^>]*/Encrypt", data) is not None
    return PdfFacts(pages=pages, text_chars=text_chars, encrypted=encrypted)


def _shown_chars(stream: bytes) -> int:
    chars = 0
    for op in _TEXT_OP.finditer(stream):
        for s in _SHOWN.finditer(op.group(0)):
            token = s.group(0)
            if token.startswith(b"("):
                chars += len(re.sub(rb"\\(\d{1,3}|.)", b"x", token[1:-1]))
            else:  # hex string: two digits a byte (UTF-16 text counted as bytes / 2)
                chars += len(re.sub(rb"\s", b"", token[1:-1])) // 2
    return chars


# -- a file of a job -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MediaItem:
    """One distinct file of a job, known by the sha256 of its bytes."""

    sha256: str
    kind: str  # IMAGE or PDF
    mime: str
    size: int
    #: What the user gave, for messages and listings: the file's name, "bytes" or "PIL image".
    name: str
    #: The absolute path it was read from (None: the bytes came from memory).
    path: str | None = None
    width: int | None = None
    height: int | None = None
    pages: int | None = None
    text_chars: int = 0
    #: The bytes themselves, for values that are not files (kept in memory, never in the record).
    data: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.mime, "bin")

    @property
    def upload_name(self) -> str:
        """The name the file is uploaded under: it carries the hash, so an upload whose
        answer was lost can be recognised on the server afterwards."""
        return f"bm-{self.sha256}.{self.extension}"

    def describe(self) -> str:
        if self.kind == IMAGE:
            shape = f"{self.width}x{self.height} px" if self.width else "size unknown"
            what = f"{self.extension.upper()} image, {shape}"
        else:
            what = f"PDF, {self.pages} page{'s' if self.pages != 1 else ''}"
        return f"{self.name} ({what}, {human_bytes(self.size)})"

    def read(self, staged: Path | None = None) -> bytes:
        """The file's bytes, checked against its hash (a file changed since the job was
        planned is refused: the job would send something else than it priced).

        The check also keeps a journal from elsewhere (read as untrusted input) from
        naming any file of this machine to upload: only bytes whose sha256 the journal
        already holds, i.e. whose content its author knew, can be read."""
        if self.data is not None:
            return self.data
        source = self.path if self.path is not None else (str(staged) if staged is not None else None)
        if source is None:
            raise MediaError(f"{self.name}: its bytes are not kept anywhere; run the cell again.")
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise MediaError(
                f"{self.name}: {source!r} cannot be read any more ({exc.strerror or exc}); the job "
                "needs it until it is uploaded. Put it back, or run the cell again with --force."
            ) from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise MediaError(
                f"{source!r} changed since the job was planned (its sha256 differs); the job would "
                "send another file than it priced. Run the cell again with --force to plan it anew."
            )
        return data

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sha256": self.sha256, "kind": self.kind, "mime": self.mime, "size": self.size, "name": self.name,
        }
        for key in ("path", "width", "height", "pages"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.text_chars:
            data["text_chars"] = self.text_chars
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> MediaItem:
        """An item of a job's ``media.json``, read as untrusted input."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            item = cls(
                sha256=str(data["sha256"]), kind=str(data["kind"]), mime=str(data["mime"]),
                size=int(data["size"]), name=str(data["name"]),
                path=None if data.get("path") is None else str(data["path"]),
                width=_opt_int(data.get("width")), height=_opt_int(data.get("height")),
                pages=_opt_int(data.get("pages")), text_chars=int(data.get("text_chars") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise JournalError(f"{where}: a media entry is not understood ({exc}): {str(data)[:80]!r}.") from None
        if not _SHA.match(item.sha256) or item.kind not in KINDS or item.mime not in EXTENSIONS:
            raise JournalError(f"{where}: the media entry {str(data)[:80]!r} is not one batch_magic wrote.")
        return item


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


# -- reading a column's values -------------------------------------------------------------------
@dataclass(frozen=True)
class MediaProblem:
    """A value that cannot be sent: the row (position among the rendered rows), the value, why."""

    position: int
    value: str
    reason: str


class _Unusable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: Files already read in this process, by (path, size, mtime): a re-run cell does not
#: hash 10,000 photos again.
_READ_CACHE: dict[tuple[str, int, int], MediaItem] = {}
_READ_CACHE_LOCK = threading.Lock()
_READ_CACHE_MAX = 200_000


class MediaCollector:
    """Reads each row's media while a template renders; collects the files and the problems.

    The template's ``image``/``pdf``/``media`` functions are this object's
    ``function(...)``; ``row`` is set to the row being rendered, so a problem
    names it. Nothing is raised during the render: every bad row is reported
    together afterwards (``problems``), before anything is uploaded or sent.
    """

    def __init__(self) -> None:
        self.items: dict[str, MediaItem] = {}
        self.problems: list[MediaProblem] = []
        self.n_problems = 0
        self.row = 0
        self._by_object: dict[int, tuple[Any, MediaItem]] = {}

    def function(self, name: str) -> Callable[[Any], str]:
        want = FUNCTIONS[name]

        def show(value: Any) -> str:
            try:
                item = self._read(value)
                self._check(item, want, name)
            except _Unusable as exc:
                self.n_problems += 1
                if len(self.problems) < 100:
                    self.problems.append(MediaProblem(self.row, _shown(value), exc.reason))
                return ""
            known = self.items.setdefault(item.sha256, item)
            return marker(known.kind, known.sha256)

        show.__name__ = name
        return show

    def _check(self, item: MediaItem, want: str | None, name: str) -> None:
        if want is not None and item.kind != want:
            other = "pdf" if item.kind == PDF else "image"
            raise _Unusable(f"{name}() was given {'a PDF' if item.kind == PDF else 'an image'}; use {other}() for it")
        if item.size > MAX_FILE_BYTES:
            raise _Unusable(f"{human_bytes(item.size)}, over the Files API's 500 MB a file")
        if item.kind == IMAGE:
            if item.size > MAX_IMAGE_BYTES:
                raise _Unusable(
                    f"{human_bytes(item.size)}, over the API's 5 MB an image; downscale it (the API reads "
                    "at most 1568 px, 2576 px on newer models, on the long edge anyway)"
                )
            if item.width is None or item.height is None:
                raise _Unusable(f"its {item.extension.upper()} header is unreadable (a damaged or cut file?)")
            if max(item.width, item.height) > MAX_IMAGE_SIDE:
                raise _Unusable(
                    f"{item.width}x{item.height} px, over the API's {MAX_IMAGE_SIDE} px a side; downscale it"
                )
        elif not item.pages:
            raise _Unusable("a PDF with no page the API could read")

    def _read(self, value: Any) -> MediaItem:
        if _is_missing(value):
            raise _Unusable("missing")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return item_from_bytes(bytes(value), "bytes")
        if isinstance(value, (str, os.PathLike)):
            return item_from_path(value)
        if _is_pil_image(value):
            cached = self._by_object.get(id(value))
            if cached is not None and cached[0] is value:
                return cached[1]
            item = item_from_bytes(_pil_bytes(value), "PIL image")
            self._by_object[id(value)] = (value, item)  # keeps the object, so its id stays its own
            return item
        kind = type(value).__name__
        raise _Unusable(f"{'an' if kind[0] in 'aeiouAEIOU' else 'a'} {kind}, not a path, bytes or a PIL image")


def item_from_path(value: str | os.PathLike[str]) -> MediaItem:
    text = os.fspath(value)
    if isinstance(text, bytes):  # a bytes path
        text = os.fsdecode(text)
    if text.startswith(("http://", "https://")):
        raise _Unusable("a URL; batch_magic sends local files: download it first")
    if not text.strip():
        raise _Unusable("an empty path")
    path = Path(text).expanduser()
    try:
        path = path.resolve()
        st = path.stat()
    except FileNotFoundError:
        raise _Unusable("no such file") from None
    except OSError as exc:
        raise _Unusable(f"cannot be read ({exc.strerror or exc})") from None
    if not path.is_file():
        raise _Unusable("not a file (a folder?)")
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _READ_CACHE_LOCK:
        cached = _READ_CACHE.get(key)
    if cached is not None:
        return cached
    if st.st_size > MAX_FILE_BYTES:
        raise _Unusable(f"{human_bytes(st.st_size)}, over the Files API's 500 MB a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _Unusable(f"cannot be read ({exc.strerror or exc})") from None
    item = _item(data, name=path.name, path=str(path))
    with _READ_CACHE_LOCK:
        if len(_READ_CACHE) >= _READ_CACHE_MAX:
            _READ_CACHE.clear()
        _READ_CACHE[key] = item
    return item


def item_from_bytes(data: bytes, name: str) -> MediaItem:
    if len(data) > MAX_FILE_BYTES:
        raise _Unusable(f"{human_bytes(len(data))}, over the Files API's 500 MB a file")
    return _item(data, name=name, path=None, keep=True)


def _item(data: bytes, *, name: str, path: str | None, keep: bool = False) -> MediaItem:
    mime = sniff(data)
    if mime is None:
        head = data[:8]
        raise _Unusable(
            f"neither PNG, JPEG, GIF, WebP nor PDF (its first bytes are {head!r}); convert it to one of those"
        )
    sha = hashlib.sha256(data).hexdigest()
    kept = data if keep else None
    if mime == PDF_MIME:
        facts = pdf_facts(data)
        if facts.encrypted:
            raise _Unusable("an encrypted PDF; the API reads standard PDFs without passwords or encryption")
        return MediaItem(sha, PDF, mime, len(data), name, path, pages=facts.pages,
                         text_chars=facts.text_chars, data=kept)
    size = image_size(data, mime)
    width, height = size if size is not None else (None, None)
    return MediaItem(sha, IMAGE, mime, len(data), name, path, width=width, height=height, data=kept)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        result = pd.isna(value)
    except (TypeError, ValueError):
        return False
    return isinstance(result, bool) and result


def _is_pil_image(value: Any) -> bool:
    return any(c.__module__.startswith("PIL.") and c.__name__ == "Image" for c in type(value).__mro__)


def _pil_bytes(image: Any) -> bytes:
    """A PIL image's bytes to send: JPEG (quality 95) for a photo that came from a JPEG,
    where PNG would be several times larger; lossless PNG for everything else."""
    import io

    buf = io.BytesIO()
    if getattr(image, "format", None) == "JPEG" and image.mode in ("RGB", "L"):
        image.save(buf, format="JPEG", quality=95)
        return buf.getvalue()
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    image.save(buf, format="PNG")
    return buf.getvalue()


def _shown(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value):,} bytes starting {bytes(value[:8])!r}>"
    if _is_pil_image(value):
        return f"<PIL image {getattr(value, 'mode', '?')} {getattr(value, 'size', '?')}>"
    text = repr(os.fspath(value)) if isinstance(value, (str, os.PathLike)) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def problems_message(problems: list[MediaProblem], total: int, row_name: Callable[[int], str]) -> str:
    """The error for media that cannot be sent: the first rows (``row_name`` of a problem's
    position: "row 'b'", with its place in the frame when its label repeats), their values
    and why."""
    shown = "; ".join(
        f"{row_name(p.position)}: {p.value} ({p.reason})" for p in problems[:SHOWN_PROBLEMS]
    )
    more = f"; and {total - SHOWN_PROBLEMS:,} more" if total > SHOWN_PROBLEMS else ""
    return (
        f"{plural(total, 'row')} {'holds' if total == 1 else 'hold'} media that cannot be sent: {shown}{more}. "
        "Fix those values or leave those rows out (a row whose value is missing, None or NaN, is "
        "skipped); nothing was uploaded or sent."
    )


# -- requests: limits, the model, content blocks ---------------------------------------------------
def check_model(items: Iterable[MediaItem], card: ModelCard) -> None:
    """Refuse, before anything is spent, media the model does not read (its Models API card)."""
    kinds = {i.kind for i in items}
    if IMAGE in kinds and not card.image_input:
        raise MediaError(
            f"{card.id} does not read images ({card.told_by} capabilities.image_input is false); "
            "choose a model that does (--model claude-haiku-5-5, say)."
        )
    if PDF in kinds and not card.pdf_input:
        raise MediaError(
            f"{card.id} does not read PDFs ({card.told_by} capabilities.pdf_input is false); "
            "choose a model that does (--model claude-haiku-5-5, say)."
        )


@dataclass(frozen=True)
class RequestMedia:
    """What one request shows: its images, their largest side, its PDF pages."""

    images: int
    largest_side: int
    pages: int


def request_media(prompt: str, items: Mapping[str, MediaItem]) -> RequestMedia:
    images = pages = side = 0
    for kind, sha in markers(prompt):
        item = items[sha]
        if kind == IMAGE:
            images += 1
            side = max(side, item.width or 0, item.height or 0)
        else:
            pages += item.pages or 0
    return RequestMedia(images, side, pages)


def check_requests(
    prompts: Iterable[str], items: Mapping[str, MediaItem], *, max_input_tokens: int | None,
    first_row: Callable[[int], str],
) -> None:
    """The limits of one request: images and PDF pages per request, and 2000 px a side when a
    request holds more than 20 images (vision and PDF support pages). ``first_row(k)`` names
    the first row that asks request ``k`` ("row 'b'")."""
    large = (max_input_tokens or 0) >= LARGE_WINDOW
    max_images = MAX_IMAGES if (max_input_tokens or 0) > 200_000 else MAX_IMAGES_SMALL_WINDOW
    max_pages = MAX_PDF_PAGES if large else MAX_PDF_PAGES_SMALL_WINDOW
    bad: list[str] = []
    count = 0
    for k, prompt in enumerate(prompts):
        if MARK_OPEN not in prompt:
            continue
        r = request_media(prompt, items)
        reason = None
        if r.images > max_images:
            reason = f"{r.images} images, over the {max_images} a request this model takes"
        elif r.images > MANY_IMAGES and r.largest_side > MAX_IMAGE_SIDE_MANY:
            reason = (
                f"{r.images} images, one {r.largest_side} px a side: a request of more than {MANY_IMAGES} "
                f"images takes at most {MAX_IMAGE_SIDE_MANY} px a side"
            )
        elif r.pages > max_pages:
            reason = f"{r.pages} PDF pages, over the {max_pages} a request this model takes"
        if reason is not None:
            count += 1
            if len(bad) < SHOWN_PROBLEMS:
                bad.append(f"{first_row(k)}: {reason}")
    if count:
        raise MediaError(
            f"{count:,} request{'s' if count != 1 else ''} would be refused by the API: {'; '.join(bad)}"
            f"{'; ...' if count > len(bad) else ''}. Split those rows' files over several rows or "
            "downscale them; nothing was uploaded or sent."
        )


def file_source(file_id: str) -> dict[str, str]:
    return {"type": "file", "file_id": file_id}


def content_blocks(prompt: str, sources: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A prompt with markers as content blocks, in template order: text (stripped; blank
    text between two media is left out, as the API refuses empty text blocks) and each
    medium as an ``image`` or ``document`` block with its source."""
    blocks: list[dict[str, Any]] = []
    pos = 0
    for m in _MARKER.finditer(prompt):
        text = prompt[pos : m.start()].strip()
        if text:
            blocks.append({"type": "text", "text": text})
        kind, sha = m.group(1), m.group(2)
        blocks.append({"type": "image" if kind == IMAGE else "document", "source": dict(sources[sha])})
        pos = m.end()
    tail = prompt[pos:].strip()
    if tail:
        blocks.append({"type": "text", "text": tail})
    return blocks


def message_content(prompt: str, sources: Mapping[str, Mapping[str, Any]]) -> str | list[dict[str, Any]]:
    """A user turn's ``content``: the prompt itself, or its blocks when it shows media."""
    return content_blocks(prompt, sources) if has_markers(prompt) else prompt


def content_encoder(sources: Mapping[str, Mapping[str, Any]]) -> Callable[[str], bytes]:
    """``orjson.dumps`` of each prompt's content (its blocks when it shows media)."""
    import orjson

    def encode(prompt: str) -> bytes:
        return orjson.dumps(content_blocks(prompt, sources) if MARK_OPEN in prompt else prompt)

    return encode


def inline_source(item: MediaItem, data: bytes) -> dict[str, str]:
    """A base64 source (the realtime pilot sends its few rows' files inline)."""
    import base64

    return {"type": "base64", "media_type": item.mime, "data": base64.b64encode(data).decode("ascii")}


#: Bytes a media block may take in a create body beyond its marker (a file source with an
#: id of up to 64 characters, the block's keys, the text blocks around it): an upper bound,
#: so a batch never passes the 256 MB limit.
BLOCK_BYTES = 160


def extra_body_bytes(prompt: str) -> int:
    """How many more bytes a prompt takes in a create body than as a plain string."""
    if MARK_OPEN not in prompt:
        return 0
    return 32 + BLOCK_BYTES * prompt.count(MARK_OPEN)


def readable(prompt: str, items: Mapping[str, MediaItem]) -> str:
    """The prompt for people: each marker as ``[image photo.png, 64x48 px]``."""
    if MARK_OPEN not in prompt:
        return prompt

    def name(m: re.Match[str]) -> str:
        item = items.get(m.group(2))
        if item is None:
            return f"[{m.group(1)} {m.group(2)[:12]}]"
        if item.kind == IMAGE:
            return f"[image {item.name}, {item.width}x{item.height} px]"
        return f"[PDF {item.name}, {item.pages} page{'s' if item.pages != 1 else ''}]"

    return _MARKER.sub(name, prompt)


def looks_like_media(values: Iterable[Any]) -> bool:
    """Does a column hold media (for ``%%batch df.column``)? Its first present value decides:
    bytes, a PIL image, a ``Path``, or a path ending in .png, .jpg, .gif, .webp or .pdf."""
    for value in values:
        if _is_missing(value):
            continue
        if isinstance(value, (bytes, bytearray, memoryview, Path)) or _is_pil_image(value):
            return True
        if isinstance(value, str):
            return value.strip().lower().endswith(MEDIA_SUFFIXES)
        return False
    return False


def iter_items(data: Any, where: str) -> Iterator[MediaItem]:
    if not isinstance(data, list):
        raise JournalError(f"{where}: the media list is not a list.")
    for entry in data:
        yield MediaItem.from_dict(entry, where)
