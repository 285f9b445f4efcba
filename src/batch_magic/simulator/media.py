"""What the fake model sees of an image or a document: typed facts read from bytes.

An image gives its format, its size in pixels (read from the file header, the
same with or without Pillow, so token counts never depend on what is
installed) and its dominant colour name (decoded with Pillow when it is
installed; without it, small PNGs are decoded with ``zlib``). A PDF gives its
text, title, author and page count (``pdf.py``); a plain-text document its
text. These records are small and JSON-serialisable: an upload is read once
and its record kept (and persisted) instead of its bytes being read again.
"""

from __future__ import annotations

import colorsys
import io
import re
import struct
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

_PIL_IMAGE: Any
try:  # optional: the simulator must run with the standard library only
    from PIL import Image as _PIL_IMAGE
except ImportError:  # pragma: no cover - exercised by forcing the fallback in the tests
    _PIL_IMAGE = None

#: Image formats the Messages API accepts, in its own order.
IMAGE_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif", "image/webp")
PDF_TYPE = "application/pdf"
TEXT_TYPE = "text/plain"
#: The colour names the fake model uses, in tie-break order.
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown",
                            "black", "white", "gray")
#: Without Pillow, PNGs up to this many pixels are decoded in pure Python (larger: colour unknown).
STDLIB_PIXEL_BUDGET = 512 * 512
_SAMPLES = 4096


class MediaError(Exception):
    """Bytes that are not the image or document they claim to be; the message is the API's answer."""


@dataclass(frozen=True)
class ImageInfo:
    media_type: str
    width: int
    height: int
    colour: str | None  # None: the pixels could not be decoded here

    def describe(self) -> str:
        if self.colour:
            what = f"{'an' if self.colour[0] in 'aeiou' else 'a'} {self.colour} image"
        else:
            what = "an image (colour unknown)"
        return f"{what}, {self.width}x{self.height} pixels"


@dataclass(frozen=True)
class PdfInfo:
    pages: int
    text: str
    title: str | None = None
    author: str | None = None

    def describe(self) -> str:
        what = f"a {self.pages}-page PDF"
        if self.title:
            what += f' titled "{self.title}"'
        if self.author:
            what += f" by {self.author}"
        return what


@dataclass(frozen=True)
class TextInfo:
    text: str

    def describe(self) -> str:
        return f"a text document of {len(self.text)} characters"


@dataclass(frozen=True)
class UrlInfo:
    """A URL source: the simulator has no network, so it knows only the address."""

    block: str  # "image" or "document"
    url: str

    def describe(self) -> str:
        return f"{'an image' if self.block == 'image' else 'a document'} at {self.url} (not fetched)"


MediaInfo = ImageInfo | PdfInfo | TextInfo | UrlInfo
_KINDS: dict[str, type[Any]] = {"image": ImageInfo, "pdf": PdfInfo, "text": TextInfo, "url": UrlInfo}


@dataclass(frozen=True)
class FileView:
    """What a Messages request sees of an uploaded file."""

    file_id: str
    mime_type: str
    info: MediaInfo | None  # None: a type the model does not read (CSV, ...)
    problem: str | None = None  # the content does not parse as its type
    expired: bool = False


def info_to_json(info: MediaInfo) -> dict[str, Any]:
    kind = next(k for k, cls in _KINDS.items() if isinstance(info, cls))
    return {"kind": kind, **asdict(info)}


def info_from_json(data: dict[str, Any]) -> MediaInfo:
    fields = dict(data)
    cls = _KINDS[fields.pop("kind")]
    info: MediaInfo = cls(**fields)
    return info


def view_to_json(view: FileView) -> dict[str, Any]:
    return {"file_id": view.file_id, "mime_type": view.mime_type, "problem": view.problem,
            "expired": view.expired, "info": None if view.info is None else info_to_json(view.info)}


