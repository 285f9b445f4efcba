#!/usr/bin/env python3
"""Generate the small image and PDF data sets shipped with batch_magic.

Writes, under ``src/batch_magic/data/`` (or ``--out DIR``):

* ``products/*.png`` and ``products.csv``: a dozen product photos for the
  made-up shop *Northwind Gadgets* (a mug, a T-shirt, a backpack...), each a
  128x128 picture dominated by the product's colour, with that colour as the
  gold label (``colour``) for a classification demo (``--labels``). Drawn with
  Pillow: flat shapes with a shadow and a highlight, a few hundred bytes to a
  few KB each.
* ``invoices/*.pdf`` and ``invoices.csv``: five one- or two-page invoices
  from made-up suppliers, written by the small PDF writer below (no PDF
  library: text in Helvetica, a Flate-compressed content stream per page,
  ``/Title`` and ``/Author`` in the information dictionary). Each invoice
  shows labelled lines (``Invoice number: INV-0042``, ``Total: $1,234.50``)
  and the CSV holds the gold values, for an extraction demo (``--schema``).

Everything is made up; no real company, person or product is described. The
script is deterministic (fixed data, no randomness; a PDF's dates are fixed):
the PDFs are byte for byte the same on every run, the PNGs as long as Pillow
and zlib encode them the same way.
"""

from __future__ import annotations

import argparse
import csv
import zlib
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "src" / "batch_magic" / "data"

#: (product id, name, shape, colour label, main RGB). The colour names are the ones a
#: person would give; the RGB values are saturated enough that any hue-based reading agrees.
PRODUCTS = [
    ("P01", "Ceramic mug", "mug", "red", (200, 30, 35)),
    ("P02", "Cotton T-shirt", "shirt", "blue", (30, 70, 200)),
    ("P03", "Hiking backpack", "backpack", "green", (40, 150, 60)),
    ("P04", "Rain jacket", "shirt", "yellow", (240, 210, 30)),
    ("P05", "Desk lamp", "lamp", "black", (25, 25, 28)),
    ("P06", "Water bottle", "bottle", "purple", (120, 40, 160)),
    ("P07", "Leather wallet", "wallet", "brown", (120, 70, 30)),
    ("P08", "Running shoe", "shoe", "orange", (245, 130, 20)),
    ("P09", "Yoga mat", "mat", "pink", (240, 110, 170)),
    ("P10", "Wireless speaker", "speaker", "gray", (128, 128, 132)),
    ("P11", "Travel mug", "bottle", "red", (185, 20, 40)),
    ("P12", "Notebook", "wallet", "blue", (20, 50, 160)),
]
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "gray")

#: (file, title, author, lines per page). The labelled lines are what the demo extracts.
INVOICES = [
    {
        "file": "invoice_inv-0042.pdf", "invoice_number": "INV-0042", "date": "2026-03-14",
        "vendor": "Acme Office Supply", "customer": "Northwind Gadgets", "total": 1234.50, "currency": "USD",
        "items": [("Printer paper, 40 boxes", "$860.00"), ("Toner cartridges, 6", "$374.50")],
    },
    {
        "file": "invoice_inv-0107.pdf", "invoice_number": "INV-0107", "date": "2026-04-02",
        "vendor": "Bluebird Logistics", "customer": "Northwind Gadgets", "total": 2890.00, "currency": "USD",
        "items": [("Freight, Rotterdam to Boston", "$2,450.00"), ("Customs handling", "$440.00")],
    },
    {
        "file": "invoice_inv-0213.pdf", "invoice_number": "INV-0213", "date": "2026-05-20",
        "vendor": "Cedar Print Studio", "customer": "Northwind Gadgets", "total": 415.75, "currency": "USD",
        "items": [("Product labels, 5,000", "$315.75"), ("Design proof", "$100.00")],
    },
    {
        "file": "invoice_inv-0388.pdf", "invoice_number": "INV-0388", "date": "2026-07-09",
        "vendor": "Delta Cloud Hosting", "customer": "Northwind Gadgets", "total": 12040.00, "currency": "USD",
        "items": [("Web servers, Q3", "$9,600.00"), ("Backups, Q3", "$1,240.00"), ("Support plan", "$1,200.00")],
        "pages": 2,
    },
    {
        "file": "invoice_inv-0451.pdf", "invoice_number": "INV-0451", "date": "2026-09-30",
        "vendor": "Evergreen Packaging", "customer": "Northwind Gadgets", "total": 978.20, "currency": "USD",
        "items": [("Shipping boxes, 1,200", "$742.20"), ("Padding, 40 rolls", "$236.00")],
    },
]


