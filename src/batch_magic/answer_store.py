"""Every prompt paid for once: the journal's store of answers, keyed by the exact request.

A job is a view of rows over answers. When a job is planned, each of its
requests is looked up here by a content key: the server it would go to, every
shared parameter (model, max_tokens, system, thinking, effort, the output
schema or tool) and the rendered prompt (whose image and PDF markers carry each
file's sha256). Requests found are not sent: the job keeps their answers in
its own folder (``reused.parquet``) and merges them like any other result.
Only the rest goes to the API, so a full run after a sample, a frame with rows
appended, or a job after a cancel pays only for what is new.

Only answers that were good are kept: a request that succeeded, whose answer
fit its labels or schema (row status ``succeeded``) and carried no note (not
cut short by ``max_tokens``, no refusal). Errored, expired, refused and invalid
answers are never reused. The key names the server (the built-in simulator is
one server whatever its port), so a simulated answer never stands in for a real
one.

The index is SQLite from the standard library: one table, the key as primary
key, looked up in chunks, written in one transaction per job.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from . import safepath
from .errors import JournalError

#: The store's file, in the journal's root folder.
STORE_FILE = "answers.sqlite"
#: A job's own copy of the answers it took from the store.
REUSED_FILE = "reused.parquet"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    answer TEXT NOT NULL,
    stop_reason TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    thinking_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cache_write_5m_tokens INTEGER NOT NULL,
    job_id TEXT NOT NULL
)
"""
#: The answer's fields, in table order after the key.
FIELDS = (
    "answer", "stop_reason", "input_tokens", "output_tokens", "thinking_tokens",
    "cache_read_tokens", "cache_write_tokens", "cache_write_5m_tokens",
)
_INT_FIELDS = FIELDS[2:]
#: Each token column under the name the API's usage gives it (what ``pricing.actual_cost`` reads).
API_USAGE = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation_input_tokens": "cache_write_tokens",
    "ephemeral_5m_input_tokens": "cache_write_5m_tokens",
    "thinking_tokens": "thinking_tokens",
}


def request_keys(server: str, shared: dict[str, Any], prompts: Sequence[str]) -> list[bytes]:
    """The content key of each request: sha256 over the server, the shared params and the prompt."""
    head = hashlib.sha256()
    head.update(server.encode())
    head.update(b"\x00")
    head.update(orjson.dumps(shared, option=orjson.OPT_SORT_KEYS))
    head.update(b"\x00")
    keys = []
    for prompt in prompts:
        h = head.copy()
        h.update(prompt.encode("utf-8", "surrogatepass"))
        keys.append(h.digest())
    return keys


@dataclass(frozen=True)
class KnownAnswers:
    """Answers found in the store for some of a job's requests (by request number)."""

    numbers: np.ndarray  # int64: the job's request numbers answered already
    columns: dict[str, np.ndarray]  # each of FIELDS, aligned with ``numbers``

    @property
    def n(self) -> int:
        return len(self.numbers)

    def usage(self) -> dict[str, np.ndarray]:
        """Their usage per request, keyed as ``pricing.actual_cost`` reads it (what they
        would cost if sent again: the saving)."""
        return {api: self.columns[column] for api, column in API_USAGE.items()}

    @classmethod
    def none(cls) -> KnownAnswers:
        return cls(np.zeros(0, dtype=np.int64), {name: np.zeros(0, dtype=np.int64) for name in FIELDS})

    def to_parquet(self) -> bytes:
        """As the job's ``reused.parquet`` (data, read back with its types checked)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"request": self.numbers, **{name: self.columns[name] for name in FIELDS}})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return bytes(sink.getvalue())

    @classmethod
    def from_parquet(cls, data: bytes, where: str, n_requests: int) -> KnownAnswers:
        """A job's reused answers, checked against the job: numbers in range, types as written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(pa.BufferReader(data))
            columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in ("request", *FIELDS)}
        except (OSError, KeyError, pa.ArrowException) as exc:
            raise JournalError(f"{where} is unreadable ({exc}); remove the job's folder and run its cell again.") from None
        numbers = np.asarray(columns.pop("request"))
        if numbers.dtype.kind != "i" or (numbers.size and (numbers.min() < 0 or numbers.max() >= n_requests)):
            raise JournalError(f"{where} names requests this job does not have; the journal was altered.")
        if len(np.unique(numbers)) != len(numbers):
            raise JournalError(f"{where} names a request twice; the journal was altered.")
        for name in _INT_FIELDS:
            if np.asarray(columns[name]).dtype.kind != "i":
                raise JournalError(f"{where}: column {name!r} is not whole numbers; the journal was altered.")
        for name in ("answer", "stop_reason"):
            if not all(v is None or isinstance(v, str) for v in columns[name]):
                raise JournalError(f"{where}: column {name!r} is not text; the journal was altered.")
        return cls(numbers.astype(np.int64), {k: np.asarray(v) for k, v in columns.items()})