def view_from_json(data: dict[str, Any]) -> FileView:
    info = data.get("info")
    return FileView(file_id=data["file_id"], mime_type=data["mime_type"], problem=data.get("problem"),
                    expired=bool(data.get("expired")), info=None if info is None else info_from_json(info))


# -- recognising bytes ---------------------------------------------------------------------
def sniff(data: bytes) -> str | None:
    """The MIME type the bytes' signature says (images and PDF), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if b"%PDF-" in data[:1024]:
        return PDF_TYPE
    return None


def image_size(data: bytes, media_type: str) -> tuple[int, int] | None:
    """(width, height) from the file header, or None when the header cannot be read."""
    try:
        if media_type == "image/png":
            if data[12:16] != b"IHDR":
                return None
            w, h = struct.unpack(">II", data[16:24])
            return (w, h) if w and h else None
        if media_type == "image/gif":
            w, h = struct.unpack("<HH", data[6:10])
            return (w, h) if w and h else None
        if media_type == "image/webp":
            return _webp_size(data)
        if media_type == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return (w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L":
        b = data[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return (w, h)
    if chunk == b"VP8X":
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return (w, h)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        # Start of frame (baseline, progressive, ...), not DHT (C4), JPG (C8) or DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return (w, h) if w and h else None
        i += 2 + length
    return None


# -- reading -------------------------------------------------------------------------------
def read_image(data: bytes, declared: str | None = None) -> ImageInfo:
    """The facts of an image; ``MediaError`` with the API's message when it is not one."""
    actual = sniff(data)
    if actual not in IMAGE_TYPES:
        raise MediaError("Could not process image")
    if declared is not None and declared != actual:
        raise MediaError(
            f"The image was specified using the {declared} media type, but the image appears to be a {actual} image"
        )
    size = image_size(data, actual)
    if size is None:
        raise MediaError("Could not process image")
    return ImageInfo(media_type=actual, width=size[0], height=size[1], colour=dominant_colour(data, actual))


def read_text(data: bytes) -> TextInfo:
    return TextInfo(text=data.decode("utf-8", errors="replace"))


def read_upload(data: bytes, mime_type: str) -> tuple[MediaInfo | None, str | None]:
    """(facts, problem) of an uploaded file: facts for images, PDFs and plain text, None otherwise;
    a problem when the bytes do not parse as their type."""
    from .pdf import read_pdf  # the PDF reader needs nothing of this module at import time

    try:
        if mime_type in IMAGE_TYPES:
            return read_image(data), None
        if mime_type == PDF_TYPE:
            return read_pdf(data), None
        if mime_type == TEXT_TYPE:
            return read_text(data), None
    except MediaError as exc:
        return None, str(exc)
    return None, None


# -- colour --------------------------------------------------------------------------------
def colour_name(r: int, g: int, b: int) -> str:
    """The plain name of an RGB colour (hue buckets; black, white and gray by value and saturation)."""
    h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    if v < 0.2:
        return "black"
    if s < 0.2:
        return "white" if v > 0.85 else "gray"
    deg = h * 360
    if deg < 15 or deg >= 345:
        return "pink" if s < 0.45 and v > 0.8 else "red"
    if deg < 45:
        return "brown" if v < 0.65 else "orange"
    if deg < 70:
        return "yellow"
    if deg < 170:
        return "green"
    if deg < 200:
        return "cyan"
    if deg < 260:
        return "blue"
    if deg < 300:
        return "purple"
    return "pink"


def dominant(pixels: list[tuple[int, int, int]]) -> str | None:
    """The most frequent colour name of the pixels (ties in ``COLOURS`` order)."""
    if not pixels:
        return None
    counts = Counter(colour_name(*p) for p in pixels)
    return max(COLOURS, key=lambda c: (counts.get(c, 0), -COLOURS.index(c)))


def dominant_colour(data: bytes, media_type: str) -> str | None:
    """The dominant colour name of an image, or None when it cannot be decoded here."""
    if _PIL_IMAGE is not None:
        return _pil_colour(data)
    if media_type == "image/png":
        return dominant(_png_pixels(data))
    return None