# -- photos ------------------------------------------------------------------------------------------
def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    r, g, b = (min(255, max(0, round(c * factor))) for c in rgb)
    return r, g, b


def draw_product(shape: str, rgb: tuple[int, int, int], size: int = 128) -> object:
    from PIL import Image, ImageDraw

    # A light background of a different hue from every product, kept under a third of the
    # picture, so the product's colour is what dominates.
    image = Image.new("RGB", (size, size), (236, 232, 224))
    d = ImageDraw.Draw(image)
    dark, light = _shade(rgb, 0.72), _shade(rgb, 1.25)
    d.ellipse((14, 108, 114, 124), fill=(200, 196, 188))  # the shadow under it
    if shape == "mug":
        d.rounded_rectangle((14, 14, 100, 116), 10, fill=rgb)
        d.ellipse((84, 38, 122, 86), outline=dark, width=10)
        d.rectangle((24, 20, 34, 104), fill=light)
    elif shape == "shirt":
        d.polygon([(6, 30), (40, 6), (88, 6), (122, 30), (108, 56), (96, 48), (96, 124), (32, 124),
                   (32, 48), (20, 56)], fill=rgb)
        d.polygon([(48, 6), (64, 24), (80, 6)], fill=dark)
    elif shape == "backpack":
        d.rounded_rectangle((12, 10, 116, 124), 22, fill=rgb)
        d.rounded_rectangle((26, 66, 102, 116), 10, fill=dark)
        d.rectangle((54, 2, 74, 14), fill=dark)
    elif shape == "lamp":
        d.polygon([(4, 84), (40, 4), (88, 4), (124, 84)], fill=rgb)
        d.rectangle((52, 84, 76, 112), fill=rgb)
        d.rounded_rectangle((8, 104, 120, 126), 6, fill=rgb)
        d.ellipse((54, 70, 74, 90), fill=(255, 244, 200))
    elif shape == "bottle":
        d.rounded_rectangle((14, 22, 114, 126), 18, fill=rgb)
        d.rectangle((40, 2, 88, 26), fill=dark)
        d.rectangle((26, 36, 36, 112), fill=light)
    elif shape == "wallet":
        d.rounded_rectangle((6, 18, 122, 118), 12, fill=rgb)
        d.rounded_rectangle((70, 48, 122, 88), 8, fill=dark)
        d.ellipse((92, 62, 104, 74), fill=light)
    elif shape == "shoe":
        d.polygon([(4, 20), (52, 8), (72, 48), (124, 60), (124, 118), (4, 118)], fill=rgb)
        d.rectangle((4, 108, 124, 124), fill=dark)
        d.line((40, 24, 60, 52), fill=light, width=4)
    elif shape == "mat":
        d.rounded_rectangle((4, 20, 124, 110), 8, fill=rgb)
        d.ellipse((92, 24, 124, 110), fill=dark)
    elif shape == "speaker":
        d.rounded_rectangle((10, 10, 118, 124), 16, fill=rgb)
        d.ellipse((34, 40, 94, 100), fill=dark)
        d.ellipse((54, 60, 74, 80), fill=light)
    else:
        raise ValueError(shape)
    return image


