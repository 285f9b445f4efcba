"""Messages and batch requests that show the model images and PDFs (uploads, base64, URLs)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import jsonschema
import pytest
from anthropic.types.image_dimensions_too_large_error import ImageDimensionsTooLargeError
from media_fixtures import (
    BLUE,
    GREEN,
    RED,
    YELLOW,
    document_block,
    image,
    image_block,
    invoice,
    pdf,
)
from PIL import Image

from batch_magic.simulator import Simulator, catalog
from batch_magic.simulator.catalog import Features

MODEL = "claude-haiku-4-5"
LABELS = ["red", "green", "blue", "other"]
INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string", "pattern": "^INV-\\d+$"},
        "total": {"type": "number", "minimum": 0},
        "vendor": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "pages": {"type": "integer"},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
    },
    "required": ["invoice_number", "total", "vendor", "date", "pages", "currency"],
    "additionalProperties": False,
}


def enum_format(options: list[str]) -> dict[str, Any]:
    return {"format": {"type": "json_schema", "schema": {
        "type": "object", "properties": {"label": {"type": "string", "enum": options}},
        "required": ["label"], "additionalProperties": False}}}


def ask(client: anthropic.Anthropic, *blocks: dict[str, Any], model: str = MODEL, **extra: Any) -> Any:
    return client.messages.create(model=model, max_tokens=400,
                                  messages=[{"role": "user", "content": [*blocks]}], **extra)


def text(block: str) -> dict[str, Any]:
    return {"type": "text", "text": block}


def upload(client: anthropic.Anthropic, name: str, data: bytes, mime: str) -> str:
    return client.files.upload(file=(name, data, mime)).id


# -- realtime --------------------------------------------------------------------------------
def test_the_answer_names_what_an_image_shows(sdk_client: anthropic.Anthropic) -> None:
    red = upload(sdk_client, "red.png", image(RED, (64, 48)), "image/png")
    answer = ask(sdk_client, image_block(red), text("What is in this picture?")).content[0].text
    assert answer == "Simulated answer: a red image, 64x48 pixels. What is in this picture?"
    jpeg = image(BLUE, (30, 20), "JPEG")
    inline = ask(sdk_client, image_block(data=jpeg, media_type="image/jpeg"), text("And this?")).content[0].text
    assert inline == "Simulated answer: a blue image, 30x20 pixels. And this?"
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert "an image at https://example.com/cat.jpg (not fetched)" in ask(sdk_client, url).content[0].text


@pytest.mark.parametrize(("colour", "label"), [(RED, "red"), (GREEN, "green"), (BLUE, "blue")])
def test_labels_follow_the_dominant_colour(sdk_client: anthropic.Anthropic, colour: tuple[int, int, int],
                                           label: str) -> None:
    file_id = upload(sdk_client, "x.png", image(colour), "image/png")
    answer = ask(sdk_client, image_block(file_id), text("Which colour is it? Answer red, green, blue or other."),
                 output_config=enum_format(LABELS))
    assert json.loads(answer.content[0].text) == {"label": label}


def test_labels_without_a_colour_keep_the_usual_choice(sdk_client: anthropic.Anthropic) -> None:
    yellow = upload(sdk_client, "y.png", image(YELLOW), "image/png")
    answer = ask(sdk_client, image_block(yellow), text("Is this urgent? It is an emergency."),
                 output_config=enum_format(["high", "low"]))
    assert json.loads(answer.content[0].text) == {"label": "high"}  # the cue words decide, as without an image
    grey = upload(sdk_client, "g.png", image((128, 128, 128)), "image/png")
    spelled = ask(sdk_client, image_block(grey), output_config=enum_format(["Light", "Grey tone"]))
    assert json.loads(spelled.content[0].text) == {"label": "Grey tone"}  # other spellings of a colour match


def test_invoice_fields_come_from_the_pdf(sdk_client: anthropic.Anthropic) -> None:
    doc = upload(sdk_client, "invoice.pdf", invoice("INV-0042", "123.45", "ACME"), "application/pdf")
    answer = ask(sdk_client, document_block(doc), text("Extract the invoice fields."),
                 output_config={"format": {"type": "json_schema", "schema": INVOICE_SCHEMA}})
    value = json.loads(answer.content[0].text)
    jsonschema.validate(value, INVOICE_SCHEMA)
    assert {k: value[k] for k in ("invoice_number", "total", "vendor", "date", "pages")} == {
        "invoice_number": "INV-0042", "total": 123.45, "vendor": "ACME", "date": "2026-11-03", "pages": 1}
    # camelCase names match labels too; a label that breaks the field's schema is not used.
    schema = {"type": "object", "properties": {
        "invoiceNumber": {"type": "string"}, "title": {"type": "string"}, "author": {"type": "string"},
        "vendor": {"type": "string", "maxLength": 2}, "total": {"type": "integer"}},
        "required": ["invoiceNumber", "title", "author", "vendor", "total"], "additionalProperties": False}
    other = ask(sdk_client, document_block(data=invoice("INV-7", "10", "Globex")),
                output_config={"format": {"type": "json_schema", "schema": schema}})
    value = json.loads(other.content[0].text)
    assert (value["invoiceNumber"], value["title"], value["author"], value["total"]) == (
        "INV-7", "Invoice INV-7", "Globex Billing", 10)
    assert value["vendor"] == "Gl"  # fitted to maxLength, as any string answer is


def test_a_forced_tool_reads_the_document(sdk_client: anthropic.Anthropic) -> None:
    tool = {"name": "record_invoice", "description": "Record an invoice",
            "input_schema": {"type": "object", "properties": {"invoice_number": {"type": "string"},
                                                              "total": {"type": "number"}},
                             "required": ["invoice_number", "total"]}}
    doc = upload(sdk_client, "inv.pdf", invoice("INV-0099", "7.25"), "application/pdf")
    answer = ask(sdk_client, document_block(doc), tools=[tool],
                 tool_choice={"type": "tool", "name": "record_invoice"})
    assert answer.content[0].input == {"invoice_number": "INV-0099", "total": 7.25}


def test_a_pdf_answer_in_plain_text(sdk_client: anthropic.Anthropic) -> None:
    doc = upload(sdk_client, "inv.pdf", invoice(), "application/pdf")
    answer = ask(sdk_client, document_block(doc), text("Summarise.")).content[0].text
    assert answer.startswith('Simulated answer: a 1-page PDF titled "Invoice INV-0042" by ACME Billing, reading '
                             '"ACME Supplies Ltd Invoice number: INV-0042')
    assert answer.endswith(". Summarise.")


def test_unknown_deleted_and_mismatched_files_are_400(sdk_client: anthropic.Anthropic, http: httpx2.Client) -> None:
    red = upload(sdk_client, "red.png", image(RED), "image/png")
    doc = upload(sdk_client, "inv.pdf", invoice(), "application/pdf")
    with pytest.raises(anthropic.BadRequestError, match="File not found: file_011Cmissing"):
        ask(sdk_client, image_block("file_011Cmissing"))
    sdk_client.files.delete(red)
    with pytest.raises(anthropic.BadRequestError, match=f"File not found: {red}"):
        ask(sdk_client, image_block(red))
    with pytest.raises(anthropic.BadRequestError, match="has type application/pdf, which does not match"):
        ask(sdk_client, image_block(doc))
    green = upload(sdk_client, "g.png", image(GREEN), "image/png")
    with pytest.raises(anthropic.BadRequestError, match="has type image/png, which does not match"):
        ask(sdk_client, document_block(green))
    raw = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 10,
                                          "messages": [{"role": "user", "content": [image_block("file_011Cx")]}]})
    assert raw.status_code == 400
    assert raw.json()["error"] == {"type": "invalid_request_error", "message": "File not found: file_011Cx"}
    counted = http.post("/v1/messages/count_tokens", json={
        "model": MODEL, "messages": [{"role": "user", "content": [image_block("file_011Cx")]}]})
    assert counted.status_code == 400


def test_invalid_inline_media_is_400(sdk_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"^.*The PDF specified was not valid\."):
        ask(sdk_client, document_block(data=b"plain words, not a PDF"))
    with pytest.raises(anthropic.BadRequestError, match="image/png media type, but the image appears to be a "
                                                        "image/jpeg image"):
        ask(sdk_client, image_block(data=image(RED, fmt="JPEG"), media_type="image/png"))
    with pytest.raises(anthropic.BadRequestError, match="Could not process image"):
        ask(sdk_client, image_block(data=b"\x89PNG\r\n\x1a\nbroken"))
    bad_tag = {"type": "image", "source": {"type": "path", "path": "/tmp/x.png"}}
    with pytest.raises(anthropic.BadRequestError, match="Input tag 'path' found using 'type'"):
        sdk_client.messages.create(model=MODEL, max_tokens=10,
                                   messages=[{"role": "user", "content": [bad_tag]}])  # type: ignore[list-item]


def test_image_size_limits(sdk_client: anthropic.Anthropic) -> None:
    wide = image(RED, (8001, 10))
    with pytest.raises(ImageDimensionsTooLargeError) as err:
        ask(sdk_client, text("look"), image_block(data=wide))
    assert err.value.error_code == "image_dimensions_too_large"
    assert err.value.body["error"]["details"] == {"error_code": "image_dimensions_too_large",
                                                  "max_side_length_pixels": 8000, "paths": ["messages.0.content.1"]}
    assert "exceed max allowed size: 8000 pixels" in str(err.value.api_message)
    ok = image(RED, (2001, 10))
    assert ask(sdk_client, image_block(data=ok)).stop_reason == "end_turn"
    many = [image_block(data=image(GREEN, (5, 5))) for _ in range(20)] + [image_block(data=ok)]
    with pytest.raises(ImageDimensionsTooLargeError, match="for many-image requests: 2000 pixels") as err:
        ask(sdk_client, *many)
    assert err.value.body["error"]["details"]["paths"] == ["messages.0.content.20"]
    with pytest.raises(anthropic.BadRequestError, match="too many images: 101 > 100"):
        ask(sdk_client, *[image_block(data=image(GREEN, (5, 5))) for _ in range(101)])


def test_pdf_page_limit_follows_the_context_window(sdk_client: anthropic.Anthropic) -> None:
    doc = upload(sdk_client, "long.pdf", pdf(["x"], pages=101), "application/pdf")
    with pytest.raises(anthropic.BadRequestError, match=r"A maximum of 100 PDF pages may be provided\."):
        ask(sdk_client, document_block(doc))  # Haiku 4.5: a 200K context window
    assert ask(sdk_client, document_block(doc), model="claude-opus-4-6").usage.input_tokens > 101 * 1600


def test_a_model_without_media_input_refuses_it(sdk_client: anthropic.Anthropic,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    spec = catalog.known(MODEL)
    assert spec is not None
    blind = dataclasses.replace(spec, features=Features(image_input=False, pdf_input=False))
    monkeypatch.setitem(catalog._BY_ID, MODEL, blind)
    with pytest.raises(anthropic.BadRequestError, match="does not support image input"):
        ask(sdk_client, image_block(data=image(RED)))
    with pytest.raises(anthropic.BadRequestError, match="does not support PDF input"):
        ask(sdk_client, document_block(data=invoice()))
    assert ask(sdk_client, text("no media")).stop_reason == "end_turn"
    info = sdk_client.models.retrieve("claude-3-haiku-20240307")
    assert info.capabilities.pdf_input.supported is False  # PDFs: Claude 3.5 and later (Files API page)


def test_count_tokens_agrees_with_usage(sdk_client: anthropic.Anthropic) -> None:
    red = upload(sdk_client, "red.png", image(RED, (640, 480)), "image/png")
    doc = upload(sdk_client, "inv.pdf", invoice(), "application/pdf")
    for model in (MODEL, "claude-opus-4-7"):
        content = [image_block(red), document_block(doc), image_block(data=image(BLUE, (3000, 2000), "JPEG"),
                                                                      media_type="image/jpeg"),
                   text("Compare these.")]
        counted = sdk_client.messages.count_tokens(model=model, messages=[{"role": "user", "content": content}])
        used = ask(sdk_client, *content, model=model).usage
        assert counted.input_tokens == used.input_tokens
    small = ask(sdk_client, image_block(red)).usage.input_tokens
    assert small == 410  # ceil(640 x 480 / 750)


# -- batches ---------------------------------------------------------------------------------
def test_a_batch_of_rows_pointing_at_uploads(sdk_client: anthropic.Anthropic, simulator: Simulator) -> None:
    colours = {"red": RED, "green": GREEN, "blue": BLUE}
    ids = {name: upload(sdk_client, f"{name}.png", image(rgb), "image/png") for name, rgb in colours.items()}
    doc = upload(sdk_client, "inv.pdf", invoice("INV-0500", "42.00", "Initech"), "application/pdf")
    rows = [name for name in ("red", "green", "blue") for _ in range(10)]
    requests: list[dict[str, Any]] = [
        {"custom_id": f"row{k}", "params": {"model": MODEL, "max_tokens": 100, "output_config": enum_format(LABELS),
                                            "messages": [{"role": "user", "content": [
                                                image_block(ids[name]), text("Classify the colour.")]}]}}
        for k, name in enumerate(rows)]
    requests.append({"custom_id": "invoice", "params": {
        "model": MODEL, "max_tokens": 300, "output_config": {"format": {"type": "json_schema",
                                                                        "schema": INVOICE_SCHEMA}},
        "messages": [{"role": "user", "content": [document_block(doc), text("Extract.")]}]}})
    requests.append({"custom_id": "missing", "params": {"model": MODEL, "max_tokens": 100, "messages": [
        {"role": "user", "content": [image_block("file_011Cnothere")]}]}})
    batch = sdk_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    # Each distinct file is in the batch once, however many rows name it: the body stays small.
    create = next(r for r in simulator.requests if r.endpoint == "create")
    assert int(create.headers["content-length"]) < 20_000
    sdk_client.files.delete(ids["red"])  # a batch already created keeps what it saw
    results = {r.custom_id: r.result for r in sdk_client.messages.batches.results(batch.id)}
    for k, name in enumerate(rows):
        result = results[f"row{k}"]
        assert result.type == "succeeded" and json.loads(result.message.content[0].text) == {"label": name}
    extracted = json.loads(results["invoice"].message.content[0].text)  # type: ignore[union-attr]
    assert (extracted["invoice_number"], extracted["total"], extracted["vendor"]) == ("INV-0500", 42.0, "Initech")
    missing = results["missing"]
    assert missing.type == "errored"
    assert missing.error.error.type == "invalid_request_error"
    assert missing.error.error.message == "File not found: file_011Cnothere"
    counts = sdk_client.messages.batches.retrieve(batch.id).request_counts
    assert (counts.succeeded, counts.errored) == (31, 1)
    # The deleted file is gone for new requests, realtime and batched.
    late = sdk_client.messages.batches.create(requests=[{"custom_id": "late", "params": {
        "model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": [image_block(ids["red"])]}]}}])
    (only,) = list(sdk_client.messages.batches.results(late.id))
    assert only.result.type == "errored" and only.result.error.error.message == f"File not found: {ids['red']}"


def test_a_batch_keeps_its_files_across_a_restart(tmp_path: Path) -> None:
    with Simulator(state_dir=tmp_path, processing_time=0) as sim:
        c = sim.client(max_retries=0)
        red = upload(c, "red.png", image(RED), "image/png")
        batch = c.messages.batches.create(requests=[{"custom_id": "a", "params": {
            "model": MODEL, "max_tokens": 100, "output_config": enum_format(LABELS),
            "messages": [{"role": "user", "content": [image_block(red)]}]}}])
        before = [r.to_dict() for r in c.messages.batches.results(batch.id)]
        c.files.delete(red)
    with Simulator(state_dir=tmp_path, processing_time=0) as sim2:
        c = sim2.client(max_retries=0)
        after = [r.to_dict() for r in c.messages.batches.results(batch.id)]
        assert after == before
        assert json.loads(after[0]["result"]["message"]["content"][0]["text"]) == {"label": "red"}


def test_images_in_tool_results_are_read(sdk_client: anthropic.Anthropic) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), GREEN).save(buf, "PNG")
    file_id = upload(sdk_client, "shot.png", buf.getvalue(), "image/png")
    messages = [
        {"role": "user", "content": "Take a screenshot."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01",
                                      "content": [image_block(file_id)]}]},
    ]
    answer = sdk_client.messages.create(model=MODEL, max_tokens=100, messages=messages)  # type: ignore[arg-type]
    assert answer.content[0].text == "Simulated answer: a green image, 20x10 pixels."
