"""A JSON object asked for in words (no schema, no tool): answered as one, by the simulator's
own reading of the request (docs/simulator.md, "The fake model")."""

from __future__ import annotations

import json
from typing import Any

import anthropic
from sim_helpers import params

from batch_magic.simulator.asked_json import asked_object


def answer(client: anthropic.Anthropic, text: str, **extra: Any) -> str:
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": params(text, **extra)}])
    (result,) = client.messages.batches.results(batch.id)
    assert result.result.type == "succeeded", result.result
    block = result.result.message.content[-1]
    assert block.type == "text"
    return block.text


def test_keys_listed_in_words_come_back_as_an_object(sdk_client: anthropic.Anthropic) -> None:
    text = ("Return a JSON object with keys customer, product and is_urgent. "
            "Ticket from Maria: my blender broke, I need help today!")
    value = json.loads(answer(sdk_client, text))
    assert list(value) == ["customer", "product", "is_urgent"]
    assert value["customer"] == "Maria" and isinstance(value["is_urgent"], bool)


def test_an_example_object_gives_the_keys_and_their_types(sdk_client: anthropic.Anthropic) -> None:
    text = 'Answer in JSON like {"sentiment": "positive", "score": 4, "refund": false}. Review: great, works well'
    value = json.loads(answer(sdk_client, text))
    assert set(value) == {"sentiment", "score", "refund"}
    assert isinstance(value["sentiment"], str)
    assert isinstance(value["score"], (int, float)) and not isinstance(value["score"], bool)
    assert isinstance(value["refund"], bool)


def test_json_asked_in_the_system_prompt_without_keys(sdk_client: anthropic.Anthropic) -> None:
    value = json.loads(answer(sdk_client, "The printer jams", system="Always reply with a json object."))
    assert list(value) == ["answer"] and "printer" in value["answer"]


def test_a_prompt_that_does_not_say_json_is_answered_in_text(sdk_client: anthropic.Anthropic) -> None:
    assert answer(sdk_client, "Which keys fit this lock?").startswith("Simulated answer:")


def test_the_rule_reads_the_request_alone() -> None:
    assert asked_object("", "Summarise this") is None
    schema = asked_object("", "Give JSON with fields: name, age, has_pet")
    assert schema == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "number"}, "has_pet": {"type": "boolean"}},
        "required": ["name", "age", "has_pet"],
    }


def test_the_values_come_from_the_data_not_from_the_instruction(sdk_client: anthropic.Anthropic) -> None:
    ask = "Return a JSON object with keys customer and is_urgent.\nTicket from Maria: "
    calm = json.loads(answer(sdk_client, ask + "the blender works, just a question about colours."))
    pressed = json.loads(answer(sdk_client, ask + "urgent, the blender is on fire!"))
    assert calm["is_urgent"] is False and pressed["is_urgent"] is True
