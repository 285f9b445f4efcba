"""The six batch calls through the official sync SDK, over real HTTP."""

from __future__ import annotations

import json
import re

import anthropic
import httpx2
import pytest
from sim_helpers import MODEL, params, requests

from batch_magic.simulator import FakeClock, Simulator

ID_RE = re.compile(r"^msgbatch_01[0-9A-Za-z]{22}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_create_retrieve_results_roundtrip(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    batch = sdk_client.messages.batches.create(requests=requests(5))
    assert ID_RE.match(batch.id)
    assert batch.type == "message_batch"
    got = sdk_client.messages.batches.retrieve(batch.id)
    assert got.processing_status == "ended"
    assert got.request_counts.succeeded == 5
    assert got.results_url == f"{simulator.url}/v1/messages/batches/{batch.id}/results"
    results = list(sdk_client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == [f"r{i}" for i in range(5)]
    for r in results:
        assert r.result.type == "succeeded"
        msg = r.result.message
        assert msg.type == "message" and msg.role == "assistant" and msg.model == MODEL
        assert msg.id.startswith("msg_01")
        assert msg.usage.service_tier == "batch"
        assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
        assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
        n = r.custom_id[1:]
        assert f"Request number {n}" in msg.content[0].text


def test_raw_json_shapes_and_timestamps(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    raw = sdk_client.messages.batches.with_raw_response.create(requests=requests(2))
    assert raw.headers["request-id"].startswith("req_")
    body = json.loads(raw.http_response.content)
    assert set(body) == {
        "id", "type", "processing_status", "request_counts", "ended_at", "created_at",
        "expires_at", "archived_at", "cancel_initiated_at", "results_url",
    }
    assert set(body["request_counts"]) == {"processing", "succeeded", "errored", "canceled", "expired"}
    for key in ("created_at", "expires_at"):
        assert TS_RE.match(body[key]), body[key]
    # Create always answers in_progress, even with zero processing time.
    assert body["processing_status"] == "in_progress" and body["request_counts"]["processing"] == 2
    assert body["ended_at"] is None and body["results_url"] is None
    assert body["archived_at"] is None and body["cancel_initiated_at"] is None
    ended = json.loads(sdk_client.messages.batches.with_raw_response.retrieve(body["id"]).http_response.content)
    assert ended["processing_status"] == "ended" and TS_RE.match(ended["ended_at"])
    batch = raw.parse()
    assert (batch.expires_at - batch.created_at).total_seconds() == 24 * 3600


def test_counts_stay_processing_until_the_batch_ends(
    simulator: Simulator, fake_clock: FakeClock, sdk_client: anthropic.Anthropic
) -> None:
    simulator.configure(processing_time=60)
    batch = sdk_client.messages.batches.create(
        requests=[*requests(4), {"custom_id": "bad", "params": {**params(), "model": "gpt-4o"}}]
    )
    for _ in range(5):
        b = sdk_client.messages.batches.retrieve(batch.id)
        assert b.processing_status == "in_progress"
        assert b.request_counts.model_dump() == {
            "processing": 5, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0
        }
        assert b.results_url is None and b.ended_at is None
        fake_clock.advance(11.9)
    fake_clock.advance(1)
    b = sdk_client.messages.batches.retrieve(batch.id)
    assert b.processing_status == "ended"
    assert b.request_counts.model_dump() == {
        "processing": 0, "succeeded": 4, "errored": 1, "canceled": 0, "expired": 0
    }
    assert b.ended_at is not None and (b.ended_at - b.created_at).total_seconds() == pytest.approx(60)


def test_results_before_the_end_is_refused_by_the_sdk(
    simulator: Simulator, fake_clock: FakeClock, sdk_client: anthropic.Anthropic, http: httpx2.Client
) -> None:
    simulator.configure(processing_time=10)
    batch = sdk_client.messages.batches.create(requests=requests(1))
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        sdk_client.messages.batches.results(batch.id)
    # Asking the results path directly is a 400, not a hang.
    r = http.get(f"/v1/messages/batches/{batch.id}/results")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_results_stream_is_strict_jsonl_in_a_stable_shuffled_order(
    simulator: Simulator, sdk_client: anthropic.Anthropic, http: httpx2.Client
) -> None:
    batch = sdk_client.messages.batches.create(requests=requests(50))
    url = sdk_client.messages.batches.retrieve(batch.id).results_url
    assert url is not None
    r1 = http.get(url, headers={"Accept": "application/binary"})
    r2 = http.get(url)
    assert r1.status_code == 200
    assert r1.headers["content-type"] == "application/x-jsonl"
    assert r1.headers["request-id"].startswith("req_")
    data = r1.content
    assert b"\r" not in data and data.endswith(b"\n") and b"\n\n" not in data
    lines = data.split(b"\n")[:-1]
    assert len(lines) == 50 == data.count(b"\n")
    ids = [json.loads(line)["custom_id"] for line in lines]
    assert sorted(ids) == sorted(f"r{i}" for i in range(50))
    assert ids != [f"r{i}" for i in range(50)], "results must not come back in request order"
    assert r2.content == data, "the same batch always gives the same bytes"


def test_every_result_type(simulator: Simulator, fake_clock: FakeClock, sdk_client: anthropic.Anthropic, http: httpx2.Client) -> None:
    simulator.configure(processing_time=100, expire_rate=0.25, error_rates={"overloaded_error": 0.25})
    batch = sdk_client.messages.batches.create(
        requests=[*requests(40), {"custom_id": "badmodel", "params": {**params(), "model": "gpt-4o"}}]
    )
    fake_clock.advance(50)
    sdk_client.messages.batches.cancel(batch.id)
    fake_clock.advance(1)
    b = sdk_client.messages.batches.retrieve(batch.id)
    assert b.processing_status == "ended"
    results = {r.custom_id: r.result for r in sdk_client.messages.batches.results(batch.id)}
    kinds = [r.type for r in results.values()]
    counts = b.request_counts
    assert counts.processing == 0
    assert sum([counts.succeeded, counts.errored, counts.canceled, counts.expired]) == 41
    for kind in ("succeeded", "errored", "canceled", "expired"):
        assert kinds.count(kind) == getattr(counts, kind)
        assert kinds.count(kind) > 0, kind
    errors = {r.error.error.type for r in results.values() if r.type == "errored"}
    assert "overloaded_error" in errors
    for r in results.values():
        if r.type == "errored":
            assert r.error.type == "error"
    raw = http.get(b.results_url or "").text
    for line in raw.splitlines():
        obj = json.loads(line)
        if obj["result"]["type"] in ("canceled", "expired"):
            assert obj["result"] == {"type": obj["result"]["type"]}
        if obj["result"]["type"] == "errored":
            assert set(obj["result"]) == {"type", "error"}
            assert set(obj["result"]["error"]) == {"type", "error"}
            assert set(obj["result"]["error"]["error"]) == {"type", "message"}


def test_bad_params_are_errored_results_with_the_nested_shape(
    simulator: Simulator, sdk_client: anthropic.Anthropic
) -> None:
    bad = {
        "model_gpt": {**params(), "model": "gpt-4o"},
        "no_max_tokens": {k: v for k, v in params().items() if k != "max_tokens"},
        "zero_max_tokens": {**params(), "max_tokens": 0},
        "no_messages": {"model": MODEL, "max_tokens": 10},
        "empty_messages": {**params(), "messages": []},
        "strict_ok": params(),
    }
    batch = sdk_client.messages.batches.create(requests=[{"custom_id": k, "params": v} for k, v in bad.items()])
    results = {r.custom_id: r.result for r in sdk_client.messages.batches.results(batch.id)}
    assert results["strict_ok"].type == "succeeded"
    e = results["model_gpt"]
    assert e.type == "errored" and e.error.error.type == "not_found_error" and "gpt-4o" in e.error.error.message
    for cid in ("no_max_tokens", "zero_max_tokens"):
        assert results[cid].error.error.type == "invalid_request_error"
        assert "max_tokens" in results[cid].error.error.message
    for cid in ("no_messages", "empty_messages"):
        assert results[cid].error.error.type == "invalid_request_error"
        assert "messages" in results[cid].error.error.message
    counts = sdk_client.messages.batches.retrieve(batch.id).request_counts
    assert (counts.succeeded, counts.errored) == (1, 5)


@pytest.mark.parametrize(
    "model", ["claude-haiku-4-5-20251001", "claude-haiku-4-5", "claude-opus-9-9", "claude-sonnet-5-5"]
)
def test_any_current_or_claude_looking_model_is_accepted(sdk_client: anthropic.Anthropic, model: str) -> None:
    batch = sdk_client.messages.batches.create(requests=[{"custom_id": "a", "params": {**params(), "model": model}}])
    [r] = list(sdk_client.messages.batches.results(batch.id))
    assert r.result.type == "succeeded" and r.result.message.model == model


@pytest.mark.parametrize("model", ["claude-sonnet-4-20250514", "claude-3-5-sonnet-latest", "claude-opus-4-1"])
def test_retired_models_are_not_found(sdk_client: anthropic.Anthropic, model: str) -> None:
    batch = sdk_client.messages.batches.create(requests=[{"custom_id": "a", "params": {**params(), "model": model}}])
    [r] = list(sdk_client.messages.batches.results(batch.id))
    assert r.result.type == "errored" and r.result.error.error.type == "not_found_error"
    assert r.result.error.error.message == f"model: {model}"


def test_strict_models_restricts(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    simulator.configure(strict_models=["claude-haiku-4-5"])
    batch = sdk_client.messages.batches.create(
        requests=[
            {"custom_id": "ok", "params": params()},
            {"custom_id": "no", "params": {**params(), "model": "claude-opus-4-5"}},
        ]
    )
    results = {r.custom_id: r.result for r in sdk_client.messages.batches.results(batch.id)}
    assert results["ok"].type == "succeeded"
    assert results["no"].type == "errored" and results["no"].error.error.type == "not_found_error"


def test_list_is_newest_first_and_paginates(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    ids = [sdk_client.messages.batches.create(requests=requests(1)).id for _ in range(7)]
    newest_first = ids[::-1]
    page = sdk_client.messages.batches.list(limit=3)
    assert [b.id for b in page.data] == newest_first[:3]
    assert page.has_more is True and page.first_id == newest_first[0] and page.last_id == newest_first[2]
    page2 = sdk_client.messages.batches.list(limit=3, after_id=page.last_id)
    assert [b.id for b in page2.data] == newest_first[3:6] and page2.has_more is True
    page3 = sdk_client.messages.batches.list(limit=3, after_id=page2.last_id)
    assert [b.id for b in page3.data] == newest_first[6:] and page3.has_more is False
    back = sdk_client.messages.batches.list(limit=2, before_id=newest_first[4])
    assert [b.id for b in back.data] == newest_first[2:4] and back.has_more is True
    # Auto-pagination walks every batch once, newest first.
    assert [b.id for b in sdk_client.messages.batches.list(limit=2)] == newest_first
    default = sdk_client.messages.batches.list()
    assert len(default.data) == 7 and default.has_more is False


def test_list_backward_auto_pagination(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    ids = [sdk_client.messages.batches.create(requests=requests(1)).id for _ in range(5)]
    seen = [b.id for b in sdk_client.messages.batches.list(limit=2, before_id=ids[0])]
    assert sorted(seen) == sorted(ids[1:]) and len(seen) == 4


def test_list_of_nothing(sdk_client: anthropic.Anthropic) -> None:
    page = sdk_client.messages.batches.list()
    assert page.data == [] and page.has_more is False and page.first_id is None and page.last_id is None


@pytest.mark.parametrize("limit", [0, 1001])
def test_list_limit_out_of_range(sdk_client: anthropic.Anthropic, limit: int) -> None:
    with pytest.raises(anthropic.BadRequestError):
        sdk_client.messages.batches.list(limit=limit)


def test_cancel_goes_through_canceling(
    simulator: Simulator, fake_clock: FakeClock, sdk_client: anthropic.Anthropic
) -> None:
    simulator.configure(processing_time=100, cancel_delay=5)
    batch = sdk_client.messages.batches.create(requests=requests(10))
    fake_clock.advance(35)
    c = sdk_client.messages.batches.cancel(batch.id)
    assert c.processing_status == "canceling" and c.cancel_initiated_at is not None
    assert c.request_counts.processing == 10
    again = sdk_client.messages.batches.cancel(batch.id)  # idempotent while canceling
    assert again.cancel_initiated_at == c.cancel_initiated_at
    fake_clock.advance(4.9)
    assert sdk_client.messages.batches.retrieve(batch.id).processing_status == "canceling"
    fake_clock.advance(0.2)
    b = sdk_client.messages.batches.retrieve(batch.id)
    assert b.processing_status == "ended"
    # 40 of 100 seconds had passed when the cancel took effect: 4 of 10 finished.
    assert (b.request_counts.succeeded, b.request_counts.canceled) == (4, 6)
    kinds = sorted(r.result.type for r in sdk_client.messages.batches.results(batch.id))
    assert kinds == ["canceled"] * 6 + ["succeeded"] * 4


def test_cancel_of_an_ended_batch_and_delete_of_a_running_one_are_400(
    simulator: Simulator, fake_clock: FakeClock, sdk_client: anthropic.Anthropic
) -> None:
    simulator.configure(processing_time=10)
    batch = sdk_client.messages.batches.create(requests=requests(1))
    with pytest.raises(anthropic.BadRequestError, match="can only be deleted once"):
        sdk_client.messages.batches.delete(batch.id)
    fake_clock.advance(10)
    with pytest.raises(anthropic.BadRequestError, match="already ended"):
        sdk_client.messages.batches.cancel(batch.id)
    # 400s are not retried: one request each.
    assert [r.status for r in simulator.requests if r.endpoint in ("delete", "cancel")] == [400, 400]


def test_delete(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    batch = sdk_client.messages.batches.create(requests=requests(1))
    deleted = sdk_client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        sdk_client.messages.batches.retrieve(batch.id)
    assert batch.id not in simulator.batch_ids()
    assert sdk_client.messages.batches.list().data == []


def test_unknown_id_is_404_everywhere(sdk_client: anthropic.Anthropic) -> None:
    bogus = "msgbatch_01" + "x" * 22
    for call in (
        sdk_client.messages.batches.retrieve,
        sdk_client.messages.batches.cancel,
        sdk_client.messages.batches.delete,
        sdk_client.messages.batches.results,
    ):
        with pytest.raises(anthropic.NotFoundError) as err:
            call(bogus)
        assert err.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        assert err.value.request_id and err.value.request_id.startswith("req_")


def test_expiry_after_24_hours(simulator: Simulator, fake_clock: FakeClock, sdk_client: anthropic.Anthropic) -> None:
    simulator.configure(processing_time=48 * 3600)
    batch = sdk_client.messages.batches.create(requests=requests(10))
    fake_clock.advance(24 * 3600 - 1)
    assert sdk_client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    fake_clock.advance(1)
    b = sdk_client.messages.batches.retrieve(batch.id)
    assert b.processing_status == "ended" and b.ended_at == b.expires_at
    assert (b.request_counts.succeeded, b.request_counts.expired) == (5, 5)


def test_archiving_after_retention(simulator: Simulator, fake_clock: FakeClock, sdk_client: anthropic.Anthropic) -> None:
    batch = sdk_client.messages.batches.create(requests=requests(2))
    fake_clock.advance(29 * 86400 - 10)
    assert len(list(sdk_client.messages.batches.results(batch.id))) == 2
    fake_clock.advance(10)
    b = sdk_client.messages.batches.retrieve(batch.id)
    assert b.archived_at is not None and (b.archived_at - b.created_at).days == 29
    with pytest.raises(anthropic.NotFoundError, match="archived"):
        sdk_client.messages.batches.results(batch.id)
    assert sdk_client.messages.batches.delete(batch.id).type == "message_batch_deleted"


def test_speed_scales_every_duration(simulator: Simulator, fake_clock: FakeClock, sdk_client: anthropic.Anthropic) -> None:
    simulator.configure(processing_time=3600, speed=60)
    batch = sdk_client.messages.batches.create(requests=requests(1))
    fake_clock.advance(59)
    assert sdk_client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    fake_clock.advance(1)
    assert sdk_client.messages.batches.retrieve(batch.id).processing_status == "ended"


def test_per_request_time(simulator: Simulator, fake_clock: FakeClock, sdk_client: anthropic.Anthropic) -> None:
    simulator.configure(processing_time=1, per_request_time=0.5)
    batch = sdk_client.messages.batches.create(requests=requests(10))
    fake_clock.advance(5.9)
    assert sdk_client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    fake_clock.advance(0.1)
    assert sdk_client.messages.batches.retrieve(batch.id).processing_status == "ended"


def test_beta_flavour_uses_the_same_paths(simulator: Simulator, sdk_client: anthropic.Anthropic, http: httpx2.Client) -> None:
    batch = sdk_client.beta.messages.batches.create(requests=requests(2), betas=["message-batches-2024-09-24"])
    got = sdk_client.beta.messages.batches.retrieve(batch.id)
    assert got.processing_status == "ended"
    assert len(list(sdk_client.beta.messages.batches.results(batch.id))) == 2
    assert [b.id for b in sdk_client.beta.messages.batches.list()] == [batch.id]
    create = next(r for r in simulator.requests if r.endpoint == "create")
    assert "anthropic-beta" in create.headers
    # Older SDKs add ?beta=true to the same paths.
    r = http.get(f"/v1/messages/batches/{batch.id}?beta=true")
    assert r.status_code == 200 and r.json()["id"] == batch.id


def test_request_log_masks_secrets_and_names_endpoints(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    batch = sdk_client.messages.batches.create(requests=requests(1))
    list(sdk_client.messages.batches.results(batch.id))
    log = simulator.requests
    assert [r.endpoint for r in log] == ["create", "retrieve", "results"]
    assert all(r.status == 200 for r in log)
    assert log[1].batch_id == batch.id
    assert all("sk-test" not in json.dumps(r.headers) for r in log)
    assert log[0].headers["authorization"] == "Bearer ***"
    assert log[0].headers["anthropic-version"]
