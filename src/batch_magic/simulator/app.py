"""The Message Batches API semantics, without HTTP.

:class:`App` validates and answers each call (create, retrieve, list,
cancel, delete, results, messages, count_tokens) from parsed inputs;
``server.py`` only moves bytes. Options live in :class:`Options` and are
snapshotted into each batch when it is created, so changing them later only
affects new batches.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from .cache import PromptCache
from .catalog import listed, resolve
from .clock import Clock, RealClock
from .faults import FaultPlan, validate_error_rates
from .files import GB, MB, FileStore, StoredFile, file_too_large
from .media import FileView
from .model import FakeModel, Responder
from .multipart import parse_form
from .protocol import APIError, new_batch_id, new_message_id
from .reading import FileLookup
from .results import result_lines
from .rules import V2023, Context, validate_params
from .store import Batch, BatchPolicy, Packer, Store
from .tokens import cache_prefix, count_input_tokens

CUSTOM_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
LIFECYCLES = ("active", "deprecated", "retired")
DAY = 86400.0


@dataclass
class Options:
    """Everything that shapes the simulator's behaviour (see docs/simulator.md)."""

    processing_time: float = 3.0
    per_request_time: float = 0.0
    speed: float = 1.0
    cancel_delay: float = 1.0
    error_rates: dict[str, float] = field(default_factory=dict)
    expire_rate: float = 0.0
    seed: int = 0
    retention_days: float = 29.0
    strict_models: bool | list[str] | None = None
    refusal_rate: float = 0.0
    invalid_rate: float = 0.0
    responder: Responder | None = None
    api_keys: list[str] | None = None
    max_requests: int = 100_000
    max_body_bytes: int = 256 * 1024 * 1024
    cache_min_tokens: int = 0
    max_file_bytes: int = 500 * MB
    files_storage_bytes: int = 500 * GB

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Reject nonsense early, with the offending value."""
        for name in ("max_file_bytes", "files_storage_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number of bytes >= 1, not {value!r}")
        for name in ("processing_time", "per_request_time", "cancel_delay", "retention_days"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        if not isinstance(self.speed, (int, float)) or self.speed <= 0:
            raise ValueError(f"speed must be > 0, not {self.speed!r}")
        for name in ("expire_rate", "refusal_rate", "invalid_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], not {value!r}")
        self.error_rates = validate_error_rates(dict(self.error_rates or {}))
        if self.strict_models is not None and not isinstance(self.strict_models, bool):
            if isinstance(self.strict_models, str):
                raise ValueError("strict_models is True (the model table only) or a list of model ids, not a string")
            self.strict_models = list(self.strict_models)
        if self.strict_models is False:
            self.strict_models = None
        if self.api_keys is not None:
            self.api_keys = list(self.api_keys)
        if self.responder is not None and not callable(self.responder):
            raise ValueError("responder must be a callable taking the params dict")

    def copy(self, **changes: Any) -> Options:
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(current)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return Options(**{**current, **changes})


class App:
    """One simulated API: options, batches, prompt cache, faults, clock."""

    def __init__(self, options: Options, clock: Clock | None = None, state_dir: str | None = None) -> None:
        self.options = options
        self.clock: Clock = clock or RealClock()
        self.store = Store(state_dir)
        self.files = FileStore(state_dir)
        self.files.load()
        self.cache = PromptCache()
        self.faults = FaultPlan(seed=options.seed)
        self._lock = threading.Lock()
        for batch in self.store.load():
            # Prefixes cached by persisted batches stay cached; each batch keeps its own
            # stored write/read flags, so only the keys matter here.
            for key, _tokens, _ttl, _wrote in batch.cache_info.values():
                self.cache.claim(key, f"{batch.id}/loaded")

    @property
    def model(self) -> FakeModel:
        """The fake model with the options in force (realtime calls)."""
        opts = self.options
        return FakeModel(opts.responder, refusal_rate=opts.refusal_rate, invalid_rate=opts.invalid_rate)

    def now(self) -> float:
        return self.clock.now()

    # -- auth -------------------------------------------------------------------------------
    def check_key(self, key: str | None) -> None:
        if not key:
            raise APIError("authentication_error", "x-api-key header is required")
        keys = self.options.api_keys
        if keys is not None and key not in keys:
            raise APIError("authentication_error", "invalid x-api-key")

    # -- batches ----------------------------------------------------------------------------
    def create(self, body: bytes, version: str = V2023, betas: frozenset[str] = frozenset()) -> Batch:
        data = parse_json(body)
        opts = self.options
        reqs = data.get("requests")
        if reqs is None:
            raise APIError("invalid_request_error", "requests: Field required")
        if not isinstance(reqs, list):
            raise APIError("invalid_request_error", "requests: Input should be a valid list")
        if not reqs:
            raise APIError("invalid_request_error", "requests: List should have at least 1 item after validation, not 0")
        if len(reqs) > opts.max_requests:
            raise APIError(
                "invalid_request_error",
                f"requests: List should have at most {opts.max_requests} items after validation, not {len(reqs)}",
            )
        seen: set[str] = set()
        cids: list[str] = []
        for i, r in enumerate(reqs):
            if not isinstance(r, dict):
                raise APIError("invalid_request_error", f"requests.{i}: Input should be a valid dictionary")
            cid = r.get("custom_id")
            if not isinstance(cid, str) or not CUSTOM_ID_RE.fullmatch(cid):
                raise APIError(
                    "invalid_request_error",
                    f"requests.{i}.custom_id: invalid custom_id {cid!r}: "
                    "String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
                )
            if cid in seen:
                raise APIError(
                    "invalid_request_error",
                    f"requests.{i}.custom_id: duplicate custom_id {cid!r}; "
                    "each custom_id must be unique within a batch",
                )
            seen.add(cid)
            if not isinstance(r.get("params"), dict):
                raise APIError("invalid_request_error", f"requests.{i}.params: Field required")
            cids.append(cid)
        del seen
        batch_id = new_batch_id()
        packer = Packer()
        pre_errors: dict[int, tuple[str, str]] = {}
        cache_info: dict[int, tuple[str, int, str, bool]] = {}
        # stdlib json here: orjson's large per-call buffers make 100k small dumps slow on a cold heap.
        encoder = json.JSONEncoder(separators=(",", ":")).encode
        # A batch keeps what it saw of each upload it names: deleting the file later does not change
        # its answers ("files ... may persist in active Messages API calls", Files API page).
        media: dict[str, FileView] = {}
        files = self._file_lookup(record=media)
        ctx = Context(version=version, in_batch=True, strict_models=opts.strict_models, betas=betas, files=files)
        for i, r in enumerate(reqs):
            p = r["params"]
            raw = encoder(p).encode()
            packer.add(cids[i], raw)
            err = validate_params(p, ctx, size_hint=_size_hint(raw))
            if err is not None:
                pre_errors[i] = (err.error_type, err.message)
            elif b'"cache_control"' in raw:
                prefix = cache_prefix(p, files)
                if prefix is not None and prefix.tokens >= opts.cache_min_tokens:
                    wrote = self.cache.claim(prefix.key, f"{batch_id}/{cids[i]}")
                    cache_info[i] = (prefix.key, prefix.tokens, prefix.ttl, wrote)
            reqs[i] = None  # let the parsed request go as soon as it is packed
        n = len(cids)
        policy = BatchPolicy(
            seed=opts.seed,
            error_rates=dict(opts.error_rates),
            expire_rate=opts.expire_rate,
            refusal_rate=opts.refusal_rate,
            invalid_rate=opts.invalid_rate,
            duration=(opts.processing_time + opts.per_request_time * n) / opts.speed,
            cancel_delay=opts.cancel_delay / opts.speed,
            expiry_after=DAY / opts.speed,
            retention=opts.retention_days * DAY / opts.speed,
        )
        batch = Batch(
            id=batch_id,
            seq=self.store.next_seq(),
            created_at=self.now(),
            n=n,
            policy=policy,
            pre_errors=pre_errors,
            cache_info=cache_info,
            media=media,
            packed=packer.finish(),
        )
        self.store.add(batch)
        return batch

    def retrieve(self, batch_id: str) -> Batch:
        return self.store.get(batch_id)

    def list(self, query: dict[str, str]) -> tuple[list[Batch], bool]:
        limit = _page_limit(query)
        after_id, before_id = query.get("after_id") or None, query.get("before_id") or None
        if after_id and before_id:
            raise APIError("invalid_request_error", "after_id and before_id cannot both be given")
        return self.store.page(limit, after_id, before_id)

    def cancel(self, batch_id: str) -> Batch:
        return self.store.cancel(batch_id, self.now())

    def delete(self, batch_id: str) -> dict[str, Any]:
        self.store.delete(batch_id, self.now())
        return {"id": batch_id, "type": "message_batch_deleted"}

    def results(self, batch_id: str, limit: int | None = None) -> Iterator[bytes]:
        """The JSONL lines of an ended, unarchived batch."""
        batch = self.store.get(batch_id)
        now = self.now()
        if not batch.ended(now):
            raise APIError(
                "invalid_request_error",
                f"Message batch '{batch_id}' is still {batch.status(now)}; "
                "results are available once processing has ended.",
            )
        if batch.archived_at(now) is not None:
            raise APIError(
                "not_found_error",
                f"The results of message batch '{batch_id}' have been archived and are no longer available.",
            )
        model = FakeModel(self.options.responder, refusal_rate=batch.policy.refusal_rate,
                          invalid_rate=batch.policy.invalid_rate)
        return result_lines(batch, model, limit)

    # -- realtime ---------------------------------------------------------------------------
    def message(self, body: bytes, version: str = V2023) -> tuple[dict[str, Any], bool]:
        """A realtime answer, and whether the client asked for it streamed."""
        params = parse_json(body)
        files = self._file_lookup()
        ctx = Context(version=version, strict_models=self.options.strict_models, files=files)
        err = validate_params(params, ctx, size_hint=_size_hint(body))
        if err is not None:
            raise APIError(err.error_type, err.message, details=err.details)
        cache = None
        prefix = cache_prefix(params, files)
        if prefix is not None and prefix.tokens >= self.options.cache_min_tokens:
            msg_owner = new_message_id()
            cache = (prefix, self.cache.claim(prefix.key, msg_owner))
        msg_id = new_message_id()
        try:
            message = self.model.answer(
                params, message_id=msg_id, seed=str(self.options.seed), service_tier="standard", cache=cache,
                files=files,
            )
        except Exception as exc:
            raise APIError("api_error", f"responder raised {type(exc).__name__}: {exc}") from exc
        return message, bool(params.get("stream"))

    # -- files ------------------------------------------------------------------------------
    def body_limit(self, endpoint: str) -> tuple[int, APIError]:
        """How many body bytes an endpoint reads, and the 413 it answers beyond that."""
        if endpoint == "file_upload":
            limit = self.options.max_file_bytes
            # The multipart envelope adds headers and boundaries around the file itself.
            return limit + 64 * 1024, file_too_large(None, limit)
        limit = self.options.max_body_bytes
        return limit, APIError(
            "request_too_large",
            f"Request exceeds the maximum allowed number of bytes. The maximum request size is {limit} bytes.",
            413,
        )

    def upload(self, body: bytes, content_type: str | None, *, downloadable: bool = False) -> StoredFile:
        """``POST /v1/files``: a multipart form with a ``file`` part (and ``expires_in_seconds``)."""
        form = parse_form(body, content_type)
        part = form.get("file")
        if part is None:
            raise APIError("invalid_request_error", "file: Field required (send the file as a multipart part named 'file')")
        expires_in: int | None = None
        raw_expiry = form.get("expires_in_seconds")
        if raw_expiry is not None:
            text = raw_expiry.data.decode("utf-8", "replace").strip()
            try:
                expires_in = int(text)
            except ValueError:
                raise APIError("invalid_request_error",
                               f"expires_in_seconds: Input should be a valid integer, not {text!r}") from None
        return self.add_file(part.data, part.filename, part.content_type, expires_in=expires_in,
                             downloadable=downloadable)

    def add_file(self, data: bytes, filename: str | None, content_type: str | None = None, *,
                 expires_in: int | None = None, downloadable: bool = False) -> StoredFile:
        opts = self.options
        return self.files.add(data, filename=filename, declared_type=content_type, now=self.now(),
                              max_file_bytes=opts.max_file_bytes, storage_bytes=opts.files_storage_bytes,
                              expires_in=expires_in, speed=opts.speed, downloadable=downloadable)

    def list_files(self, query: dict[str, str], ids: Sequence[str] | None) -> dict[str, Any]:
        """``GET /v1/files``: newest first; ``limit`` with ``after_id``/``before_id`` (``has_more``,
        ``first_id``, ``last_id``) or the SDK 2.x cursor ``page`` (``next_page``), or ``ids``."""
        wanted: list[str] | None = None
        if ids is not None:
            if "limit" in query or "page" in query:
                raise APIError("invalid_request_error", "ids: cannot be combined with page or limit")
            wanted = [*dict.fromkeys(ids)]
            if len(wanted) > 100:
                raise APIError("invalid_request_error", f"ids: at most 100 ids are allowed, not {len(wanted)}")
        limit = _page_limit(query)
        after_id, before_id = query.get("after_id") or None, query.get("before_id") or None
        page_token = query.get("page") or None
        if page_token is not None:
            if not page_token.startswith("page_") or after_id or before_id:
                raise APIError("invalid_request_error", f"page: not a page cursor from a previous list: {page_token!r}")
            after_id = page_token[len("page_"):]
        if after_id and before_id:
            raise APIError("invalid_request_error", "after_id and before_id cannot both be given")
        page, has_more = self.files.page(limit, after_id, before_id, wanted)
        data = [f.to_json() for f in page]
        return {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "next_page": f"page_{data[-1]['id']}" if has_more and data and not before_id else None,
        }

    def file(self, file_id: str) -> StoredFile:
        return self.files.get(file_id)

    def delete_file(self, file_id: str) -> dict[str, Any]:
        self.files.delete(file_id)
        return {"id": file_id, "type": "file_deleted"}

    def file_content(self, file_id: str) -> tuple[StoredFile, bytes]:
        return self.files.content(file_id, self.now())

    # -- models -----------------------------------------------------------------------------
    def models(self, query: dict[str, str], lifecycles: Sequence[str] | None = None) -> dict[str, Any]:
        """``GET /v1/models``: the model table (or the strict list), newest first.

        ``lifecycles`` filters by stage; without it, active and deprecated models
        are listed and retired ones only when asked for.
        """
        wanted = set(lifecycles or ("active", "deprecated"))
        bad = sorted(wanted - set(LIFECYCLES))
        if bad:
            raise APIError("invalid_request_error",
                           f"lifecycle: Input should be 'active', 'deprecated' or 'retired', not {bad[0]!r}")
        raw = query.get("limit", "20")
        try:
            limit = int(raw)
        except ValueError:
            raise APIError("invalid_request_error", f"limit: Input should be a valid integer, got {raw!r}") from None
        if not 1 <= limit <= 1000:
            raise APIError("invalid_request_error", f"limit: Input should be between 1 and 1000, got {limit}")
        ids = [spec.id for spec in listed(self.options.strict_models, wanted)]
        after, before = query.get("after_id") or None, query.get("before_id") or None
        has_more: bool
        if after is not None:
            rest = ids[ids.index(after) + 1:] if after in ids else []
            page, has_more = rest[:limit], len(rest) > limit
        elif before is not None:
            head = ids[: ids.index(before)] if before in ids else []
            page, has_more = head[-limit:], len(head) > limit
        else:
            page, has_more = ids[:limit], len(ids) > limit
        data = [self.model_info(m) for m in page]
        return {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def model_info(self, model_id: str) -> dict[str, Any]:
        """``GET /v1/models/{id}``: the ModelInfo of an id or alias; retired models stay in the catalogue."""
        spec = resolve(model_id, self.options.strict_models)
        if spec is None:
            raise APIError("not_found_error", f"model: {model_id}")
        return spec.info()

    def count_tokens(self, body: bytes, version: str = V2023) -> dict[str, Any]:
        params = parse_json(body)
        files = self._file_lookup()
        ctx = Context(version=version, strict_models=self.options.strict_models, counting=True, files=files)
        err = validate_params(params, ctx)
        if err is not None:
            raise APIError(err.error_type, err.message, details=err.details)
        return {"input_tokens": count_input_tokens(params, files=files)}

    def _file_lookup(self, record: dict[str, FileView] | None = None) -> FileLookup:
        """Looks uploads up as they are now; with ``record``, also keeps every file it finds there."""
        now = self.now()

        def lookup(file_id: str) -> FileView | None:
            view = self.files.view(file_id, now)
            if record is not None and view is not None:
                record[file_id] = view
            return view

        return lookup


def _size_hint(raw: bytes) -> int | None:
    """The body size, when it bounds the prompt's tokens (no image or document counted at a flat rate)."""
    return None if b'"image"' in raw or b'"document"' in raw else len(raw)


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise APIError("invalid_request_error", f"There was an issue with the JSON body of your request: {exc}") from None
    if not isinstance(data, dict):
        raise APIError("invalid_request_error", "The request body must be a JSON object")
    return data


