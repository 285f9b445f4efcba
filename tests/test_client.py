"""What the client tells about the server it talks to."""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import anthropic
import pytest

from batch_magic.client import BatchClient, Failure, FailureKind, classify, retry_after_seconds


class _Proxy(BaseHTTPRequestHandler):
    """A local server that is not a simulator (say, a proxy to the real API)."""

    def do_GET(self) -> None:
        body = json.dumps({"data": [], "has_more": False, "first_id": None, "last_id": None}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_in_process_simulator_is_simulated(simulator):
    assert BatchClient(simulator.client()).is_simulator


def test_a_local_proxy_is_not_called_simulated():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        client = BatchClient(anthropic.Anthropic(api_key="k", base_url=url, max_retries=0))
        assert client.is_local and not client.is_simulator
    finally:
        server.shutdown()
        server.server_close()


def test_the_real_api_is_not_simulated():
    client = BatchClient(anthropic.Anthropic(api_key="k"))
    assert not client.is_local and not client.is_simulator  # decided without a call


# -- what a failure means -------------------------------------------------------------
class _Scripted(BaseHTTPRequestHandler):
    """Answers every request with the status and headers the test put in ``script``."""

    script: ClassVar[dict[str, object]] = {}

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        time.sleep(float(self.script.get("delay", 0)))  # type: ignore[arg-type]
        status = int(self.script["status"])  # type: ignore[call-overload]
        body = json.dumps({"type": "error", "error": {"type": "api_error", "message": "scripted"}}).encode()
        self.send_response(status)
        for name, value in dict(self.script.get("headers") or {}).items():  # type: ignore[call-overload]
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    def failure(status: int, headers: dict[str, str] | None = None, *, create: bool = False,
                delay: float = 0.0, timeout: float = 10.0) -> Failure:
        _Scripted.script = {"status": status, "headers": headers or {}, "delay": delay}
        client = BatchClient(anthropic.Anthropic(api_key="k", base_url=url, max_retries=0, timeout=timeout))
        try:
            if create:
                client.create(b'{"requests":[]}')
            else:
                client.retrieve("msgbatch_x")
        except Exception as exc:
            return classify(exc, create=create)
        raise AssertionError("the call did not fail")

    yield failure
    server.shutdown()
    server.server_close()


def test_rate_limits_and_overloads_are_transient_with_the_wait_asked(scripted):
    rate = scripted(429, {"retry-after-ms": "250", "retry-after": "1"}, create=True)
    assert rate.kind is FailureKind.TRANSIENT and rate.retry_after == pytest.approx(0.25)
    overloaded = scripted(529, {"retry-after": "2"}, create=True)
    assert overloaded.kind is FailureKind.TRANSIENT and overloaded.retry_after == 2.0
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    dated = scripted(503, {"retry-after": when})
    assert dated.kind is FailureKind.TRANSIENT and 25 < (dated.retry_after or 0) <= 30
    assert scripted(500).retry_after is None and scripted(500).kind is FailureKind.TRANSIENT


def test_a_create_that_may_have_happened_is_ambiguous(scripted):
    for status in (500, 502, 503, 504, 408):
        assert scripted(status, create=True).kind is FailureKind.AMBIGUOUS, status
    # Even when the server says not to retry: the batch may exist all the same.
    assert scripted(500, {"x-should-retry": "false"}, create=True).kind is FailureKind.AMBIGUOUS
    # No answer in time: it may have been made.
    late = scripted(200, create=True, delay=1.0, timeout=0.3)
    assert late.kind is FailureKind.AMBIGUOUS and "Timeout" in late.detail


def test_the_servers_should_retry_header_wins(scripted):
    assert scripted(500, {"x-should-retry": "false"}).kind is FailureKind.REFUSED
    assert scripted(400, {"x-should-retry": "true"}).kind is FailureKind.TRANSIENT
    assert scripted(400).kind is FailureKind.REFUSED


def test_not_found_and_refusals(scripted):
    gone = scripted(404)
    assert gone.kind is FailureKind.NOT_FOUND and gone.detail.startswith("404 ")
    assert scripted(401).kind is FailureKind.REFUSED and not scripted(403).retriable
    assert scripted(404, create=True).kind is FailureKind.NOT_FOUND


def test_no_server_at_all_is_transient_but_a_create_is_ambiguous():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = BatchClient(anthropic.Anthropic(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0))
    with pytest.raises(anthropic.APIConnectionError) as poll:
        client.retrieve("msgbatch_x")
    assert classify(poll.value).kind is FailureKind.TRANSIENT
    with pytest.raises(anthropic.APIConnectionError) as create:
        client.create(b'{"requests":[]}')
    assert classify(create.value, create=True).kind is FailureKind.AMBIGUOUS


@pytest.mark.parametrize("headers", [
    {"retry-after-ms": "1500"},
    {"retry-after-ms": "abc", "retry-after": "7"},
    {"retry-after": "2.5"},
    {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},  # in the past: no wait
    {"retry-after": "-3"},
    {"retry-after": "soon"},
    {},
])
def test_retry_after_reads_headers_as_the_sdk_does(headers):
    """The SDK's own parser (a private method, so read here, not called by the package)."""
    import httpx2

    sdk = anthropic.Anthropic(api_key="k")
    now = time.time()
    theirs = sdk._parse_retry_after_header(httpx2.Headers(headers))
    ours = retry_after_seconds(httpx2.Headers(headers), now=now)
    # The SDK waits only for a positive value; so do we.
    expected = theirs if theirs is not None and theirs > 0 else None
    assert ours == (pytest.approx(expected, abs=1.0) if expected is not None else None)
