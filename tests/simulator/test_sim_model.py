"""The fake model: text, structured output, forced tools, caching, responders, realtime calls."""

from __future__ import annotations

import enum
import json
from typing import Any, Literal

import anthropic
import jsonschema
import pydantic
import pytest
from anthropic.types import RefusalStopDetails, TextBlock, ThinkingBlock
from sim_helpers import MODEL, params

from batch_magic.simulator import Simulator
from batch_magic.simulator.catalog import looks_like_claude
from batch_magic.simulator.schema import Cues, choose_option, fake_value
from batch_magic.simulator.tokens import count_input_tokens


def batch_answers(client: anthropic.Anthropic, reqs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    batch = client.messages.batches.create(requests=[{"custom_id": k, "params": v} for k, v in reqs.items()])
    return {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}


def test_text_answer_is_deterministic_and_reflects_the_prompt(sdk_client: anthropic.Anthropic) -> None:
    p = params("Summarise the quarterly report about penguins in Antarctica")
    a = sdk_client.messages.create(**p)
    b = sdk_client.messages.create(**p)
    assert a.content[0].type == "text"
    assert a.content[0].text == b.content[0].text
    assert a.content[0].text.startswith("Simulated answer:") and "penguins" in a.content[0].text
    assert a.id != b.id and a.id.startswith("msg_01")
    assert a.usage.service_tier == "standard"
    text = "Summarise the quarterly report about penguins in Antarctica"
    assert a.usage.input_tokens == -(-len(text) // 4)
    assert a.usage.output_tokens == -(-len(a.content[0].text) // 4)


def test_input_tokens_count_the_system_prompt(sdk_client: anthropic.Anthropic) -> None:
    plain = sdk_client.messages.create(**params("x" * 40))
    with_system = sdk_client.messages.create(**params("x" * 40), system="y" * 400)
    assert with_system.usage.input_tokens == plain.usage.input_tokens + 100


def test_tiny_max_tokens_truncates(sdk_client: anthropic.Anthropic) -> None:
    msg = sdk_client.messages.create(**{**params("Tell me a very long story about dragons"), "max_tokens": 2})
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 2
    assert len(msg.content[0].text) <= 8


def test_stop_sequences(sdk_client: anthropic.Anthropic) -> None:
    msg = sdk_client.messages.create(**params("alpha beta gamma"), stop_sequences=["gamma"])
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == "gamma"
    assert "gamma" not in msg.content[0].text


def test_the_model_maximum_max_tokens_is_accepted_and_one_more_is_not(sdk_client: anthropic.Anthropic) -> None:
    results = batch_answers(sdk_client, {"max": {**params(), "max_tokens": 64_000},
                                         "over": {**params(), "max_tokens": 64_001}})
    assert results["max"].type == "succeeded"
    assert results["over"].type == "errored"
    assert results["over"].error.error.message == (
        "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for claude-haiku-4-5-20251001"
    )


class Sentiment(enum.StrEnum):
    positive = "positive"
    negative = "negative"
    neutral = "neutral"


class Address(pydantic.BaseModel):
    city: str
    zip_code: str | None = None


class Ticket(pydantic.BaseModel):
    sentiment: Sentiment
    category: Literal["billing", "shipping", "technical", "other"]
    customer_name: str
    email: str
    order_number: int
    rating: int = pydantic.Field(ge=1, le=5)
    confidence: float = pydantic.Field(ge=0, le=1)
    urgent: bool
    keywords: list[str] = pydantic.Field(min_length=1, max_length=4)
    address: Address
    summary: str
    note: str | None


def schema_params(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    return params(text, output_config={"format": {"type": "json_schema", "schema": schema}})


def test_structured_output_is_valid_json_for_the_schema(sdk_client: anthropic.Anthropic) -> None:
    schema = Ticket.model_json_schema()
    texts = {
        "a": "Hello, this is Maria from Lisbon, order 4412. I was billed twice, terrible! maria@example.pt",
        "b": "My package arrived late and damaged. Order 77. Shipping was awful.",
        "c": "I love the new app, it works great and the support was excellent!",
    }
    results = batch_answers(sdk_client, {k: schema_params(t, schema) for k, t in texts.items()})
    out = {}
    for k, r in results.items():
        assert r.type == "succeeded"
        raw = r.message.content[0].text
        value = json.loads(raw)
        jsonschema.validate(value, schema)
        out[k] = Ticket.model_validate_json(raw)
    assert out["a"].category == "billing" and out["a"].sentiment is Sentiment.negative
    assert out["a"].customer_name == "Maria" and out["a"].address.city == "Lisbon"
    assert out["a"].email == "maria@example.pt" and out["a"].order_number == 4412
    assert out["b"].category == "shipping" and out["b"].sentiment is Sentiment.negative and out["b"].rating == 1
    assert out["c"].sentiment is Sentiment.positive and out["c"].rating == 5


def test_beta_output_format_spelling_is_honoured(sdk_client: anthropic.Anthropic) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    results = batch_answers(sdk_client, {"a": params("ok?", output_format={"type": "json_schema", "schema": schema})})
    jsonschema.validate(json.loads(results["a"].message.content[0].text), schema)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string"},
        {"type": "integer", "minimum": 10, "maximum": 12},
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 3},
        {"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True, "minItems": 2},
        {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 5},
        {"type": ["string", "null"]},
        {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"x": {"const": 3}}, "required": ["x"]}]},
        {"type": "object", "properties": {"tree": {"$ref": "#/$defs/node"}}, "required": ["tree"],
         "$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                            "required": ["kids"]}}},
        {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                   {"properties": {"b": {"type": "integer", "multipleOf": 5, "minimum": 1}}, "required": ["b"]}]},
        {"type": "string", "minLength": 40, "maxLength": 50},
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "uuid"},
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "minItems": 2},
        {"type": "object", "properties": {"when": {"type": "string", "format": "date"},
                                          "labels": {"type": "array", "items": {"type": "string",
                                                                                "enum": ["x", "y"]}}}},
    ],
)
def test_fake_values_validate(schema: dict[str, Any]) -> None:
    for text in ("", "A short prompt", "Order 11 from Paris on 2024-02-03: broken, refund please"):
        value = fake_value(schema, Cues(text))
        jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("I was billed twice for one order", ["billing", "shipping", "technical"], "billing"),
        ("The parcel never arrived, where is my shipment?", ["billing", "shipping", "technical"], "shipping"),
        ("I absolutely love it, great value", ["positive", "negative", "neutral"], "positive"),
        ("Broken on arrival, I want a refund", ["positive", "negative", "neutral"], "negative"),
        ("What time do you open on Sundays?", ["positive", "negative", "neutral"], "neutral"),
        ("Site is down, urgent, fix it immediately", ["low", "medium", "high"], "high"),
    ],
)
def test_enum_choice_is_sensible(text: str, options: list[str], expected: str) -> None:
    assert choose_option(options, Cues(text)) == expected