def _pil_colour(data: bytes) -> str | None:
    assert _PIL_IMAGE is not None
    try:
        with _PIL_IMAGE.open(io.BytesIO(data)) as im:
            im.draft("RGB", (64, 64))  # JPEG: decode at a reduced scale, much faster
            small = im.convert("RGBA")
            small.thumbnail((64, 64))
            raw = small.tobytes()
    except Exception:  # a truncated or exotic file: the size is known, the colour is not
        return None
    return dominant([(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 4) if raw[i + 3] >= 128])


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _png_pixels(data: bytes) -> list[tuple[int, int, int]]:
    """Sampled opaque RGB pixels of an 8- or 16-bit non-interlaced PNG ([] when it cannot be decoded)."""
    try:
        pos, idat, palette = 8, [], b""
        width = height = depth = ctype = interlace = 0
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + length]
            if kind == b"IHDR":
                width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            elif kind == b"PLTE":
                palette = body
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
            pos += 12 + length
        if (interlace or ctype not in _PNG_CHANNELS or width * height > STDLIB_PIXEL_BUDGET
                or depth not in ((1, 2, 4, 8, 16) if ctype == 0 else (1, 2, 4, 8) if ctype == 3 else (8, 16))):
            return []
        raw = zlib.decompress(b"".join(idat))
    except (struct.error, zlib.error, ValueError):
        return []
    channels = _PNG_CHANNELS[ctype]
    bits = channels * depth  # per pixel
    bpp = max(1, bits // 8)  # the filters' unit
    stride = (width * bits + 7) // 8
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        if start + 1 + stride > len(raw):
            return []
        line = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), prev, bpp)
        rows.append(bytes(line))
        prev = line
    out: list[tuple[int, int, int]] = []
    step = max(1, int((width * height / _SAMPLES) ** 0.5))
    mask = (1 << depth) - 1
    for y in range(0, height, step):
        row = rows[y]
        for x in range(0, width, step):
            if depth < 8:  # 1, 2 or 4 bits: gray or a palette index, packed high bits first
                bit = x * depth
                v = (row[bit // 8] >> (8 - depth - bit % 8)) & mask
                if ctype == 0:
                    g = v * 255 // mask
                    out.append((g, g, g))
                elif 3 * v + 3 <= len(palette):
                    out.append((palette[3 * v], palette[3 * v + 1], palette[3 * v + 2]))
                continue
            px = row[x * bpp:(x + 1) * bpp][:: depth // 8]  # 16-bit samples: the high byte names the colour
            if ctype == 0:
                out.append((px[0], px[0], px[0]))
            elif ctype == 4:
                if px[1] >= 128:
                    out.append((px[0], px[0], px[0]))
            elif ctype == 2:
                out.append((px[0], px[1], px[2]))
            elif ctype == 6:
                if px[3] >= 128:
                    out.append((px[0], px[1], px[2]))
            elif 3 * px[0] + 3 <= len(palette):
                out.append((palette[3 * px[0]], palette[3 * px[0] + 1], palette[3 * px[0] + 2]))
    return out


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> bytearray:
    if kind == 0:
        return line
    n = len(line)
    if kind == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(n):
            line[i] = (line[i] + prev[i]) & 0xFF
    elif kind == 3:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + pred) & 0xFF
    else:
        raise ValueError(f"bad PNG filter {kind}")
    return line


# -- what a document says of itself --------------------------------------------------------
_LABELLED = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 _./#()-]{0,48}?)\s*:\s+(\S.*?)\s*$")


def field_key(name: str) -> str:
    """The matching key of a field name or a label: ``invoiceNumber``, ``Invoice number`` and
    ``invoice_number`` all give ``invoice_number``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def labelled_fields(text: str) -> dict[str, str]:
    """``Name: value`` lines of a document's text, keyed by :func:`field_key` (the first one wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LABELLED.match(line)
        if m:
            out.setdefault(field_key(m.group(1)), m.group(2))
    return out