def write_products(out: Path) -> None:
    folder = out / "products"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for pid, name, shape, colour, rgb in PRODUCTS:
        file = f"{pid.lower()}_{name.lower().replace(' ', '_').replace('-', '')}.png"
        image = draw_product(shape, rgb)
        image.save(folder / file, format="PNG", optimize=True)  # type: ignore[attr-defined]
        rows.append({"product_id": pid, "name": name, "file": file, "colour": colour})
    with open(out / "products.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["product_id", "name", "file", "colour"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# -- invoices: a small PDF writer --------------------------------------------------------------------
def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (Latin-1 here), with ( ) \\ escaped."""
    raw = text.encode("latin-1")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _page_stream(lines: list[tuple[int, str]]) -> bytes:
    """Text lines at (font size, text), top down, in Helvetica."""
    ops = [b"BT", b"/F1 11 Tf", b"14 TL", b"56 780 Td"]
    for size, text in lines:
        if text:
            ops.append(b"/F1 %d Tf" % size)
            ops.append(_pdf_string(text) + b" Tj")
        ops.append(b"T*")
    ops.append(b"ET")
    return b"\n".join(ops) + b"\n"


def pdf_bytes(pages: list[list[tuple[int, str]]], *, title: str, author: str) -> bytes:
    """A minimal valid PDF 1.4: catalog, page tree, one page per list of lines (a
    Flate-compressed content stream each), Helvetica, and an information dictionary."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below, once the page tree's number is known
    info = add(b"<< /Title " + _pdf_string(title) + b" /Author " + _pdf_string(author)
               + b" /Producer (batch_magic scripts/make_media.py) /CreationDate (D:20261001000000Z) >>")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    tree = add(b"")
    kids = []
    for lines in pages:
        data = zlib.compress(_page_stream(lines), 9)
        content = add(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> >> "
                        b"/Contents %d 0 R >>" % (tree, font, content)))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    objects[tree - 1] = (b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids)
                         + b"] /Count %d >>" % len(kids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, catalog, info, xref)
    return bytes(out)


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def invoice_pages(inv: dict) -> list[list[tuple[int, str]]]:
    head = [
        (18, inv["vendor"]),
        (11, ""),
        (14, "INVOICE"),
        (11, f"Invoice number: {inv['invoice_number']}"),
        (11, f"Date: {inv['date']}"),
        (11, f"Vendor: {inv['vendor']}"),
        (11, f"Customer: {inv['customer']}"),
        (11, ""),
        (11, "Items"),
    ]
    items = [(11, f"  {what} .... {amount}") for what, amount in inv["items"]]
    foot = [
        (11, ""),
        (11, f"Total: {_money(inv['total'])}"),
        (11, f"Currency: {inv['currency']}"),
        (11, "Payment due within 30 days. Thank you for your business."),
    ]
    if inv.get("pages", 1) == 2:
        return [head + items[:2] + [(11, "(continued on page 2)")], [(11, "Items, continued"), *items[2:], *foot]]
    return [head + items + foot]


def write_invoices(out: Path) -> None:
    folder = out / "invoices"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for inv in INVOICES:
        pages = invoice_pages(inv)
        data = pdf_bytes(pages, title=f"Invoice {inv['invoice_number']}", author=inv["vendor"])
        (folder / inv["file"]).write_bytes(data)
        rows.append({
            "file": inv["file"], "invoice_number": inv["invoice_number"], "date": inv["date"],
            "vendor": inv["vendor"], "total": f"{inv['total']:.2f}", "currency": inv["currency"],
            "pages": len(pages),
        })
    with open(out / "invoices.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA, help="folder to write into (default: the package's data)")
    args = parser.parse_args(argv)
    write_products(args.out)
    write_invoices(args.out)
    print(f"wrote {len(PRODUCTS)} product photos and {len(INVOICES)} invoices under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
