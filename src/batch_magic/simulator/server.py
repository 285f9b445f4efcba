"""HTTP: routes, auth, faults, body limits, JSON and streamed answers.

A ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive. It only moves
bytes; what each call means lives in ``app.py``. A client dropping a
keep-alive connection between polls is normal traffic: it is never reported.
Nothing is printed per request unless the server is verbose.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson

from .app import App, stream_events
from .protocol import APIError, error_body, new_request_id
from .results import blocks
from .rules import check_version

_BATCH = r"/v1/messages/batches/(?P<id>[^/]+)"
_FILE = r"/v1/files/(?P<id>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/v1/messages/batches"), "create"),
    ("GET", re.compile(r"/v1/messages/batches"), "list"),
    ("GET", re.compile(_BATCH + r"/results"), "results"),
    ("POST", re.compile(_BATCH + r"/cancel"), "cancel"),
    ("GET", re.compile(_BATCH), "retrieve"),
    ("DELETE", re.compile(_BATCH), "delete"),
    ("POST", re.compile(r"/v1/messages/count_tokens"), "count_tokens"),
    ("GET", re.compile(r"/v1/models"), "models"),
    ("GET", re.compile(r"/v1/models/(?P<id>[^/]+)"), "model"),
    ("POST", re.compile(r"/v1/messages"), "messages"),
    ("POST", re.compile(r"/v1/files"), "file_upload"),
    ("GET", re.compile(r"/v1/files"), "file_list"),
    ("GET", re.compile(_FILE + r"/content"), "file_content"),
    ("GET", re.compile(_FILE), "file_metadata"),
    ("DELETE", re.compile(_FILE), "file_delete"),
]
#: Bodies larger than this are not even drained: the connection is closed.
_DRAIN_LIMIT = 4 * 1024**3
_REASONS = {529: "Overloaded", 413: "Request Entity Too Large"}
_SECRET_HEADERS = ("authorization", "x-api-key", "cookie", "proxy-authorization")


def _multi(query: dict[str, list[str]], name: str) -> list[str] | None:
    """A list parameter in any spelling clients use (``name[]=a``, repeated, comma-separated)."""
    values = [v for key in (name, f"{name}[]") for raw in query.get(key, []) for v in raw.split(",") if v]
    return values or None


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """(endpoint name, path arguments) for a request, or None if nothing matches."""
    for m, pattern, name in ROUTES:
        match = pattern.fullmatch(path)
        if match and m == method:
            return name, match.groupdict()
    return None


@dataclass
class RequestRecord:
    """One request as the simulator saw it (secrets masked)."""

    method: str
    path: str
    endpoint: str
    status: int
    request_id: str
    headers: dict[str, str] = field(default_factory=dict)
    batch_id: str | None = None
    time: float = 0.0
    dropped: bool = False


class SimHTTPServer(ThreadingHTTPServer):
    """The listening server; holds the app, the request log and open connections."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        verbose: bool = False,
        log: list[RequestRecord] | None = None,
        log_lock: threading.Lock | None = None,
    ) -> None:
        self.app = app
        self.verbose = verbose
        self.log: list[RequestRecord] = [] if log is None else log
        self.log_lock = log_lock or threading.Lock()
        #: Open connections and the handler thread of each.
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, Handler)

    def record(self, rec: RequestRecord) -> None:
        with self.log_lock:
            self.log.append(rec)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns[conn] = threading.current_thread()
            else:
                self._conns.pop(conn, None)

    def close_connections(self, timeout: float = 5.0) -> None:
        """Wake keep-alive handler threads so a stopped server lets go of its clients, and
        let a request being answered finish: a batch it creates is stored before a
        simulator started on the same state reads it."""
        with self._conns_lock:
            conns = dict(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for thread in conns.values():
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # resets and broken pipes are normal client behaviour
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """One connection; may carry many requests (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "batch-magic-simulator"
    sys_version = ""
    timeout = 600  # an idle keep-alive connection is closed after this
    disable_nagle_algorithm = True
    server: SimHTTPServer
    _pending: tuple[str, str, str, str | None] = ("", "", "", None)
    _logged = False

    # -- plumbing ---------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    # -- one request ------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        app = self.server.app
        rid = new_request_id()
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        query_all = parse_qs(split.query)
        query = {k: v[-1] for k, v in query_all.items()}
        found = route(method, path)
        endpoint, args = found if found else ("unknown", {})
        # The log's batch_id names batches (and models, as before); a file id is not a batch id.
        self._pending = (method, endpoint, rid, None if endpoint.startswith("file_") else args.get("id"))
        self._logged = False
        try:
            limit, too_large = app.body_limit(endpoint)
            body = self._read_body(limit, too_large)
            if found is None:
                raise APIError("not_found_error", f"Not found: {method} {path}")
            app.check_key(self._api_key())
            version = check_version(self.headers.get("anthropic-version"))
            fault = app.faults.pick(endpoint)
            drop_after: int | None = None
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status is not None:
                    err = APIError(fault.error_type or "api_error", fault.message or "", fault.status)
                    self._send_error(err, rid, fault.retry_after)
                    return
                drop_after = fault.drop_after_lines
            self._dispatch(endpoint, args, query, body, rid, drop_after, version, query_all)
        except APIError as err:
            self._send_error(err, rid, None)
        except OSError:
            self.close_connection = True
            if not self._logged:
                self._log(499, True)  # the client went away before an answer
            raise
        except Exception as exc:  # a bug of ours: answer like the API would, and say so
            if self.server.verbose:
                traceback.print_exc()
            else:
                sys.stderr.write(f"batch_magic simulator: internal error on {method} {path}: {exc!r}\n")
            if not self._logged:
                self._send_error(APIError("api_error", "Internal server error"), rid, None)
            else:
                self.close_connection = True

    def _log(self, status: int, dropped: bool) -> None:
        method, endpoint, rid, batch_id = self._pending
        self._logged = True
        self.server.record(
            RequestRecord(
                method=method,
                path=self.path,
                endpoint=endpoint,
                status=status,
                request_id=rid,
                headers=self._safe_headers(),
                batch_id=batch_id,
                time=time.time(),
                dropped=dropped,
            )
        )

    def _dispatch(
        self,
        endpoint: str,
        args: dict[str, str],
        query: dict[str, str],
        body: bytes,
        rid: str,
        drop_after: int | None,
        version: str,
        query_all: dict[str, list[str]],
    ) -> None:
        app = self.server.app
        base = self._base_url()
        if endpoint == "create":
            batch = app.create(body, version, self._betas())
            self._send_json(200, batch.to_json(app.now(), base, just_created=True), rid)
        elif endpoint == "retrieve":
            self._send_json(200, app.retrieve(args["id"]).to_json(app.now(), base), rid)
        elif endpoint == "list":
            page, has_more = app.list(query)
            now = app.now()
            data = [b.to_json(now, base) for b in page]
            self._send_json(200, {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }, rid)
        elif endpoint == "cancel":
            self._send_json(200, app.cancel(args["id"]).to_json(app.now(), base), rid)
        elif endpoint == "delete":
            self._send_json(200, app.delete(args["id"]), rid)
        elif endpoint == "results":
            lines = app.results(args["id"], limit=drop_after)
            headers = {
                "Content-Type": "application/x-jsonl",
                "Content-Disposition": f"attachment; filename*=utf-8''{args['id']}_results.jsonl",
            }
            self._send_chunked(blocks(lines), rid, headers, finish=drop_after is None)
        elif endpoint == "messages":
            message, stream = app.message(body, version)
            if stream:
                events = (b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data))
                          for name, data in stream_events(message))
                self._send_chunked(events, rid, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            else:
                self._send_json(200, message, rid)
        elif endpoint == "count_tokens":
            self._send_json(200, app.count_tokens(body, version), rid)
        elif endpoint == "models":
            self._send_json(200, app.models(query, _multi(query_all, "lifecycle")), rid)
        elif endpoint == "model":
            self._send_json(200, app.model_info(args["id"]), rid)
        elif endpoint == "file_upload":
            self._send_json(200, app.upload(body, self.headers.get("Content-Type")).to_json(), rid)
        elif endpoint == "file_list":
            self._send_json(200, app.list_files(query, _multi(query_all, "ids")), rid)
        elif endpoint == "file_metadata":
            self._send_json(200, app.file(args["id"]).to_json(), rid)
        elif endpoint == "file_delete":
            self._send_json(200, app.delete_file(args["id"]), rid)
        elif endpoint == "file_content":
            stored, content = app.file_content(args["id"])
            self._send_bytes(content, rid, {
                "Content-Type": stored.mime_type,
                "Content-Disposition": f"attachment; filename*=utf-8''{quote(stored.filename)}",
            })

    # -- reading ----------------------------------------------------------------------------
    def _read_body(self, limit: int, too_large: APIError) -> bytes:
        """The request body; ``too_large`` (after discarding the body) when it is over ``limit``."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit, too_large)
        raw = self.headers.get("Content-Length")
        if not raw:
            return b""
        try:
            n = int(raw)
            if n < 0:
                raise ValueError(raw)
        except ValueError:
            self.close_connection = True
            raise APIError("invalid_request_error", f"invalid Content-Length: {raw!r}") from None
        if n > limit:
            if n > _DRAIN_LIMIT:
                self.close_connection = True
            else:
                self._discard(n)
            raise too_large
        body = self.rfile.read(n)
        if len(body) < n:
            raise ConnectionError("client closed the connection while sending the body")
        return body

    def _read_chunked(self, limit: int, too_large: APIError) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(65537)
            if not size_line:
                raise ConnectionError("client closed the connection while sending the body")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            chunk = self.rfile.read(size)
            self.rfile.readline(3)
            total += len(chunk)
            if total <= limit:
                parts.append(chunk)
        if total > limit:
            raise too_large
        return b"".join(parts)

    def _discard(self, n: int) -> None:
        while n > 0:
            piece = self.rfile.read(min(n, 1 << 20))
            if not piece:
                raise ConnectionError("client closed the connection while sending the body")
            n -= len(piece)

    def _api_key(self) -> str | None:
        key = self.headers.get("x-api-key")
        if key:
            return key.strip()
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return None

    def _betas(self) -> frozenset[str]:
        """The ``anthropic-beta`` values (comma-separated, possibly in several headers)."""
        values = self.headers.get_all("anthropic-beta") or []
        return frozenset(b.strip() for v in values for b in v.split(",") if b.strip())

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        if not host:
            h, p = self.server.server_address[:2]
            host = f"{h.decode() if isinstance(h, bytes) else h}:{p}"
        return f"http://{host}"

    def _safe_headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in self.headers.items():
            lk = k.lower()
            if lk in _SECRET_HEADERS:
                out[lk] = "Bearer ***" if lk == "authorization" and v.lower().startswith("bearer") else "***"
            else:
                out[lk] = v
        return out

    # -- writing ----------------------------------------------------------------------------
    def _start(self, status: int, rid: str, headers: dict[str, str], dropped: bool = False) -> None:
        # Logged before the answer leaves, so a client never sees an answer that is not in the log.
        self._log(status, dropped)
        self.send_response(status, _REASONS.get(status))
        self.send_header("request-id", rid)
        for k, v in headers.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")

    def _send_json(self, status: int, obj: Any, rid: str, headers: dict[str, str] | None = None) -> None:
        payload = orjson.dumps(obj)
        self._start(status, rid, {"Content-Type": "application/json", **(headers or {})})
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_bytes(self, data: bytes, rid: str, headers: dict[str, str]) -> None:
        self._start(200, rid, headers)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, err: APIError, rid: str, retry_after: float | None) -> None:
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["retry-after"] = str(int(-(-retry_after // 1)))  # whole seconds, rounded up
            headers["retry-after-ms"] = str(int(retry_after * 1000))
        self._send_json(err.status, error_body(err.error_type, err.message, rid, err.details), rid, headers)

    def _send_chunked(self, chunks: Iterator[bytes], rid: str, headers: dict[str, str], finish: bool = True) -> None:
        """Stream ``chunks`` with chunked encoding; without ``finish``, cut the connection after them."""
        self._start(200, rid, {**headers, "Transfer-Encoding": "chunked"}, dropped=not finish)
        self.end_headers()
        write = self.wfile.write
        for chunk in chunks:
            if chunk:
                write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        if finish:
            write(b"0\r\n\r\n")
        else:
            self.close_connection = True  # no final chunk: the client sees a truncated body
