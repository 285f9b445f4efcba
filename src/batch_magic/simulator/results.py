"""Turn an ended batch into its JSONL results, lazily and in buffered blocks.

A 100,000-request batch is never held as one string: lines are generated one
by one (the fake model runs here) and written in blocks of about 64 KiB. Each
line ends with exactly one ``\\n`` and contains no ``\\r`` (orjson escapes
control characters inside strings), so every JSONL decoder is happy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from .model import FakeModel
from .protocol import hashed_base62
from .store import Batch
from .tokens import CachePrefix

BLOCK_SIZE = 1 << 16


def result_lines(batch: Batch, model: FakeModel, limit: int | None = None) -> Iterator[bytes]:
    """One JSONL line (with its newline) per request, in the batch's results order."""
    cids, params = batch.requests()
    m = batch.finished()
    seed = str(batch.policy.seed)
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    for k, idx in enumerate(batch.order()):
        if limit is not None and k >= limit:
            return
        cid = cids[idx]
        out = batch.outcome(idx, cid, k < m)
        result: dict[str, Any]
        if out.kind == "succeeded":
            result = succeeded(batch, model, idx, cid, params[idx], seed)
        elif out.kind == "errored":
            result = errored(out.error_type or "api_error", out.message or "")
        else:
            result = {"type": out.kind}
        yield dumps({"custom_id": cid, "result": result}, option=newline)


def succeeded(batch: Batch, model: FakeModel, idx: int, cid: str, raw: bytes, seed: str) -> dict[str, Any]:
    """A succeeded result, or an errored one if a user responder fails."""
    params = orjson.loads(raw)
    info = batch.cache_info.get(idx)
    cache = (CachePrefix(info[0], info[1], info[2]), info[3]) if info else None
    try:
        message = model.answer(
            params,
            message_id="msg_01" + hashed_base62(22, batch.id, cid),
            seed=seed,
            service_tier="batch",
            cache=cache,
            draw_key=f"{batch.id}/{cid}",  # a request resubmitted in a new batch draws afresh
            files=batch.media.get,
        )
    except Exception as exc:  # a user responder's bug becomes this request's error
        return errored("api_error", f"responder raised {type(exc).__name__}: {exc}")
    return {"type": "succeeded", "message": message}


def errored(error_type: str, message: str) -> dict[str, Any]:
    """The errored result, with the category one level down: ``error.error.type``."""
    return {"type": "errored", "error": {"type": "error", "error": {"type": error_type, "message": message}}}


def blocks(lines: Iterator[bytes], size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Join lines into blocks of about ``size`` bytes (fewer, larger socket writes)."""
    buf: list[bytes] = []
    n = 0
    for line in lines:
        buf.append(line)
        n += len(line)
        if n >= size:
            yield b"".join(buf)
            buf, n = [], 0
    if buf:
        yield b"".join(buf)
