"""Batches: their state, lifecycle and (optionally) their persistence on disk.

Nothing here runs in the background. A batch stores when it was created, how
long it takes, and when a cancel was asked for; its status, counts and
``ended_at`` are computed from the clock on every call, so polling is cheap
and a :class:`~batch_magic.simulator.clock.FakeClock` can move time at will.

Requests are stored compactly: one zlib-compressed block per batch of
``custom_id<TAB>params-json`` lines (prompts rendered from one template
compress very well), unpacked only while results are generated. Results are
regenerated deterministically, so a state directory only needs each batch's
metadata and that same block, written atomically.
"""

from __future__ import annotations

import json
import os
import random
import threading
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .faults import REQUEST_ERROR_MESSAGES, draw, pick_error
from .media import FileView, view_from_json, view_to_json
from .protocol import APIError, read_state, rfc3339, rfc3339_or_none, state_folder, write_atomic

#: (cache key, prefix tokens, ttl, whether this request wrote the cache)
CacheInfo = tuple[str, int, str, bool]


@dataclass
class BatchPolicy:
    """The options in force when the batch was created, durations in real seconds."""

    seed: int = 0
    error_rates: dict[str, float] = field(default_factory=dict)
    expire_rate: float = 0.0
    refusal_rate: float = 0.0
    invalid_rate: float = 0.0
    duration: float = 0.0
    cancel_delay: float = 0.0
    expiry_after: float = 86400.0
    retention: float = 29 * 86400.0


@dataclass
class Outcome:
    """What became of one request."""

    kind: str  # succeeded | errored | canceled | expired
    error_type: str | None = None
    message: str | None = None


@dataclass
class Batch:
    """One message batch. Status is derived from the clock, never stored."""

    id: str
    seq: int
    created_at: float
    n: int
    policy: BatchPolicy
    pre_errors: dict[int, tuple[str, str]] = field(default_factory=dict)
    cache_info: dict[int, CacheInfo] = field(default_factory=dict)
    #: What the batch saw of each upload its requests name, when it was created.
    media: dict[str, FileView] = field(default_factory=dict)
    cancel_initiated_at: float | None = None
    packed: bytes = b""
    _order: list[int] | None = None
    _counts: dict[str, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- requests ---------------------------------------------------------------------------
    def requests(self) -> tuple[list[str], list[bytes]]:
        """custom_ids and params (JSON bytes), unpacked afresh: callers hold them only briefly."""
        return unpack(self.packed)

    # -- lifecycle --------------------------------------------------------------------------
    def timeline(self) -> tuple[float, str]:
        """(the time processing ends, why): 'done', 'canceled' or 'expired'."""
        p = self.policy
        end, cut = self.created_at + p.duration, "done"
        deadline = self.created_at + p.expiry_after
        if deadline < end:
            end, cut = deadline, "expired"
        if self.cancel_initiated_at is not None:
            c_end = self.cancel_initiated_at + p.cancel_delay
            if c_end < end:
                end, cut = c_end, "canceled"
        return end, cut

    def ended(self, now: float) -> bool:
        return now >= self.timeline()[0]

    def status(self, now: float) -> str:
        if self.ended(now):
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def archived_at(self, now: float) -> float | None:
        t = self.created_at + self.policy.retention
        return t if self.ended(now) and now >= t else None

    def finished(self) -> int:
        """How many requests (in processing order) had finished when processing ended."""
        end, cut = self.timeline()
        if cut == "done" or self.policy.duration <= 0:
            return self.n
        frac = (end - self.created_at) / self.policy.duration
        return min(self.n, max(0, int(frac * self.n + 1e-9)))

    def order(self) -> list[int]:
        """Processing (and results) order: a stable shuffle, never the request order."""
        with self._lock:
            if self._order is None:
                order = list(range(self.n))
                random.Random(f"{self.policy.seed}:{self.id}").shuffle(order)
                self._order = order
            return self._order

    def outcome(self, idx: int, custom_id: str, finished: bool) -> Outcome:
        p = self.policy
        if not finished:
            return Outcome("expired" if self.timeline()[1] == "expired" else "canceled")
        if p.expire_rate and draw(p.seed, "expire", self.id, custom_id) < p.expire_rate:
            return Outcome("expired")
        pre = self.pre_errors.get(idx)
        if pre is not None:
            return Outcome("errored", pre[0], pre[1])
        category = pick_error(p.seed, self.id, custom_id, p.error_rates)
        if category is not None:
            return Outcome("errored", category, REQUEST_ERROR_MESSAGES[category])
        return Outcome("succeeded")

    def iter_outcomes(self) -> list[tuple[int, Outcome]]:
        """(request index, outcome) for every request, in results order."""
        cids, _ = self.requests()
        m = self.finished()
        return [(idx, self.outcome(idx, cids[idx], k < m)) for k, idx in enumerate(self.order())]

    def counts(self, now: float) -> dict[str, int]:
        if not self.ended(now):
            return {"processing": self.n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        with self._lock:
            cached = self._counts
        if cached is not None:
            return dict(cached)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        p = self.policy
        if not p.error_rates and not p.expire_rate:
            # Fast path: no random draws, only the finished/unfinished split.
            m = self.finished()
            order = self.order()
            unfinished = self.n - m
            cut_kind = "expired" if self.timeline()[1] == "expired" else "canceled"
            counts[cut_kind] += unfinished
            errored = sum(1 for k in range(m) if order[k] in self.pre_errors) if self.pre_errors else 0
            counts["errored"] = errored
            counts["succeeded"] = m - errored
        else:
            for _, out in self.iter_outcomes():
                counts[out.kind] += 1
        with self._lock:
            self._counts = counts
        return dict(counts)

    def to_json(self, now: float, base_url: str, *, just_created: bool = False) -> dict[str, Any]:
        """The MessageBatch object as the API returns it.

        ``just_created``: the answer to create, which is always ``in_progress``
        (as from the real API), even when processing takes no time at all.
        """
        end, _ = self.timeline()
        ended = now >= end and not just_created
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": "in_progress" if just_created else self.status(now),
            "request_counts": self.counts(now) if not just_created else self.counts(float("-inf")),
            "ended_at": rfc3339(end) if ended else None,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.created_at + 86400.0),
            "archived_at": None if just_created else rfc3339_or_none(self.archived_at(now)),
            "cancel_initiated_at": rfc3339_or_none(self.cancel_initiated_at),
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }


