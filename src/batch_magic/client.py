"""The only module that talks to the ``anthropic`` SDK.

Two choices here keep a million rows fast and every dollar safe:

* A batch is created with the body serialised once by orjson and posted through
  the SDK's public ``client.post(..., content=...)``: the SDK's per-request
  type transforms cost more than the whole rest of the plan at this size.
  Create is never retried blindly (SDK retries off): if an answer is lost the
  batch may exist anyway, so the job looks for it before sending again.
* Results are streamed as raw bytes into the journal (``with_streaming_response``)
  and parsed by orjson later, instead of building a pydantic object per line.

Every failure of a call is sorted here, and only here, into a ``Failure``
(:func:`classify`): ``transient`` (nothing happened; try again, after the wait
the server asked for), ``ambiguous`` (a create may have happened: look for its
batch before sending again), ``not_found`` (the batch or model is not on this
server) or ``refused`` (trying again cannot help). No other module reads a
status code.
"""

from __future__ import annotations

import email.utils
import functools
import io
import ipaddress
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import chain, repeat
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from .errors import MissingAPIKeyError

COUNT_FIELDS = ("processing", "succeeded", "errored", "canceled", "expired")

NO_KEY_HELP = (
    "No Anthropic API key was found. Either set one for this session:\n"
    "    import os; os.environ['ANTHROPIC_API_KEY'] = 'sk-ant-...'\n"
    "or pass a client: batch_magic.submit(..., client=anthropic.Anthropic(api_key=...)).\n"
    "To try everything offline for free, use the built-in simulator instead: "
    "`%batch simulator start` in a notebook, or `python -m batch_magic.simulator` and "
    "ANTHROPIC_BASE_URL=<the URL it prints>, ANTHROPIC_API_KEY=sk-sim-anything."
)


@dataclass(frozen=True)
class BatchInfo:
    """What we keep of a MessageBatch."""

    id: str
    processing_status: str
    request_counts: dict[str, int]
    created_at: str | None
    expires_at: str | None
    ended_at: str | None = None
    cancel_initiated_at: str | None = None
    results_url: str | None = None
    archived_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def total(self) -> int:
        return sum(self.request_counts.get(k, 0) for k in COUNT_FIELDS)

    @classmethod
    def from_api(cls, obj: Any) -> BatchInfo:
        data = obj if isinstance(obj, dict) else obj.model_dump(mode="json")
        counts = data.get("request_counts") or {}
        return cls(
            id=data["id"],
            processing_status=data["processing_status"],
            request_counts={k: int(counts.get(k) or 0) for k in COUNT_FIELDS},
            created_at=_iso(data.get("created_at")),
            expires_at=_iso(data.get("expires_at")),
            ended_at=_iso(data.get("ended_at")),
            cancel_initiated_at=_iso(data.get("cancel_initiated_at")),
            results_url=data.get("results_url"),
            archived_at=_iso(data.get("archived_at")),
            raw=data,
        )


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()


def is_local_url(url: str) -> bool:
    """True for a server on this machine (the simulator, in practice)."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_network_error(exc: BaseException) -> bool:
    """A transport failure of the HTTP library under the SDK (httpx2 for SDK 2.x,
    httpx for 0.x), such as a stream closed mid-body."""
    for cls in type(exc).__mro__:
        if cls.__name__ == "TransportError" and cls.__module__.split(".")[0] in ("httpx", "httpx2"):
            return True
    return False


def describe_error(exc: BaseException) -> str:
    """One line for an SDK exception: status, error category and the API's message."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if isinstance(inner, dict):
            kind = inner.get("type")
            message = f"{kind}: {inner.get('message')}" if kind else inner.get("message")
    text = message or str(exc) or type(exc).__name__
    return f"{status} {text}" if status else f"{type(exc).__name__}: {text}"


# -- what a failure means ------------------------------------------------------------------
class FailureKind(StrEnum):
    """What a failed call means for the job."""

    #: Nothing happened on the server: try again (after ``retry_after`` if given).
    TRANSIENT = "transient"
    #: The call may have taken effect (a create whose answer was lost): look before re-sending.
    AMBIGUOUS = "ambiguous"
    #: The batch (or model) is not on this server.
    NOT_FOUND = "not_found"
    #: The server refused the call; the same call again cannot succeed.
    REFUSED = "refused"


@dataclass(frozen=True)
class Failure:
    """A failed call, classified (:func:`classify`)."""

    kind: FailureKind
    #: One line for people: status, error category and the API's message.
    detail: str
    #: Seconds the server asked to wait before trying again (transient failures).
    retry_after: float | None = None

    @property
    def retriable(self) -> bool:
        return self.kind in (FailureKind.TRANSIENT, FailureKind.AMBIGUOUS)


