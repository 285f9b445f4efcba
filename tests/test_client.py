"""What the client tells about the server it talks to."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic

from batch_magic.client import BatchClient


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
