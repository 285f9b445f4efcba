"""Tiny images and PDFs made inside the tests: Pillow for images, a PDF written by hand."""

from __future__ import annotations

import base64
import io
import zlib
from typing import Any

from PIL import Image

RED, GREEN, BLUE, YELLOW = (220, 30, 30), (30, 160, 40), (20, 60, 200), (240, 220, 30)


def image(colour: tuple[int, int, int] = RED, size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> bytes:
    """A solid image in ``fmt`` (PNG, JPEG, GIF, WEBP)."""
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


def pdf(lines: list[str], *, title: str | None = None, author: str | None = None, pages: int = 1,
        compress: bool = False) -> bytes:
    """A minimal valid PDF: ``lines`` shown on the first page (one ``Tj`` each), the other pages
    empty, an information dictionary with ``title`` and ``author``, a correct xref table."""

    def esc(text: str) -> bytes:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")

    content = b"BT /F1 12 Tf 72 720 Td 14 TL\n" + b"".join(b"(" + esc(line) + b") Tj T*\n" for line in lines) + b"ET"
    stream = zlib.compress(content) if compress else content
    n_fixed = 3  # catalog, pages, font
    page_ids = [n_fixed + 1 + 2 * k for k in range(pages)]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p in page_ids) + b"] /Count %d >>" % pages,
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for k, pid in enumerate(page_ids):
        body = stream if k == 0 else b"BT ET"
        objects[pid] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                        b"/Resources << /Font << /F1 3 0 R >> >> >>" % (pid + 1))
        filt = b" /Filter /FlateDecode" if compress and k == 0 else b""
        objects[pid + 1] = b"<< /Length %d%s >>\nstream\n" % (len(body), filt) + body + b"\nendstream"
    info_id = max(objects) + 1
    info = b"<<"
    if title:
        info += b" /Title (" + esc(title) + b")"
    if author:
        info += b" /Author (" + esc(author) + b")"
    objects[info_id] = info + b" >>"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (info_id + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[num] for num in range(1, info_id + 1))
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (info_id + 1, info_id, xref)
    return bytes(out)


INVOICE_LINES = ["ACME Supplies Ltd", "Invoice number: INV-0042", "Date: 2026-11-03", "Vendor: ACME",
                 "Total: 123.45"]


def invoice(number: str = "INV-0042", total: str = "123.45", vendor: str = "ACME", **kw: Any) -> bytes:
    lines = ["ACME Supplies Ltd", f"Invoice number: {number}", "Date: 2026-11-03", f"Vendor: {vendor}",
             f"Total: {total}"]
    return pdf(lines, title=f"Invoice {number}", author=f"{vendor} Billing", **kw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_block(file_id: str | None = None, data: bytes | None = None, media_type: str = "image/png") -> dict[str, Any]:
    source: dict[str, Any] = ({"type": "file", "file_id": file_id} if file_id is not None
                              else {"type": "base64", "media_type": media_type, "data": b64(data or b"")})
    return {"type": "image", "source": source}


def document_block(file_id: str | None = None, data: bytes | None = None) -> dict[str, Any]:
    source: dict[str, Any] = ({"type": "file", "file_id": file_id} if file_id is not None
                              else {"type": "base64", "media_type": "application/pdf", "data": b64(data or b"")})
    return {"type": "document", "source": source}
