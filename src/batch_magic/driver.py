"""A job's driver: submit -> poll -> collect -> retry -> merge, over its record.

The journal is the source of truth: the job's ``JobRecord`` (journal.py owns
it, its states and their allowed transitions); every step reads what is
recorded, does one thing, and records it before the next, so a job driven by a
process that died, or stopped on an error, is picked up by the next run exactly
where it stopped.

The driver owns its record. It runs on a daemon thread of its own, with its
own event loop; SDK calls, which block, are made on that thread
(``asyncio.to_thread`` runs them in place there, as nothing else shares the
thread). It never runs on, or re-enters, the loop of the kernel that started
it, so a blocking ``wait()`` in a cell cannot wedge the kernel. Other threads
(a cell's ``cancel()``, the panel's button, ``attach`` with another DataFrame)
never touch the record: they send the driver a command (``Cancel``,
``Retarget``) through its inbox, which wakes any wait it is in. Snapshots
(``JobStatus.from_record``) are built here, on the driver's thread, and handed
to the delivery (delivery.py), which gives them to observers on the home
thread. A driver in another process (or another object of this one) is asked
to cancel through a file in the job's folder, which it reads every round.

Errors have one boundary: whatever stops a step (the merge and the write-back
of a retry included) is kept as raised in ``error``, shown in the last
snapshot as "failed" with its message, recorded in the journal (a job that has
not ended resumes from there), and raised by ``wait()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np
import orjson
import pandas as pd

from . import frames, pricing, uploads
from .answer_store import REUSED_FILE, AnswerStore, KnownAnswers, request_keys
from .client import (
    BatchClient,
    BatchInfo,
    Failure,
    FailureKind,
    classify,
    create_body_columns,
)
from .columns import job_columns
from .delivery import Delivery
from .destination import Destination, batch_gone_message
from .errors import APIError, BatchMagicError, JournalError, MergeError
from .index_codec import INDEX_META
from .journal import Journal
from .media import content_encoder, file_source
from .merge import build_columns, merge_into, stale_columns
from .plan import custom_id, custom_ids, split_batches
from .record import BatchEntry, BatchState, JobRecord, JobState, now_iso
from .results import CANCELED, PENDING, ResultTable
from .settings import JobSettings, poll_interval
from .states import DisplayState, RowStatus
from .status import DurationHint, JobStatus, epoch
from .structured import OutputSpec
from .timing import typical_batch_duration

#: Identical short downloads of one batch after which the file is taken as complete.
SHORT_DOWNLOADS_ACCEPTED = 3
#: The file in a job's folder by which a driver that does not hold the job (a
#: follower, maybe in another process) asks the one that does to cancel it.
CANCEL_REQUEST_FILE = "cancel_requested"
#: The API's word for a batch that has ended (its ``processing_status``).
API_ENDED = "ended"
API_CANCELING = "canceling"

log = logging.getLogger("batch_magic")
_T = TypeVar("_T")
_P = ParamSpec("_P")

#: Called with the merged frame and its new columns, on the home thread, as the last
#: part of the merge (a retry writes its rows back so); what it raises fails the job, and
#: what it returns (if anything) is the result from then on (a Polars retry: a new frame).
AfterMerge = Callable[[Any, list[str]], Any]

if TYPE_CHECKING:
    from .frames import Frame


# -- commands: what other threads may ask of the driver --------------------------------------
@dataclass(frozen=True)
class Cancel:
    """Stop the batches still running; keep and merge what finished."""


@dataclass(frozen=True, eq=False)
class Retarget:
    """Merge into this DataFrame (None: the new columns alone) instead."""

    df: Frame | None


@dataclass(frozen=True, eq=False)
class Repoint:
    """Talk to the same server through this client (the in-notebook simulator started
    again on another port): the job polls the same batches there, at once."""

    client: BatchClient


Command = Cancel | Retarget | Repoint


class Driver:
    """Drives one job to its end over its record, on a thread of its own."""

    def __init__(
        self,
        journal: Journal,
        record: JobRecord,
        client: BatchClient | None,
        settings: JobSettings,
        spec: OutputSpec,
        delivery: Delivery,
        df: Frame | None,
        after_merge: list[AfterMerge],
    ) -> None:
        self.journal = journal
        self.id = record.job_id
        self.record = record  # the driver's own: no other thread reads or writes it
        self.client = client
        self.settings = settings
        self.spec = spec
        self.delivery = delivery
        self.df = df
        #: Merge row i of the job into row i of ``df`` when its labels cannot be read
        #: (``attach(..., by_position=True)``): the user vouches for the rows' order.
        self.by_position = False
        self._after_merge = after_merge
        # Requests whose answers go into the answer store once merged (set by the merge).
        self._good_requests: np.ndarray | None = None
        #: The merged DataFrame, once merged; what stopped the driver, as raised.
        self.result: Frame | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        #: Set once the driver has stopped touching the record (its last snapshot is built).
        self.released = threading.Event()
        # The inbox: commands from other threads, and whether it still takes them.
        self._inbox: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._inbox_lock = threading.Lock()
        self._closed = False
        #: Set with a Cancel: the upload threads read it to stop early.
        self.cancel_asked = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        # What the driver shows besides the record (its thread alone writes these).
        self._cancel_pending = False  # a cancel to carry out
        self._canceling = False  # a cancel was asked: shown until the job ends
        self._failure: str | None = None  # this run's failure, shown over everything
        self._message = ""
        self._reconnecting = False
        self._uploads_done = 0
        self._typical: DurationHint | None = None
        self._prompts: list[str] | None = None
        self._table: ResultTable | None = None
        self._last_listing = 0.0  # monotonic time the batch list was last read for duplicates
        self._outage_wait = settings.backoff_min  # the next wait after a failed poll
        # The job's files as sources of content blocks, once all are uploaded (media jobs).
        self._sources: dict[str, dict[str, str]] | None = None

    # -- from other threads ----------------------------------------------------------------
    def send(self, command: Command) -> bool:
        """Give the driver a command and wake it (any thread). False: it has stopped."""
        with self._inbox_lock:
            if self._closed:
                return False
            if isinstance(command, Cancel):
                self.cancel_asked.set()
            self._inbox.put(command)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed meanwhile: the driver has ended
                pass
        return True

    def _close_inbox(self) -> bool:
        """Take no more commands, unless one is waiting (False: take it first)."""
        with self._inbox_lock:
            if not self._inbox.empty():
                return False
            self._closed = True
            return True

    def start_thread(self) -> None:
        self.thread = threading.Thread(target=self._thread_main, name=f"batch_magic-{self.id}", daemon=True)
        self.thread.start()

    def run_here(self) -> None:
        """An ended job: merge it now, on the calling thread (the journal has everything)."""
        try:
            self._merge_now(self.df)
        except Exception as exc:
            self._fail(exc)
        finally:
            self._close_inbox()
            self._settle()

    def merge_again(self, df: Frame | None) -> None:
        """After the driver stopped taking commands: merge the ended job into ``df`` as
        well, on the caller's thread (once the driver has let go of the record)."""
        self.released.wait()
        self.df = df
        if self.result is not None:
            self._merge_now(df, announce=False)

    # -- the driver's thread -----------------------------------------------------------------
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
            self._fail(exc)
        finally:
            while not self._close_inbox():
                self._take_commands()  # a Cancel too late to act on, a Retarget after a failure
            if not _exiting():
                self._settle()
                await self.delivery.until_delivered()

    def _take_commands(self) -> bool:
        """Act on the commands waiting (the driver's thread). True if there were any."""
        took = False
        while True:
            try:
                command = self._inbox.get_nowait()
            except queue.Empty:
                return took
            took = True
            if isinstance(command, Retarget):
                self.df = command.df
            elif isinstance(command, Repoint):
                self.client = command.client
                self._outage_wait = self.settings.backoff_min  # the server is back: poll soon
            elif not self.record.ended and not self._canceling:
                self._cancel_pending = self._canceling = True
                self._show(DisplayState.CANCELING, message="canceling: asking the API to stop the batches")

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, cut short by any command (Cancel wakes every wait)."""
        assert self._wake is not None
        self._wake.clear()
        if self._take_commands():
            return
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            return
        self._take_commands()

    # -- what observers see ----------------------------------------------------------------
    def snapshot(self, step: DisplayState | None = None) -> JobStatus:
        record = self.record
        if step is None and self._canceling and record.state in (JobState.PLANNED, JobState.RUNNING):
            step = DisplayState.CANCELING  # asked, not yet recorded (or asked of another driver)
        return JobStatus.from_record(
            record, step=step, failure=self._failure, message=self._message, reconnecting=self._reconnecting,
            uploads_done=self._uploads_done, typical_duration=self._typical,
        )

    def _show(self, step: DisplayState | None = None, *, message: str | None = None,
              reconnecting: bool | None = None) -> None:
        if message is not None:
            self._message = message
        if reconnecting is not None:
            self._reconnecting = reconnecting
        self.delivery.post(self.snapshot(step))

    def _settle(self) -> None:
        """The driver has finished: the last snapshot (the end, or the failure)."""
        last = self.snapshot()
        self.released.set()
        self.delivery.post(last, settled=True)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        log.debug("job %s failed", self.id, exc_info=exc)
        message = str(exc) if isinstance(exc, BatchMagicError) else f"{type(exc).__name__}: {exc}"
        record = self.record
        if record.ended:  # an ended job stays ended; only this run (its merge) failed
            note = "the job ended; its results are safe in the journal"
        else:
            note = "failed; it resumes where it stopped when its cell is run again or it is attached"
            record.move_to(JobState.FAILED)
            record.error = message
            try:
                self._save()
            except Exception:  # the journal cannot be written: the error shown is the first one
                log.exception("job %s: its failure could not be recorded", self.id)
        self._failure = message
        self._show(message=note)

    # -- running ---------------------------------------------------------------------------
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
        watch the journal until it ends, then merge from it. A cancel asked here is
        passed on to that driver (through the job's folder)."""
        self._show(message="driven elsewhere; following its journal")
        while True:
            self._take_commands()
            if self._cancel_pending:
                self._cancel_request_file().write_text(now_iso())
                self._cancel_pending = False
                self._show(message="cancel asked of the driver running this job")
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
            self._show()
            await self._sleep(max(1.0, self.settings.poll_min))

    def _cancel_request_file(self) -> Any:
        return self.journal.job_file(self.id, CANCEL_REQUEST_FILE)

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
            self._show(message="resuming where it stopped")
        self._table = await asyncio.to_thread(self._load_table)
        self._typical = await asyncio.to_thread(self._typical_duration)
        poll_wait = self.settings.poll_min
        while True:
            self._take_commands()
            if not self._cancel_pending and self._cancel_request_file().exists():
                self._cancel_pending = self._canceling = True  # asked by a driver following this job
            if self._cancel_pending or (
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

    # -- steps -------------------------------------------------------------------------------
    def _prompts_list(self) -> list[str]:
        if self._prompts is None:
            self._prompts = self.journal.read_prompts(self.id, self.record)
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
            if self._cancel_pending or record.state is JobState.CANCELING:
                break
            running = len(record.batches_in(BatchState.IN_PROGRESS))
            if running + others >= self.settings.max_in_flight:
                if running == 0:
                    self._show(DisplayState.QUEUED, message=f"waiting: {others} batches of other jobs are in flight")
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
        self._show(DisplayState.UPLOADING, message=f"uploading {self._uploads_done}/{total} files")

        def progress(p: uploads.UploadProgress) -> None:
            # Called by upload_all on the thread that runs it: this one (to_thread runs in place).
            self._uploads_done = p.done
            self._show(DisplayState.UPLOADING, message=f"uploading: {p.describe()}")

        def read(item: Any) -> bytes:
            return bytes(item.read(self.journal.staged_media(self.id, item)))

        try:
            done, summary = await asyncio.to_thread(
                uploads.upload_all, client.files, uploads.UploadStore(self.journal), items,
                uploads.server_key(client.base_url), read=read, on_progress=progress,
                stop=self.cancel_asked.is_set,
                settings=uploads.UploadSettings(backoff_min=self.settings.backoff_min, backoff_max=self.settings.backoff_max),
            )
        except uploads.UploadsStopped:
            self._take_commands()  # the Cancel that stopped them
            return False
        self._sources = {sha: file_source(upload.file_id) for sha, upload in done.items()}
        self._uploads_done = summary.done
        self._show(DisplayState.SUBMITTING, message=summary.describe())
        return True

    def _start_running(self) -> None:
        if self.record.state is JobState.PLANNED:
            self.record.move_to(JobState.RUNNING)

    async def _look_for_orphan(self, entry: BatchEntry) -> tuple[BatchInfo | None, Failure | None]:
        """(the batch an unanswered create of ``entry`` made, if found; why the list could
        not be read, if it could not). A refusal to list is raised: nobody can know then."""
        try:
            return await asyncio.to_thread(self._find_orphan, entry), None
        except Exception as exc:
            failure = classify(exc)
            if not failure.retriable:
                raise APIError(f"Listing batches (to find one whose create's answer was lost) failed: {failure.detail}") from None
            return None, failure

    async def _create(self, entry: BatchEntry) -> bool:
        """Send one batch, unless its earlier create may still land. True if it exists now."""
        assert self.client is not None
        client = self.client
        total = len(self.record.batches)
        if entry.state is BatchState.SUBMITTING:
            # A create was sent and its answer never seen: the batch may exist, or may
            # still appear. Look for it before every re-send, and send again only once
            # it has stayed away for the whole grace period.
            found, failure = await self._look_for_orphan(entry)
            if failure is not None:  # not looked: not sent either; next round
                self._show(reconnecting=True, message=f"listing batches failed ({failure.detail}); trying again")
                return False
            if found is not None:
                self._record_created(entry, found, adopted=True)
                return True
            unsure = epoch(entry.unsure_at or entry.intent_at) or 0.0
            left = unsure + self.settings.create_grace - time.time()
            if left > 0:
                self._show(
                    DisplayState.SUBMITTING,
                    message=f"batch {entry.n + 1} of {total}: its create may have reached the API; "
                    f"looking for it before sending again (at most {left:.0f} s more)",
                )
                return False
        self._show(DisplayState.SUBMITTING, message=f"creating batch {entry.n + 1} of {total}")
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
                    found, unlisted = await self._look_for_orphan(entry)
                    if found is not None:
                        self._record_created(entry, found, adopted=True)
                        return True
                    looked = f"; listing batches failed too ({unlisted.detail})" if unlisted else ""
                    self._show(
                        reconnecting=True,
                        message=f"create failed ({failure.detail}{looked}); looking for its batch "
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
                self._show(reconnecting=True, message=f"create failed ({failure.detail}); retrying in {wait:.0f} s")
                await self._sleep(wait)
                if self._cancel_pending:
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
            found, failure = await self._look_for_orphan(entry)
            if failure is not None:  # looked for again at the next listing
                self._show(reconnecting=True, message=f"listing batches failed ({failure.detail}); trying again")
                return
            if found is None:
                continue
            entry.duplicates.append(found.id)  # known before anything else can go wrong
            self._save()
            try:
                await asyncio.to_thread(self.client.cancel, found.id)
            except Exception as exc:
                refused = classify(exc)
                raise APIError(
                    f"A late copy of batch {entry.n + 1} ({found.id}) appeared and could not be canceled "
                    f"({refused.detail}); cancel it in the Console, or it runs and is paid for."
                ) from None
            self._show(message=f"a late copy of batch {entry.n + 1} ({found.id}) appeared: canceled, not paid twice")

    def _results_match(self, entry: BatchEntry, path: Any) -> bool:
        """Do the results hold exactly this entry's custom_ids?"""
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
        self._show(DisplayState.IN_PROGRESS, reconnecting=False, message=f"batch {info.id} created")

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
            self._show(reconnecting=True, message=f"reconnecting in {wait:.0f} s ({failure.detail})")
            await self._sleep(wait)
            return False
        self._outage_wait = self.settings.backoff_min
        if self._reconnecting:
            self._show(reconnecting=False, message="reconnected")
        if info.processing_status != API_ENDED:
            if info.processing_status == API_CANCELING and entry.state is not BatchState.CANCELING:
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
        self._show(DisplayState.COLLECTING, message=f"downloading results of {batch_id}")
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
                self._show(reconnecting=True, message=f"download interrupted ({failure.detail}); starting it again")
                await self._sleep(failure.retry_after or backoff)
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
            self._show(DisplayState.SUBMITTING, message=f"batch {batch_id} was not this job's; sending it again")
            return
        await asyncio.to_thread(self.journal.commit_results, self.id, batch_id)
        await asyncio.to_thread(self.journal.ingest_results, self._table, self.id, batch_id)
        entry.move_to(BatchState.ENDED)
        self._save()
        others = bool(self.record.batches_in(BatchState.IN_PROGRESS, BatchState.CANCELING))
        self._show(
            DisplayState.IN_PROGRESS if others else DisplayState.COLLECTING,
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
        self._show(DisplayState.RETRYING, message=f"retrying {again.size} requests (attempt {attempt + 1})")
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
        """Record the cancel, drop what was not sent, ask the API to stop what runs.
        Returns early (to try again next round) when the API cannot be reached."""
        assert self.client is not None
        record = self.record
        if record.state is not JobState.CANCELING:
            record.move_to(JobState.CANCELING)
            record.cancel_requested_at = now_iso()
            self._save()
        self._cancel_request_file().unlink(missing_ok=True)  # recorded: the record says it now
        for entry in record.batches:
            if entry.state is BatchState.SUBMITTING:
                # Its create may have reached the server: cancel that batch too if so. Not
                # dropped before the list was read: a batch nobody knows of would run, paid.
                found, failure = await self._look_for_orphan(entry)
                if failure is not None:
                    self._save()
                    self._show(reconnecting=True, message=f"listing batches failed ({failure.detail}); "
                               "looking again for a batch whose create's answer was lost")
                    return
                if found is not None:
                    self._record_created(entry, found, adopted=True)
            if entry.state in (BatchState.PENDING, BatchState.SUBMITTING):
                entry.move_to(BatchState.DROPPED)
            elif entry.state is BatchState.IN_PROGRESS and entry.batch_id:
                if not await self._cancel_one(entry.batch_id):
                    self._save()
                    return
                entry.move_to(BatchState.CANCELING)
        self._save()
        self._cancel_pending = False

    async def _cancel_one(self, batch_id: str) -> bool:
        """Ask the API to cancel a batch. True if it is canceling or has ended; False if the
        API could not be reached (try again); raises if it refused and the batch runs on."""
        assert self.client is not None
        try:
            await asyncio.to_thread(self.client.cancel, batch_id)
            return True
        except Exception as exc:
            failure = classify(exc)
        if failure.retriable:
            self._show(reconnecting=True, message=f"cancel failed ({failure.detail}); trying again")
            return False
        if failure.kind is FailureKind.NOT_FOUND:
            raise APIError(batch_gone_message(self.record.sent_to, batch_id))
        # Refused: right if it ended (or began canceling) meanwhile; the poll collects it.
        info = await asyncio.to_thread(self.client.retrieve, batch_id)
        if info.processing_status in (API_ENDED, API_CANCELING):
            return True
        raise APIError(
            f"Canceling batch {batch_id} was refused: {failure.detail}. It goes on running "
            "(and is paid for); cancel it again once the cause is fixed (the job resumes canceling "
            "when attached), or in the Console."
        )

    def _finish(self) -> None:
        """Every batch ended or was dropped: the job is done (or canceled)."""
        record = self.record
        live = [b for b in record.batches if b.live]
        if live:  # the driver's loop only ends when none is left: a bug otherwise
            raise BatchMagicError(f"Job {self.id} cannot end with {len(live)} batches still live.")
        record.move_to(JobState.CANCELED if record.state is JobState.CANCELING else JobState.DONE)
        record.finished_at = record.finished_at or now_iso()
        self._save()
        self._cancel_request_file().unlink(missing_ok=True)
        if record.n_media:
            self.journal.drop_staged_media(self.id)  # uploaded and recorded; nothing reads them now

    async def _merge(self) -> None:
        """Merge into the DataFrame on the home thread (never while a cell there reads it);
        again into another one if the job was attached to it meanwhile."""
        if self._table is None:
            self._table = await asyncio.to_thread(self._load_table)
        merged: list[Frame | None] = []
        while True:
            self._take_commands()
            target = self.df
            if not merged or merged[-1] is not target:
                await self.delivery.on_home(functools.partial(self._merge_now, target))
                merged.append(target)
                if self._good_requests is not None:  # off the home thread: a million rows take a while
                    await asyncio.to_thread(self._keep_answers, self._good_requests)
                    self._good_requests = None
            if self._close_inbox():
                return

    def _keep_answers(self, numbers: np.ndarray) -> None:
        """Put this job's good answers into the journal's answer store, once (before the
        job is shown as ended: the next cell's job may ask the same)."""
        record, table = self.record, self._table
        assert table is not None
        sent_to = Destination.recorded(record.sent_to)
        if sent_to is not None and numbers.size:
            keys = request_keys(sent_to.key, record.options.shared_params(), self._prompts_list())
            AnswerStore(self.journal.root).remember(self.id, keys, table.known(numbers))
        record.answers_kept = True
        self._save()

    def _merge_now(self, target: Frame | None, *, announce: bool = True) -> None:
        """Build the columns of an ended job and put them into ``target`` (on the caller's
        thread), then run the after-merge steps. The record's state is not changed here:
        only the driver ends a job, once no batch is live."""
        record = self.record
        if not record.ended:
            raise BatchMagicError(f"Job {self.id} is {record.state.value}; it is merged once it has ended.")
        if announce:
            self._show(DisplayState.MERGING, message="merging results")
        if self._table is None:
            self._table = self._load_table()
        table = self._table
        if record.state is JobState.CANCELED:
            # Requests never sent because the job was canceled first.
            unsent = table.status == PENDING
            table.status[unsent] = CANCELED
            table.error_type[unsent] = RowStatus.CANCELED.value
            table.error_message[unsent] = "the job was canceled before this request was sent"
        rows = self.journal.read_rows(self.id, record)
        if len(rows) != record.n_rows or (rows.size and int(rows.max()) >= record.n_requests):
            raise BatchMagicError(f"The row map of job {self.id} does not match its record; the journal was altered.")
        columns = build_columns(record.out, self.spec, table, rows, record.skip_reasons)
        billed = table.billed_usage()  # built once: summed for the record, priced for the cost
        record.usage = {key: int(values.sum()) for key, values in billed.items()}
        record.actual_cost = pricing.actual_cost(record.options.model, billed)
        try:
            frame: Any
            if frames.is_polars(target) or (target is None and frames.is_polars_job(self.journal, self.id)):
                # A new frame (Polars frames cannot change): the result, the given one left as it is.
                summary, frame = frames.merge(self.journal, record, columns, target)
            else:
                index = plan_index(self.journal, self.id, len(rows), target, by_position=self.by_position)
                frame = target if target is not None else pd.DataFrame(index=index)
                if target is not None:
                    assert isinstance(target, pd.DataFrame)  # a Polars frame took the branch above
                    for name in stale_columns(record, self.journal.records(), target.columns, columns):
                        del target[name]  # in place: the user's own object
                summary = merge_into(frame, columns, index, out=record.out)
            for step in self._after_merge:
                # A step may give the result anew (a Polars retry: the whole frame written back).
                given = step(frame, list(summary.columns))
                if given is not None:
                    frame = given
        except Exception:
            self._save()  # the usage and cost are known, even where the rows could not go
            raise
        record.row_counts = dict(summary.status_counts)
        record.columns = list(summary.columns)
        if not record.answers_kept and self._good_requests is None:
            status = np.asarray(columns[job_columns(record.out).status])
            self._good_requests = good_requests(table, rows, status)
        self._save()
        self.result = frame
        if announce:
            final = record.state.value
            answered = summary.status_counts.get(RowStatus.SUCCEEDED, 0)
            self._show(message=f"{final}: {answered} of {len(rows)} rows answered")

    def _load_table(self) -> ResultTable:
        table = ResultTable.empty(self.record.n_requests)
        if self.record.n_reused:
            path = self.journal.job_file(self.id, REUSED_FILE)
            known = KnownAnswers.from_parquet(self.journal.read_file(path), str(path), self.record.n_requests)
            if known.n != self.record.n_reused:
                raise JournalError(
                    f"Job {self.id}: {REUSED_FILE} holds {known.n} answers, its record {self.record.n_reused}; "
                    "the journal was altered."
                )
            table.take_known(known)
        for entry in self.record.batches_in(BatchState.ENDED):
            if entry.batch_id:
                path = self.journal.results_path(self.id, entry.batch_id)
                if path.exists():
                    self.journal.ingest_results(table, self.id, entry.batch_id)
                elif not self.record.ended:  # recorded as ended but the file is gone: fetch it again
                    entry.move_to(BatchState.IN_PROGRESS)
        return table

    def _save(self) -> None:
        self.journal.write_record(self.record)


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


def good_requests(table: ResultTable, rows: np.ndarray, row_status: np.ndarray) -> np.ndarray:
    """The requests worth keeping in the answer store: their rows succeeded (the answer fit
    its labels or schema), the API added no note (no refusal, nothing cut short), and the
    answer was not itself taken from the store."""
    succeeded_rows = (rows >= 0) & (row_status == RowStatus.SUCCEEDED.value)
    numbers = np.unique(rows[succeeded_rows])
    clean = (table.error_type[numbers] == None) & ~table.reused[numbers]  # noqa: E711 (elementwise)
    return numbers[clean]


def plan_index(
    journal: Journal, job_id: str, n_rows: int, target: pd.DataFrame | None, *, by_position: bool = False
) -> pd.Index:
    """The index the job's rows had at submission, to align the merge on.

    When its labels cannot be read (a format-1 journal's pickle not trusted yet, or
    no index stored), rows are never matched by position silently: only into the
    very labels the job recorded a digest of, or when the user asks for it
    (``by_position``) into a DataFrame of the same length; else the merge is refused
    with both ways out.
    """
    index = journal.read_index(job_id)
    if isinstance(index, pd.Index):
        if len(index) != n_rows:
            raise JournalError(
                f"The stored index of job {job_id} ({str(journal.job_file(job_id, INDEX_META))!r}) has "
                f"{len(index)} labels for its {n_rows} rows; this journal was altered, so its rows "
                "cannot be matched. The results are kept in the journal."
            )
        return index
    if target is None:
        return pd.RangeIndex(n_rows)  # the new columns alone, by row position
    if len(target) == n_rows and (by_position or index.matches(target.index)):
        return target.index
    if by_position:
        raise MergeError(
            f"The DataFrame has {len(target)} rows and job {job_id} had {n_rows}, so its rows cannot "
            "be merged by position. The results are kept in the journal."
        )
    ways = [
        f"merge row i of the job into row i of the DataFrame, only if it holds the same rows in the "
        f"same order as at submission: %batch attach {job_id} DF --by-position "
        "(attach(..., by_position=True))"
    ]
    if index.pickled:
        ways.insert(0, f"for a journal you made yourself, convert its index: %batch trust {job_id}")
    raise MergeError(
        f"Job {job_id}'s rows cannot be matched to the DataFrame's by their labels: {index.reason}. "
        "Nothing was merged; the results are kept in the journal. Either "
        + "; or ".join(ways) + "."
    )


__all__ = ["AfterMerge", "Cancel", "Driver", "Repoint", "Retarget", "good_requests", "plan_index"]
