"""A job's driver: submit -> poll -> collect -> retry -> merge, over its record.

The journal is the source of truth: the job's ``JobRecord`` (journal.py owns
it, its states and their allowed transitions); every step reads what is
recorded, does one thing, and records it before the next, so a job driven by a
process that died, or stopped on an error, is picked up by the next run exactly
where it stopped. Observers (the
panel, text printers) receive immutable ``JobStatus`` snapshots; they never
drive the job.

Where it runs: always on a daemon thread of its own, with its own event loop;
SDK calls, which block, are made on that thread (``asyncio.to_thread`` runs
them in place there, as nothing else shares the thread). It never runs on, or
re-enters, the loop of the kernel that started it, so a blocking ``wait()`` in
a cell cannot wedge the kernel (JupyterLab's Run All queues every cell as a
task on that loop).

What users see happens on the *home* thread, the one that started the job:
observers are called there (the panel's widgets; ipykernel 7 drops comm
traffic from other threads) and the results are merged into the DataFrame
there, between cells or during a blocking wait, never under a running cell's
feet. Without a running loop (a script, terminal IPython) there is no home to
wait for: the driver's thread calls observers and merges itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np
import orjson
import pandas as pd

from . import frames, pricing, uploads
from .client import (
    BatchClient,
    BatchInfo,
    FailureKind,
    classify,
    create_body_columns,
    describe_error,
)
from .columns import job_columns
from .destination import batch_gone_message
from .errors import APIError, BatchMagicError, MergeError
from .journal import BatchEntry, BatchState, JobRecord, JobState, Journal, now_iso
from .media import content_encoder, file_source
from .merge import build_columns, merge_into
from .plan import custom_id, custom_ids, split_batches
from .results import CANCELED, PENDING, ResultTable
from .status import DISPLAY_STATE, DurationHint, JobStatus, epoch
from .structured import OutputSpec
from .timing import typical_batch_duration

if TYPE_CHECKING:
    from .frames import Frame

#: Identical short downloads of one batch after which the file is taken as complete.
SHORT_DOWNLOADS_ACCEPTED = 3
#: How often a blocking wait runs the while_waiting callbacks (the panel's clock), seconds.
WAIT_TICK_SECONDS = 1.0
#: How often the driver checks that the home loop still runs while it waits on it, seconds.
HOME_CHECK_SECONDS = 0.5

log = logging.getLogger("batch_magic")
_T = TypeVar("_T")
_P = ParamSpec("_P")


@dataclass(frozen=True)
class JobSettings:
    """How a job is driven (not part of its fingerprint)."""

    #: Total attempts per request, the first included (retriable errors, expiry).
    max_attempts: int = 3
    #: Batches in flight at once across the journal; the rest wait their turn.
    max_in_flight: int = 4
    #: Poll interval: a fraction of the time the batch has run, within bounds,
    #: so a quick batch is seen soon after it ends and a long one costs ~60 calls an hour.
    poll_min: float = 1.0
    poll_max: float = 60.0
    poll_fraction: float = 0.1
    #: Backoff for transient failures (seconds), doubled per failure in a row up to the
    #: max (an outage is not hammered), back to the min after a call that worked.
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    #: After a create whose answer was lost (timeout, dropped connection, 5xx), the
    #: batch may still appear on the server: it is looked for (a listing every
    #: ``create_grace / 60`` s at least) for this long before the create is sent again.
    create_grace: float = 600.0


def poll_interval(settings: JobSettings, ran_seconds: float) -> float:
    """Seconds until the next poll of a batch that has run ``ran_seconds``: a fraction of
    its age within bounds, so a quick batch is seen soon after it ends and a long one
    costs about 60 calls an hour."""
    return min(settings.poll_max, max(settings.poll_min, ran_seconds * settings.poll_fraction))


#: The jobs this process has started, running or ended, by (journal folder, job id),
#: the latest started last: the one registry the Python API and the magics share. A
#: re-run cell gets its running job back instead of a second driver, and ``%batch
#: wait`` finds a job that ``batch_magic.submit()`` started.
_JOBS: dict[tuple[str, str], BatchJob] = {}


def _registry_key(journal: Journal, job_id: str) -> tuple[str, str]:
    return str(journal.root.resolve()), job_id


def live_job(journal: Journal, job_id: str) -> BatchJob | None:
    """The job's object in this process if it is still being driven."""
    job = _JOBS.get(_registry_key(journal, job_id))
    return job if job is not None and not job.done else None


def session_job(journal: Journal, job_id: str) -> BatchJob | None:
    """The job's object in this process, running or ended (None: not started here)."""
    return _JOBS.get(_registry_key(journal, job_id))


