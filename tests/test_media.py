"""Images and PDFs in a template: what a value becomes, what is refused before anything is
sent, how a prompt with files becomes content blocks, and what they are estimated to cost.

No server here: the upload step and whole jobs are in test_uploads.py.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from PIL import Image

from batch_magic import media, pricing
from batch_magic.api import prepare, quick_estimate
from batch_magic.errors import MediaError, TemplateError
from batch_magic.models import ModelCard
from batch_magic.plan import RequestOptions, build_plan, split_batches
from batch_magic.structured import OutputSpec
from batch_magic.template import Template

OPTIONS = RequestOptions(model="claude-haiku-5-5", max_tokens=64)


def png(path: Path, size: tuple[int, int] = (64, 48), colour: str = "red") -> Path:
    Image.new("RGB", size, colour).save(path, format="PNG")
    return path


def image_bytes(fmt: str, size: tuple[int, int] = (30, 20), **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "blue").save(buf, format=fmt, **kw)
    return buf.getvalue()


def simple_pdf(lines: list[str], pages: int = 1, *, compress: bool = True, encrypt: bool = False) -> bytes:
    """A small valid PDF written by hand (the same shape as scripts/make_media.py's)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for _ in range(pages):
        text = b"BT /F1 11 Tf 56 780 Td " + b" T* ".join(b"(" + line.encode() + b") Tj" for line in lines) + b" ET"
        if compress:
            data = zlib.compress(text)
            objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream")
        else:
            objects.append(b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R >>" % len(objects))
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % pages
    out = bytearray(b"%PDF-1.4\n")
    for n, body in enumerate(objects, 1):
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    trailer = b"<< /Size %d /Root 1 0 R" % (len(objects) + 1)
    if encrypt:
        trailer += b" /Encrypt << /Filter /Standard >>"
    out += b"trailer\n" + trailer + b" >>\n%%EOF\n"
    return bytes(out)


# -- reading files -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "kw", "mime"),
    [("PNG", {}, media.PNG), ("JPEG", {}, media.JPEG), ("GIF", {}, media.GIF),
     ("WEBP", {}, media.WEBP), ("WEBP", {"lossless": True}, media.WEBP)],
)
def test_the_type_comes_from_the_bytes_and_the_size_from_the_header(fmt: str, kw: dict, mime: str) -> None:
    data = image_bytes(fmt, (321, 123), **kw)
    assert media.sniff(data) == mime
    assert media.image_size(data, mime) == (321, 123)


def test_an_extended_webp_header_gives_its_canvas_size() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (257, 99), (0, 0, 255, 128)).save(buf, format="WEBP")  # alpha: VP8X
    data = buf.getvalue()
    assert data[12:16] == b"VP8X"
    assert media.image_size(data, media.WEBP) == (257, 99)


def test_a_pdf_gives_its_pages_and_text_plain_or_compressed() -> None:
    for compress in (True, False):
        facts = media.pdf_facts(simple_pdf(["Invoice number: INV-7", "Total: $12.00"], pages=3, compress=compress))
        assert facts.pages == 3
        assert facts.text_chars == 3 * len("Invoice number: INV-7Total: $12.00")
        assert not facts.encrypted


def test_the_shipped_invoices_read_like_their_gold_page_counts() -> None:
    from batch_magic import load_invoices

    inv = load_invoices()
    for path, pages in zip(inv["invoice"], inv["pages"]):
        facts = media.pdf_facts(Path(path).read_bytes())
        assert facts.pages == pages and facts.text_chars > 200


def render(template: str, values: list[object], column: str = "photo") -> tuple[list[str], media.MediaCollector]:
    tpl = Template.compile(template)
    collector = media.MediaCollector()
    column_values = np.empty(len(values), dtype=object)
    column_values[:] = values  # element by element: numpy would turn a PIL image into pixels
    prompts = tpl.render_columns({column: column_values}, len(values), media=collector)
    return prompts, collector


def test_paths_bytes_and_pil_images_of_the_same_picture_are_one_file(tmp_path: Path) -> None:
    path = png(tmp_path / "a.png", (10, 10), "red")
    data = path.read_bytes()
    prompts, collector = render(
        "{{ image(photo) }}",
        [str(path), path, data, bytearray(data), Image.open(path), Image.new("RGB", (5, 5), "blue")],
    )
    assert not collector.problems
    # The same bytes however given (the PIL image opened from the file encodes to them too).
    assert len(set(prompts[:5])) == 1 and prompts[5] != prompts[0]
    assert len(collector.items) == 2
    from_path = collector.items[media.markers(prompts[0])[0][1]]
    assert from_path.path == str(path.resolve()) and from_path.data is None  # read again when uploaded
    assert (from_path.width, from_path.height, from_path.kind) == (10, 10, "image")
    in_memory = collector.items[media.markers(prompts[5])[0][1]]
    assert in_memory.path is None and in_memory.data is not None and in_memory.name == "PIL image"
    assert (in_memory.width, in_memory.height) == (5, 5)


