"""A local HTTP gateway in front of the simulator that reports other Models API facts,
or loses answers on the way back.

The simulator's model table is the current one: every model without
structured outputs is retired, and none is deprecated today. To see how a job
treats such models, this gateway answers ``GET /v1/models/{id}`` for the ids
it is given with the ``ModelInfo`` given, and forwards every other request,
unchanged, to the simulator, whose answers come back unchanged. Real HTTP on
both sides, the official SDK in front: only the Models API's answer differs.

``lose(method, path)`` true: the request reaches the simulator, which carries it
out, and the connection is then closed without an answer (a network that drops
the reply: the client cannot tell whether its call happened).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@contextmanager
def gateway(
    upstream: str, models: dict[str, dict[str, Any]], *, lose: Callable[[str, str], bool] | None = None
) -> Iterator[str]:
    """A server on 127.0.0.1 answering ``models`` itself and forwarding the rest to ``upstream``."""
    target = urlparse(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            path = urlparse(self.path).path
            prefix = "/v1/models/"
            if self.command == "GET" and path.startswith(prefix) and path[len(prefix):] in models:
                return self._send(200, {"content-type": "application/json"},
                                  json.dumps(models[path[len(prefix):]]).encode())
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            kept = {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP}
            conn.close()
            if lose is not None and lose(self.command, path):
                self.close_connection = True  # done upstream; the answer never comes back
                return None
            return self._send(answer.status, kept, data)

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def model_info(model_id: str, *, lifecycle: str = "active", retires_at: str | None = None,
               structured_outputs: bool = True, batch: bool = True) -> dict[str, Any]:
    """A ``ModelInfo`` of an older model: extended thinking only, no effort setting."""
    no = {"supported": False}
    return {
        "type": "model", "id": model_id, "display_name": model_id, "created_at": "2025-10-01T00:00:00Z",
        "line": None, "lifecycle": lifecycle, "deprecated_at": "2026-11-01T00:00:00Z" if retires_at else None,
        "retires_at": retires_at, "max_input_tokens": 200_000, "max_tokens": 64_000,
        "capabilities": {
            "batch": {"supported": batch}, "citations": no, "code_execution": no,
            "context_management": {"supported": False},
            "effort": {"supported": False, "low": no, "medium": no, "high": no, "xhigh": no, "max": no},
            "image_input": {"supported": True}, "pdf_input": {"supported": True},
            "server_tools": {"supported": False, "code_execution": no, "web_search": no},
            "structured_outputs": {"supported": structured_outputs},
            "thinking": {"supported": True, "types": {
                "adaptive": no, "between_tools": no, "disabled": {"supported": True}, "enabled": {"supported": True},
            }},
        },
    }
