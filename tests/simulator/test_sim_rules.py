"""The API's rules over raw HTTP (no SDK), against the simulator started as a command.

Each request names its ``anthropic-version`` explicitly, so both versions are
exercised the way a client that speaks HTTP itself would: 2023-06-01 (what
SDK 0.x/1.x send) and 2026-10-21 (what SDK 2.x sends).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from sim_helpers import Cli

V2023, V2026 = "2023-06-01", "2026-10-21"
ROW = "Classify this review: the parcel arrived late and the lid was broken."


class Api:
    """Raw JSON over HTTP with one API version."""

    def __init__(self, http: httpx2.Client, version: str) -> None:
        self.http = http
        self.version = version

    def post(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        r = self.http.post(path, json=body, headers={"anthropic-version": self.version})
        return r.status_code, r.json()

    def get(self, path: str) -> tuple[int, Any]:
        r = self.http.get(path, headers={"anthropic-version": self.version})
        return r.status_code, r.json() if r.headers.get("content-type") == "application/json" else r.text

    def message(self, model: str, text: str = ROW, **extra: Any) -> tuple[int, dict[str, Any]]:
        body = {"model": model, "max_tokens": 2000, "messages": [{"role": "user", "content": text}], **extra}
        return self.post("/v1/messages", body)

    def error(self, model: str, **extra: Any) -> str:
        """The message of the 400 the request must get."""
        status, body = self.message(model, **extra)
        assert status == 400, (model, extra, body)
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        return str(body["error"]["message"])

    def ok(self, model: str, **extra: Any) -> dict[str, Any]:
        status, body = self.message(model, **extra)
        assert status == 200, (model, extra, body)
        return body


@pytest.fixture(scope="module")
def command() -> Iterator[Cli]:
    c = Cli("--processing-time", "0")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def http(command: Cli) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=command.url, headers={"x-api-key": "sk-raw"}, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def v2023(http: httpx2.Client) -> Api:
    return Api(http, V2023)


@pytest.fixture(scope="module")
def v2026(http: httpx2.Client) -> Api:
    return Api(http, V2026)


def kinds(message: dict[str, Any]) -> list[str]:
    return [b["type"] for b in message["content"]]


def thinking_tokens(message: dict[str, Any]) -> int:
    return int(message["usage"]["output_tokens_details"]["thinking_tokens"])


# -- API versions --------------------------------------------------------------------------------
def test_a_missing_or_unknown_version_is_a_400_naming_the_header(http: httpx2.Client) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    missing = http.post("/v1/messages", json=body)
    assert missing.status_code == 400
    assert missing.json()["error"] == {"type": "invalid_request_error", "message": "anthropic-version: header is required"}
    unknown = http.post("/v1/messages", json=body, headers={"anthropic-version": "2024-01-01"})
    assert unknown.status_code == 400
    message = unknown.json()["error"]["message"]
    assert '"2024-01-01"' in message and "2023-06-01" in message and "2026-10-21" in message
    assert http.get("/v1/models", headers={"anthropic-version": "2099-01-01"}).status_code == 400


@pytest.mark.parametrize(("name", "value"), [("temperature", 1.0), ("temperature", 0.0), ("top_p", 1.0),
                                             ("top_k", 5), ("temperature", None)])
def test_2026_removes_sampling_parameters_even_at_their_default(
    v2026: Api, v2023: Api, name: str, value: Any
) -> None:
    assert v2026.error("claude-haiku-4-5", **{name: value}) == f"{name}: Extra inputs are not permitted"
    status, body = v2026.post("/v1/messages/count_tokens", {
        "model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}], name: value})
    assert status == 400 and body["error"]["message"] == f"{name}: Extra inputs are not permitted"
    v2023.ok("claude-haiku-4-5", **{name: value})  # the old version still takes them on Haiku 4.5


def test_2026_refuses_documents_in_assistant_turns_and_citations_in_user_turns(v2026: Api, v2023: Api) -> None:
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A memo."}}
    in_assistant = [{"role": "user", "content": "Read this."}, {"role": "assistant", "content": [document]},
                    {"role": "user", "content": "Summarise it."}]
    cited = {"type": "text", "text": "As the memo says.", "citations": [
        {"type": "char_location", "cited_text": "A memo.", "document_index": 0, "start_char_index": 0,
         "end_char_index": 7}]}
    in_user = [{"role": "user", "content": [cited]}]
    assert "document" in v2026.error("claude-haiku-4-5", messages=in_assistant)
    assert "citations" in v2026.error("claude-haiku-4-5", messages=in_user)
    uncited = [{"role": "user", "content": [{**cited, "citations": []}]}]
    v2026.ok("claude-haiku-4-5", messages=uncited)
    v2023.ok("claude-haiku-4-5", messages=in_assistant)
    v2023.ok("claude-haiku-4-5", messages=in_user)


# -- per-model rules under 2023-06-01 ------------------------------------------------------------
def test_sampling_parameters_per_model(v2023: Api) -> None:
    assert v2023.error("claude-opus-4-7", temperature=0.5) == "`temperature` is deprecated for this model."
    assert v2023.error("claude-haiku-5-5", top_p=0.9) == "`top_p` is deprecated for this model."
    assert v2023.error("claude-fable-5-2", top_k=40) == "`top_k` is deprecated for this model."
    v2023.ok("claude-opus-4-7", temperature=1.0)  # the default value is still accepted
    both = "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    for model in ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"):
        assert v2023.error(model, temperature=0.2, top_p=0.9) == both
        v2023.ok(model, temperature=0.2)
        v2023.ok(model, top_p=0.9)
    assert "less than or equal to 1" in v2023.error("claude-haiku-4-5", temperature=1.5)


@pytest.mark.parametrize(("model", "accepted"), [("claude-haiku-4-5", True), ("claude-opus-4-5", True),
                                                 ("claude-sonnet-4-6", False), ("claude-haiku-5-5", False)])
def test_assistant_prefill_is_refused_from_4_6_on(v2023: Api, model: str, accepted: bool) -> None:
    messages = [{"role": "user", "content": ROW}, {"role": "assistant", "content": "{"}]
    if accepted:
        v2023.ok(model, messages=messages)
    else:
        assert v2023.error(model, messages=messages) == (
            "This model does not support assistant message prefill. The conversation must end with a user message."
        )


ENABLED = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize(
    ("model", "thinking", "effort", "needle"),
    [
        ("claude-haiku-5-5", ENABLED, None, '"thinking.type.enabled" is not supported for this model'),
        ("claude-opus-4-7", ENABLED, None, '"thinking.type.enabled" is not supported'),
        ("claude-haiku-4-5", {"type": "adaptive"}, None, '"thinking.type.adaptive" is not supported'),
        ("claude-opus-5-5", {"type": "disabled"}, None, '"thinking.type.disabled" is not supported'),
        ("claude-fable-5-1", {"type": "disabled"}, None, '"thinking.type.disabled" is not supported'),
        ("claude-sonnet-5-5", {"type": "disabled"}, None, "between_tools"),
        ("claude-haiku-5-5", {"type": "disabled"}, "xhigh", 'effort "xhigh"'),
        ("claude-opus-5", {"type": "disabled"}, "max", 'effort "max"'),
        ("claude-sonnet-5-5", {"type": "between_tools"}, "max", 'effort "max"'),
        ("claude-haiku-4-5", {"type": "between_tools"}, None, '"thinking.type.between_tools" is not supported'),
        ("claude-haiku-4-5", {"type": "enabled", "budget_tokens": 512}, None, "greater than or equal to 1024"),
        ("claude-haiku-4-5", {"type": "enabled", "budget_tokens": 4096}, None, "`max_tokens` must be greater"),
        ("claude-haiku-5-5", {"type": "telepathic"}, None, "does not match any of the expected tags"),
    ],
)
def test_thinking_configurations_the_model_rejects(
    v2023: Api, v2026: Api, model: str, thinking: dict[str, Any], effort: str | None, needle: str
) -> None:
    extra: dict[str, Any] = {"thinking": thinking}
    if effort:
        extra["output_config"] = {"effort": effort}
    for api in (v2023, v2026):
        assert needle in api.error(model, **extra)


@pytest.mark.parametrize(
    ("model", "thinking", "effort"),
    [
        ("claude-haiku-4-5", ENABLED, None),
        ("claude-opus-4-6", ENABLED, None),  # deprecated there, still accepted
        ("claude-sonnet-5", {"type": "disabled"}, "max"),
        ("claude-haiku-5-5", {"type": "disabled"}, "high"),
        ("claude-sonnet-5-5", {"type": "between_tools"}, "low"),
        ("claude-mythos-preview", ENABLED, None),
    ],
)
def test_thinking_configurations_the_model_accepts(
    v2026: Api, model: str, thinking: dict[str, Any], effort: str | None
) -> None:
    extra: dict[str, Any] = {"thinking": thinking}
    if effort:
        extra["output_config"] = {"effort": effort}
    answer = v2026.ok(model, **extra)
    assert ("thinking" in kinds(answer)) == (thinking["type"] == "enabled")


def test_effort_levels_per_model(v2026: Api) -> None:
    assert "not supported for this model" in v2026.error("claude-haiku-4-5", output_config={"effort": "low"})
    assert "not supported for this model" in v2026.error("claude-sonnet-4-5", output_config={"effort": "high"})
    assert v2026.error("claude-opus-4-6", output_config={"effort": "xhigh"}) == (
        'output_config.effort: "xhigh" is not supported for this model; supported values: low, medium, high, max'
    )
    assert '"max" is not supported' in v2026.error("claude-opus-4-5", output_config={"effort": "max"})
    assert "Input should be" in v2026.error("claude-haiku-5-5", output_config={"effort": "extreme"})
    v2026.ok("claude-opus-4-6", output_config={"effort": "max"})
    v2026.ok("claude-opus-4-5", output_config={"effort": "low"})


def test_forced_tool_choice(v2026: Api) -> None:
    tools = [{"name": "record_label", "description": "Record the label",
              "input_schema": {"type": "object", "properties": {"label": {"enum": ["late", "fine"]}},
                               "required": ["label"]}}]
    forced = {"tools": tools, "tool_choice": {"type": "tool", "name": "record_label"}}
    refused = 'tool_choice: type "tool" and "any" are not supported for this model.'
    for model in ("claude-opus-5-5", "claude-sonnet-5-5", "claude-fable-5-1", "claude-fable-5-2"):
        assert v2026.error(model, **forced) == refused
        assert v2026.error(model, tools=tools, tool_choice={"type": "any"}) == refused
        v2026.ok(model, tools=tools, tool_choice={"type": "auto"})
    assert v2026.error("claude-haiku-4-5", thinking=ENABLED, **forced) == (
        "Thinking may not be enabled when tool_choice forces tool use."
    )
    plain = v2026.ok("claude-haiku-4-5", **forced)
    assert kinds(plain) == ["tool_use"] and plain["content"][0]["input"] == {"label": "late"}
    newer = v2026.ok("claude-haiku-5-5", **forced)  # thinks by default, but goes straight to a forced call
    assert kinds(newer) == ["tool_use"] and thinking_tokens(newer) == 0


def test_retired_models_are_404_naming_the_model(v2023: Api, v2026: Api) -> None:
    for api in (v2023, v2026):
        for model in ("claude-sonnet-4-20250514", "claude-3-5-haiku-20241022", "claude-opus-4-1"):
            status, body = api.message(model)
            assert status == 404
            assert body["error"] == {"type": "not_found_error", "message": f"model: {model}"}
    answer = v2026.ok("claude-next-7")  # unknown but Claude-like: served as a current model
    assert answer["model"] == "claude-next-7" and kinds(answer) == ["thinking", "text"]


# -- the Models API is the truth about what is a 400 --------------------------------------------
def test_models_api_capabilities_say_exactly_what_is_a_400(v2026: Api) -> None:
    status, page = v2026.get("/v1/models?limit=1000")
    assert status == 200 and not page["has_more"] and len(page["data"]) >= 15
    checked = 0
    for info in page["data"]:
        model, caps = info["id"], info["capabilities"]
        assert set(caps) == {"batch", "citations", "code_execution", "context_management", "effort", "image_input",
                             "pdf_input", "server_tools", "structured_outputs", "thinking"}
        assert info["lifecycle"] in ("active", "deprecated") and info["max_tokens"] > 0
        for kind, support in caps["thinking"]["types"].items():
            thinking: dict[str, Any] = {"type": kind}
            if kind == "enabled":
                thinking["budget_tokens"] = 1024
            status, body = v2026.message(model, thinking=thinking)
            assert (status == 200) == support["supported"], (model, kind, body)
            checked += 1
        for level in ("low", "medium", "high", "xhigh", "max"):
            status, body = v2026.message(model, output_config={"effort": level})
            assert (status == 200) == caps["effort"][level]["supported"], (model, level, body)
            checked += 1
        assert caps["effort"]["supported"] == any(caps["effort"][e]["supported"] for e in ("low", "high"))
    assert checked > 150


def test_models_list_filters_by_lifecycle_and_pages(v2026: Api) -> None:
    _, default = v2026.get("/v1/models?limit=1000")
    _, retired = v2026.get("/v1/models?limit=1000&lifecycle[]=retired")
    _, both = v2026.get("/v1/models?limit=1000&lifecycle[]=active&lifecycle[]=retired")
    assert {m["lifecycle"] for m in retired["data"]} == {"retired"}
    assert "claude-sonnet-4-20250514" in [m["id"] for m in retired["data"]]
    assert len(both["data"]) == len(default["data"]) + len(retired["data"])  # nothing is deprecated today
    created = [m["created_at"] for m in default["data"]]
    assert created == sorted(created, reverse=True), "newest first"
    _, first = v2026.get("/v1/models?limit=3")
    _, second = v2026.get(f"/v1/models?limit=3&after_id={first['last_id']}")
    assert [m["id"] for m in first["data"] + second["data"]] == [m["id"] for m in default["data"][:6]]
    status, body = v2026.get("/v1/models/claude-haiku-4-5")
    assert status == 200 and body["id"] == "claude-haiku-4-5-20251001"
    status, body = v2026.get("/v1/models/gpt-4o")
    assert status == 404 and body["error"]["message"] == "model: gpt-4o"


# -- thinking in answers ----------------------------------------------------------------------
def test_thinking_block_comes_first_and_is_billed_as_output(v2026: Api) -> None:
    answer = v2026.ok("claude-haiku-5-5")  # thinks by default, at medium effort
    assert kinds(answer) == ["thinking", "text"]
    block = answer["content"][0]
    assert block["thinking"] == "" and len(block["signature"]) > 20  # display defaults to "omitted"
    text = answer["content"][1]["text"]
    text_tokens = math.ceil(len(text) * 1.3 / 4)  # the newer tokenizer
    usage = answer["usage"]
    assert usage["output_tokens"] == thinking_tokens(answer) + text_tokens
    assert thinking_tokens(answer) > 0
    again = v2026.ok("claude-haiku-5-5")
    assert again["content"] == answer["content"] and again["usage"] == usage, "answers are deterministic"
    summarized = v2026.ok("claude-haiku-5-5", thinking={"type": "adaptive", "display": "summarized"})
    assert summarized["content"][0]["thinking"].startswith("The request asks:")
    assert thinking_tokens(summarized) == thinking_tokens(answer)
    classic = v2026.ok("claude-haiku-4-5", thinking=ENABLED)
    assert classic["content"][0]["thinking"], "Haiku 4.5 summarises its thinking by default"


def test_thinking_grows_with_effort_and_prompt(v2026: Api) -> None:
    counts = [thinking_tokens(v2026.ok("claude-opus-5", output_config={"effort": e}, max_tokens=20_000))
              for e in ("low", "medium", "high", "xhigh", "max")]
    assert counts == sorted(counts) and len(set(counts)) == 5, counts
    long = thinking_tokens(v2026.ok("claude-opus-5", text=ROW * 40, output_config={"effort": "low"}))
    assert long > counts[0]


def test_max_tokens_that_run_out_inside_thinking(v2026: Api) -> None:
    answer = v2026.ok("claude-haiku-5-5", max_tokens=16)
    assert answer["stop_reason"] == "max_tokens" and kinds(answer) == ["thinking"]
    assert answer["usage"]["output_tokens"] == 16 == thinking_tokens(answer)


@pytest.mark.parametrize(("model", "thinking"), [("claude-haiku-4-5", None), ("claude-opus-4-8", None),
                                                 ("claude-haiku-5-5", {"type": "disabled"}),
                                                 ("claude-sonnet-5-5", {"type": "between_tools"})])
def test_no_thinking_block_when_thinking_is_off(v2026: Api, model: str, thinking: dict[str, Any] | None) -> None:
    answer = v2026.ok(model, **({"thinking": thinking} if thinking else {}))
    assert kinds(answer) == ["text"] and thinking_tokens(answer) == 0


def test_thinking_that_cannot_be_turned_off_is_always_there(v2026: Api) -> None:
    for model in ("claude-opus-5-5", "claude-fable-5-2", "claude-mythos-5"):
        assert kinds(v2026.ok(model)) == ["thinking", "text"]


# -- tokens -------------------------------------------------------------------------------------
def test_newer_tokenizer_counts_about_30_percent_more_and_count_tokens_agrees(v2026: Api) -> None:
    body = {"messages": [{"role": "user", "content": "word " * 400}], "system": "You are terse. " * 20}
    counts = {}
    for model in ("claude-haiku-4-5", "claude-haiku-5-5", "claude-opus-4-7", "claude-opus-4-6"):
        status, counted = v2026.post("/v1/messages/count_tokens", {"model": model, **body})
        assert status == 200
        answer = v2026.ok(model, **body, thinking={"type": "disabled"})
        assert answer["usage"]["input_tokens"] == counted["input_tokens"]
        counts[model] = counted["input_tokens"]
    assert counts["claude-haiku-4-5"] == counts["claude-opus-4-6"]
    assert counts["claude-haiku-5-5"] == counts["claude-opus-4-7"]
    assert 1.25 < counts["claude-haiku-5-5"] / counts["claude-haiku-4-5"] < 1.35


def test_a_prompt_longer_than_the_context_window_is_a_400(v2026: Api) -> None:
    message = v2026.error("claude-haiku-4-5", text="x" * 820_000)
    assert message.startswith("prompt is too long: 205000 tokens > 200000 maximum")
    assert v2026.error("claude-haiku-4-5", max_tokens=64_001).startswith("max_tokens: 64001 > 64000")


# -- refusals -----------------------------------------------------------------------------------
def test_the_refusal_marker(v2026: Api) -> None:
    answer = v2026.ok("claude-opus-5-5", text=f"{ROW} <<sim:refuse:cyber>>")
    assert answer["stop_reason"] == "refusal" and answer["content"] == []
    assert answer["stop_details"]["type"] == "refusal" and answer["stop_details"]["category"] == "cyber"
    assert "cyber" in answer["stop_details"]["explanation"]
    assert answer["usage"]["output_tokens"] == 0 and answer["usage"]["input_tokens"] > 0
    default = v2026.ok("claude-haiku-5-5", system="<<sim:refuse>> You classify reviews.")
    assert default["stop_details"]["category"] == "general_harms"
    older = v2026.ok("claude-haiku-4-5", text="<<sim:refuse:bio>>")
    assert older["stop_reason"] == "refusal"
    assert older["stop_details"] == {"type": "refusal", "category": None, "explanation": None}
    assert v2026.ok("claude-opus-5-5")["stop_details"] is None


# -- batches: rules bite asynchronously --------------------------------------------------------
def run_batch(api: Api, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    status, batch = api.post("/v1/messages/batches", {"requests": requests})
    assert status == 200 and batch["processing_status"] == "in_progress", batch
    deadline = time.time() + 30
    while True:
        _, batch = api.get(f"/v1/messages/batches/{batch['id']}")
        if batch["processing_status"] == "ended":
            break
        assert time.time() < deadline
        time.sleep(0.05)
    r = api.http.get(batch["results_url"], headers={"anthropic-version": api.version})
    assert r.status_code == 200
    return {(line := json.loads(raw))["custom_id"]: line["result"] for raw in r.text.splitlines()}


def test_a_batch_request_the_version_or_model_rejects_is_an_errored_result(v2023: Api, v2026: Api) -> None:
    def req(cid: str, model: str = "claude-haiku-4-5", **extra: Any) -> dict[str, Any]:
        return {"custom_id": cid, "params": {"model": model, "max_tokens": 500,
                                             "messages": [{"role": "user", "content": ROW}], **extra}}

    requests = [req("temperature", temperature=0.0), req("plain"), req("budget", "claude-haiku-5-5", thinking=ENABLED),
                req("retired", "claude-sonnet-4-20250514"), req("thinks", "claude-haiku-5-5")]
    new = run_batch(v2026, requests)
    assert new["temperature"]["type"] == "errored"
    assert new["temperature"]["error"]["error"] == {
        "type": "invalid_request_error", "message": "temperature: Extra inputs are not permitted"}
    assert new["budget"]["error"]["error"]["type"] == "invalid_request_error"
    assert new["retired"]["error"]["error"] == {"type": "not_found_error", "message": "model: claude-sonnet-4-20250514"}
    assert new["plain"]["type"] == "succeeded"
    thinks = new["thinks"]["message"]
    assert kinds(thinks) == ["thinking", "text"] and thinks["usage"]["service_tier"] == "batch"
    old = run_batch(v2023, requests)
    assert old["temperature"]["type"] == "succeeded"
    assert old["budget"]["type"] == "errored" and old["retired"]["type"] == "errored"


def test_output_that_reaches_the_context_window_stops_there(v2026: Api) -> None:
    answer = v2026.ok("claude-haiku-4-5", text="x" * 799_960, max_tokens=500)  # 199,990 of 200,000 tokens
    assert answer["stop_reason"] == "model_context_window_exceeded"
    assert answer["usage"]["output_tokens"] == 10