#: Statuses the SDK retries itself when the server does not say (``x-should-retry``):
#: request timeout, lock timeout, rate limit, and every server error.
_RETRIED_STATUS = frozenset({408, 409, 429})
#: Statuses after which a create may have been carried out all the same: the request
#: reached the server (or a gateway) and what happened behind it is not known. A 429
#: or 529 is refused before anything is made.
_CREATE_MAY_HAVE_HAPPENED = frozenset({408, 500, 502, 503, 504})
#: A retry-after further ahead than this is taken as this (a wrong clock in an HTTP
#: date must not stall a job for days).
MAX_RETRY_AFTER = 15 * 60.0


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """The wait a failed answer asks for, by the SDK's own rules (anthropic
    ``_base_client._parse_retry_after_header``): ``retry-after-ms`` in
    milliseconds, else ``retry-after`` in seconds (a float is taken too), else
    ``retry-after`` as an HTTP date. None when absent, unreadable or not ahead."""
    if headers is None:
        return None
    seconds: float | None = None
    try:
        seconds = float(headers.get("retry-after-ms")) / 1000  # type: ignore[arg-type]
    except (TypeError, ValueError):
        header = headers.get("retry-after")
        try:
            seconds = float(header)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            date = email.utils.parsedate_tz(header) if isinstance(header, str) else None
            if date is not None:
                seconds = float(email.utils.mktime_tz(date) - (time.time() if now is None else now))
    if seconds is None or not seconds > 0:  # the SDK ignores a wait that is not ahead (NaN too)
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _should_retry(status: int, headers: Mapping[str, str]) -> bool:
    """The SDK's rule (``_base_client._should_retry``): the server's ``x-should-retry``
    when it sends one, else timeouts, lock timeouts, rate limits and server errors."""
    said = headers.get("x-should-retry")
    if said == "true":
        return True
    if said == "false":
        return False
    return status in _RETRIED_STATUS or status >= 500


def classify(exc: BaseException, *, create: bool = False) -> Failure:
    """What a failed call means. ``create``: the call was a batch create, which a
    lost answer leaves ambiguous (it may have made a batch)."""
    import anthropic

    detail = describe_error(exc)
    response = getattr(exc, "response", None)
    if isinstance(exc, anthropic.APIStatusError) and response is not None:
        status = int(exc.status_code)
        headers = response.headers
        if status == 404:
            return Failure(FailureKind.NOT_FOUND, detail)
        if create and status in _CREATE_MAY_HAVE_HAPPENED:
            # Whatever the server says of retrying, the batch may exist: look first.
            return Failure(FailureKind.AMBIGUOUS, detail, retry_after_seconds(headers))
        if _should_retry(status, headers):
            return Failure(FailureKind.TRANSIENT, detail, retry_after_seconds(headers))
        return Failure(FailureKind.REFUSED, detail)
    if create:
        # Only a refusal in so many words (a status above) says no batch was made. No
        # answer, or an answer that could not be read, leaves it open.
        return Failure(FailureKind.AMBIGUOUS, detail)
    # No answer at all: a timeout, a dropped connection, a stream cut mid-body.
    no_answer = isinstance(exc, (anthropic.APIConnectionError, ConnectionError, TimeoutError)) or is_network_error(exc)
    return Failure(FailureKind.TRANSIENT if no_answer else FailureKind.REFUSED, detail)


def installed_api_version() -> str:
    """The ``anthropic-version`` the installed SDK sends by default (2026-10-21 from SDK 2.x,
    2023-06-01 before), for when there is no client object to read it from."""
    import importlib

    try:
        constants = importlib.import_module("anthropic._constants")
    except ImportError:
        return "2023-06-01"
    return str(getattr(constants, "ANTHROPIC_API_VERSION", "2023-06-01"))


def make_sdk_client(api_key: str | None = None, base_url: str | None = None) -> Any:
    """An ``anthropic.Anthropic`` from arguments or the environment, never a silent fake."""
    import anthropic

    key = api_key or os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
    if not key:
        raise MissingAPIKeyError(NO_KEY_HELP)
    kwargs: dict[str, Any] = {"api_key": key}
    base = base_url or os.environ.get("ANTHROPIC_BASE_URL")
    if base:
        kwargs["base_url"] = base
    return anthropic.Anthropic(**kwargs)