class Store:
    """All batches of one simulator, newest last; thread-safe; optionally on disk."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.lock = threading.RLock()
        self._batches: dict[str, Batch] = {}
        self._tombstones: dict[str, int] = {}  # deleted id -> seq, so list cursors survive
        self._next_seq = 1
        self.state_dir = Path(state_dir) if state_dir is not None else None
        if self.state_dir is not None:
            state_folder(self.state_dir / "batches")

    # -- queries ----------------------------------------------------------------------------
    def get(self, batch_id: str) -> Batch:
        with self.lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            raise APIError("not_found_error", f"No message batch found with id '{batch_id}'.")
        return batch

    def ids(self) -> list[str]:
        """Batch ids, oldest first."""
        with self.lock:
            return list(self._batches)

    def all(self) -> list[Batch]:
        with self.lock:
            return list(self._batches.values())

    def page(self, limit: int, after_id: str | None, before_id: str | None) -> tuple[list[Batch], bool]:
        """A page newest first, cursor semantics of the API's list endpoint."""
        with self.lock:
            newest_first = list(reversed(self._batches.values()))
            if after_id is not None:
                cseq = self._seq_of(after_id, "after_id")
                candidates = [b for b in newest_first if b.seq < cseq]
                return candidates[:limit], len(candidates) > limit
            if before_id is not None:
                cseq = self._seq_of(before_id, "before_id")
                candidates = [b for b in newest_first if b.seq > cseq]
                return candidates[-limit:], len(candidates) > limit
            return newest_first[:limit], len(newest_first) > limit

    def _seq_of(self, batch_id: str, name: str) -> int:
        if batch_id in self._batches:
            return self._batches[batch_id].seq
        if batch_id in self._tombstones:
            return self._tombstones[batch_id]
        raise APIError("invalid_request_error", f"{name}: no message batch found with id '{batch_id}'.")

    # -- changes ----------------------------------------------------------------------------
    def next_seq(self) -> int:
        with self.lock:
            seq = self._next_seq
            self._next_seq += 1
            return seq

    def add(self, batch: Batch) -> None:
        if self.state_dir is not None:
            self._write_requests(batch)
            self._write_meta(batch)
        with self.lock:
            self._batches[batch.id] = batch

    def cancel(self, batch_id: str, now: float) -> Batch:
        with self.lock:
            batch = self.get(batch_id)
            if batch.ended(now):
                raise APIError(
                    "invalid_request_error",
                    f"Message batch '{batch_id}' has already ended and can no longer be canceled.",
                )
            if batch.cancel_initiated_at is None:
                batch.cancel_initiated_at = now
                if self.state_dir is not None:
                    self._write_meta(batch)
            return batch

    def delete(self, batch_id: str, now: float) -> None:
        with self.lock:
            batch = self.get(batch_id)
            if not batch.ended(now):
                raise APIError(
                    "invalid_request_error",
                    f"Message batch '{batch_id}' is still {batch.status(now)}; "
                    "it can only be deleted once processing has ended (cancel it first).",
                )
            del self._batches[batch_id]
            self._tombstones[batch_id] = batch.seq
        if self.state_dir is not None:
            for suffix in (".json", ".requests"):
                (self.state_dir / "batches" / f"{batch_id}{suffix}").unlink(missing_ok=True)

    def clear(self) -> None:
        with self.lock:
            ids = list(self._batches)
            self._batches.clear()
            self._tombstones.clear()
        if self.state_dir is not None:
            for batch_id in ids:
                for suffix in (".json", ".requests"):
                    (self.state_dir / "batches" / f"{batch_id}{suffix}").unlink(missing_ok=True)

    # -- persistence ------------------------------------------------------------------------
    def _write_requests(self, batch: Batch) -> None:
        assert self.state_dir is not None
        write_atomic(self.state_dir / "batches" / f"{batch.id}.requests", batch.packed)

    def _write_meta(self, batch: Batch) -> None:
        assert self.state_dir is not None
        meta = {
            "id": batch.id,
            "seq": batch.seq,
            "created_at": batch.created_at,
            "n": batch.n,
            "policy": asdict(batch.policy),
            "cancel_initiated_at": batch.cancel_initiated_at,
            "pre_errors": [[i, t, m] for i, (t, m) in batch.pre_errors.items()],
            "cache_info": [[i, *info] for i, info in batch.cache_info.items()],
            "media": [view_to_json(v) for v in batch.media.values()],
        }
        write_atomic(self.state_dir / "batches" / f"{batch.id}.json", json.dumps(meta).encode())

    def load(self) -> list[Batch]:
        """Read every batch of the state directory (requests are read lazily)."""
        if self.state_dir is None:
            return []
        loaded: list[Batch] = []
        for meta_path in (self.state_dir / "batches").glob("*.json"):
            try:
                meta = json.loads(read_state(meta_path))
                req_path = meta_path.with_suffix(".requests")
                if not req_path.exists() or meta["id"] != meta_path.stem:
                    continue
                batch = Batch(
                    id=meta["id"],
                    seq=int(meta["seq"]),
                    created_at=float(meta["created_at"]),
                    n=int(meta["n"]),
                    policy=BatchPolicy(**meta["policy"]),
                    pre_errors={int(i): (t, m) for i, t, m in meta["pre_errors"]},
                    cache_info={int(r[0]): (str(r[1]), int(r[2]), str(r[3]), bool(r[4])) for r in meta["cache_info"]},
                    cancel_initiated_at=meta["cancel_initiated_at"],
                    media={v["file_id"]: view_from_json(v) for v in meta.get("media", [])},
                    packed=read_state(req_path),
                )
                if batch.n != count_requests(batch.packed):
                    continue  # its count was altered: not a batch this simulator wrote
            except (OSError, ValueError, KeyError, TypeError, zlib.error):
                continue  # a half-written, foreign or linked file: not a batch
            loaded.append(batch)
        loaded.sort(key=lambda b: b.seq)
        with self.lock:
            for batch in loaded:
                self._batches[batch.id] = batch
                self._next_seq = max(self._next_seq, batch.seq + 1)
        return loaded


