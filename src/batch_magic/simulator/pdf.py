"""Read a PDF the way the fake model needs: its text, title, author and page count.

Not a PDF library: enough of the format for documents that tools write.
Content streams are read uncompressed or ``FlateDecode``-compressed (zlib);
text is what the text-showing operators show (``Tj``, ``TJ``, ``'``,
``"``), with a new line wherever the text position moves down a line or a
text object ends. Strings are decoded as PDFDocEncoding (Latin-1 is close
enough) or UTF-16 with a byte-order mark; fonts with custom encodings give
garbage, as they would to any text extractor without the font. Pages are
counted from the ``/Type /Page`` objects. ``/Title`` and ``/Author`` come from
the document information dictionary when it is not compressed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

from .media import MediaError, PdfInfo

INVALID_PDF = "The PDF specified was not valid."
_STREAM = re.compile(rb"stream\r?\n")
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", re.S)
_FILTER = re.compile(rb"/Filter\s*(\[[^\]]*\]|/\w+)")
_DELIMS = b"()<>[]{}/%"
_WS = b" \t\r\n\x0c\x00"


def read_pdf(data: bytes) -> PdfInfo:
    """The facts of a PDF; ``MediaError`` with the API's message when it is not a readable one."""
    head = data.find(b"%PDF-")
    if head < 0 or head > 1024:
        raise MediaError(INVALID_PDF)
    if re.search(rb"/Encrypt\s", data):  # "Standard PDF (no passwords/encryption)"
        raise MediaError(INVALID_PDF)
    pages = len(_PAGE.findall(data))
    if pages == 0:
        counts = [int(a or b) for a, b in _COUNT.findall(data)]
        pages = max(counts, default=0)
    if pages == 0:
        raise MediaError(INVALID_PDF)
    chunks = [text for stream in _streams(data) if (text := content_text(stream))]
    return PdfInfo(pages=pages, text="\n".join(chunks).strip(), title=_info(data, b"Title"),
                   author=_info(data, b"Author"))


def _streams(data: bytes) -> Iterator[bytes]:
    """The decoded bytes of each stream (undecodable ones skipped)."""
    pos = 0
    while True:
        m = _STREAM.search(data, pos)
        if m is None:
            return
        end = data.find(b"endstream", m.end())
        if end < 0:
            return
        raw = data[m.end():end]
        dict_start = data.rfind(b"<<", max(0, m.start() - 2048), m.start())
        header = data[dict_start:m.start()] if dict_start >= 0 else b""
        pos = end + 9
        if re.search(rb"/Subtype\s*/Image|/FontFile|/Type\s*/XRef", header):
            continue
        found = _FILTER.search(header)
        if found is not None:
            if re.findall(rb"/(\w+)", found.group(1)) != [b"FlateDecode"]:
                continue  # other filters (DCT, LZW, chains) are not text we can read
            try:
                raw = zlib.decompressobj().decompress(raw)  # tolerates the end-of-line before endstream
            except zlib.error:
                continue
        yield raw


def content_text(stream: bytes) -> str:
    """The text a content stream shows, one line per line of the page."""
    if b"BT" not in stream:
        return ""
    out: list[str] = []
    operands: list[object] = []

    def newline() -> None:
        if out and not out[-1].endswith("\n"):
            out.append("\n")

    for token in _tokens(stream):
        if isinstance(token, _Op):
            op = token.name
            if op == "Tj" and operands and isinstance(operands[-1], str):
                out.append(operands[-1])
            elif op == "TJ" and operands and isinstance(operands[-1], list):
                for part in operands[-1]:
                    if isinstance(part, str):
                        out.append(part)
                    elif isinstance(part, float) and part < -250:  # a wide gap is a space between words
                        out.append(" ")
            elif op in ("'", '"') and operands and isinstance(operands[-1], str):
                newline()
                out.append(operands[-1])
            elif op in ("Td", "TD") and len(operands) >= 2 and isinstance(operands[-1], float):
                if operands[-1] != 0:
                    newline()
                elif out and not out[-1].endswith((" ", "\n")):
                    out.append(" ")
            elif op in ("T*", "ET", "Tm"):
                newline()
            operands = []
        else:
            operands.append(token)
    return "".join(out).strip()