def stream_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The server-sent events of a streamed Messages answer, for ``stream: true``."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "stop_details": None,
             "usage": {**message["usage"], "output_tokens": 1, "output_tokens_details": None}}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for i, block in enumerate(message["content"]):
        kind = block.get("type")
        if kind == "text":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "text", "text": ""}}
            text = block["text"]
            for j in range(0, len(text), 24):
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "text_delta", "text": text[j:j + 24]}}
        elif kind == "tool_use":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {**block, "input": {}}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "input_json_delta",
                                                    "partial_json": orjson.dumps(block["input"]).decode()}}
        elif kind == "thinking":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
            if block["thinking"]:  # omitted thinking streams only its signature
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "thinking_delta", "thinking": block["thinking"]}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "signature_delta", "signature": block["signature"]}}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": i, "content_block": block}
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    final = message["usage"]
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"],
                                      "stop_details": message.get("stop_details")},
                            "usage": {"output_tokens": final["output_tokens"],
                                      "output_tokens_details": final.get("output_tokens_details")}}
    yield "message_stop", {"type": "message_stop"}


def _page_limit(query: dict[str, str]) -> int:
    """A list call's ``limit`` (1 to 1000, default 20), refused as the API refuses it."""
    raw = query.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        raise APIError("invalid_request_error", f"limit: Input should be a valid integer, not {raw!r}") from None
    if not 1 <= limit <= 1000:
        raise APIError("invalid_request_error", f"limit: must be between 1 and 1000, not {limit}")
    return limit