def test_enum_ties_are_stable_but_not_always_the_first_option() -> None:
    picks = {choose_option(["a1", "b2", "c3"], Cues(f"nothing matches {i}")) for i in range(30)}
    assert len(picks) > 1
    assert choose_option(["a1", "b2", "c3"], Cues("same")) == choose_option(["a1", "b2", "c3"], Cues("same"))


def test_forced_tool_use(sdk_client: anthropic.Anthropic) -> None:
    tools = [
        {"name": "lookup_weather", "description": "Weather for a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                            "unit": {"enum": ["celsius", "fahrenheit"]}},
                          "required": ["city", "unit"]}},
        {"name": "record_sentiment", "description": "Record the sentiment of a review",
         "input_schema": {"type": "object", "properties": {"label": {"enum": ["positive", "negative"]}},
                          "required": ["label"]}},
    ]
    forced = sdk_client.messages.create(
        **params("What is the weather in Oslo?"), tools=tools, tool_choice={"type": "tool", "name": "lookup_weather"}
    )
    assert forced.stop_reason == "tool_use"
    [block] = forced.content
    assert block.type == "tool_use" and block.name == "lookup_weather" and block.id.startswith("toolu_01")
    jsonschema.validate(block.input, tools[0]["input_schema"])
    assert block.input["city"] == "Oslo"
    anyone = sdk_client.messages.create(
        **params("Record the sentiment: I hate it, terrible review"), tools=tools, tool_choice={"type": "any"}
    )
    assert anyone.content[0].name == "record_sentiment" and anyone.content[0].input == {"label": "negative"}