def test_a_photo_opened_from_a_jpeg_stays_a_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (200, 100), "green").save(path, format="JPEG")
    _, collector = render("{{ image(photo) }}", [Image.open(path)])
    (item,) = collector.items.values()
    assert item.mime == media.JPEG and (item.width, item.height) == (200, 100)


def test_every_bad_value_is_reported_with_its_reason(tmp_path: Path) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    big = tmp_path / "big.png"
    Image.new("RGB", (8001, 10), "red").save(big)
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(simple_pdf(["x"]))
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(simple_pdf(["x"], encrypt=True))
    values = [str(tmp_path / "missing.png"), str(text_file), 42, str(big), str(pdf), str(tmp_path),
              "https://example.com/a.png", str(locked)]
    _, collector = render("{{ image(photo) }}", values)
    reasons = {p.position: p.reason for p in collector.problems}
    assert reasons[0] == "no such file"
    assert "neither PNG, JPEG, GIF, WebP nor PDF" in reasons[1] and "b'hello'" in reasons[1]
    assert reasons[2] == "an int, not a path, bytes or a PIL image"
    assert "8001x10 px, over the API's 8000 px a side" in reasons[3]
    assert reasons[4] == "image() was given a PDF; use pdf() for it"
    assert "not a file" in reasons[5]
    assert "a URL" in reasons[6]
    assert "encrypted PDF" in reasons[7]
    assert collector.n_problems == len(values)