class Packer:
    """Builds the compressed request block incrementally, so no full copy is ever held."""

    CHUNK = 1 << 20

    def __init__(self) -> None:
        self._z = zlib.compressobj(1)
        self._out: list[bytes] = []
        self._buf: list[bytes] = []
        self._size = 0

    def add(self, custom_id: str, params: bytes) -> None:
        line = b"%s\t%s\n" % (custom_id.encode(), params)
        self._buf.append(line)
        self._size += len(line)
        if self._size >= self.CHUNK:
            self._out.append(self._z.compress(b"".join(self._buf)))
            self._buf, self._size = [], 0

    def finish(self) -> bytes:
        self._out.append(self._z.compress(b"".join(self._buf)))
        self._out.append(self._z.flush())
        return b"".join(self._out)


def count_requests(packed: bytes) -> int:
    """How many requests a :class:`Packer` block holds, counted a chunk at a time (a
    crafted block cannot make this hold more than a chunk)."""
    z = zlib.decompressobj()
    count, data = 0, packed
    while data:
        count += z.decompress(data, Packer.CHUNK).count(b"\n")
        data = z.unconsumed_tail
    return count + z.flush().count(b"\n")


def unpack(packed: bytes) -> tuple[list[str], list[bytes]]:
    """The custom_ids and params of a :class:`Packer` block."""
    cids: list[str] = []
    params: list[bytes] = []
    for line in zlib.decompress(packed).split(b"\n")[:-1]:
        cid, _, raw = line.partition(b"\t")
        cids.append(cid.decode())
        params.append(raw)
    return cids, params
