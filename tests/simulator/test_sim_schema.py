"""Structured answers honour every constraint of their schema, also those moved into a description."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import anthropic
import jsonschema
import pydantic
import pytest

from batch_magic.simulator import Simulator
from batch_magic.simulator.schema import Cues, description_note, fake_value

PROMPTS = [
    f"Row {i}: I {('love', 'hate', 'bought')[i % 3]} item {i * 37} (ref AB-{1000 + i}), {i * 1.7:.2f} kg, in Lisbon"
    for i in range(60)
]


def with_note(schema: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``schema`` with ``keys`` moved into a description note, the way clients send them."""
    kept = {k: v for k, v in schema.items() if k not in keys}
    note = "{" + ", ".join(f"{k}: {json.dumps(schema[k])}" for k in keys) + "}"
    kept["description"] = f"{schema['description']}\n\n{note}" if "description" in schema else note
    return kept


@pytest.mark.parametrize(
    ("schema", "moved", "truth"),
    [
        ({"type": "integer", "minimum": 1, "maximum": 5, "description": "Rating"}, ("minimum", "maximum"), None),
        ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, ("exclusiveMinimum", "exclusiveMaximum"), None),
        ({"type": "number", "minimum": 0, "maximum": 10, "multipleOf": 0.5}, ("minimum", "maximum", "multipleOf"), None),
        ({"type": "number", "minimum": 0.05, "maximum": 0.95, "multipleOf": 0.1}, ("minimum", "maximum", "multipleOf"), None),
        ({"type": "number", "exclusiveMinimum": 2, "maximum": 3, "multipleOf": 0.25}, ("exclusiveMinimum", "multipleOf"), None),
        ({"type": "integer", "minimum": 15, "multipleOf": 7}, ("minimum", "multipleOf"), None),
        ({"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 12}, ("exclusiveMinimum", "exclusiveMaximum"), None),
        ({"type": "integer", "maximum": -3}, ("maximum",), None),
        ({"type": "string", "minLength": 5, "maxLength": 7, "description": "Title"}, ("minLength", "maxLength"), None),
        ({"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"}, ("pattern",), None),
        ({"type": "string", "pattern": r"^#[0-9a-f]{6}$", "description": "Colour {hex}"}, ("pattern",), None),
        ({"type": "string", "pattern": r"^(yes|no|maybe)$"}, ("pattern",), None),
        ({"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3}, ("minItems", "maxItems"), None),
        ({"type": "array", "items": {"type": "integer", "description": "{minimum: 3, maximum: 4}"}, "minItems": 4},
         ("minItems",), {"type": "array", "items": {"type": "integer", "minimum": 3, "maximum": 4}, "minItems": 4}),
        ({"type": "string", "enum": ["low", "high"], "description": "Level"}, (), None),
        ({"type": "object", "properties": {"n": {"type": "integer", "description": "N\n\n{minimum: 100}"}},
          "required": ["n"], "additionalProperties": False}, (),
         {"type": "object", "properties": {"n": {"type": "integer", "minimum": 100}}, "required": ["n"]}),
    ],
)
def test_constraints_hold_whether_in_the_schema_or_in_a_description_note(
    schema: dict[str, Any], moved: tuple[str, ...], truth: dict[str, Any] | None
) -> None:
    as_sent = with_note(schema, moved) if moved else schema
    # What the answers must satisfy: the schema itself, or (for constraints that only a
    # description note states) those constraints written out as keywords.
    if truth is None:
        truth = {**schema, "description": "x"} if "description" in schema else schema
    for sent in (schema, as_sent):
        for text in PROMPTS[:30]:
            value = fake_value(sent, Cues(text))
            jsonschema.validate(value, truth)


@pytest.mark.parametrize(
    ("description", "note"),
    [
        ("Rating\n\n{minimum: 1, maximum: 5}", {"minimum": 1, "maximum": 5}),
        ("{maxLength: 12}", {"maxLength": 12}),
        ('{pattern: "^[a-z]{2,3}$", minItems: 2}', {"pattern": "^[a-z]{2,3}$", "minItems": 2}),
        ('Tag\n\n{enum: [{"a": 1}, "b"]}', {"enum": [{"a": 1}, "b"]}),
        ("Uses {braces} inline", {}),
        ("Broken\n\n{minimum: one}", {}),
        ("Ends with {minimum: 1}", {}),  # not alone, not after a blank line: prose, not a note
        (None, {}),
    ],
)
def test_the_description_note(description: str | None, note: dict[str, Any]) -> None:
    assert description_note(description) == note


class Review(pydantic.BaseModel):
    rating: int = pydantic.Field(ge=1, le=5, description="Rating from 1 to 5")
    confidence: float = pydantic.Field(gt=0, lt=1)
    stars: float = pydantic.Field(ge=0, le=10, multiple_of=0.5)
    tags: list[str] = pydantic.Field(min_length=2, max_length=3)
    code: str = pydantic.Field(pattern=r"^[A-Z]{2}-\d{4}$")
    title: str = pydantic.Field(min_length=5, max_length=12)
    kind: Literal["complaint", "praise", "question"]
    weight: int | None = pydantic.Field(default=None, ge=10, le=20)
    count: int = pydantic.Field(multiple_of=7, ge=15)


def test_answers_to_a_client_made_schema_validate_against_its_pydantic_model(sdk_client: anthropic.Anthropic) -> None:
    """The schema as batch_magic's client sends it: constraints moved into the descriptions."""
    from batch_magic.schemas import api_schema

    sent = api_schema(Review.model_json_schema())
    assert "minimum: 1" in sent["properties"]["rating"]["description"]  # the case this guards
    rows = [f"Review {i}: {PROMPTS[i % len(PROMPTS)]}" for i in range(175)]
    batch = sdk_client.messages.batches.create(requests=[
        {"custom_id": f"r{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 400,
                                          "messages": [{"role": "user", "content": t}],
                                          "output_config": {"format": {"type": "json_schema", "schema": sent}}}}
        for i, t in enumerate(rows)])
    results = list(sdk_client.messages.batches.results(batch.id))
    assert len(results) == 175
    for r in results:
        assert r.result.type == "succeeded"
        Review.model_validate_json(r.result.message.content[0].text)  # raises on any broken constraint


def test_the_invalid_rate_breaks_that_share_of_structured_answers(
    simulator: Simulator, sdk_client: anthropic.Anthropic
) -> None:
    schema = Review.model_json_schema()
    simulator.configure(invalid_rate=0.3)
    batch = sdk_client.messages.batches.create(requests=[
        {"custom_id": f"r{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 400,
                                          "messages": [{"role": "user", "content": PROMPTS[i % 60]}],
                                          "output_config": {"format": {"type": "json_schema", "schema": schema}}}}
        for i in range(100)])

    def broken() -> list[str]:
        out = []
        for r in sdk_client.messages.batches.results(batch.id):
            try:
                Review.model_validate_json(r.result.message.content[0].text)
            except pydantic.ValidationError:
                out.append(r.custom_id)
        return sorted(out)

    first = broken()
    assert 15 <= len(first) <= 45, len(first)
    assert broken() == first, "a batch's answers are the same on every download"
    simulator.configure(invalid_rate=1.0)
    p = {"model": "claude-haiku-4-5", "max_tokens": 400, "messages": [{"role": "user", "content": "x"}],
         "output_config": {"format": {"type": "json_schema", "schema": {"type": "string", "enum": ["a", "b"]}}}}
    text = sdk_client.messages.create(**p).content[0].text
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(text), {"type": "string", "enum": ["a", "b"]})


def test_patterns_in_tool_inputs(sdk_client: anthropic.Anthropic) -> None:
    tool = {"name": "file_ticket", "description": "File a ticket",
            "input_schema": {"type": "object", "required": ["ref"], "properties": {
                "ref": {"type": "string", "description": '{pattern: "^T-[0-9]{5}$"}'}}}}
    msg = sdk_client.messages.create(model="claude-haiku-4-5", max_tokens=300, tools=[tool],
                                     tool_choice={"type": "tool", "name": "file_ticket"},
                                     messages=[{"role": "user", "content": "File it please"}])
    assert re.fullmatch(r"T-[0-9]{5}", msg.content[0].input["ref"])