def test_a_large_image_and_a_pdf_in_the_image_slot_are_refused(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(noise).save(path)
    assert path.stat().st_size > media.MAX_IMAGE_BYTES
    _, collector = render("{{ media(photo) }}", [str(path)])
    assert "over the API's 5 MB an image" in collector.problems[0].reason


def test_media_takes_either_kind_and_pdf_refuses_an_image(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(simple_pdf(["Hello"], pages=2))
    image = png(tmp_path / "a.png")
    prompts, _ = render("{{ media(photo) }}", [str(pdf), str(image)])
    assert [k for p in prompts for k, _ in media.markers(p)] == ["pdf", "image"]
    _, refused = render("{{ pdf(photo) }}", [str(image)])
    assert refused.problems[0].reason == "pdf() was given an image; use image() for it"


def test_the_template_knows_its_media_functions_are_not_columns() -> None:
    tpl = Template.compile("Photo {{ image(photo) }} of {{ name }}; scan {{ pdf(row['the scan']) }}")
    assert tpl.variables == {"photo", "name", "the scan"}
    assert tpl.media_functions == {"image", "pdf"}
    assert not tpl.is_simple
    with pytest.raises(TemplateError, match="images or PDFs"):
        tpl.render_columns({"photo": ["a"], "name": ["b"], "the scan": ["c"]}, 1)


def test_df_column_form_puts_the_file_first() -> None:
    tpl = Template.instructions_then_column("What colour is this?", "photo", media=True)
    assert tpl.source == "{{ media(photo) }}\n\nWhat colour is this?"
    assert Template.instructions_then_column("Hi", "a col", media=True).source == "{{ media(row['a col']) }}\n\nHi"
    assert media.looks_like_media(pd.Series([None, "x/a.JPG"]))
    assert media.looks_like_media([Path("a")]) and media.looks_like_media([b"\x89PNG"])
    assert not media.looks_like_media(pd.Series(["a review", "x.png"]))


# -- plans ---------------------------------------------------------------------------------------
def photo_frame(tmp_path: Path) -> pd.DataFrame:
    red = png(tmp_path / "red.png", colour="red")
    blue = png(tmp_path / "blue.png", colour="blue")
    copy = tmp_path / "copy_of_red.png"
    copy.write_bytes(red.read_bytes())
    return pd.DataFrame(
        {"photo": [str(red), str(blue), None, str(copy), np.nan, str(red)], "note": list("aabacd")},
        index=[f"p{i}" for i in range(6)],
    )


def test_a_plan_dedupes_by_content_and_skips_missing_media(tmp_path: Path) -> None:
    df = photo_frame(tmp_path)
    plan = build_plan(df, Template.compile("{{ image(photo) }} Colour? ({{ note }})"), OPTIONS)
    assert len(plan.media) == 2  # red (and its copy) and blue
    assert plan.n_skipped == 2 and set(plan.skip_reasons.values()) == {"photo is missing"}
    # Rows 0 and 3: the same bytes under two names, the same note: one request.
    assert plan.row_requests[0] == plan.row_requests[3]
    assert plan.n_requests == 3
    assert orjson.loads(orjson.dumps(plan.prompts)) == plan.prompts  # stored as JSON text


def test_the_fingerprint_follows_the_bytes_not_the_names(tmp_path: Path) -> None:
    tpl = Template.compile("{{ image(photo) }}")
    a = png(tmp_path / "a.png", colour="red")
    first = build_plan(pd.DataFrame({"photo": [str(a)]}), tpl, OPTIONS).fingerprint
    b = tmp_path / "b.png"
    b.write_bytes(a.read_bytes())
    assert build_plan(pd.DataFrame({"photo": [str(b)]}), tpl, OPTIONS).fingerprint == first
    png(a, colour="blue")
    assert build_plan(pd.DataFrame({"photo": [str(a)]}), tpl, OPTIONS).fingerprint != first


def test_bad_media_is_one_error_naming_the_first_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths: the message shortens long values
    values = [f"gone_{i}.png" for i in range(8)]
    df = pd.DataFrame({"photo": values}, index=[f"r{i}" for i in range(8)])
    with pytest.raises(MediaError) as err:
        build_plan(df, Template.compile("{{ image(photo) }}"), OPTIONS)
    text = str(err.value)
    assert text.startswith("8 rows hold media that cannot be sent")
    assert "row 'r0': '" + values[0] + "' (no such file)" in text
    assert "r4" in text and "r5" not in text and "and 3 more" in text
    assert "nothing was uploaded or sent" in text


def test_a_media_error_names_a_repeated_label_with_its_position(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    png(tmp_path / "here.png")
    df = pd.DataFrame({"photo": ["here.png", "here.png", "here.png", "gone.png"]}, index=["a", "b", "a", "b"])
    with pytest.raises(MediaError) as err:
        build_plan(df, Template.compile("{{ image(photo) }}"), OPTIONS)
    assert str(err.value).startswith("1 row holds media that cannot be sent: row 'b' at .iloc[3]: 'gone.png' (no such file)")
    unique = df.set_axis(["a", "b", "c", "d"])
    with pytest.raises(MediaError, match=r"cannot be sent: row 'd': 'gone.png'"):
        build_plan(unique, Template.compile("{{ image(photo) }}"), OPTIONS)


def test_a_prompt_with_files_becomes_blocks_in_template_order(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(simple_pdf(["x"]))
    df = pd.DataFrame({"photo": [str(png(tmp_path / "a.png"))], "doc": [str(pdf)]})
    plan = build_plan(df, Template.compile("Look:\n{{ image(photo) }}\n{{ pdf(doc) }}\n  Now answer.  "), OPTIONS)
    sources = {sha: media.file_source(f"file_{i}") for i, sha in enumerate(plan.media)}
    (prompt,) = plan.prompts
    blocks = media.content_blocks(prompt, sources)
    assert [b["type"] for b in blocks] == ["text", "image", "document", "text"]
    assert blocks[0]["text"] == "Look:" and blocks[3]["text"] == "Now answer."  # no blank text block
    assert blocks[1]["source"]["type"] == "file"
    assert media.content_encoder(sources)(prompt) == orjson.dumps(blocks)
    assert media.message_content("plain text", sources) == "plain text"
    assert media.readable(prompt, plan.media).startswith("Look:\n[image a.png, 64x48 px]\n[PDF doc.pdf, 1 page]")


def test_batches_leave_room_for_the_blocks(tmp_path: Path) -> None:
    marker = media.marker("image", "a" * 64)
    prompts = [f"{marker} question {i}" for i in range(1000)]
    shared = OPTIONS.shared_params()
    one = split_batches(prompts, shared, 100_000, media=True)
    assert one == [range(0, 1000)]
    # The bound per block is larger than any file source block the body will carry.
    sources = {"a" * 64: media.file_source("file_011C" + "x" * 55)}
    real = len(media.content_encoder(sources)(prompts[0])) - len(orjson.dumps(prompts[0]))
    assert real <= media.extra_body_bytes(prompts[0])


def test_a_text_template_plans_as_before() -> None:
    df = pd.DataFrame({"text": ["a", "b", "a"]})
    plan = build_plan(df, Template.compile("Say {{ text }}"), OPTIONS)
    assert plan.media == {} and plan.prompts == ["Say a", "Say b"]


# -- what a model reads, what a request holds, what it costs ------------------------------------
def test_a_model_that_reads_no_images_or_pdfs_is_refused() -> None:
    item = media.MediaItem("a" * 64, "image", media.PNG, 10, "a.png", width=1, height=1)
    doc = media.MediaItem("b" * 64, "pdf", media.PDF_MIME, 10, "b.pdf", pages=1)
    with pytest.raises(MediaError, match=r"does not read images \(the Models API capabilities.image_input is false\)"):
        media.check_model([item], ModelCard("claude-x", image_input=False))
    with pytest.raises(MediaError, match="does not read PDFs"):
        media.check_model([item, doc], ModelCard("claude-x", pdf_input=False))
    media.check_model([item, doc], ModelCard("claude-x"))


def test_request_limits_many_images_and_pages(tmp_path: Path) -> None:
    big = media.MediaItem("a" * 64, "image", media.PNG, 10, "big.png", width=3000, height=2000)
    small = media.MediaItem("b" * 64, "image", media.PNG, 10, "s.png", width=100, height=100)
    doc = media.MediaItem("c" * 64, "pdf", media.PDF_MIME, 10, "d.pdf", pages=60)
    items = {i.sha256: i for i in (big, small, doc)}
    many = media.marker("image", big.sha256) + media.marker("image", small.sha256) * 20
    fine = media.marker("image", big.sha256) + media.marker("image", small.sha256) * 19
    pages = media.marker("pdf", doc.sha256) * 2
    rows = lambda k: f"row 'row{k}'"  # noqa: E731
    media.check_requests([fine], items, max_input_tokens=200_000, first_row=rows)
    with pytest.raises(MediaError, match="row 'row1': 21 images, one 3000 px a side"):
        media.check_requests([fine, many], items, max_input_tokens=1_000_000, first_row=rows)
    with pytest.raises(MediaError, match="120 PDF pages, over the 100"):
        media.check_requests([pages], items, max_input_tokens=200_000, first_row=rows)
    media.check_requests([pages], items, max_input_tokens=1_000_000, first_row=rows)


def test_image_tokens_follow_the_documented_rule() -> None:
    old, new = "claude-haiku-4-5", "claude-haiku-5-5"
    assert pricing.image_tokens(old, 200, 200) == 54  # the vision page's table: ~54
    assert pricing.image_tokens(old, 1000, 1000) == 1334
    assert pricing.image_tokens(old, 1092, 1092) == 1590
    assert pricing.image_tokens(old, 4000, 3000) == 1600  # scaled to the long edge, then capped
    assert pricing.image_tokens(new, 2000, 1500) == 4000
    assert pricing.image_tokens(new, 6000, 6000) == 4784
    assert pricing.pdf_tokens(new, 2, 0) == 3200
    assert pricing.pdf_tokens(new, 1, 3100) > 1600


def test_the_estimate_counts_files_once_per_request_and_says_it_is_approximate(tmp_path: Path) -> None:
    df = pd.DataFrame({"photo": [str(png(tmp_path / "a.png", (1500, 1000)))] * 3, "q": ["x", "y", "z"]})
    plan = build_plan(df, Template.compile("{{ image(photo) }} {{ q }}"), OPTIONS)
    with_files = quick_estimate(OPTIONS, plan.prompts, OutputSpec.text(), media=plan.media)
    per_image = pricing.image_tokens(OPTIONS.model, 1500, 1000)
    assert with_files.media_tokens == 3 * per_image
    text_only = quick_estimate(OPTIONS, [media.text_of(p) for p in plan.prompts], OutputSpec.text())
    assert with_files.input_tokens - text_only.input_tokens == pytest.approx(3 * per_image, abs=1)
    prepared = prepare(df, "{{ image(photo) }} {{ q }}")
    assert any("approximate" in n for n in prepared.notes)
    assert "for images and PDFs, approximate" in repr(prepared)
    assert "[image a.png, 1500x1000 px] x" in repr(prepared)


def test_the_shipped_data_sets_come_from_their_script(tmp_path: Path) -> None:
    """scripts/make_media.py makes the shipped files: the PDFs byte for byte, the photos
    pixel for pixel, and each data set is small."""
    from _scripts import load_script
    from batch_magic import load_invoices, load_products

    load_script("make_media").main(["--out", str(tmp_path)])
    invoices, products = load_invoices(), load_products()
    for path in invoices["invoice"]:
        assert (tmp_path / "invoices" / Path(path).name).read_bytes() == Path(path).read_bytes()
    for path in products["photo"]:
        made = np.asarray(Image.open(tmp_path / "products" / Path(path).name))
        assert (made == np.asarray(Image.open(path))).all()
    assert len(products) == 12 and 4 <= len(invoices) <= 6
    assert all(Path(p).stat().st_size < 8_000 for p in [*products["photo"], *invoices["invoice"]])