class _Op:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _tokens(data: bytes) -> Iterator[object]:
    """Operands (str, float, list, name) and operators of a content stream."""
    i, n = 0, len(data)
    stack: list[list[object]] = []
    while i < n:
        c = data[i]
        if c in _WS:
            i += 1
        elif c == 0x25:  # % comment
            while i < n and data[i] not in b"\r\n":
                i += 1
        elif c == 0x28:  # (literal string)
            s, i = _literal(data, i)
            if stack:
                stack[-1].append(s)
            else:
                yield s
        elif c == 0x3C and i + 1 < n and data[i + 1] == 0x3C:  # << dict >>: skipped whole
            depth = 0
            while i < n:
                if data.startswith(b"<<", i):
                    depth += 1
                    i += 2
                elif data.startswith(b">>", i):
                    depth -= 1
                    i += 2
                    if depth == 0:
                        break
                else:
                    i += 1
        elif c == 0x3C:  # <hex string>
            end = data.find(b">", i)
            end = n if end < 0 else end
            s = _decode(_unhex(data[i + 1:end]))
            i = end + 1
            if stack:
                stack[-1].append(s)
            else:
                yield s
        elif c == 0x5B:  # [
            stack.append([])
            i += 1
        elif c == 0x5D:  # ]
            i += 1
            if stack:
                arr = stack.pop()
                if stack:
                    stack[-1].append(arr)
                else:
                    yield arr
        elif c == 0x2F:  # /name
            j = i + 1
            while j < n and data[j] not in _WS and data[j] not in _DELIMS:
                j += 1
            name = "/" + data[i + 1:j].decode("latin-1")
            i = j
            if stack:
                stack[-1].append(name)
            else:
                yield name
        else:
            j = i
            while j < n and data[j] not in _WS and data[j] not in _DELIMS:
                j += 1
            if j == i:  # a stray delimiter
                i += 1
                continue
            word = data[i:j].decode("latin-1")
            i = j
            try:
                num: object = float(word)
            except ValueError:
                num = _Op(word)
            if stack and not isinstance(num, _Op):
                stack[-1].append(num)
            elif not stack:
                yield num


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f",
            ord("("): b"(", ord(")"): b")", ord("\\"): b"\\"}


def _literal(data: bytes, i: int) -> tuple[str, int]:
    """A ``( ... )`` string starting at ``data[i]``: (its text, the index after it)."""
    out = bytearray()
    depth = 0
    n = len(data)
    while i < n:
        c = data[i]
        if c == 0x5C and i + 1 < n:  # backslash
            nxt = data[i + 1]
            if nxt in _ESCAPES:
                out += _ESCAPES[nxt]
                i += 2
            elif 0x30 <= nxt <= 0x37:
                j = i + 1
                while j < min(i + 4, n) and 0x30 <= data[j] <= 0x37:
                    j += 1
                out.append(int(data[i + 1:j], 8) & 0xFF)
                i = j
            elif nxt in b"\r\n":  # a line continuation
                i += 2
                if nxt == 0x0D and i < n and data[i] == 0x0A:
                    i += 1
            else:
                out.append(nxt)
                i += 2
            continue
        if c == 0x28:
            depth += 1
            if depth > 1:
                out.append(c)
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return _decode(bytes(out)), i + 1
            out.append(c)
        else:
            out.append(c)
        i += 1
    return _decode(bytes(out)), n


def _unhex(text: bytes) -> bytes:
    digits = bytes(ch for ch in text if ch not in _WS)
    if len(digits) % 2:
        digits += b"0"
    try:
        return bytes.fromhex(digits.decode("ascii"))
    except ValueError:
        return b""


def _decode(raw: bytes) -> str:
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", errors="replace")
    if raw.startswith(b"\xff\xfe"):
        return raw[2:].decode("utf-16-le", errors="replace")
    return raw.decode("latin-1")


def _info(data: bytes, key: bytes) -> str | None:
    """A string entry of the document information dictionary (``/Title``, ``/Author``)."""
    m = re.search(rb"/" + key + rb"\s*([(<])", data)
    if m is None:
        return None
    start = m.start(1)
    if data[start] == 0x28:
        text, _ = _literal(data, start)
    else:
        end = data.find(b">", start)
        text = _decode(_unhex(data[start + 1:end if end > 0 else len(data)]))
    text = text.strip()
    return text or None
