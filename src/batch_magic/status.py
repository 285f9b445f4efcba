"""What a job looks like from outside: immutable status snapshots.

The job emits a new ``JobStatus`` on every change; displays (the panel, text
status lines) only read these, so they depend on this module alone, never on
the job's machinery.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from .format import status_text
from .record import ENDED_JOB_STATES, BatchState, JobRecord, JobState
from .states import RUNNING_STEPS, DisplayState, RowStatus

# -- the states a snapshot shows -------------------------------------------------
# The record's states (``journal.JobState``) are the truth; a snapshot shows each
# under one word, and a running job shows the step it is in while it is in one.

#: The word a snapshot shows for each recorded state.
DISPLAY_STATE: dict[JobState, DisplayState] = {
    JobState.PLANNED: DisplayState.PLANNED,
    JobState.RUNNING: DisplayState.IN_PROGRESS,  # or the step (states.RUNNING_STEPS) it is in
    JobState.CANCELING: DisplayState.CANCELING,
    JobState.DONE: DisplayState.DONE,
    JobState.CANCELED: DisplayState.CANCELED,
    JobState.FAILED: DisplayState.FAILED,
}
#: Every state a snapshot can show.
STATES = (*DISPLAY_STATE.values(), *RUNNING_STEPS)
#: The driver has stopped: the job ended (done, canceled) or failed (it resumes when
#: run again). A merge refused after the job ended shows "failed" too.
FINAL_STATES = frozenset(DISPLAY_STATE[s] for s in (*ENDED_JOB_STATES, JobState.FAILED))


@dataclass(frozen=True)
class DurationHint:
    """How long this journal's earlier batches like a job's took: an estimate, not a promise.

    "Like" means the same model, a similar size and the same kind of server
    (simulated or not). Seconds from a batch's creation to its end.
    """

    median: float
    #: The spread: the shortest and longest (the 10th and 90th percentiles from 10 on).
    low: float
    high: float
    samples: int


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job, for displays. Immutable; a new one per change."""

    job_id: str
    state: DisplayState
    model: str
    out: str
    simulated: bool
    n_rows: int
    n_requests: int
    n_skipped: int
    n_deduplicated: int
    batches_total: int
    batches_submitted: int
    batches_ended: int
    attempt: int
    #: Per-request outcome counts known so far (from ended batches).
    counts: dict[str, int]
    started_at: float | None
    finished_at: float | None
    #: Earliest expiry of a batch still running (epoch seconds), if any.
    expires_at: float | None
    estimated_cost: float | None
    estimated_cost_upper: float | None
    actual_cost: float | None
    reconnecting: bool = False
    error: str | None = None
    message: str = ""
    columns: tuple[str, ...] = ()
    row_counts: dict[str, int] = field(default_factory=dict)
    #: How long similar earlier batches took (None: no history in the journal).
    typical_duration: DurationHint | None = None
    #: Images and PDFs of the job, and how many are uploaded (recorded) so far.
    uploads_total: int = 0
    uploads_done: int = 0
    #: Where the cost figures' prices come from (e.g. "from genai-prices 0.2.3").
    prices: str | None = None
    #: Requests answered from the journal's answer store (not sent), and what they would cost.
    n_reused: int = 0
    saved_cost: float | None = None
    #: Rows left out of a sample (``--sample``).
    n_not_sent: int = 0

    @property
    def projected_full_cost(self) -> float | None:
        """For a sample: what every row of the frame would cost, at the sample's cost per
        row (measured once it ended, estimated before); None for a job that is not a sample."""
        if not self.n_not_sent:
            return None
        cost = self.actual_cost if self.actual_cost is not None else self.estimated_cost
        if cost is None:
            return None
        sent_rows = self.n_rows - self.n_not_sent
        return (cost + (self.saved_cost or 0.0)) * self.n_rows / max(1, sent_rows)

    def __post_init__(self) -> None:
        # The word as its member (a display may pass the word); an unknown word is a bug.
        try:
            state = DisplayState(self.state)
        except ValueError:
            raise ValueError(
                f"{self.state!r} is not a job state a snapshot shows ({', '.join(STATES)})"
            ) from None
        object.__setattr__(self, "state", state)

    @classmethod
    def from_record(
        cls,
        record: JobRecord,
        *,
        step: DisplayState | None = None,
        failure: str | None = None,
        message: str = "",
        reconnecting: bool = False,
        uploads_done: int = 0,
        typical_duration: DurationHint | None = None,
    ) -> JobStatus:
        """The snapshot of ``record``: what the journal says, plus what only the driver
        knows (the step it is in, its message, a failure of this run).

        ``failure`` wins over everything: a run that failed shows "failed" with its
        error and no new columns, even over a record that says the job ended (a merge
        refused after the job ended). Otherwise ``step`` (a running job's step, or
        "canceling" asked) shows instead of the recorded state.
        """
        batches = record.batches
        counts: dict[str, int] = {}
        for b in batches:
            for key, value in b.counts.items():
                if key != "processing":
                    counts[key] = counts.get(key, 0) + int(value)
        live = record.batches_in(BatchState.IN_PROGRESS, BatchState.CANCELING)
        expiries = [e for e in (epoch(b.expires_at) for b in live) if e]
        estimate = record.estimate
        if failure is not None:
            state = DisplayState.FAILED
        else:
            state = step or DISPLAY_STATE[record.state]
        return cls(
            job_id=record.job_id,
            state=state,
            model=record.options.model,
            out=record.out,
            simulated=record.simulated,
            n_rows=record.n_rows,
            n_requests=record.n_requests,
            n_skipped=record.n_skipped,
            n_deduplicated=record.n_deduplicated,
            batches_total=sum(1 for b in batches if b.state is not BatchState.DROPPED),
            batches_submitted=sum(1 for b in batches if b.batch_id),
            batches_ended=len(record.batches_in(BatchState.ENDED)),
            attempt=max((b.attempt for b in batches), default=1),
            counts=counts,
            started_at=epoch(record.started_at),
            finished_at=epoch(record.finished_at),
            expires_at=min(expiries) if expiries else None,
            estimated_cost=estimate.batch_cost if estimate is not None else None,
            estimated_cost_upper=estimate.batch_cost_upper if estimate is not None else None,
            prices=estimate.prices_taken if estimate is not None else None,
            actual_cost=record.actual_cost,
            reconnecting=reconnecting,
            error=failure if failure is not None else record.error,
            message=message,
            columns=() if failure is not None else tuple(record.columns),
            row_counts={} if failure is not None else dict(record.row_counts),
            typical_duration=typical_duration,
            uploads_total=record.n_media,
            uploads_done=uploads_done,
            n_reused=record.n_reused,
            saved_cost=record.saved_cost,
            n_not_sent=record.n_not_sent,
        )

    def __str__(self) -> str:
        """One line a person reads: id, state, batches, cost, row counts, error (``format.status_text``)."""
        return status_text(self)

    def __repr__(self) -> str:
        return f"<JobStatus {self}>"

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)

    @property
    def time_to_expiry(self) -> float | None:
        if self.expires_at is None or self.done:
            return None
        return max(0.0, self.expires_at - time.time())

    @property
    def outcome(self) -> str | None:
        """The bar colour: success, warning (some rows failed) or danger."""
        if self.state is DisplayState.FAILED:
            return "danger"
        if self.state is DisplayState.CANCELED:
            return "warning"
        if self.state is not DisplayState.DONE:
            return None
        fine = (RowStatus.SUCCEEDED, RowStatus.SKIPPED)
        bad = sum(v for k, v in self.row_counts.items() if k not in fine)
        return "warning" if bad else "success"


def epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
