"""A job's state machine: submit -> poll -> collect -> retry -> merge.

The journal is the source of truth: every step reads what is recorded, does
one thing, and records it before the next, so a job driven by a process that
died is picked up by the next one exactly where it stopped. Observers (the
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
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd

from . import pricing
from .client import BatchClient, BatchInfo, create_body_columns, describe_error, is_network_error
from .errors import APIError, BatchMagicError
from .journal import Journal, now_iso
from .merge import build_columns, merge_into
from .plan import custom_id, custom_ids, split_batches
from .results import CANCELED, PENDING, ResultTable
from .status import FINAL_STATES, JobStatus, epoch
from .structured import OutputSpec

#: How a transient failure looks from the SDK (status codes it retries itself too).
TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
#: Identical short downloads of one batch after which the file is taken as complete.
SHORT_DOWNLOADS_ACCEPTED = 3
#: Failures after which a create may have reached the server anyway.
AMBIGUOUS_STATUS = frozenset({408, 500, 502, 503, 504})
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
    #: Backoff for transient failures (seconds), doubled per failure up to the max.
    backoff_min: float = 1.0
    backoff_max: float = 60.0


#: Jobs being driven in this process, by (journal folder, job id): a re-run cell
#: gets the running job back instead of a second driver.
_LIVE: dict[tuple[str, str], BatchJob] = {}


def live_job(journal: Journal, job_id: str) -> BatchJob | None:
    job = _LIVE.get((str(journal.root.resolve()), job_id))
    return job if job is not None and not job.done else None


class BatchJob:
    """One job of the journal, bound (optionally) to the DataFrame it fills."""

    def __init__(
        self,
        journal: Journal,
        job_id: str,
        client: BatchClient | None,
        df: pd.DataFrame | None = None,
        settings: JobSettings | None = None,
        spec: OutputSpec | None = None,
    ) -> None:
        self.journal = journal
        self.id = job_id
        self.client = client
        self.df = df
        self.settings = settings or JobSettings()
        self.manifest = journal.read_manifest(job_id)
        # The live spec (it may hold a pydantic model); else rebuilt from the journal.
        self.spec = spec or OutputSpec(
            kind=self.manifest["output"]["kind"],
            labels=tuple(self.manifest["output"].get("labels") or ()),
            schema=self.manifest["output"].get("schema"),
        )
        self._prompts: list[str] | None = None
        self._table: ResultTable | None = None
        self._thread: threading.Thread | None = None  # the driver's
        self._cancel_requested = False
        self._reconnecting = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the driver's loop
        self._result: pd.DataFrame | None = None
        self._merge_error: BaseException | None = None
        self._error: BaseException | None = None  # what stopped the driver, as raised
        self._settled = False  # the driver has finished (merged, refused or failed)
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
        try:
            home: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            home = None
        if home is not None:
            self._home_loop = home
            self._home_thread = threading.get_ident()
            self._home_context = contextvars.copy_context()
        if self.manifest["state"] in FINAL_STATES:
            # Everything is in the journal already: merge now, no API call.
            try:
                self._merge_now()
            finally:
                self._settled = True
                self._set()
            return self
        _LIVE[(str(self.journal.root.resolve()), self.id)] = self
        self._thread = threading.Thread(target=self._thread_main, name=f"batch_magic-{self.id}", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> pd.DataFrame:
        """Block until the job ends; return the DataFrame with the new columns.

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
        if self.done or self._status.state in FINAL_STATES:
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

    def result(self) -> pd.DataFrame:
        """The merged DataFrame (or, attached without one, the new columns alone)."""
        if self._result is None:
            raise BatchMagicError(f"Job {self.id} is {self._status.state}; wait() for it to end.")
        return self._result

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
            _LIVE.pop((str(self.journal.root.resolve()), self.id), None)
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
        return self._settled or status.state not in FINAL_STATES

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
            self.manifest = self.journal.read_manifest(self.id)  # the latest, now that it is ours
            await self._run_locked()
        finally:
            lock.release()

    async def _follow(self) -> None:
        """Another driver (another kernel, or another object here) runs this job:
        watch the journal until it ends, then merge from it."""
        self._set(message="driven elsewhere; following its journal")
        while True:
            manifest = await asyncio.to_thread(self.journal.read_manifest, self.id)
            if manifest["state"] in FINAL_STATES:
                self.manifest = manifest
                self._table = None
                await self._merge()
                return
            lock = self.journal.try_lock(self.id)
            if lock is not None:  # the other driver died: take over
                lock.release()
                await self._run()
                return
            self.manifest = manifest
            if self._cancel_requested and self.client is not None:
                # The driver is elsewhere: cancel its batches at the API; it collects them.
                for entry in manifest["batches"]:
                    if entry.get("batch_id") and entry["state"] == "in_progress":
                        with contextlib.suppress(Exception):
                            await asyncio.to_thread(self.client.cancel, entry["batch_id"])
                self._cancel_requested = False
            self._set(state=manifest["state"])
            await self._sleep(max(1.0, self.settings.poll_min))

    async def _run_locked(self) -> None:
        if self.manifest["state"] in FINAL_STATES:
            await self._merge()
            return
        if self.client is None:
            raise BatchMagicError("This job needs an API client to go on; attach it with one.")
        self._table = await asyncio.to_thread(self._load_table)
        poll_wait = self.settings.poll_min
        while True:
            if self._cancel_requested or (
                self.manifest.get("cancel_requested") and not self.manifest.get("cancel_sent")
            ):
                await self._cancel_batches()
            await self._submit_ready()
            running = [b for b in self._batches() if b["state"] in ("in_progress", "canceling")]
            if not running and not any(b["state"] in ("pending", "submitting") for b in self._batches()):
                if self.manifest.get("cancel_requested") or not await self._plan_retry():
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
        await self._merge()

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _next_poll_wait(self) -> float:
        s = self.settings
        started = [epoch(b.get("created_at")) for b in self._batches() if b["state"] == "in_progress"]
        ran = time.time() - min(t for t in started if t) if any(started) else 0.0
        return min(s.poll_max, max(s.poll_min, ran * s.poll_fraction))

    # -- steps ----------------------------------------------------------------
    def _batches(self) -> list[dict[str, Any]]:
        batches: list[dict[str, Any]] = self.manifest["batches"]
        return batches

    def _request_numbers(self, entry: dict[str, Any]) -> np.ndarray:
        if "range" in entry:
            return np.arange(entry["range"][0], entry["range"][1])
        return np.asarray(entry["ids"], dtype=np.int64)

    def _prompts_list(self) -> list[str]:
        if self._prompts is None:
            self._prompts = self.journal.read_prompts(self.id)
        return self._prompts

    def _in_flight_elsewhere(self) -> int:
        """Batches other live jobs of this journal have running (stale ones ignored)."""
        count = 0
        cutoff = time.time() - 15 * 60
        for m in self.journal.manifests():
            if m["job_id"] == self.id or m.get("state") in FINAL_STATES:
                continue
            if (epoch(m.get("updated_at")) or 0) < cutoff:
                continue
            count += sum(1 for b in m.get("batches", []) if b.get("state") == "in_progress")
        return count

    async def _submit_ready(self) -> bool:
        """Create pending batches while under the in-flight cap. True if any was created."""
        created = False
        waiting = [b for b in self._batches() if b["state"] in ("pending", "submitting")]
        if not waiting:
            return False
        # Other jobs' manifests are read once per round, not once per waiting batch.
        others = await asyncio.to_thread(self._in_flight_elsewhere)
        for entry in waiting:
            if self._cancel_requested or self.manifest.get("cancel_requested"):
                break
            running = sum(1 for b in self._batches() if b["state"] == "in_progress")
            if running + others >= self.settings.max_in_flight:
                if running == 0:
                    self._set(state="queued", message=f"waiting: {others} batches of other jobs are in flight")
                break
            await self._create(entry)
            created = True
        return created

    async def _create(self, entry: dict[str, Any]) -> None:
        assert self.client is not None
        client = self.client
        self._set(state="submitting", message=f"creating batch {entry['n'] + 1} of {len(self._batches())}")
        if entry["state"] == "submitting":
            # A previous run may have created it before dying: adopt it rather than pay twice.
            found = await asyncio.to_thread(self._find_orphan, entry)
            if found is not None:
                self._record_created(entry, found, adopted=True)
                return
        ks = self._request_numbers(entry).tolist()
        prompts = self._prompts_list()
        body = await asyncio.to_thread(
            create_body_columns, self.manifest["params"], custom_ids(ks, self._id_tag),
            map(prompts.__getitem__, ks),
        )
        backoff = self.settings.backoff_min
        while True:
            entry["state"] = "submitting"
            entry["intent_at"] = now_iso()
            self._save()
            try:
                info = await asyncio.to_thread(client.create, body)
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                transient = _is_transient(exc)
                if not transient:
                    raise APIError(f"Creating a batch was refused: {describe_error(exc)}") from None
                if status is None or status in AMBIGUOUS_STATUS:
                    found = await asyncio.to_thread(self._find_orphan, entry)
                    if found is not None:
                        self._record_created(entry, found, adopted=True)
                        return
                wait = _retry_after(exc) or backoff
                self._set(reconnecting=True, message=f"create failed ({describe_error(exc)}); retrying in {wait:.0f} s")
                await asyncio.sleep(wait)
                backoff = min(self.settings.backoff_max, backoff * 2)
                continue
            self._record_created(entry, info)
            return

    def _find_orphan(self, entry: dict[str, Any]) -> BatchInfo | None:
        """A batch the server has that matches an unanswered create of ours."""
        assert self.client is not None
        since = (epoch(entry.get("intent_at")) or 0) - 300
        claimed = self.journal.claimed_batch_ids() | set(entry.get("rejected") or ())
        try:
            recent = self.client.recent_batches(limit=100)
        except Exception:
            return None
        for info in recent:
            created = epoch(info.created_at) or 0
            if info.id not in claimed and created >= since and info.total == entry["size"]:
                return info
        return None

    @property
    def _id_tag(self) -> str:
        return str(self.manifest.get("id_tag", ""))  # journals from before tags: none

    def _results_match(self, entry: dict[str, Any], path: Any) -> bool:
        """Do the results hold exactly this entry's custom_ids?"""
        import orjson

        expected = {custom_id(int(k), self._id_tag) for k in self._request_numbers(entry)}
        with open(path, "rb") as fh:
            seen = {orjson.loads(line)["custom_id"] for line in fh if line.strip()}
        return seen == expected

    def _record_created(self, entry: dict[str, Any], info: BatchInfo, *, adopted: bool = False) -> None:
        entry.update(
            batch_id=info.id,
            adopted=adopted,
            state="in_progress",  # even if already ended: the next poll collects it
            created_at=info.created_at,
            expires_at=info.expires_at,
        )
        if self.manifest.get("started_at") is None:
            self.manifest["started_at"] = info.created_at or now_iso()
        self.manifest["state"] = "in_progress"
        self._save()
        self._set(state="in_progress", reconnecting=False, message=f"batch {info.id} created")

    async def _poll(self, entry: dict[str, Any]) -> bool:
        """Retrieve one batch; collect its results if it ended. True if it changed."""
        assert self.client is not None
        try:
            info = await asyncio.to_thread(self.client.retrieve, entry["batch_id"])
        except Exception as exc:
            if not _is_transient(exc):
                raise APIError(f"Polling batch {entry['batch_id']} failed: {describe_error(exc)}") from None
            self._set(reconnecting=True, message=f"reconnecting ({describe_error(exc)})")
            await asyncio.sleep(_retry_after(exc) or self.settings.backoff_min)
            return False
        if self._reconnecting:
            self._set(reconnecting=False, message="reconnected")
        if info.processing_status != "ended":
            if info.processing_status == "canceling" and entry["state"] != "canceling":
                entry["state"] = "canceling"
                self._save()
            return False
        entry["counts"] = info.request_counts
        entry["ended_at"] = info.ended_at
        await self._collect(entry)
        return True

    async def _collect(self, entry: dict[str, Any]) -> None:
        """Download an ended batch's results into the journal, then read them."""
        assert self.client is not None and self._table is not None
        client = self.client
        batch_id = entry["batch_id"]
        self._set(state="collecting", message=f"downloading results of {batch_id}")
        part = self.journal.partial_results_path(self.id, batch_id)
        backoff = self.settings.backoff_min
        short_counts: list[int] = []
        while True:
            try:
                lines = await asyncio.to_thread(client.download_results, batch_id, part)
                if lines < entry["size"]:
                    short_counts.append(lines)
                    # The same short file again and again is what the API has, not a
                    # cut: take it; the missing requests stay pending, then retry.
                    if short_counts[-SHORT_DOWNLOADS_ACCEPTED:] != [lines] * SHORT_DOWNLOADS_ACCEPTED:
                        raise ConnectionError(f"download cut short: {lines} of {entry['size']} results")
                break
            except Exception as exc:
                if not (_is_transient(exc) or isinstance(exc, ValueError)):
                    raise APIError(f"Downloading results of {batch_id} failed: {describe_error(exc)}") from None
                self._set(reconnecting=True, message=f"download interrupted ({describe_error(exc)}); starting it again")
                await asyncio.sleep(backoff)
                backoff = min(self.settings.backoff_max, backoff * 2)
        if entry.get("adopted") and not await asyncio.to_thread(self._results_match, entry, part):
            # An adopted batch that is not ours after all (same size, same minutes):
            # forget it and send ours; nothing of it is merged.
            entry.setdefault("rejected", []).append(batch_id)
            entry.update(batch_id=None, state="pending", adopted=False)
            part.unlink(missing_ok=True)
            self._save()
            self._set(state="submitting", message=f"batch {batch_id} was not this job's; sending it again")
            return
        path = await asyncio.to_thread(self.journal.commit_results, self.id, batch_id)
        await asyncio.to_thread(self._table.ingest_file, path)
        entry["state"] = "ended"
        self._save()
        others = any(b["state"] in ("in_progress", "canceling") for b in self._batches())
        self._set(
            state="in_progress" if others else "collecting",
            reconnecting=False,
            message=f"batch {batch_id} ended",
        )

    async def _plan_retry(self) -> bool:
        """Queue another attempt for requests that failed retriably. True if queued."""
        assert self._table is not None
        attempt = max(b["attempt"] for b in self._batches())
        if attempt >= self.settings.max_attempts:
            return False
        last = np.concatenate([self._request_numbers(b) for b in self._batches() if b["attempt"] == attempt])
        again = self._table.retriable(last)
        if again.size == 0:
            return False
        self._add_batches(again, attempt + 1)
        self._set(state="retrying", message=f"retrying {again.size} requests (attempt {attempt + 1})")
        return True

    def _add_batches(self, ks: np.ndarray, attempt: int) -> None:
        prompts = self._prompts_list()
        chosen = [prompts[int(k)] for k in ks]
        ranges = split_batches(chosen, self.manifest["params"], self.manifest["chunk_size"])
        for r in ranges:
            ids = [int(k) for k in ks[r.start : r.stop]]
            self._batches().append(
                {"n": len(self._batches()), "attempt": attempt, "ids": ids, "size": len(ids), "state": "pending"}
            )
        self._save()

    async def _cancel_batches(self) -> None:
        assert self.client is not None
        self.manifest["cancel_requested"] = True
        for entry in self._batches():
            if entry["state"] == "submitting":
                # Its create may have reached the server: cancel that batch too if so.
                found = await asyncio.to_thread(self._find_orphan, entry)
                if found is not None:
                    self._record_created(entry, found, adopted=True)
            if entry["state"] == "pending" or entry["state"] == "submitting":
                entry["state"] = "dropped"
            elif entry["state"] == "in_progress":
                try:
                    await asyncio.to_thread(self.client.cancel, entry["batch_id"])
                    entry["state"] = "canceling"
                except Exception as exc:
                    status = getattr(exc, "status_code", None)
                    if status not in (400, 409):  # 400/409: it ended meanwhile; fine
                        self._set(reconnecting=True, message=f"cancel failed ({describe_error(exc)}); trying again")
                        return
        self.manifest["cancel_sent"] = True
        self._save()
        self._cancel_requested = False

    async def _merge(self) -> None:
        if self._table is None:
            self._table = await asyncio.to_thread(self._load_table)
        # Into the user's DataFrame on the home thread: never while a cell there reads it.
        await self._on_home(self._merge_now)

    def _merge_now(self) -> None:
        """Build the columns and put them into the DataFrame (on the caller's thread)."""
        self._set(state="merging", message="merging results")
        if self._table is None:
            self._table = self._load_table()
        table = self._table
        if self.manifest.get("cancel_requested"):
            # Requests never sent because the job was canceled first.
            unsent = table.status == PENDING
            table.status[unsent] = CANCELED
            table.error_type[unsent] = "canceled"
            table.error_message[unsent] = "the job was canceled before this request was sent"
        rows = self.journal.read_rows(self.id)
        index = self.journal.read_index(self.id)
        skip = {int(k): v for k, v in (self.manifest.get("skip_reasons") or {}).items()}
        columns = build_columns(self.manifest["out"], self.spec, table, rows, skip)
        usage = table.usage_totals()
        self.manifest["usage"] = usage
        self.manifest["actual_cost"] = pricing.actual_cost(self.manifest["params"]["model"], usage)
        canceled = bool(self.manifest.get("cancel_requested"))
        self.manifest["state"] = "canceled" if canceled else "done"
        self.manifest.setdefault("finished_at", now_iso())
        target = self.df
        try:
            if target is not None:
                self._drop_stale_columns(target, columns)
                summary = merge_into(target, columns, index)
                self._result = target
            else:
                frame = pd.DataFrame(index=index)
                summary = merge_into(frame, columns, index)
                self._result = frame
        except BatchMagicError as exc:
            self._merge_error = exc
            self._save()
            self._set(state="failed", error=str(exc), message="results are safe in the journal")
            return
        self.manifest["row_counts"] = summary.status_counts
        self.manifest["columns"] = summary.columns
        self._save()
        final = self.manifest["state"]
        self._set(
            state=final,
            message=f"{final}: {summary.status_counts.get('succeeded', 0)} of {len(rows)} rows answered",
        )

    def _drop_stale_columns(self, df: pd.DataFrame, columns: dict[str, Any]) -> None:
        """Remove columns an earlier job with the same ``out`` wrote and this one does not
        (e.g. another schema's fields), so no old answer sits beside new ones."""
        out = self.manifest["out"]
        stale: set[str] = set()
        for m in self.journal.manifests():
            if m.get("out") == out and m["job_id"] != self.id:
                stale.update(m.get("columns") or ())
        stale.add(f"{out}_raw")
        drop = [c for c in df.columns if c in stale and c not in columns]
        for name in drop:
            del df[name]  # in place: the user's own object

    def _load_table(self) -> ResultTable:
        table = ResultTable.empty(self.manifest["n_requests"])
        for entry in self._batches():
            bid = entry.get("batch_id")
            if entry["state"] == "ended" and bid:
                path = self.journal.results_path(self.id, bid)
                if path.exists():
                    table.ingest_file(path)
                else:  # recorded as ended but the file is gone: fetch it again
                    entry["state"] = "in_progress"
        return table

    # -- bookkeeping ----------------------------------------------------------
    def _save(self) -> None:
        self.journal.write_manifest(self.id, self.manifest)

    def _fail(self, message: str) -> None:
        self.manifest["state"] = "failed"
        self.manifest["error"] = message
        with contextlib.suppress(Exception):
            self._save()
        self._set(state="failed", error=message, message="failed; results so far are kept in the journal")

    def _set(self, **changes: Any) -> None:
        if "reconnecting" in changes:
            self._reconnecting = bool(changes["reconnecting"])
        with self._mail:
            snapshot = self._snapshot(**changes)
        self._post(snapshot)

    def _snapshot(self, **changes: Any) -> JobStatus:
        m = self.manifest
        batches = self._batches()
        counts: dict[str, int] = {}
        for b in batches:
            for key, value in (b.get("counts") or {}).items():
                if key != "processing":
                    counts[key] = counts.get(key, 0) + int(value)
        live = [b for b in batches if b["state"] in ("in_progress", "canceling")]
        expiries = [e for e in (epoch(b.get("expires_at")) for b in live) if e]
        estimate = m.get("estimate") or {}
        base = JobStatus(
            job_id=self.id,
            state=m["state"],
            model=m["params"]["model"],
            out=m["out"],
            simulated=bool(m.get("simulated")),
            n_rows=m["n_rows"],
            n_requests=m["n_requests"],
            n_skipped=m["n_skipped"],
            n_deduplicated=m["n_deduplicated"],
            batches_total=sum(1 for b in batches if b["state"] != "dropped"),
            batches_submitted=sum(1 for b in batches if b.get("batch_id")),
            batches_ended=sum(1 for b in batches if b["state"] == "ended"),
            attempt=max((b["attempt"] for b in batches), default=1),
            counts=counts,
            started_at=epoch(m.get("started_at")),
            finished_at=epoch(m.get("finished_at")),
            expires_at=min(expiries) if expiries else None,
            estimated_cost=estimate.get("batch_cost"),
            estimated_cost_upper=estimate.get("batch_cost_upper"),
            actual_cost=m.get("actual_cost"),
            reconnecting=self._reconnecting if hasattr(self, "_reconnecting") else False,
            error=m.get("error"),
            columns=tuple(m.get("columns") or ()),
            row_counts=dict(m.get("row_counts") or {}),
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


def _is_transient(exc: BaseException) -> bool:
    import anthropic

    if isinstance(exc, (anthropic.APIConnectionError, anthropic.APITimeoutError, ConnectionError, TimeoutError)):
        return True
    if is_network_error(exc):  # e.g. a results stream cut mid-body, below the SDK
        return True
    status = getattr(exc, "status_code", None)
    return status in TRANSIENT_STATUS or (isinstance(status, int) and status >= 500)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait, capped so a bad header cannot stall a job."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            with contextlib.suppress(ValueError):
                return min(120.0, max(0.0, float(value) * scale))
    return None


__all__ = ["BatchJob", "JobSettings", "JobStatus"]