def test_forced_unknown_tool_is_an_errored_result(sdk_client: anthropic.Anthropic) -> None:
    p = params("x", tools=[{"name": "a", "input_schema": {"type": "object"}}], tool_choice={"type": "tool", "name": "b"})
    results = batch_answers(sdk_client, {"t": p})
    assert results["t"].type == "errored" and results["t"].error.error.type == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError):
        sdk_client.messages.create(**p)


def test_prompt_caching_writes_once_then_reads(sdk_client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "You are a careful classifier. " * 40, "cache_control": {"type": "ephemeral"}}]
    reqs = {f"c{i}": params(f"Row {i}", system=system) for i in range(4)}
    first = batch_answers(sdk_client, reqs)
    usage = {k: r.message.usage for k, r in first.items()}
    writers = [k for k, u in usage.items() if u.cache_creation_input_tokens]
    assert writers == ["c0"]
    prefix = usage["c0"].cache_creation_input_tokens
    assert prefix == -(-len(system[0]["text"]) // 4)
    assert usage["c0"].cache_creation.ephemeral_5m_input_tokens == prefix
    for k in ("c1", "c2", "c3"):
        assert usage[k].cache_read_input_tokens == prefix and usage[k].cache_creation_input_tokens == 0
    # Downloading again gives the same numbers; a new batch only reads.
    again = batch_answers(sdk_client, {"c9": params("Row 9", system=system)})
    assert again["c9"].message.usage.cache_read_input_tokens == prefix
    msg = sdk_client.messages.create(**params("Row 10", system=system))
    assert msg.usage.cache_read_input_tokens == prefix
    total = msg.usage.input_tokens + msg.usage.cache_read_input_tokens
    assert total == count_input_tokens({"system": system, "messages": [{"role": "user", "content": "Row 10"}]})


def test_one_hour_cache_ttl(sdk_client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "z" * 400, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    msg = sdk_client.messages.create(**params("hi", system=system))
    assert msg.usage.cache_creation.ephemeral_1h_input_tokens == 100


def test_responder_str_dict_and_failure(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    def responder(p: dict[str, Any]) -> Any:
        text = p["messages"][-1]["content"]
        if text == "boom":
            raise RuntimeError("nope")
        if text == "dict":
            return {"content": [{"type": "text", "text": "from a dict"}], "stop_reason": "end_turn"}
        return text.upper()

    simulator.responder = responder
    results = batch_answers(sdk_client, {"s": params("shout"), "d": params("dict"), "b": params("boom")})
    assert results["s"].message.content[0].text == "SHOUT"
    assert results["s"].message.usage.output_tokens == 2
    assert results["d"].message.content[0].text == "from a dict" and results["d"].message.usage.service_tier == "batch"
    assert results["b"].type == "errored" and "RuntimeError" in results["b"].error.error.message
    assert sdk_client.messages.create(**params("shout")).content[0].text == "SHOUT"


def test_count_tokens(sdk_client: anthropic.Anthropic) -> None:
    n = sdk_client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "a" * 100}], system="b" * 20)
    assert n.input_tokens == 30
    with pytest.raises(anthropic.NotFoundError, match="gpt-4o"):
        sdk_client.messages.count_tokens(model="gpt-4o", messages=[{"role": "user", "content": "a"}])


def test_realtime_validation_errors(sdk_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError, match="model: gpt-4o"):
        sdk_client.messages.create(**{**params(), "model": "gpt-4o"})
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        sdk_client.messages.create(**{**params(), "max_tokens": 0})
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        sdk_client.messages.create(**{**params(), "messages": []})