def in_process_simulator(url: str | None) -> bool:
    """Does ``url`` point at a simulator running in this process? None can run unless its
    package was imported, so a job against any other server never imports it."""
    simulator = sys.modules.get("batch_magic.simulator")
    return simulator is not None and bool(simulator.is_simulator_url(url))


class BatchClient:
    """Submit, poll, cancel and download, over one SDK client (thread-safe)."""

    def __init__(self, sdk: Any) -> None:
        import anthropic

        if isinstance(sdk, anthropic.AsyncAnthropic):
            raise TypeError(
                "Pass a synchronous anthropic.Anthropic client; batch_magic runs its "
                "calls off the event loop itself, so the kernel stays free either way."
            )
        self.sdk = sdk

    @property
    def base_url(self) -> str:
        return str(self.sdk.base_url).rstrip("/")

    @property
    def is_local(self) -> bool:
        return is_local_url(self.base_url)

    @property
    def api_version(self) -> str:
        """The ``anthropic-version`` header this client sends: its default headers hold it,
        with any ``default_headers=`` override the user gave already applied."""
        headers = getattr(self.sdk, "default_headers", None) or {}
        version = headers.get("anthropic-version") if hasattr(headers, "get") else None
        return version if isinstance(version, str) else installed_api_version()

    @functools.cached_property
    def is_simulator(self) -> bool:
        """Are the answers simulated? A simulator of this process, or a local server
        that names itself one (``Server: batch-magic-simulator``); a local proxy to
        the real API is not."""
        if not self.is_local:
            return False
        if in_process_simulator(self.base_url):
            return True
        try:
            raw = self.sdk.messages.batches.with_raw_response.list(limit=1)
        except Exception:
            return True  # unreachable or odd: a loopback server is a simulator far more often
        return str(raw.headers.get("server", "")).startswith("batch-magic-simulator")

    def create(self, body: bytes) -> BatchInfo:
        """POST one batch whose JSON body is already serialised. No retries here."""
        from anthropic.types.messages import MessageBatch

        opts: dict[str, Any] = {"max_retries": 0, "headers": {"content-type": "application/json"}}
        batch = self.sdk.post("/v1/messages/batches", cast_to=MessageBatch, content=body, options=opts)
        return BatchInfo.from_api(batch)

    def retrieve_model(self, model: str) -> dict[str, Any]:
        """``GET /v1/models/{model}``: the raw ``ModelInfo`` JSON (lifecycle, limits,
        capabilities). Raw, so fields an older SDK has no type for still arrive."""
        raw = self.sdk.models.with_raw_response.retrieve(model, timeout=30.0)
        data: dict[str, Any] = orjson.loads(raw.http_response.content)
        return data

    def retrieve(self, batch_id: str) -> BatchInfo:
        return BatchInfo.from_api(self.sdk.messages.batches.retrieve(batch_id))

    def cancel(self, batch_id: str) -> BatchInfo:
        return BatchInfo.from_api(self.sdk.messages.batches.cancel(batch_id))

    def recent_batches(self, limit: int = 100) -> list[BatchInfo]:
        """The newest batches of this account/workspace, newest first (one page)."""
        page = self.sdk.messages.batches.list(limit=limit)
        return [BatchInfo.from_api(b) for b in page.data]

    def download_results(self, batch_id: str, dest: Path) -> int:
        """Stream a batch's results as raw bytes to ``dest``; return the line count."""
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner only
        with os.fdopen(fd, "wb") as fh:
            streaming = getattr(self.sdk.messages.batches.with_streaming_response, "results", None)
            if streaming is None:  # SDK 0.x: only the decoded iterator exists
                return self._write_decoded_results(batch_id, fh)
            lines = 0
            tail = b"\n"
            with streaming(batch_id) as response:
                for chunk in response.iter_bytes():
                    if chunk:
                        fh.write(chunk)
                        lines += chunk.count(b"\n")
                        tail = chunk[-1:]
            if tail != b"\n":  # the last record may come without its newline
                fh.write(b"\n")
                lines += 1
            return lines

    def _write_decoded_results(self, batch_id: str, fh: Any) -> int:
        """Re-encode the SDK's decoded results, one JSON line each (slower, same file)."""
        lines = 0
        try:
            for item in self.sdk.messages.batches.results(batch_id):
                fh.write(orjson.dumps(item.model_dump(mode="json", exclude_unset=True)) + b"\n")
                lines += 1
        except ValueError as exc:  # a line cut mid-way by a dropped stream: no answer, not a refusal
            raise ConnectionError(f"the results stream broke off after {lines} lines ({exc})") from exc
        return lines

    def count_tokens(self, params: dict[str, Any]) -> int:
        # count_tokens takes only what shapes the input; generation settings are refused.
        shaping = ("model", "messages", "system", "tools", "tool_choice", "output_config", "thinking")
        allowed = {k: v for k, v in params.items() if k in shaping}
        return int(self.sdk.messages.count_tokens(**allowed).input_tokens)

    @functools.cached_property
    def files(self) -> FilesClient:
        return FilesClient(self.sdk)

    def create_message(self, params: dict[str, Any]) -> dict[str, Any]:
        """One realtime Messages call (pilot runs); the raw JSON of the answer."""
        from anthropic.types import Message

        message = self.sdk.post("/v1/messages", cast_to=Message, body=params)
        data: dict[str, Any] = message.model_dump(mode="json")
        return data


