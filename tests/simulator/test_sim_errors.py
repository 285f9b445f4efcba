"""Error answers, the SDK's exception classes and retries, and scripted faults."""

from __future__ import annotations

import json
import time

import anthropic
import httpx2
import pytest
from sim_helpers import params, requests

from batch_magic.simulator import Simulator


def raw_post(http: httpx2.Client, path: str, body: bytes) -> httpx2.Response:
    return http.post(path, content=body)


def assert_error_body(resp: httpx2.Response, status: int, error_type: str) -> dict:
    assert resp.status_code == status
    body = resp.json()
    assert set(body) == {"type", "error", "request_id"}
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["request_id"] == resp.headers["request-id"] and body["request_id"].startswith("req_")
    return body


def test_missing_key_is_401_with_the_real_body(simulator: Simulator, http: httpx2.Client) -> None:
    client = anthropic.Anthropic(
        api_key="unused", base_url=simulator.url, max_retries=0, default_headers={"Authorization": anthropic.Omit()}
    )
    with pytest.raises(anthropic.AuthenticationError) as err:
        client.messages.batches.list()
    assert err.value.status_code == 401
    assert err.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "x-api-key header is required"},
        "request_id": err.value.request_id,
    }
    assert_error_body(http.get("/v1/messages/batches", headers={"x-api-key": ""}), 401, "authentication_error")


def test_both_auth_styles_are_accepted(simulator: Simulator, http: httpx2.Client) -> None:
    for headers in ({"x-api-key": "sk-a"}, {"x-api-key": "", "Authorization": "Bearer sk-b"}):
        assert http.get("/v1/messages/batches", headers=headers).status_code == 200