def test_streaming_realtime(sdk_client: anthropic.Anthropic) -> None:
    with sdk_client.messages.stream(**params("Stream me a reply about otters")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and "otters" in text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_extended_thinking_block_on_haiku_4_5(sdk_client: anthropic.Anthropic) -> None:
    msg = sdk_client.messages.create(**{**params("think"), "max_tokens": 2048},
                                     thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking  # Haiku 4.5 summarises its thinking by default


def test_model_id_rule() -> None:
    for ok in ("claude-sonnet-4-20250514", "claude-haiku-4-5", "claude-fable-5-2", "claude-3-5-sonnet-latest"):
        assert looks_like_claude(ok)
    for bad in ("gpt-4o", "", "claude", "llama-3", "claude-", None, 3):
        assert not looks_like_claude(bad)


def test_long_prompts_echo_their_start_and_end(sdk_client: anthropic.Anthropic) -> None:
    instruction = "Please summarise the following customer message in one short sentence for the weekly report:"
    texts = [f"{instruction} the blender number {i} stopped working after a week" for i in range(3)]
    answers = [sdk_client.messages.create(**params(t)).content[0].text for t in texts]
    assert len(set(answers)) == 3, "rows must not all get the same answer"
    assert all(a.startswith("Simulated answer: Please summarise") for a in answers)
    assert "number 2 stopped working" in answers[2]


# -- 2026: thinking, refusals and the API version through SDK 2.x ---------------------------
def test_a_thinking_answer_parses_into_a_thinking_block(sdk_client: anthropic.Anthropic) -> None:
    msg = sdk_client.messages.create(model="claude-haiku-5-5", max_tokens=1000,
                                     messages=[{"role": "user", "content": "Is this review positive? I love it."}],
                                     thinking={"type": "adaptive", "display": "summarized"},
                                     output_config={"effort": "low"})
    thinking, text = msg.content
    assert isinstance(thinking, ThinkingBlock) and thinking.thinking and thinking.signature
    assert isinstance(text, TextBlock) and "love it" in text.text
    details = msg.usage.output_tokens_details
    assert details is not None and 0 < details.thinking_tokens < msg.usage.output_tokens
    assert msg.stop_reason == "end_turn" and msg.stop_details is None


def test_streaming_a_thinking_answer(sdk_client: anthropic.Anthropic) -> None:
    p = {"model": "claude-opus-5-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "Stream about otters"}]}
    with sdk_client.messages.stream(**p) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[0].thinking == ""
    assert text == final.content[1].text
    plain = sdk_client.messages.create(**p)
    assert final.content[0].signature == plain.content[0].signature
    assert final.usage.output_tokens == plain.usage.output_tokens


def test_a_refusal_through_the_sdk(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    msg = sdk_client.messages.create(model="claude-fable-5-2", max_tokens=100,
                                     messages=[{"role": "user", "content": "<<sim:refuse:frontier_llm>> train a model"}])
    assert msg.stop_reason == "refusal" and msg.content == []
    assert isinstance(msg.stop_details, RefusalStopDetails) and msg.stop_details.category == "frontier_llm"
    with sdk_client.messages.stream(model="claude-fable-5-2", max_tokens=100,
                                    messages=[{"role": "user", "content": "<<sim:refuse:bio>>"}]) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "refusal" and streamed.stop_details is not None
    assert streamed.stop_details.category == "bio"


def test_the_refusal_rate(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    simulator.configure(refusal_rate=0.25)
    reqs = {f"r{i}": {**params(f"Row {i}"), "model": "claude-haiku-5-5", "max_tokens": 800} for i in range(80)}
    batch = sdk_client.messages.batches.create(requests=[{"custom_id": k, "params": v} for k, v in reqs.items()])

    def refused() -> set[str]:
        return {r.custom_id for r in sdk_client.messages.batches.results(batch.id)
                if r.result.type == "succeeded" and r.result.message.stop_reason == "refusal"}

    first = refused()
    assert 8 <= len(first) <= 35 and refused() == first
    realtime = [sdk_client.messages.create(**reqs["r1"]).stop_reason for _ in range(3)]
    assert len(set(realtime)) == 1, "the same request always draws the same"
    simulator.configure(refusal_rate=1.0)
    assert sdk_client.messages.create(**params("anything")).stop_reason == "refusal"


def test_sdk_2_sends_2026_10_21_so_sampling_parameters_are_refused(
    simulator: Simulator, sdk_client: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError, match="temperature: Extra inputs are not permitted"):
        sdk_client.messages.create(**params(), extra_body={"temperature": 0.2})
    assert simulator.requests[-1].headers["anthropic-version"] == "2026-10-21"
    assert simulator.requests[-1].headers["authorization"] == "Bearer ***"
    pinned = anthropic.Anthropic(api_key="k", base_url=simulator.url, default_headers={"anthropic-version": "2023-06-01"})
    assert pinned.messages.create(**params(), extra_body={"temperature": 0.2}).stop_reason == "end_turn"
