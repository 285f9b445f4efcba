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
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from .cache import PromptCache
from .clock import Clock, RealClock
from .faults import FaultPlan, validate_error_rates
from .model import (
    FakeModel,
    Responder,
    cache_prefix,
    count_input_tokens,
    looks_like_claude,
    validate_params,
)
from .protocol import APIError, new_batch_id, new_message_id
from .results import result_lines
from .store import Batch, BatchPolicy, Packer, Store

CUSTOM_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: What ``GET /v1/models`` lists when no strict list is set, newest first.
LISTED_MODELS = (
    "claude-opus-4-5", "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5",
)
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
    strict_models: list[str] | None = None
    responder: Responder | None = None
    api_keys: list[str] | None = None
    max_requests: int = 100_000
    max_body_bytes: int = 256 * 1024 * 1024
    cache_min_tokens: int = 0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Reject nonsense early, with the offending value."""
        for name in ("processing_time", "per_request_time", "cancel_delay", "retention_days"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        if not isinstance(self.speed, (int, float)) or self.speed <= 0:
            raise ValueError(f"speed must be > 0, not {self.speed!r}")
        if not 0 <= self.expire_rate <= 1:
            raise ValueError(f"expire_rate must be in [0, 1], not {self.expire_rate!r}")
        self.error_rates = validate_error_rates(dict(self.error_rates or {}))
        if self.strict_models is not None:
            self.strict_models = list(self.strict_models)
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
        return FakeModel(self.options.responder)

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
    def create(self, body: bytes) -> Batch:
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
        strict = opts.strict_models
        for i, r in enumerate(reqs):
            p = r["params"]
            raw = encoder(p).encode()
            packer.add(cids[i], raw)
            err = validate_params(p, in_batch=True, strict_models=strict)
            if err is not None:
                pre_errors[i] = err
            elif b'"cache_control"' in raw:
                prefix = cache_prefix(p)
                if prefix is not None and prefix.tokens >= opts.cache_min_tokens:
                    wrote = self.cache.claim(prefix.key, f"{batch_id}/{cids[i]}")
                    cache_info[i] = (prefix.key, prefix.tokens, prefix.ttl, wrote)
            reqs[i] = None  # let the parsed request go as soon as it is packed
        n = len(cids)
        policy = BatchPolicy(
            seed=opts.seed,
            error_rates=dict(opts.error_rates),
            expire_rate=opts.expire_rate,
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
            packed=packer.finish(),
        )
        self.store.add(batch)
        return batch

    def retrieve(self, batch_id: str) -> Batch:
        return self.store.get(batch_id)

    def list(self, query: dict[str, str]) -> tuple[list[Batch], bool]:
        raw = query.get("limit", "20")
        try:
            limit = int(raw)
        except ValueError:
            raise APIError("invalid_request_error", f"limit: Input should be a valid integer, not {raw!r}") from None
        if not 1 <= limit <= 1000:
            raise APIError("invalid_request_error", f"limit: must be between 1 and 1000, not {limit}")
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
        return result_lines(batch, self.model, limit)

    # -- realtime ---------------------------------------------------------------------------
    def message(self, body: bytes) -> tuple[dict[str, Any], bool]:
        """A realtime answer, and whether the client asked for it streamed."""
        params = parse_json(body)
        err = validate_params(params, in_batch=False, strict_models=self.options.strict_models)
        if err is not None:
            raise APIError(*err)
        cache = None
        prefix = cache_prefix(params)
        if prefix is not None and prefix.tokens >= self.options.cache_min_tokens:
            msg_owner = new_message_id()
            cache = (prefix, self.cache.claim(prefix.key, msg_owner))
        msg_id = new_message_id()
        try:
            message = self.model.answer(
                params, message_id=msg_id, seed=str(self.options.seed), service_tier="standard", cache=cache
            )
        except Exception as exc:
            raise APIError("api_error", f"responder raised {type(exc).__name__}: {exc}") from exc
        return message, bool(params.get("stream"))

    # -- models -----------------------------------------------------------------------------
    def models(self, query: dict[str, str]) -> dict[str, Any]:
        """``GET /v1/models``: the strict list if one is set, else a few current ids
        (any Claude-like id is still accepted everywhere)."""
        ids = list(self.options.strict_models or LISTED_MODELS)
        try:
            limit = int(query.get("limit", 20))
        except ValueError:
            raise APIError("invalid_request_error", f"limit: Input should be a valid integer, got {query.get('limit')!r}") from None
        if not 1 <= limit <= 1000:
            raise APIError("invalid_request_error", f"limit: Input should be between 1 and 1000, got {limit}")
        after = query.get("after_id")
        if after in ids:
            ids = ids[ids.index(after) + 1 :]
        page = [self.model_info(m) for m in ids[:limit]]
        return {
            "data": page,
            "has_more": len(ids) > limit,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    def model_info(self, model_id: str) -> dict[str, Any]:
        """``GET /v1/models/{id}``: a ModelInfo for any id the simulator would accept."""
        strict = self.options.strict_models
        if not looks_like_claude(model_id) or (strict is not None and model_id not in set(strict)):
            raise APIError("not_found_error", f"model: {model_id}")
        words = [w for w in model_id.split("-")[1:] if not (w.isdigit() and len(w) == 8)]
        name = " ".join(w.capitalize() for w in words if not w.isdigit())
        version = ".".join(w for w in words if w.isdigit())
        return {
            "type": "model",
            "id": model_id,
            "display_name": f"Claude {name} {version}".strip(),
            "created_at": "2025-10-01T00:00:00Z",
        }

    def count_tokens(self, body: bytes) -> dict[str, Any]:
        params = parse_json(body)
        probe = {"max_tokens": 1, **params}
        err = validate_params(probe, in_batch=False, strict_models=self.options.strict_models)
        if err is not None:
            raise APIError(*err)
        return {"input_tokens": count_input_tokens(params)}


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
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**message["usage"], "output_tokens": 1}}
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
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "thinking_delta", "thinking": block["thinking"]}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "signature_delta", "signature": block["signature"]}}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": i, "content_block": block}
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                            "usage": {"output_tokens": message["usage"]["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}