class AnswerStore:
    """The journal's answers, by request key. Opened per use (a short transaction)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / STORE_FILE

    def _connect(self) -> sqlite3.Connection:
        # The journal's path rule: no link, nothing outside; created owner-only, as every file.
        safepath.make_dirs(self.root, self.root)
        for companion in ("", "-wal", "-shm", "-journal"):
            safepath.checked(self.root, self.root / (STORE_FILE + companion))
        os.close(safepath.open_fd(self.root, self.path, os.O_CREAT | os.O_RDWR))
        try:
            conn = sqlite3.connect(self.path, timeout=30)
            # A store that loses its last write after a power cut loses a chance to reuse,
            # never an answer (each job keeps its own): write-ahead, synced at checkpoints.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(
                f"The journal's answer store {self.path} is unreadable ({exc}); remove it (answers "
                "already merged stay in each job's folder) and run the cell again."
            ) from None
        return conn

    def lookup(self, keys: Sequence[bytes]) -> KnownAnswers:
        """The stored answers among ``keys`` (request k has key ``keys[k]``).

        Rows are found by the key's first 8 bytes as SQLite's integer row id (a
        B-tree of integers, several times faster than one of 32-byte blobs at a
        million rows) and kept only where the whole key matches: two keys sharing
        8 bytes would just not be reused. The stored ids are read first, so a job
        none of whose prompts is known makes no per-row query at all.
        """
        if not keys or not safepath.is_file(self.root, self.path):
            return KnownAnswers.none()
        ids = row_ids(keys)
        with closing(self._connect()) as conn:
            stored = np.fromiter((row[0] for row in conn.execute("SELECT id FROM answers")), dtype=np.int64)
            candidates = np.flatnonzero(np.isin(ids, stored))
            if not candidates.size:
                return KnownAnswers.none()
            # One join against the wanted ids in a temporary table, in id order (the B-tree's).
            order = candidates[np.argsort(ids[candidates], kind="stable")]
            conn.execute("CREATE TEMP TABLE wanted (id INTEGER PRIMARY KEY, k INTEGER NOT NULL)")
            conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?, ?)", zip(ids[order].tolist(), order.tolist()))
            found = conn.execute(
                f"SELECT wanted.k, answers.key, {', '.join('answers.' + f for f in FIELDS)} "
                "FROM wanted JOIN answers ON answers.id = wanted.id"
            ).fetchall()
        found = [row for row in found if row[1] == keys[row[0]]]  # the whole key, not 8 bytes of it
        if not found:
            return KnownAnswers.none()
        # Identical prompts are one request already, so a key names one request number.
        columns = list(zip(*found))
        numbers = np.asarray(columns[0], dtype=np.int64)
        by_number = np.argsort(numbers)
        values: dict[str, np.ndarray] = {}
        for name, column in zip(FIELDS, columns[2:]):
            if name in _INT_FIELDS:
                values[name] = np.asarray(column, dtype=np.int64)[by_number]
            else:
                array = np.empty(len(column), dtype=object)
                array[:] = column
                values[name] = array[by_number]
        return KnownAnswers(numbers[by_number], values)

    def remember(self, job_id: str, keys: Sequence[bytes], answers: KnownAnswers) -> int:
        """Keep a job's good answers (``answers.numbers`` index ``keys``). Returns how many were new."""
        if not answers.n:
            return 0
        numbers = answers.numbers
        ids = row_ids([keys[k] for k in numbers.tolist()])
        order = np.argsort(ids, kind="stable")  # inserted in the B-tree's order: appends, not splits
        rows = zip(
            ids[order].tolist(),
            (keys[k] for k in numbers[order].tolist()),
            *(answers.columns[name][order].tolist() for name in FIELDS),
            [job_id] * answers.n,
        )
        with closing(self._connect()) as conn, conn:
            before = conn.total_changes
            conn.executemany(
                f"INSERT OR IGNORE INTO answers (id, key, {', '.join(FIELDS)}, job_id) "
                f"VALUES (?, ?, {', '.join('?' * len(FIELDS))}, ?)",
                rows,
            )
            return conn.total_changes - before


def row_ids(keys: Sequence[bytes]) -> np.ndarray:
    """Each key's first 8 bytes as a signed 64-bit integer: its row id in the store."""
    return np.frombuffer(b"".join(key[:8] for key in keys), dtype=">i8").astype(np.int64)
