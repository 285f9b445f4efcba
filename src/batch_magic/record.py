"""The job record and its codec: what the journal's ``manifest.json`` holds.

``JobRecord`` is a job as recorded (what was asked, and how far it got), with its
``BatchEntry`` per batch, the states and their transition tables. Each record type
(the job, a batch, where it was sent, its estimate, its request options, its output
spec) is stored through one ``Codec`` (``codec.py``), by the types its fields
declare; what a type cannot say about an untrusted manifest (counts that add up,
batch ids that cannot lead out of a folder, a schema that refers nowhere outside) is
checked here, before anything is sized by it. Folder I/O is ``journal.py``'s job;
format 1 is read through ``migrate.py``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import orjson

from .codec import NONE_AS, Codec, CodecError
from .errors import ConfigError, JournalError, PlanError
from .plan import RequestOptions
from .pricing import Estimate
from .structured import KINDS, SCHEMA, OutputSpec

#: The manifest's format: 2 is the typed ``JobRecord``; format 1 (an untyped dict with the
#: wire params) is read through ``migrate.py`` and written as format 2 when the job next
#: changes (the old file kept as ``manifest.v1.json``).
FORMAT_VERSION = 2
#: A job folder's name, and a batch id (the API's are ``msgbatch_<base62>``): names that
#: cannot lead out of their folder.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def checked_batch_id(batch_id: str) -> str:
    if not isinstance(batch_id, str) or not SAFE_NAME.match(batch_id) or ".." in batch_id:
        raise JournalError(
            f"The journal names a batch {batch_id!r}, which is not a batch id (msgbatch_...); "
            "this journal was altered or came from elsewhere: remove that job's folder."
        )
    return batch_id


class JobState(StrEnum):
    """Where a job stands, as recorded. Transitions: ``JOB_TRANSITIONS``."""

    PLANNED = "planned"  # written, nothing sent yet
    RUNNING = "running"  # batches being sent, polled, collected, retried
    CANCELING = "canceling"  # the user asked to stop: nothing new is sent
    DONE = "done"  # every batch ended and was collected: ended
    CANCELED = "canceled"  # every batch ended or was dropped after a cancel: ended
    FAILED = "failed"  # the driver stopped on an error; not ended: the next run resumes


class BatchState(StrEnum):
    """Where one batch of a job stands. Transitions: ``BATCH_TRANSITIONS``."""

    PENDING = "pending"  # not sent
    SUBMITTING = "submitting"  # a create was sent and its answer not seen: it may exist
    IN_PROGRESS = "in_progress"  # the API has it (created, or adopted after a lost answer)
    CANCELING = "canceling"  # a cancel was sent, or the API reports it canceling
    ENDED = "ended"  # the API ended it and its results are in the journal
    DROPPED = "dropped"  # never sent: the job was canceled first


#: Every allowed move of a job's state; anything else is a bug and raises.
JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PLANNED: frozenset(
        {JobState.RUNNING, JobState.CANCELING, JobState.DONE, JobState.FAILED}
    ),  # DONE: a job with no request (every row skipped)
    JobState.RUNNING: frozenset({JobState.CANCELING, JobState.DONE, JobState.FAILED}),
    JobState.CANCELING: frozenset({JobState.CANCELED, JobState.FAILED}),
    # Failed is not ended: a new run resumes it (back to where it was going).
    JobState.FAILED: frozenset({JobState.RUNNING, JobState.CANCELING, JobState.FAILED}),
    JobState.DONE: frozenset(),
    JobState.CANCELED: frozenset(),
}

#: Every allowed move of a batch's state.
BATCH_TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    BatchState.PENDING: frozenset({BatchState.SUBMITTING, BatchState.DROPPED}),
    # PENDING: the create was refused outright (4xx), so no batch exists.
    BatchState.SUBMITTING: frozenset({BatchState.IN_PROGRESS, BatchState.PENDING, BatchState.DROPPED}),
    # PENDING: an adopted batch whose results are not this job's; ours is sent.
    BatchState.IN_PROGRESS: frozenset({BatchState.CANCELING, BatchState.ENDED, BatchState.PENDING}),
    BatchState.CANCELING: frozenset({BatchState.ENDED, BatchState.PENDING}),
    # IN_PROGRESS: its results file went missing from the journal; fetched again.
    BatchState.ENDED: frozenset({BatchState.IN_PROGRESS}),
    BatchState.DROPPED: frozenset(),
}

ENDED_JOB_STATES = frozenset({JobState.DONE, JobState.CANCELED})
#: Batches the API may be working on (or about to: a create without an answer yet).
LIVE_BATCH_STATES = frozenset(
    {BatchState.PENDING, BatchState.SUBMITTING, BatchState.IN_PROGRESS, BatchState.CANCELING}
)


class IllegalTransition(JournalError):
    """A move the transition table does not allow (a bug of batch_magic, not the user's)."""


@dataclass(frozen=True)
class SentTo:
    """Where a job's batches were sent: its base URL and whether that was a simulator
    (``builtin``: the one inside the notebook's own process). Never the key."""

    base_url: str
    simulator: bool
    builtin: bool = False


@dataclass
class BatchEntry:
    """One batch of a job: which requests, and what the API did with them."""

    n: int
    attempt: int
    size: int
    #: Request numbers ``[start, stop)`` (first attempts) ...
    first: int | None = None
    stop: int | None = None
    #: ... or an explicit list (retries of scattered requests).
    ids: list[int] | None = None
    state: BatchState = BatchState.PENDING
    batch_id: str | None = None
    #: Found on the server after an unanswered create rather than created by an answer.
    adopted: bool = False
    #: When the current create was sent; when the first one ever was.
    intent_at: str | None = None
    first_intent_at: str | None = None
    #: When a create last failed without saying whether the batch was made.
    unsure_at: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    ended_at: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: Batches adopted then found not to be this job's (same size, same minutes).
    rejected: list[str] = field(default_factory=list)
    #: Late copies of this batch's create that landed after it was sent again: canceled.
    duplicates: list[str] = field(default_factory=list)

    def move_to(self, state: BatchState) -> None:
        if state not in BATCH_TRANSITIONS[self.state]:
            raise IllegalTransition(f"batch {self.n}: {self.state.value} -> {state.value} is not a move a batch makes")
        self.state = state

    def request_numbers(self) -> np.ndarray:
        if self.ids is not None:
            return np.asarray(self.ids, dtype=np.int64)
        return np.arange(self.first or 0, self.stop or 0, dtype=np.int64)

    @property
    def live(self) -> bool:
        return self.state in LIVE_BATCH_STATES


@dataclass
class JobRecord:
    """A job as the journal records it: what was asked, and how far it got.

    The request options, output spec, template and ``out`` are kept as the user
    gave them (the wire params are rebuilt from them when sending), so a retry
    or a resumed job asks exactly what the first run asked.
    """

    job_id: str
    fingerprint: str
    created_at: str
    out: str
    template: str
    output: OutputSpec
    options: RequestOptions
    id_tag: str
    chunk_size: int
    n_rows: int
    n_requests: int
    n_skipped: int
    n_deduplicated: int
    batches: list[BatchEntry]
    state: JobState = JobState.PLANNED
    simulated: bool = False
    skip_reasons: dict[int, str] = field(default_factory=dict)
    #: The cost estimate at submission (None: the manifest holds none).
    estimate: Estimate | None = field(default=None, metadata={NONE_AS: {}})
    started_at: str | None = None
    finished_at: str | None = None
    cancel_requested_at: str | None = None
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    actual_cost: float | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    updated_at: str | None = None
    #: The server the batches went to (after a restart, says where to find them).
    sent_to: SentTo | None = None
    #: Distinct images and PDFs the prompts show (``media.json``); uploaded before any create.
    n_media: int = 0
    #: Rows left out of a sample (``--sample``), and the sample's seed and stratifying column.
    n_not_sent: int = 0
    sample_seed: int | None = None
    sample_stratify: str | None = None
    #: Requests answered from the journal's answer store (``reused.parquet``): not sent;
    #: what they would have cost at today's batch prices.
    n_reused: int = 0
    saved_cost: float | None = None
    #: This job's good answers are in the answer store (kept once, when first merged).
    answers_kept: bool = False
    #: The manifest format this record was read from (not stored): an older one is kept
    #: beside the manifest when the record is first written again (``Journal.write_record``).
    read_from_format: int = field(default=FORMAT_VERSION, compare=False, repr=False)

    # -- states ----------------------------------------------------------------------------
    def move_to(self, state: JobState) -> None:
        if state not in JOB_TRANSITIONS[self.state]:
            raise IllegalTransition(
                f"job {self.job_id}: {self.state.value} -> {state.value} is not a move a job makes"
            )
        self.state = state

    @property
    def ended(self) -> bool:
        """Done or canceled: everything is in the journal; nothing more to ask the API."""
        return self.state in ENDED_JOB_STATES

    def batches_in(self, *states: BatchState) -> list[BatchEntry]:
        return [b for b in self.batches if b.state in states]

    @property
    def batch_ids(self) -> set[str]:
        """Every batch id this job has met: its own, rejected adoptions, canceled duplicates."""
        ids = {b.batch_id for b in self.batches if b.batch_id}
        for b in self.batches:
            ids.update(b.rejected)
            ids.update(b.duplicates)
        return ids

    def add_batch(self, attempt: int, ids: list[int]) -> BatchEntry:
        entry = BatchEntry(n=len(self.batches), attempt=attempt, size=len(ids), ids=ids)
        self.batches.append(entry)
        return entry

    # -- on disk ---------------------------------------------------------------------------
    def to_json(self) -> bytes:
        data = {"version": FORMAT_VERSION, **RECORD.encode(self)}
        return orjson.dumps(data, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes, job_id: str, where: str) -> JobRecord:
        """The record from a manifest's bytes, checked as
        untrusted input: a file that is not a manifest of this job is refused. A format-1
        manifest is migrated in memory only (``migrate.py``)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise JournalError(f"The manifest {where!r} is unreadable ({exc}); this job cannot be opened.") from None
        if not isinstance(data, dict):
            raise JournalError(f"The manifest {where!r} is not a JSON object; this job cannot be opened.")
        version = data.get("version")
        if version == 1:
            from .migrate import from_format_1  # only an old journal needs it

            data = from_format_1(data, where)
        elif version != FORMAT_VERSION:
            raise JournalError(
                f"The manifest {where!r} is in format {version!r}; this batch_magic reads formats 1 "
                f"to {FORMAT_VERSION}. Upgrade batch_magic to open it."
            )
        if data.get("job_id") != job_id:
            raise JournalError(
                f"The manifest {where!r} is of job {data.get('job_id')!r}, not of its folder {job_id!r}; "
                "a journal whose folders were renamed or altered is not opened."
            )
        try:
            record = RECORD.decode(data, where)
        except CodecError as exc:
            raise JournalError(f"{where}: {exc}.") from None
        except (TypeError, ValueError) as exc:
            raise JournalError(f"The manifest {where!r} is not understood ({type(exc).__name__}: {exc}).") from None
        record.read_from_format = int(version)
        return record


# -- what a type cannot say about an untrusted manifest ------------------------------------
def _check_batch(entry: BatchEntry, where: str) -> None:
    for bid in (entry.batch_id, *entry.rejected, *entry.duplicates):
        if bid is not None:
            try:
                checked_batch_id(bid)
            except JournalError as exc:
                raise JournalError(f"{where}: {exc}") from None
    if entry.ids is None and (entry.first is None or entry.stop is None):
        raise JournalError(f"{where}: batch {entry.n} names no requests.")


def _check_output(output: OutputSpec, where: str) -> None:
    if output.kind not in KINDS:
        raise JournalError(f"The manifest {where!r} names the output kind {output.kind!r}, not one of {KINDS}.")


def _check_options(options: RequestOptions, where: str) -> None:
    try:
        options.validate()
    except (PlanError, ConfigError) as exc:
        raise JournalError(f"The manifest {where!r} holds options that are not valid: {exc}") from None


def _check_record(record: JobRecord, where: str) -> None:
    if record.output.kind == SCHEMA:
        # Checked again when read (a reference leaving the schema is refused), without
        # jsonschema: listing a journal loads nothing heavy; the full check comes with use.
        from .schemas import check_schema_shape

        try:
            check_schema_shape(record.output.schema)
        except ConfigError as exc:
            raise JournalError(f"The manifest {where!r} holds options that are not valid: {exc}") from None
    if not record.out.isidentifier():
        raise JournalError(f"The manifest {where!r} names the column {record.out!r}, which is not a name.")
    _check_counts(where, record)


def _check_counts(where: str, record: JobRecord) -> None:
    """The manifest's counts and request numbers agree with each other (``read_record``
    then checks them against the job's files), before any sizes an array."""
    n = record.n_requests
    counts = (record.n_rows, n, record.n_skipped, record.n_deduplicated, record.n_not_sent, record.n_reused)
    if (
        min(counts) < 0
        or record.n_rows != n + record.n_skipped + record.n_deduplicated + record.n_not_sent
        or record.n_reused > n
    ):
        raise JournalError(
            f"The manifest {where!r} holds counts that do not add up (rows {record.n_rows}, requests {n}, "
            f"skipped {record.n_skipped}, deduplicated {record.n_deduplicated}, not sent {record.n_not_sent}, "
            f"reused {record.n_reused}); this journal was altered."
        )
    for b in record.batches:
        if b.ids is not None:
            fits = b.size == len(b.ids) and all(0 <= k < n for k in b.ids)
        else:
            assert b.first is not None and b.stop is not None  # _check_batch refuses an entry without either
            fits = 0 <= b.first <= b.stop <= n and b.size == b.stop - b.first
        if not fits:
            raise JournalError(
                f"The manifest {where!r} has batch {b.n} of {b.size} requests that are not among the "
                f"job's {n} (or not {b.size}); this journal was altered."
            )
    if any(not 0 <= k < record.n_rows for k in record.skip_reasons):
        raise JournalError(f"The manifest {where!r} gives skip reasons for rows the job does not have.")


#: One codec per record type, in the order a manifest nests them.
SENT_TO = Codec(SentTo)
ESTIMATE = Codec(Estimate)
OPTIONS = Codec(RequestOptions, check=_check_options)
#: The spec as the user gave it; a pydantic model class is not stored (only its schema).
OUTPUT = Codec(OutputSpec, omit=("model",), check=_check_output)
BATCH = Codec(BatchEntry, omit_none=True, check=_check_batch)
RECORD = Codec(JobRecord, omit=("read_from_format",), check=_check_record)
