"""A job, as its users hold it: ``BatchJob``, the public handle.

The work is done elsewhere, each part in its module: the driver (driver.py)
submits, polls, collects, retries and merges, on a thread of its own, and owns
the job's record; the delivery (delivery.py) gives the driver's snapshots to
observers on the home thread (the one that started the job: a notebook's
kernel) and runs the merge there; the registry (registry.py) finds the job
this process drives for an id. The handle only starts, waits, and passes
requests on: ``cancel()`` and a new DataFrame go to the driver as commands,
never into its record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .client import BatchClient
from .delivery import Delivery
from .driver import AfterMerge, Cancel, Driver, Repoint, Retarget, plan_index
from .errors import APIError, BatchMagicError
from .journal import Journal
from .record import JobRecord
from .registry import live_job, register, session_job, session_jobs
from .settings import JobSettings
from .states import DisplayState
from .status import JobStatus
from .structured import OutputSpec

if TYPE_CHECKING:
    from .frames import Frame


class BatchJob:
    """One job of the journal, bound (optionally) to the DataFrame it fills."""

    def __init__(
        self,
        journal: Journal,
        job_id: str,
        client: BatchClient | None,
        df: Frame | None = None,
        settings: JobSettings | None = None,
        spec: OutputSpec | None = None,
        record: JobRecord | None = None,
    ) -> None:
        self.journal = journal
        self.id = job_id
        # ``record``: the one the caller has just read (the driver reads it again once it
        # holds the job's lock).
        record = record if record is not None else journal.read_record(job_id)
        self._delivery = Delivery(job_id, JobStatus.from_record(record))
        self._after_merge: list[AfterMerge] = []
        # The driver owns the record from its start; until then nothing else has it. The
        # live spec (it may hold a pydantic model) is used, else the journal's.
        self._driver = Driver(journal, record, client, settings or JobSettings(), spec or record.output,
                              self._delivery, df, self._after_merge)
        self._started = False

    def __repr__(self) -> str:
        s = self.status
        return f"<BatchJob {self.id} {s.state.value} {s.batches_ended}/{s.batches_total} batches>"

    # -- public -------------------------------------------------------------
    @property
    def status(self) -> JobStatus:
        """The latest snapshot (the driver builds them; this reads the newest)."""
        return self._delivery.latest

    @property
    def done(self) -> bool:
        """True once the job ended and its results were merged (or the merge refused)."""
        return self._delivery.settled

    @property
    def record(self) -> JobRecord:
        """The job's record: the driver's own once it has stopped (or before it starts);
        while it runs, the journal's latest copy (the driver's is its alone)."""
        if not self._started or self._driver.released.is_set():
            return self._driver.record
        return self.journal.read_record(self.id)

    @property
    def df(self) -> Frame | None:
        """The DataFrame the results go into (None: the new columns alone)."""
        return self._driver.df

    @df.setter
    def df(self, df: Frame | None) -> None:
        if not self._started:
            self._driver.df = df
        elif not self._driver.send(Retarget(df)):
            self._driver.merge_again(df)  # the driver has stopped: merged here, now

    @property
    def by_position(self) -> bool:
        """Merge row i of the job into row i of ``df`` when the job's labels cannot be read."""
        return self._driver.by_position

    @by_position.setter
    def by_position(self, value: bool) -> None:
        # Read by the merge; set before the DataFrame is given (attach sets both in that order).
        self._driver.by_position = bool(value)

    @property
    def settings(self) -> JobSettings:
        """How the job is driven (polls, backoff, attempts)."""
        return self._driver.settings

    @property
    def client(self) -> BatchClient | None:
        """The client the job talks to its server through (None: an ended job needs none)."""
        return self._driver.client

    def repoint(self, client: BatchClient) -> None:
        """Go on with the same batches through ``client`` (the same server at another
        address: the in-notebook simulator started again on another port), and poll now."""
        if not self._driver.send(Repoint(client)):
            self._driver.client = client  # not started, or stopped: nothing else holds it

    def observe(self, callback: Callable[[JobStatus], None]) -> Callable[[], None]:
        """Call ``callback(status)`` now and on every change; returns an unsubscribe.

        Calls come on the home thread (the one that started the job, when it runs
        an event loop: a notebook's kernel), in order, never twice with the same
        snapshot. A snapshot overtaken before it could be delivered is skipped; the
        last one (the job settled) always comes.
        """
        return self._delivery.observe(callback)

    def while_waiting(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` about once a second while a blocking ``wait()`` holds the
        home thread; returns an unsubscribe.

        A blocking wait keeps the kernel's loop from running, so timers on it (the
        panel's elapsed clock) stand still meanwhile; this keeps them going.
        """
        return self._delivery.while_waiting(callback)

    def after_merge(self, step: AfterMerge) -> None:
        """Run ``step(frame, new_columns)`` on the home thread as the last part of the
        merge (a retry writes its rows back so). What it raises fails the job: ``wait()``
        raises it and the panel shows it. Add before ``start()``."""
        self._after_merge.append(step)

    def start(self) -> BatchJob:
        """Drive the job in the background; returns at once."""
        if self._started:
            return self
        self._started = True
        register(self)
        self._delivery.bind_home()
        if self._driver.record.ended:
            # Everything is in the journal already: merge now, no API call.
            self._driver.run_here()
        else:
            self._driver.start_thread()
        return self

    def wait(self, timeout: float | None = None) -> Frame:
        """Block until the job ends; return the DataFrame with the new columns.

        Starts the job if it was not. On the home thread (a cell) the wait delivers
        the panel's updates itself, and Interrupt stops the wait, not the job.
        Whatever stopped the job (a refusal, a failed merge or write-back) is raised
        as it was.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self.start()
        try:
            if self._delivery.is_home():
                self._delivery.pump(deadline)
            else:
                self._delivery.complete.wait(timeout)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(
                f"Stopped waiting for job {self.id}; the job goes on ({self.status.state.value}). "
                "wait() again (or %batch wait) to see it through, cancel() to stop it."
            ) from None
        if not self._delivery.complete.is_set():
            left = "" if timeout is None else f" within {timeout} s"
            raise TimeoutError(f"Job {self.id} has not ended{left}; it goes on (state {self.status.state.value}).")
        driver = self._driver
        if driver.error is not None:
            raise driver.error  # as the driver met it: an error of ours, or anything else
        if driver.result is None:
            raise APIError(f"Job {self.id} failed: {self.status.error}")
        return driver.result

    def cancel(self) -> None:
        """Cancel the batches still running; what already finished is kept and merged.

        Returns at once: the driver (started now if it was not) asks the API to stop
        and merges what there is; ``wait()`` to see it through.
        """
        if not self._started and self._driver.record.ended:
            return  # ended in the journal already: nothing to cancel, nothing to start
        # Sent before the start, so a driver started by this call cancels before anything else.
        taken = self._driver.send(Cancel())
        self.start()
        if not taken and not self.record.ended:
            # The driver stopped on an error: its batches may still run, and only a new
            # driver can cancel them. Said, not dropped.
            raise BatchMagicError(
                f"Job {self.id} failed ({self.status.error}), so this object drives it no more; its "
                f"batches may still run. Attach it again, then cancel that: %batch attach {self.id} "
                f"and %batch cancel {self.id}, or attach('{self.id}').cancel() in Python."
            )

    def result(self) -> Frame:
        """The merged DataFrame (or, attached without one, the new columns alone)."""
        result = self._driver.result if self.done else None
        if result is None:
            state = self.status.state
            if state is DisplayState.FAILED:
                raise BatchMagicError(f"Job {self.id} failed: {self.status.error}")
            raise BatchMagicError(f"Job {self.id} is {state.value}; wait() for it to end.")
        return result


__all__ = [
    "BatchJob",
    "JobSettings",
    "JobStatus",
    "live_job",
    "plan_index",
    "session_job",
    "session_jobs",
]