@dataclass(frozen=True)
class FileInfo:
    """What we keep of the Files API's ``FileMetadata``."""

    id: str
    filename: str
    size_bytes: int
    mime_type: str
    created_at: str | None

    @classmethod
    def from_api(cls, obj: Any) -> FileInfo:
        data = obj if isinstance(obj, dict) else obj.model_dump(mode="json")
        return cls(
            id=str(data["id"]), filename=str(data.get("filename") or ""),
            size_bytes=int(data.get("size_bytes") or 0), mime_type=str(data.get("mime_type") or ""),
            created_at=_iso(data.get("created_at")),
        )


class FilesClient:
    """The Files API over the same SDK client: upload (no blind retries, as for a
    create: a lost answer may hide an upload that landed), list, delete.

    SDK 2.x has ``client.files`` (generally available, no beta header); SDK 0.x
    only ``client.beta.files``, which sends the beta header itself."""

    def __init__(self, sdk: Any) -> None:
        self.sdk = sdk

    @functools.cached_property
    def _once(self) -> Any:
        return self.sdk.with_options(max_retries=0)

    @staticmethod
    def _files(sdk: Any) -> Any:
        files = getattr(sdk, "files", None)
        return files if files is not None else sdk.beta.files

    def upload(self, filename: str, data: bytes, mime_type: str) -> FileInfo:
        return FileInfo.from_api(self._files(self._once).upload(file=(filename, data, mime_type)))

    def newest(self, page_size: int = 100) -> Iterable[FileInfo]:
        """Every file of the workspace, newest first, page by page as they are read."""
        for obj in self._files(self.sdk).list(limit=page_size):
            yield FileInfo.from_api(obj)

    def existing(self, file_ids: Sequence[str]) -> set[str] | None:
        """Which of these files the server still has (100 ids a call), or None when the
        SDK cannot ask (``ids`` came with SDK 2.x). One try each: the check is a courtesy."""
        files = self._files(self._once)
        found: set[str] = set()
        for start in range(0, len(file_ids), 100):
            chunk = list(file_ids[start : start + 100])
            try:
                page = files.list(ids=chunk)
            except TypeError:  # an SDK without the ids filter
                return None
            found.update(obj.id for obj in page.data)
        return found

    def delete(self, file_id: str) -> None:
        self._files(self.sdk).delete(file_id)


def create_body_columns(
    shared: dict[str, Any], custom_ids: Iterable[str], prompts: Iterable[str],
    *, encode: Any = orjson.dumps,
) -> bytes:
    """The create body for ``custom_ids[i]`` asking ``prompts[i]``, serialised in one pass.

    The shared params are encoded once and spliced around each orjson-encoded
    id and prompt, written straight into one buffer by C-level iteration: about
    the cost of ``orjson.dumps`` on the whole body, without building a dict per
    request (several times slower at 100,000 requests). ``encode`` turns a prompt
    into its JSON content (``media.content_encoder``: blocks for a prompt with files).
    """
    head = orjson.dumps(shared)[:-1]  # '{"model":...' without its closing brace
    if len(head) > 1:
        head += b","
    start = b'{"custom_id":'
    middle = b',"params":' + head + b'"messages":[{"role":"user","content":'
    end = b"}]}}"
    between = end + b"," + start
    dumps = orjson.dumps
    buf = io.BytesIO()
    buf.write(b'{"requests":[' + start)
    buf.writelines(chain.from_iterable(
        zip(map(dumps, custom_ids), repeat(middle), map(encode, prompts), repeat(between))
    ))
    if buf.tell() == len(b'{"requests":[' + start):
        return b'{"requests":[]}'
    buf.seek(buf.tell() - len(between))
    buf.truncate()
    buf.write(end + b"]}")
    return buf.getvalue()
