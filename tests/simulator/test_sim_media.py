"""Reading images and PDFs from bytes, and what they cost in tokens."""

from __future__ import annotations

import io
import zlib

import pytest
from media_fixtures import BLUE, GREEN, RED, YELLOW, b64, image, invoice, pdf
from PIL import Image

from batch_magic.simulator import media
from batch_magic.simulator.media import (
    MediaError,
    colour_name,
    field_key,
    labelled_fields,
    read_image,
)
from batch_magic.simulator.pdf import content_text, read_pdf
from batch_magic.simulator.tokens import PAGE_IMAGE_TOKENS, count_input_tokens, image_tokens


@pytest.mark.parametrize(("rgb", "name"), [
    ((220, 30, 30), "red"), ((250, 140, 20), "orange"), ((240, 220, 30), "yellow"), ((30, 160, 40), "green"),
    ((20, 200, 210), "cyan"), ((20, 60, 200), "blue"), ((120, 40, 180), "purple"), ((255, 170, 190), "pink"),
    ((120, 70, 20), "brown"), ((10, 10, 10), "black"), ((250, 250, 250), "white"), ((128, 128, 128), "gray"),
])
def test_colour_names(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_name(*rgb) == name


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_every_accepted_format_gives_size_and_colour(fmt: str) -> None:
    info = read_image(image(BLUE, (64, 48), fmt))
    assert (info.media_type, info.width, info.height, info.colour) == (f"image/{fmt.lower()}", 64, 48, "blue")
    assert info.describe() == "a blue image, 64x48 pixels"


def test_the_dominant_colour_is_the_most_frequent_one() -> None:
    im = Image.new("RGB", (100, 100), YELLOW)
    im.paste(GREEN, (0, 0, 100, 30))  # 30% green, 70% yellow
    buf = io.BytesIO()
    im.save(buf, "PNG")
    assert read_image(buf.getvalue()).colour == "yellow"
    transparent = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    transparent.paste((200, 20, 30, 255), (0, 0, 10, 10))  # transparent pixels do not count
    buf = io.BytesIO()
    transparent.save(buf, "PNG")
    assert read_image(buf.getvalue()).colour == "red"


def test_without_pillow_pngs_are_decoded_with_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = {
        "RGB": Image.new("RGB", (50, 40), GREEN),
        "RGBA": Image.new("RGBA", (50, 40), (*RED, 255)),
        "L": Image.new("L", (50, 40), 128),
        "P": Image.new("RGB", (50, 40), BLUE).convert("P"),
        "1": Image.new("1", (50, 40), 1),
    }
    gradient = Image.new("RGB", (90, 70))  # rows that need the Sub, Up, Average and Paeth filters
    gradient.putdata([(x * 2, 200, 255 - x) for _ in range(70) for x in range(90)])
    samples["gradient"] = gradient
    with_pillow = {}
    for key, im in samples.items():
        buf = io.BytesIO()
        im.save(buf, "PNG")
        samples[key] = buf.getvalue()  # type: ignore[assignment]
        with_pillow[key] = read_image(buf.getvalue())
    monkeypatch.setattr(media, "_PIL_IMAGE", None)
    without = {key: read_image(data) for key, data in samples.items()}  # type: ignore[arg-type]
    assert {k: v.colour for k, v in without.items()} == {
        "RGB": "green", "RGBA": "red", "L": "gray", "P": "blue", "1": "white", "gradient": "cyan"}
    assert without == with_pillow  # the same facts either way
    jpeg = read_image(image(RED, (30, 20), "JPEG"))
    assert (jpeg.width, jpeg.height, jpeg.colour) == (30, 20, None)  # size from the header, colour unknown
    big = Image.new("RGB", (600, 600), RED)
    buf = io.BytesIO()
    big.save(buf, "PNG")
    assert read_image(buf.getvalue()).colour is None  # over the pure-Python budget


def test_images_that_are_not_what_they_claim() -> None:
    with pytest.raises(MediaError, match=r"^Could not process image$"):
        read_image(b"GIF89a")
    with pytest.raises(MediaError, match="specified using the image/jpeg media type, but the image appears to be a "
                                         "image/png image"):
        read_image(image(RED), "image/jpeg")


def test_a_pdf_gives_its_text_metadata_and_pages() -> None:
    for compress in (False, True):
        info = read_pdf(invoice(compress=compress))
        assert info.text.splitlines() == ["ACME Supplies Ltd", "Invoice number: INV-0042", "Date: 2026-11-03",
                                          "Vendor: ACME", "Total: 123.45"]
        assert (info.title, info.author, info.pages) == ("Invoice INV-0042", "ACME Billing", 1)
    three = read_pdf(pdf(["Page one (draft)"], pages=3))
    assert (three.pages, three.text, three.title) == (3, "Page one (draft)", None)
    assert three.describe() == "a 3-page PDF"


def test_text_operators_arrays_escapes_and_hex() -> None:
    stream = (b"BT /F1 9 Tf [(Tot)-15(al)-400(due)] TJ 0 -12 Td (Caf\\351 \\(Paris\\)) Tj "
              b"T* <FEFF0053006B0079> Tj (next) ' ET")
    assert content_text(stream) == "Total due\nCaf\u00e9 (Paris)\nSky\nnext"


def test_what_is_not_a_readable_pdf() -> None:
    for data in (b"just text", b"%PDF-1.4\nno pages at all", invoice().replace(b"/Root 1 0 R", b"/Encrypt 9 0 R")):
        with pytest.raises(MediaError, match=r"^The PDF specified was not valid\.$"):
            read_pdf(data)
    odd_filter = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n2 0 obj << /Filter /DCTDecode /Length 3 >>\nstream\n" \
                 b"BT (x) Tj ET\nendstream\nendobj\n"
    assert read_pdf(odd_filter).text == ""  # a stream it cannot decode is skipped, not misread
    broken = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n2 0 obj << /Filter /FlateDecode >>\nstream\n" \
             + zlib.compress(b"BT (ok) Tj ET")[:-4] + b"\nendstream\n"
    assert read_pdf(broken).pages == 1


def test_labelled_fields_and_their_keys() -> None:
    text = "Invoice number: INV-0042\nTotal amount: $1,234.50\nnot a label\nNote:\nVendor: ACME: Europe\nTotal: 3"
    assert labelled_fields(text) == {"invoice_number": "INV-0042", "total_amount": "$1,234.50",
                                     "vendor": "ACME: Europe", "total": "3"}
    assert field_key("invoiceNumber") == field_key("Invoice number") == field_key("invoice_number") == "invoice_number"
    assert field_key("PO #") == "po"


def test_image_tokens_follow_the_size_and_the_models_resolution() -> None:
    assert image_tokens(64, 48) == 5  # ceil(3072 / 750)
    assert image_tokens(1000, 1000) == 1334  # under both caps: width x height / 750
    assert image_tokens(1092, 1092) == 1590  # the docs' largest 1:1 size stays whole
    assert image_tokens(4000, 3000) == 1598  # scaled down to about 1.2 megapixels
    assert image_tokens(8000, 100) == 40  # long edge 1568: 1568 x 19
    assert image_tokens(4000, 3000, "high") == 4783  # long edge 2576 and at most 4,784 tokens
    assert image_tokens(1000, 1000, "high") == 1334


def test_counted_tokens_read_the_media() -> None:
    big = image(RED, (4000, 3000), "JPEG")

    def request(model: str, *blocks: dict[str, object]) -> dict[str, object]:
        return {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": [*blocks]}]}

    img = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64(big)}}
    assert count_input_tokens(request("claude-haiku-4-5", img)) == 1598
    assert count_input_tokens(request("claude-opus-4-7", img)) == 4783  # Claude 4.7 and later: high resolution
    doc = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                          "data": b64(pdf(["x" * 400], pages=2))}}
    assert count_input_tokens(request("claude-haiku-4-5", doc)) == 2 * PAGE_IMAGE_TOKENS + 100
    text_doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "y" * 40}}
    assert count_input_tokens(request("claude-haiku-4-5", text_doc)) == 10
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert count_input_tokens(request("claude-haiku-4-5", url)) == 1500  # not fetched: a flat cost