def test_api_keys_option_rejects_other_keys(simulator: Simulator) -> None:
    simulator.configure(api_keys=["sk-good"])
    bad = anthropic.Anthropic(api_key="sk-bad", base_url=simulator.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        bad.messages.batches.list()
    good = anthropic.Anthropic(api_key="sk-good", base_url=simulator.url, max_retries=0)
    assert good.messages.batches.list().data == []


@pytest.mark.parametrize(
    ("reqs", "needle"),
    [
        ([], "at least 1"),
        ([{"custom_id": "has space", "params": params()}], "has space"),
        ([{"custom_id": "x" * 65, "params": params()}], "x" * 65),
        ([{"custom_id": "", "params": params()}], "custom_id"),
        ([{"custom_id": "a", "params": params()}, {"custom_id": "a", "params": params()}], "duplicate custom_id 'a'"),
        ([{"custom_id": "a"}], "params"),
    ],
)
def test_create_validation_is_400_and_stores_nothing(
    simulator: Simulator, sdk_client: anthropic.Anthropic, reqs: list, needle: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        sdk_client.messages.batches.create(requests=reqs)
    assert err.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert needle in err.value.body["error"]["message"]  # type: ignore[index]
    assert simulator.batch_ids() == []
    assert [r.status for r in simulator.requests] == [400]  # not retried


def test_too_many_requests_is_400(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    simulator.configure(max_requests=5)
    with pytest.raises(anthropic.BadRequestError, match="at most 5"):
        sdk_client.messages.batches.create(requests=requests(6))
    assert simulator.batch_ids() == []


def test_the_real_limit_is_100000_requests(simulator: Simulator, http: httpx2.Client) -> None:
    one = b'{"custom_id":"a","params":{}}'
    body = b'{"requests":[' + b",".join([one] * 100_001) + b"]}"
    resp = raw_post(http, "/v1/messages/batches", body)
    assert_error_body(resp, 400, "invalid_request_error")
    assert "100000" in resp.json()["error"]["message"]


def test_body_over_the_limit_is_413_and_the_connection_stays_usable(
    simulator: Simulator, sdk_client: anthropic.Anthropic
) -> None:
    simulator.configure(max_body_bytes=10_000)
    with pytest.raises(anthropic.APIStatusError) as err:
        sdk_client.messages.batches.create(requests=requests(200))
    assert err.value.status_code == 413
    assert err.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    assert simulator.batch_ids() == []
    # Same client, same keep-alive connection: still fine.
    batch = sdk_client.messages.batches.create(requests=requests(2))
    assert simulator.batch_ids() == [batch.id]


def test_default_body_limit_is_256_mb() -> None:
    assert Simulator().options.max_body_bytes == 256 * 1024 * 1024


def test_oversized_content_length_is_refused_before_reading(simulator: Simulator) -> None:
    import socket

    host, port = simulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(
            b"POST /v1/messages/batches HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\n"
            b"Content-Length: 5000000000\r\n\r\n{"
        )
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"request_too_large" in head or b"Connection: close" in head


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b""])
def test_malformed_json_is_400(simulator: Simulator, body: bytes, http: httpx2.Client) -> None:
    assert_error_body(raw_post(http, "/v1/messages/batches", body), 400, "invalid_request_error")


def test_unknown_path_is_404_json(simulator: Simulator, http: httpx2.Client) -> None:
    assert_error_body(http.get("/v1/nothing"), 404, "not_found_error")


@pytest.mark.parametrize(
    ("status", "exc", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.APIStatusError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (504, anthropic.InternalServerError, "timeout_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_status_codes_map_to_sdk_exceptions(
    simulator: Simulator, status: int, exc: type[Exception], error_type: str
) -> None:
    simulator.add_fault("list", status)
    client = anthropic.Anthropic(api_key="sk-test", base_url=simulator.url, max_retries=0)
    with pytest.raises(exc) as err:
        client.messages.batches.list()
    e = err.value
    assert isinstance(e, anthropic.APIStatusError)
    assert e.status_code == status
    assert e.body["error"]["type"] == error_type  # type: ignore[index]
    assert e.request_id and e.request_id.startswith("req_")
    if status == 413:
        assert isinstance(e, anthropic.ContentTooLargeError)


def test_two_429s_then_success_are_retried_by_the_sdk(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    simulator.add_fault("create", 429, times=2)
    batch = sdk_client.messages.batches.create(requests=requests(1))
    log = [r for r in simulator.requests if r.endpoint == "create"]
    assert [r.status for r in log] == [429, 429, 200]
    assert [r.headers.get("x-stainless-retry-count") for r in log] == ["0", "1", "2"]
    assert simulator.batch_ids() == [batch.id]
    # The wait the 429 asks for is short, so the SDK's retries are quick.
    simulator.add_fault("create", 429, times=1)
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk_client.with_options(max_retries=0).messages.batches.create(requests=requests(1))
    assert caught.value.response.headers["retry-after-ms"] == "10"


def test_429_carries_retry_after_headers(simulator: Simulator, http: httpx2.Client) -> None:
    simulator.add_fault("retrieve", 429, retry_after=2.5)
    resp = http.get("/v1/messages/batches/msgbatch_01x")
    assert_error_body(resp, 429, "rate_limit_error")
    assert resp.headers["retry-after"] == "3" and resp.headers["retry-after-ms"] == "2500"


def test_retries_give_up_after_max_retries(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    simulator.add_fault("retrieve", 529, retry_after=0.01)
    with pytest.raises(anthropic.OverloadedError):
        sdk_client.messages.batches.retrieve("msgbatch_01x")
    assert [r.status for r in simulator.requests] == [529, 529, 529]


def test_max_retries_zero_raises_at_once(simulator: Simulator) -> None:
    simulator.add_fault("create", 429, times=2)
    client = anthropic.Anthropic(api_key="sk-test", base_url=simulator.url, max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.batches.create(requests=requests(1))
    assert [r.status for r in simulator.requests] == [429]


def test_fault_on_every_endpoint_with_star(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    fault = simulator.add_fault("*", 500, times=1, retry_after=0.01)
    sdk_client.messages.batches.list()
    assert [r.status for r in simulator.requests] == [500, 200]
    assert fault.fired == 1 and fault.exhausted


def test_probability_faults_are_seeded(simulator: Simulator, http: httpx2.Client) -> None:
    def run() -> list[int]:
        simulator.reset()
        simulator.add_fault("list", 500, probability=0.5)
        for _ in range(20):
            http.get("/v1/messages/batches")
        return [r.status for r in simulator.requests]

    first = run()
    assert set(first) == {200, 500}
    assert run() == first


def test_delay_fault_slows_the_answer(simulator: Simulator, sdk_client: anthropic.Anthropic) -> None:
    simulator.add_fault("list", delay=0.3, times=1)
    t0 = time.monotonic()
    sdk_client.messages.batches.list()
    assert time.monotonic() - t0 >= 0.3
    slow = anthropic.Anthropic(api_key="k", base_url=simulator.url, max_retries=0, timeout=0.1)
    simulator.add_fault("list", delay=0.5, times=1)
    with pytest.raises(anthropic.APITimeoutError):
        slow.messages.batches.list()


def test_dropped_results_stream_raises_in_the_sdk_iterator(
    simulator: Simulator, sdk_client: anthropic.Anthropic
) -> None:
    batch = sdk_client.messages.batches.create(requests=requests(30))
    full = [r.custom_id for r in sdk_client.messages.batches.results(batch.id)]
    simulator.add_fault("results", drop_after_lines=7, times=1)
    got = []
    with pytest.raises((httpx2.HTTPError, anthropic.APIError)):
        for r in sdk_client.messages.batches.results(batch.id):
            got.append(r.custom_id)
    # The SDK reads in 64-byte pieces, so the tail of the last line may die with the connection.
    assert len(got) in (6, 7) and got == full[: len(got)]
    log = [r for r in simulator.requests if r.endpoint == "results"]
    assert log[-1].dropped and not log[0].dropped
    # The fault is spent: the next download is whole.
    assert [r.custom_id for r in sdk_client.messages.batches.results(batch.id)] == full


def test_dropped_stream_sends_exactly_n_lines_then_cuts(simulator: Simulator, sdk_client: anthropic.Anthropic, http: httpx2.Client) -> None:
    batch = sdk_client.messages.batches.create(requests=requests(30))
    simulator.add_fault("results", drop_after_lines=7, times=1)
    url = f"{simulator.url}/v1/messages/batches/{batch.id}/results"
    received = b""
    with pytest.raises(httpx2.HTTPError), http.stream("GET", url) as resp:
        for piece in resp.iter_raw():
            received += piece
    assert received.count(b"\n") == 7 and received.endswith(b"\n")


def test_fault_validation() -> None:
    sim = Simulator()
    with pytest.raises(ValueError, match="unknown endpoint"):
        sim.add_fault("nope", 500)
    with pytest.raises(ValueError, match="retry_after"):
        sim.add_fault("list", 429, retry_after=3600)
    with pytest.raises(ValueError, match="drop_after_lines"):
        sim.add_fault("list", drop_after_lines=3)
    with pytest.raises(ValueError, match="needs a status"):
        sim.add_fault("list")


def test_reset_connections_are_not_reported(simulator: Simulator, capfd: pytest.CaptureFixture[str], http: httpx2.Client) -> None:
    import socket

    host, port = simulator.url.removeprefix("http://").split(":")
    for _ in range(5):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /v1/messages/batches HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST, maybe before the answer is written
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v1/messages/batches HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        s.close()  # half a body, then gone
    time.sleep(0.3)
    _out, err = capfd.readouterr()
    assert "Traceback" not in err and "Error" not in err
    assert http.get("/v1/messages/batches").status_code == 200


def test_error_bodies_have_the_real_shape(simulator: Simulator, http: httpx2.Client) -> None:
    resp = http.get("/v1/messages/batches/nope")
    body = assert_error_body(resp, 404, "not_found_error")
    assert json.dumps(body).count("request_id") == 1