def session_jobs(journal: Journal | None = None) -> list[BatchJob]:
    """The jobs started in this process (of one journal, or of all), oldest first."""
    root = None if journal is None else str(journal.root.resolve())
    return [job for (where, _), job in _JOBS.items() if root is None or where == root]


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
    ) -> None:
        self.journal = journal
        self.id = job_id
        self.client = client
        self.df = df
        self.settings = settings or JobSettings()
        self.record: JobRecord = journal.read_record(job_id)
        # The live spec (it may hold a pydantic model); else the journal's.
        self.spec: OutputSpec = spec or self.record.output
        self._prompts: list[str] | None = None
        self._table: ResultTable | None = None
        self._thread: threading.Thread | None = None  # the driver's
        self._cancel_requested = False
        self._reconnecting = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the driver's loop
        self._result: Frame | None = None
        self._merge_error: BaseException | None = None
        self._error: BaseException | None = None  # what stopped the driver, as raised
        self._settled = False  # the driver has finished (merged, refused or failed)
        self._last_listing = 0.0  # monotonic time the batch list was last read for duplicates
        self._outage_wait = self.settings.backoff_min  # the next wait after a failed poll
        self._typical: DurationHint | None = None
        # The job's files as sources of content blocks, once all are uploaded (media jobs).
        self._sources: dict[str, dict[str, str]] | None = None
        self._uploads_done = 0
        # Home: the loop and thread that started the job (None: no running loop there).
        self._home_loop: asyncio.AbstractEventLoop | None = None
        self._home_thread: int | None = None
        self._home_context: contextvars.Context | None = None
        # The mailbox: the latest snapshot and its sequence number. Deliveries take
        # the latest once; observers each remember what they were last given.
        self._mail = threading.Condition()  # notified on every post and home call
        self._posted = 0  # sequence number of self._status
        self._seen = 0  # the latest sequence number a delivery looked at
        self._delivered: JobStatus | None = None
        self._flush_scheduled = False  # a delivery is queued on the home loop
        self._home_calls: list[_HomeCall] = []
        self._deliver_lock = threading.Lock()  # one delivery at a time, in order
        self._delivering: int | None = None  # the thread delivering now (re-entry check)
        self._complete = threading.Event()  # settled, and observers were given the end
        self._observers: list[_Observer] = []
        self._waiting_hooks: list[Callable[[], None]] = []
        self._status = self._snapshot()

    def __repr__(self) -> str:
        s = self._status
        return f"<BatchJob {self.id} {s.state} {s.batches_ended}/{s.batches_total} batches>"

    # -- public -------------------------------------------------------------
    @property
    def status(self) -> JobStatus:
        return self._status

    @property
    def done(self) -> bool:
        """True once the job ended and its results were merged (or the merge refused)."""
        return self._settled

    def observe(self, callback: Callable[[JobStatus], None]) -> Callable[[], None]:
        """Call ``callback(status)`` now and on every change; returns an unsubscribe.

        Calls come on the home thread (the one that started the job, when it runs
        an event loop: a notebook's kernel), never twice with the same snapshot.
        """
        observer = _Observer(callback)
        me = threading.get_ident()
        if self._delivering == me:  # from an observer: already in order
            self._add_observer(observer)
        else:
            with self._deliver_lock:
                self._delivering = me  # what the callback posts is delivered below
                try:
                    self._add_observer(observer)
                finally:
                    self._delivering = None
            self._deliver_soon()

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._observers.remove(observer)

        return unsubscribe

    def _add_observer(self, observer: _Observer) -> None:
        self._observers.append(observer)
        with self._mail:
            status = self._status
            if not self._deliverable(status) and self._delivered is not None:
                status = self._delivered  # the end is shown once the merge is done
        observer.give(status, self.id)

    def while_waiting(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` about once a second while a blocking ``wait()`` holds the
        home thread; returns an unsubscribe.

        A blocking wait keeps the kernel's loop from running, so timers on it (the
        panel's elapsed clock) stand still meanwhile; this keeps them going.
        """
        self._waiting_hooks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._waiting_hooks.remove(callback)

        return unsubscribe

    def start(self) -> BatchJob:
        """Drive the job in the background; returns at once."""
        if self.done or self._thread is not None:
            return self
        key = _registry_key(self.journal, self.id)
        _JOBS.pop(key, None)
        _JOBS[key] = self  # the latest started, last
        try:
            home: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            home = None
        if home is not None:
            self._home_loop = home
            self._home_thread = threading.get_ident()
            self._home_context = contextvars.copy_context()
        if self.record.ended:
            # Everything is in the journal already: merge now, no API call.
            try:
                self._merge_now()
            finally:
                self._settled = True
                self._set()
            return self
        self._thread = threading.Thread(target=self._thread_main, name=f"batch_magic-{self.id}", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> Frame:
        """Block until the job ends; return the DataFrame with the new columns (for a
        Polars frame, a new frame: see ``result()``).

        Starts the job if it was not. On the home thread (a cell) the wait delivers
        the panel's updates itself, and Interrupt stops the wait, not the job.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self.start()
        try:
            if self._is_home():
                self._pump(deadline)
            else:
                self._complete.wait(timeout)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(
                f"Stopped waiting for job {self.id}; the job goes on ({self._status.state}). "
                "wait() again (or %batch wait) to see it through, cancel() to stop it."
            ) from None
        if not self._complete.is_set():
            left = "" if timeout is None else f" within {timeout} s"
            raise TimeoutError(f"Job {self.id} has not ended{left}; it goes on (state {self._status.state}).")
        if self._merge_error is not None:
            raise self._merge_error
        if self._error is not None:
            raise self._error  # as the driver met it: an error of ours, or anything else
        if self._result is None:
            raise APIError(f"Job {self.id} failed: {self._status.error}")
        return self._result

    def cancel(self) -> None:
        """Cancel the batches still running; what already finished is kept and merged.

        Returns at once: the driver (started now if it was not) asks the API to stop
        and merges what there is; ``wait()`` to see it through.
        """
        if self.done or self.record.ended:
            return
        self._cancel_requested = True
        self._set(state="canceling", message="canceling: asking the API to stop the batches")
        if self._thread is None:
            self.start()
        else:
            self._wake_driver()

    def _wake_driver(self) -> None:
        """Cut the driver's sleep short, from any thread."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: it has ended
                loop.call_soon_threadsafe(wake.set)

    def result(self) -> Frame:
        """The merged DataFrame (or, attached without one, the new columns alone). A Polars
        frame cannot change: this is a new frame, the one given with the new columns."""
        if self._result is None:
            raise BatchMagicError(f"Job {self.id} is {self._status.state}; wait() for it to end.")
        return self._result

    def give_result(self, frame: Frame) -> None:
        """What ``result()`` and ``wait()`` give from now on (a Polars retry: the whole
        frame with the retried rows written back, made by an observer of the end)."""
        self._result = frame

    # -- running ------------------------------------------------------------
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(_InPlaceExecutor())
        try:
            loop.run_until_complete(self._drive())
        finally:
            loop.close()

    async def _drive(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            await self._run()
        except Exception as exc:  # kept as raised: wait() raises it; the panel and journal show it
            if _exiting():
                return  # the process ends under the job: the journal stays as it was, to resume
            self._error = exc
            log.debug("job %s failed", self.id, exc_info=exc)
            self._fail(str(exc) if isinstance(exc, BatchMagicError) else f"{type(exc).__name__}: {exc}")
        finally:
            self._settled = True
            if not _exiting():
                self._set()  # observers see the settled state
                await self._until_delivered()

    async def _until_delivered(self) -> None:
        """Stay until the home has given observers the end (or is gone: then give it here)."""
        while not self._complete.is_set():
            if not self._home_live():
                self._flush()
                return
            await asyncio.to_thread(self._complete.wait, HOME_CHECK_SECONDS)

    async def _on_home(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the home thread (here when there is no live home) and await it."""
        if not self._home_live() or self._is_home():
            fn()
            return
        call = _HomeCall(fn)
        with self._mail:
            self._home_calls.append(call)
            self._mail.notify_all()
        self._schedule_flush()
        waiter = asyncio.wrap_future(call.future)
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=HOME_CHECK_SECONDS)
            if not waiter.done() and not self._home_live():
                call.run()  # the home loop is gone: run it here (once: calls are claimed)
        waiter.result()

    # -- delivery to the home thread ---------------------------------------------
    def _is_home(self) -> bool:
        return self._home_thread is not None and threading.get_ident() == self._home_thread

    def _home_live(self) -> bool:
        """Is there a home loop that will run our callbacks?"""
        loop = self._home_loop
        return loop is not None and loop.is_running() and not loop.is_closed()

    def _deliverable(self, status: JobStatus) -> bool:
        # A final state is shown once the driver has settled (the merge is done).
        return self._settled or not status.done

    def _post(self, snapshot: JobStatus) -> None:
        """The new latest snapshot: delivered here, or on the home thread soon."""
        with self._mail:
            self._status = snapshot
            self._posted += 1
            self._mail.notify_all()
        self._deliver_soon()

    def _deliver_soon(self) -> None:
        if self._is_home() or not self._home_live():
            self._flush()
        else:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        loop = self._home_loop
        assert loop is not None
        with self._mail:
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        context = self._home_context.copy() if self._home_context is not None else None
        try:
            loop.call_soon_threadsafe(self._flush_on_home, context=context)
        except RuntimeError:  # the home loop closed meanwhile: deliver here
            with self._mail:
                self._flush_scheduled = False
            self._flush()

    def _flush_on_home(self) -> None:
        with self._mail:
            self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        """Run waiting home calls, then give observers the latest snapshot (once)."""
        me = threading.get_ident()
        if self._delivering == me:
            return  # re-entered from an observer or a home call: the outer flush goes on
        with self._deliver_lock:
            self._delivering = me
            try:
                while True:
                    call = self._next_home_call() if self._is_home() else None
                    if call is not None:
                        try:
                            call.run()
                        except BaseException:  # Interrupt: the loop runs it after the cell
                            with self._mail:
                                self._home_calls.insert(0, call)
                            self._schedule_flush()
                            raise
                        continue
                    snapshot = self._take()
                    if snapshot is None:
                        break
                    self._give(snapshot)
            finally:
                self._delivering = None

    def _next_home_call(self) -> _HomeCall | None:
        with self._mail:
            return self._home_calls.pop(0) if self._home_calls else None

    def _take(self) -> JobStatus | None:
        """The latest snapshot if it is new to deliveries and may be shown, else None."""
        with self._mail:
            if self._seen == self._posted:
                return None
            status = self._status
            if not self._deliverable(status):
                self._seen = self._posted  # held until the driver settles (it posts again)
                return None
            self._seen = self._posted
            self._delivered = status
            return status

    def _give(self, snapshot: JobStatus) -> None:
        interrupted: BaseException | None = None
        for observer in list(self._observers):
            try:
                observer.give(snapshot, self.id)
            except BaseException as exc:  # Interrupt in a callback: give the others, then raise
                interrupted = exc
        if self._settled:
            self._complete.set()
            with self._mail:
                self._mail.notify_all()
        if interrupted is not None:
            raise interrupted

    def _pump(self, deadline: float | None) -> None:
        """Wait on the home thread: deliver snapshots and run home calls as they come."""
        next_tick = time.monotonic() + WAIT_TICK_SECONDS
        while True:
            self._flush()
            if self._complete.is_set():
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            if now >= next_tick:
                for hook in list(self._waiting_hooks):
                    try:
                        hook()
                    except Exception:
                        log.exception("a while_waiting callback of job %s failed", self.id)
                next_tick = now + WAIT_TICK_SECONDS
            until = next_tick if deadline is None else min(next_tick, deadline)
            with self._mail:
                if self._seen == self._posted and not self._home_calls:
                    self._mail.wait(max(0.0, until - now))

    async def _run(self) -> None:
        lock = self.journal.try_lock(self.id)
        if lock is None:
            await self._follow()
            return
        try:
            self.record = self.journal.read_record(self.id)  # the latest, now that it is ours
            await self._run_locked()
        finally:
            lock.release()

    async def _follow(self) -> None:
        """Another driver (another kernel, or another object here) runs this job:
        watch the journal until it ends, then merge from it."""
        self._set(message="driven elsewhere; following its journal")
        while True:
            record = await asyncio.to_thread(self.journal.read_record, self.id)
            if record.ended:
                self.record = record
                self._table = None
                await self._merge()
                return
            lock = self.journal.try_lock(self.id)
            if lock is not None:  # the other driver died or stopped on an error: take over
                lock.release()
                await self._run()
                return
            self.record = record
            if self._cancel_requested and self.client is not None:
                # The driver is elsewhere: cancel its batches at the API; it collects them.
                for entry in record.batches_in(BatchState.IN_PROGRESS):
                    if entry.batch_id:
                        with contextlib.suppress(Exception):
                            await asyncio.to_thread(self.client.cancel, entry.batch_id)
                self._cancel_requested = False
            self._set()
            await self._sleep(max(1.0, self.settings.poll_min))

    async def _run_locked(self) -> None:
        record = self.record
        if record.ended:
            await self._merge()
            return
        if self.client is None:
            raise BatchMagicError("This job needs an API client to go on; attach it with one.")
        if record.state is JobState.FAILED:
            # Failed is not ended: go on where it stopped. What is in flight is polled,
            # what ended is collected, nothing recorded as sent is sent again.
            record.move_to(JobState.CANCELING if record.cancel_requested_at else JobState.RUNNING)
            record.error = None
            self._save()
            self._set(error=None, message="resuming where it stopped")
        self._table = await asyncio.to_thread(self._load_table)
        self._typical = await asyncio.to_thread(self._typical_duration)
        poll_wait = self.settings.poll_min
        while True:
            if self._cancel_requested or (
                record.state is JobState.CANCELING and record.batches_in(BatchState.PENDING, BatchState.SUBMITTING, BatchState.IN_PROGRESS)
            ):
                await self._cancel_batches()
            await self._submit_ready()
            await self._watch_duplicates()
            running = record.batches_in(BatchState.IN_PROGRESS, BatchState.CANCELING)
            if not running and not record.batches_in(BatchState.PENDING, BatchState.SUBMITTING):
                if record.state is JobState.CANCELING or not await self._plan_retry():
                    break
                continue
            # New batches are polled right here; only an ended one is worth going round
            # again at once (its slot may let a pending batch in).
            progressed = False
            for entry in running:
                progressed |= await self._poll(entry)
            if progressed:
                poll_wait = self.settings.poll_min
                continue
            poll_wait = self._next_poll_wait()
            await self._sleep(poll_wait)
        self._finish()
        await self._merge()

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _next_poll_wait(self) -> float:
        record = self.record
        started = [epoch(b.created_at) for b in record.batches_in(BatchState.IN_PROGRESS)]
        ran = time.time() - min(t for t in started if t) if any(started) else 0.0
        wait = poll_interval(self.settings, ran)
        if record.batches_in(BatchState.SUBMITTING):
            wait = min(wait, self._listing_interval())  # looking for a create's batch
        return wait

    def _listing_interval(self) -> float:
        """How often the batch list is read while a create's fate is unknown."""
        return max(self.settings.poll_min, self.settings.create_grace / 60)

    # -- steps ----------------------------------------------------------------
    def _prompts_list(self) -> list[str]:
        if self._prompts is None:
            self._prompts = self.journal.read_prompts(self.id)
        return self._prompts

    def _typical_duration(self) -> DurationHint | None:
        """How long this journal's earlier batches like this job's took (for the panel)."""
        record = self.record
        return typical_batch_duration(
            self.journal.records(), job_id=self.id, model=record.options.model,
            size=max((b.size for b in record.batches), default=1), simulated=record.simulated,
        )

    def _in_flight_elsewhere(self) -> int:
        """Batches other live jobs of this journal have running (stale ones ignored)."""
        count = 0
        cutoff = time.time() - 15 * 60
        for other in self.journal.records():
            if other.job_id == self.id or other.state not in (JobState.RUNNING, JobState.CANCELING):
                continue
            if (epoch(other.updated_at) or 0) < cutoff:
                continue
            count += len(other.batches_in(BatchState.IN_PROGRESS))
        return count

    async def _submit_ready(self) -> bool:
        """Create pending batches while under the in-flight cap. True if any was created."""
        created = False
        record = self.record
        waiting = record.batches_in(BatchState.PENDING, BatchState.SUBMITTING)
        if not waiting:
            return False
        if record.n_media and self._sources is None and not await self._upload_media():
            return False
        # Other jobs' records are read once per round, not once per waiting batch.
        others = await asyncio.to_thread(self._in_flight_elsewhere)
        for entry in waiting:
            if self._cancel_requested or record.state is JobState.CANCELING:
                break
            running = len(record.batches_in(BatchState.IN_PROGRESS))
            if running + others >= self.settings.max_in_flight:
                if running == 0:
                    self._set(state="queued", message=f"waiting: {others} batches of other jobs are in flight")
                break
            created |= await self._create(entry)
        return created

    async def _upload_media(self) -> bool:
        """Upload the job's images and PDFs not yet uploaded to this server, each recorded
        in the journal before any request names it. True once all are ready."""
        assert self.client is not None
        client = self.client
        items = list((await asyncio.to_thread(self.journal.read_media, self.id)).values())
        total = len(items)
        self._set(state="uploading", message=f"uploading {self._uploads_done}/{total} files")

        def progress(p: uploads.UploadProgress) -> None:
            # Called on the thread running the uploads; a snapshot may be posted from any.
            self._uploads_done = p.done
            self._set(state="uploading", message=f"uploading: {p.describe()}")

        def read(item: Any) -> bytes:
            return bytes(item.read(self.journal.staged_media(self.id, item)))

        try:
            done, summary = await asyncio.to_thread(
                uploads.upload_all, client.files, uploads.UploadStore(self.journal), items,
                uploads.server_key(client.base_url), read=read, on_progress=progress,
                stop=lambda: self._cancel_requested,
                settings=uploads.UploadSettings(backoff_min=self.settings.backoff_min, backoff_max=self.settings.backoff_max),
            )
        except uploads.UploadsStopped:
            return False
        self._sources = {sha: file_source(upload.file_id) for sha, upload in done.items()}
        self._uploads_done = summary.done
        self._set(state="submitting", message=summary.describe())
        return True

    def _start_running(self) -> None:
        if self.record.state is JobState.PLANNED:
            self.record.move_to(JobState.RUNNING)

    async def _create(self, entry: BatchEntry) -> bool:
        """Send one batch, unless its earlier create may still land. True if it exists now."""
        assert self.client is not None
        client = self.client
        total = len(self.record.batches)
        if entry.state is BatchState.SUBMITTING:
            # A create was sent and its answer never seen: the batch may exist, or may
            # still appear. Look for it before every re-send, and send again only once
            # it has stayed away for the whole grace period.
            try:
                found = await asyncio.to_thread(self._find_orphan, entry)
            except Exception as exc:  # not looked: not sent either; next round
                self._set(reconnecting=True, message=f"listing batches failed ({describe_error(exc)}); trying again")
                return False
            if found is not None:
                self._record_created(entry, found, adopted=True)
                return True
            unsure = epoch(entry.unsure_at or entry.intent_at) or 0.0
            left = unsure + self.settings.create_grace - time.time()
            if left > 0:
                self._set(
                    state="submitting",
                    message=f"batch {entry.n + 1} of {total}: its create may have reached the API; "
                    f"looking for it before sending again (at most {left:.0f} s more)",
                )
                return False
        self._set(state="submitting", message=f"creating batch {entry.n + 1} of {total}")
        ks = entry.request_numbers().tolist()
        prompts = self._prompts_list()
        # Media prompts become content blocks naming their uploads; text goes as it is.
        encode: Any = content_encoder(self._sources) if self._sources is not None else orjson.dumps
        body = await asyncio.to_thread(
            create_body_columns, self.record.options.shared_params(), custom_ids(ks, self.record.id_tag),
            map(prompts.__getitem__, ks), encode=encode,
        )
        backoff = self.settings.backoff_min
        while True:
            if entry.state is BatchState.PENDING:
                entry.move_to(BatchState.SUBMITTING)
            entry.intent_at = now_iso()
            entry.first_intent_at = entry.first_intent_at or entry.intent_at
            self._start_running()
            self._save()
            try:
                info = await asyncio.to_thread(client.create, body)
            except Exception as exc:
                failure = classify(exc, create=True)
                if failure.kind is FailureKind.AMBIGUOUS:
                    # It may have been created all the same: no re-send before the grace.
                    entry.unsure_at = now_iso()
                    self._save()
                    found = await asyncio.to_thread(self._find_orphan_or_none, entry)
                    if found is not None:
                        self._record_created(entry, found, adopted=True)
                        return True
                    self._set(
                        reconnecting=True,
                        message=f"create failed ({failure.detail}); looking for its batch "
                        f"for {self.settings.create_grace:.0f} s before sending it again",
                    )
                    return False
                if failure.kind is not FailureKind.TRANSIENT:
                    # Refused outright: no batch was made; it waits to be sent.
                    entry.move_to(BatchState.PENDING)
                    self._save()
                    raise APIError(f"Creating a batch was refused: {failure.detail}") from None
                # Refused before anything was made (a rate limit, an overload): wait as
                # asked, send again.
                wait = failure.retry_after or backoff
                self._set(reconnecting=True, message=f"create failed ({failure.detail}); retrying in {wait:.0f} s")
                await self._sleep(wait)
                if self._cancel_requested:
                    return False  # the next round drops it, after looking for its batch
                backoff = min(self.settings.backoff_max, backoff * 2)
                continue
            self._record_created(entry, info)
            return True

    def _find_orphan(self, entry: BatchEntry) -> BatchInfo | None:
        """A batch the server has that matches an unanswered create of ours (raises
        if the list cannot be read: then nobody knows, and nothing is sent)."""
        assert self.client is not None
        since = (epoch(entry.first_intent_at or entry.intent_at) or 0) - 300
        claimed = self.journal.claimed_batch_ids() | self.record.batch_ids
        recent = self.client.recent_batches(limit=100)
        # Oldest first: the earliest create that landed is the one to keep.
        for info in sorted(recent, key=lambda i: epoch(i.created_at) or 0):
            created = epoch(info.created_at) or 0
            if info.id not in claimed and created >= since and info.total == entry.size:
                return info
        return None

    def _find_orphan_or_none(self, entry: BatchEntry) -> BatchInfo | None:
        try:
            return self._find_orphan(entry)
        except Exception:
            return None

    async def _watch_duplicates(self) -> None:
        """Cancel at once a late copy of a create that was sent again after its answer
        was lost (it landed after the grace period), and record it on its batch."""
        assert self.client is not None
        unsure = [
            b for b in self.record.batches
            if b.unsure_at and b.batch_id and b.state in (BatchState.IN_PROGRESS, BatchState.CANCELING)
        ]
        if not unsure or self.record.batches_in(BatchState.SUBMITTING):
            # An unclaimed batch may then be that create's, to adopt, not to cancel.
            return
        now = time.monotonic()
        if now - self._last_listing < self._listing_interval():
            return
        self._last_listing = now
        for entry in unsure:
            found = await asyncio.to_thread(self._find_orphan_or_none, entry)
            if found is None:
                continue
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.client.cancel, found.id)
            entry.duplicates.append(found.id)
            self._save()
            self._set(message=f"a late copy of batch {entry.n + 1} ({found.id}) appeared: canceled, not paid twice")

    def _results_match(self, entry: BatchEntry, path: Any) -> bool:
        """Do the results hold exactly this entry's custom_ids?"""
        import orjson

        expected = {custom_id(int(k), self.record.id_tag) for k in entry.request_numbers()}
        with open(path, "rb") as fh:
            seen = {orjson.loads(line)["custom_id"] for line in fh if line.strip()}
        return seen == expected

    def _record_created(self, entry: BatchEntry, info: BatchInfo, *, adopted: bool = False) -> None:
        entry.move_to(BatchState.IN_PROGRESS)  # even if already ended: the next poll collects it
        entry.batch_id = info.id
        entry.adopted = adopted
        entry.created_at = info.created_at
        entry.expires_at = info.expires_at
        record = self.record
        if record.started_at is None:
            record.started_at = info.created_at or now_iso()
        self._start_running()
        self._save()
        self._set(state="in_progress", reconnecting=False, message=f"batch {info.id} created")

    async def _poll(self, entry: BatchEntry) -> bool:
        """Retrieve one batch; collect its results if it ended. True if it changed."""
        assert self.client is not None and entry.batch_id is not None
        try:
            info = await asyncio.to_thread(self.client.retrieve, entry.batch_id)
        except Exception as exc:
            failure = classify(exc)
            if failure.kind is FailureKind.NOT_FOUND:
                raise APIError(batch_gone_message(self.record.sent_to, entry.batch_id)) from None
            if not failure.retriable:
                raise APIError(f"Polling batch {entry.batch_id} failed: {failure.detail}") from None
            # The wait grows while the outage lasts, unless the server says how long.
            wait = failure.retry_after or self._outage_wait
            self._outage_wait = min(self.settings.backoff_max, self._outage_wait * 2)
            self._set(reconnecting=True, message=f"reconnecting in {wait:.0f} s ({failure.detail})")
            await self._sleep(wait)
            return False
        self._outage_wait = self.settings.backoff_min
        if self._reconnecting:
            self._set(reconnecting=False, message="reconnected")
        if info.processing_status != "ended":
            if info.processing_status == "canceling" and entry.state is not BatchState.CANCELING:
                entry.move_to(BatchState.CANCELING)
                self._save()
            return False
        entry.counts = dict(info.request_counts)
        entry.ended_at = info.ended_at
        await self._collect(entry)
        return True

    async def _collect(self, entry: BatchEntry) -> None:
        """Download an ended batch's results into the journal, then read them."""
        assert self.client is not None and self._table is not None and entry.batch_id is not None
        client = self.client
        batch_id = entry.batch_id
        self._set(state="collecting", message=f"downloading results of {batch_id}")
        part = self.journal.partial_results_path(self.id, batch_id)
        backoff = self.settings.backoff_min
        short_counts: list[int] = []
        while True:
            try:
                lines = await asyncio.to_thread(client.download_results, batch_id, part)
                if lines < entry.size:
                    short_counts.append(lines)
                    # The same short file again and again is what the API has, not a
                    # cut: take it; the missing requests stay pending, then retry.
                    if short_counts[-SHORT_DOWNLOADS_ACCEPTED:] != [lines] * SHORT_DOWNLOADS_ACCEPTED:
                        raise ConnectionError(f"download cut short: {lines} of {entry.size} results")
                break
            except Exception as exc:
                failure = classify(exc)
                if failure.kind is FailureKind.NOT_FOUND:
                    raise APIError(batch_gone_message(self.record.sent_to, batch_id)) from None
                if not failure.retriable:
                    raise APIError(f"Downloading results of {batch_id} failed: {failure.detail}") from None
                self._set(reconnecting=True, message=f"download interrupted ({failure.detail}); starting it again")
                await asyncio.sleep(failure.retry_after or backoff)
                backoff = min(self.settings.backoff_max, backoff * 2)
        if entry.adopted and not await asyncio.to_thread(self._results_match, entry, part):
            # An adopted batch that is not ours after all (same size, same minutes):
            # forget it and send ours; nothing of it is merged.
            entry.rejected.append(batch_id)
            entry.move_to(BatchState.PENDING)
            entry.batch_id = None
            entry.adopted = False
            entry.unsure_at = None
            part.unlink(missing_ok=True)
            self._save()
            self._set(state="submitting", message=f"batch {batch_id} was not this job's; sending it again")
            return
        path = await asyncio.to_thread(self.journal.commit_results, self.id, batch_id)
        await asyncio.to_thread(self._table.ingest_file, path)
        entry.move_to(BatchState.ENDED)
        self._save()
        others = bool(self.record.batches_in(BatchState.IN_PROGRESS, BatchState.CANCELING))
        self._set(
            state="in_progress" if others else "collecting",
            reconnecting=False,
            message=f"batch {batch_id} ended",
        )

    async def _plan_retry(self) -> bool:
        """Queue another attempt for requests that failed retriably. True if queued."""
        assert self._table is not None
        batches = self.record.batches
        attempt = max((b.attempt for b in batches), default=1)
        if not batches or attempt >= self.settings.max_attempts:
            return False
        last = np.concatenate([b.request_numbers() for b in batches if b.attempt == attempt])
        again = self._table.retriable(last)
        if again.size == 0:
            return False
        self._add_batches(again, attempt + 1)
        self._set(state="retrying", message=f"retrying {again.size} requests (attempt {attempt + 1})")
        return True

    def _add_batches(self, ks: np.ndarray, attempt: int) -> None:
        prompts = self._prompts_list()
        chosen = [prompts[int(k)] for k in ks]
        ranges = split_batches(
            chosen, self.record.options.shared_params(), self.record.chunk_size, media=bool(self.record.n_media)
        )
        for r in ranges:
            self.record.add_batch(attempt, [int(k) for k in ks[r.start : r.stop]])
        self._save()

    async def _cancel_batches(self) -> None:
        assert self.client is not None
        record = self.record
        if record.state is not JobState.CANCELING:
            record.move_to(JobState.CANCELING)
            record.cancel_requested_at = now_iso()
            self._save()
        for entry in record.batches:
            if entry.state is BatchState.SUBMITTING:
                # Its create may have reached the server: cancel that batch too if so.
                found = await asyncio.to_thread(self._find_orphan_or_none, entry)
                if found is not None:
                    self._record_created(entry, found, adopted=True)
            if entry.state in (BatchState.PENDING, BatchState.SUBMITTING):
                entry.move_to(BatchState.DROPPED)
            elif entry.state is BatchState.IN_PROGRESS and entry.batch_id:
                try:
                    await asyncio.to_thread(self.client.cancel, entry.batch_id)
                    entry.move_to(BatchState.CANCELING)
                except Exception as exc:
                    failure = classify(exc)
                    if failure.retriable:
                        self._save()
                        self._set(reconnecting=True, message=f"cancel failed ({failure.detail}); trying again")
                        return
                    # Refused (it ended meanwhile) or gone: the poll collects it, or says so.
                    entry.move_to(BatchState.CANCELING)
        self._save()
        self._cancel_requested = False

    def _finish(self) -> None:
        """Every batch ended or was dropped: the job is done (or canceled)."""
        record = self.record
        live = [b for b in record.batches if b.live]
        if live:  # the driver's loop only ends when none is left: a bug otherwise
            raise BatchMagicError(f"Job {self.id} cannot end with {len(live)} batches still live.")
        record.move_to(JobState.CANCELED if record.state is JobState.CANCELING else JobState.DONE)
        record.finished_at = record.finished_at or now_iso()
        self._save()
        if record.n_media:
            self.journal.drop_staged_media(self.id)  # uploaded and recorded; nothing reads them now

    async def _merge(self) -> None:
        if self._table is None:
            self._table = await asyncio.to_thread(self._load_table)
        # Into the user's DataFrame on the home thread: never while a cell there reads it.
        await self._on_home(self._merge_now)

    def _merge_now(self) -> None:
        """Build the columns of an ended job and put them into the DataFrame (on the
        caller's thread). The record's state is not changed here: only the driver
        ends a job, once no batch is live."""
        record = self.record
        if not record.ended:
            raise BatchMagicError(f"Job {self.id} is {record.state.value}; it is merged once it has ended.")
        self._set(state="merging", message="merging results")
        if self._table is None:
            self._table = self._load_table()
        table = self._table
        canceled = record.state is JobState.CANCELED
        if canceled:
            # Requests never sent because the job was canceled first.
            unsent = table.status == PENDING
            table.status[unsent] = CANCELED
            table.error_type[unsent] = "canceled"
            table.error_message[unsent] = "the job was canceled before this request was sent"
        rows = self.journal.read_rows(self.id)
        if len(rows) != record.n_rows or (rows.size and int(rows.max()) >= record.n_requests):
            raise BatchMagicError(f"The row map of job {self.id} does not match its record; the journal was altered.")
        columns = build_columns(record.out, self.spec, table, rows, record.skip_reasons)
        billed = table.billed_usage()  # built once: summed for the record, priced for the cost
        record.usage = {key: int(values.sum()) for key, values in billed.items()}
        record.actual_cost = pricing.actual_cost(record.options.model, billed)
        target = self.df
        try:
            if frames.is_polars(target) or (target is None and frames.is_polars_job(self.journal, self.id)):
                # A new frame (Polars frames cannot change); it is the one this job fills now.
                summary, self._result = frames.merge(self.journal, record, columns, target)
                self.df = self._result if target is not None else None
            else:
                index = plan_index(self.journal, self.id, len(rows), target)
                if target is not None:
                    self._drop_stale_columns(target, columns)
                    summary = merge_into(target, columns, index, out=record.out)
                    self._result = target
                else:
                    frame = pd.DataFrame(index=index)
                    summary = merge_into(frame, columns, index, out=record.out)
                    self._result = frame
        except BatchMagicError as exc:
            self._merge_error = exc
            self._save()
            self._set(state="failed", error=str(exc), message="results are safe in the journal")
            return
        record.row_counts = dict(summary.status_counts)
        record.columns = list(summary.columns)
        self._save()
        final = record.state.value
        self._set(
            state=final,
            message=f"{final}: {summary.status_counts.get('succeeded', 0)} of {len(rows)} rows answered",
        )

    def _drop_stale_columns(self, df: pd.DataFrame, columns: dict[str, Any]) -> None:
        """Remove columns an earlier job with the same ``out`` wrote and this one does not
        (e.g. another schema's fields), so no old answer sits beside new ones."""
        out = self.record.out
        stale: set[str] = set()
        for other in self.journal.records():
            if other.out == out and other.job_id != self.id:
                stale.update(other.columns)
        stale.add(job_columns(out).raw)
        drop = [c for c in df.columns if c in stale and c not in columns]
        for name in drop:
            del df[name]  # in place: the user's own object

    def _load_table(self) -> ResultTable:
        table = ResultTable.empty(self.record.n_requests)
        for entry in self.record.batches_in(BatchState.ENDED):
            if entry.batch_id:
                path = self.journal.results_path(self.id, entry.batch_id)
                if path.exists():
                    table.ingest_file(path)
                elif not self.record.ended:  # recorded as ended but the file is gone: fetch it again
                    entry.move_to(BatchState.IN_PROGRESS)
        return table

    # -- bookkeeping ----------------------------------------------------------
    def _save(self) -> None:
        self.journal.write_record(self.record)

    def _fail(self, message: str) -> None:
        record = self.record
        if not record.ended:  # an ended job stays ended; only this run's display failed
            record.move_to(JobState.FAILED)
            record.error = message
            with contextlib.suppress(Exception):
                self._save()
        self._set(
            state="failed", error=message,
            message="failed; it resumes where it stopped when its cell is run again or it is attached",
        )

    def _set(self, **changes: Any) -> None:
        if "reconnecting" in changes:
            self._reconnecting = bool(changes["reconnecting"])
        with self._mail:
            snapshot = self._snapshot(**changes)
        self._post(snapshot)

    def _snapshot(self, **changes: Any) -> JobStatus:
        r = self.record
        batches = r.batches
        counts: dict[str, int] = {}
        for b in batches:
            for key, value in b.counts.items():
                if key != "processing":
                    counts[key] = counts.get(key, 0) + int(value)
        live = r.batches_in(BatchState.IN_PROGRESS, BatchState.CANCELING)
        expiries = [e for e in (epoch(b.expires_at) for b in live) if e]
        base = JobStatus(
            job_id=self.id,
            state=DISPLAY_STATE[r.state],
            model=r.options.model,
            out=r.out,
            simulated=r.simulated,
            n_rows=r.n_rows,
            n_requests=r.n_requests,
            n_skipped=r.n_skipped,
            n_deduplicated=r.n_deduplicated,
            batches_total=sum(1 for b in batches if b.state is not BatchState.DROPPED),
            batches_submitted=sum(1 for b in batches if b.batch_id),
            batches_ended=len(r.batches_in(BatchState.ENDED)),
            attempt=max((b.attempt for b in batches), default=1),
            counts=counts,
            started_at=epoch(r.started_at),
            finished_at=epoch(r.finished_at),
            expires_at=min(expiries) if expiries else None,
            estimated_cost=r.estimate.get("batch_cost"),
            estimated_cost_upper=r.estimate.get("batch_cost_upper"),
            prices=r.estimate.get("prices_taken"),
            actual_cost=r.actual_cost,
            reconnecting=self._reconnecting,
            error=r.error,
            columns=tuple(r.columns),
            row_counts=dict(r.row_counts),
            typical_duration=self._typical,
            uploads_total=r.n_media,
            uploads_done=self._uploads_done,
        )
        if hasattr(self, "_status") and "message" not in changes:
            changes["message"] = self._status.message
        return replace(base, **changes)


def _exiting() -> bool:
    """Is the interpreter shutting down (the main thread has finished)?"""
    return not threading.main_thread().is_alive()


class _InPlaceExecutor(concurrent.futures.ThreadPoolExecutor):
    """The driver loop's executor: runs each blocking call at once, on the driver's thread.

    That thread is the job's alone, so a blocking call there holds up nothing else.
    Unlike a pool it keeps working while the interpreter exits (a pool then refuses
    work, which the job would take for a failure and record in the journal). A
    ThreadPoolExecutor only because asyncio wants its default executor to be one:
    it never starts a thread.
    """

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> concurrent.futures.Future[_T]:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class _Observer:
    """A status callback and the snapshot it was last given (never given twice)."""

    def __init__(self, callback: Callable[[JobStatus], None]) -> None:
        self.callback = callback
        self.last: JobStatus | None = None

    def give(self, status: JobStatus, job_id: str) -> None:
        if status == self.last:
            return
        self.last = status
        try:
            self.callback(status)
        except Exception:  # a display's fault must not stop the job; say so
            log.exception("a status observer of job %s failed", job_id)


class _HomeCall:
    """Work the driver hands to the home thread; run once, by whoever claims it first."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._lock = threading.Lock()
        self._claimed = False

    def run(self) -> None:
        with self._lock:
            if self._claimed:
                return
            self._claimed = True
        try:
            self.fn()
        except Exception as exc:  # the driver meets it, as raised
            self.future.set_exception(exc)
        except BaseException:
            # Interrupt on the home thread (a blocking wait): the work is redone later.
            with self._lock:
                self._claimed = False
            raise
        else:
            self.future.set_result(None)



def plan_index(journal: Journal, job_id: str, n_rows: int, target: pd.DataFrame | None) -> pd.Index:
    """The index the job's rows had at submission, to align the merge on.

    When it cannot be read (a format-1 journal whose pickled index is not
    trusted), rows merge by position into a DataFrame of the same length, and
    a DataFrame that changed length is refused with the reason.
    """
    index = journal.read_index(job_id)
    if isinstance(index, pd.Index):
        return index
    if target is None:
        return pd.RangeIndex(n_rows)  # the new columns alone, by row position
    if len(target) == n_rows:
        return target.index  # same length: merged by position
    raise MergeError(
        f"The DataFrame has {len(target)} rows and job {job_id} had {n_rows}, so its rows must be "
        f"matched by their index labels, but {index.reason}. Until then it merges by position "
        "into a DataFrame of the same rows. The results are kept in the journal."
    )


__all__ = ["BatchJob", "JobSettings", "JobStatus"]
