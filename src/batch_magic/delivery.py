"""A job's snapshots and its home calls, delivered on the job's *home* thread.

The home is the thread (and its running event loop) that started the job: a
notebook's kernel. What users see happens there: observers are called there
(the panel's widgets; ipykernel 7 drops comm traffic from other threads) and
the results are merged into the DataFrame there, between cells or during a
blocking wait, never under a running cell's feet. Without a running loop (a
script, terminal IPython) there is no home to wait for: the driver's thread
delivers and merges itself.

The mailbox holds the latest snapshot only (latest wins): a delivery gives
observers the newest one, once; a snapshot overtaken before a delivery ran is
never shown. What is guaranteed: snapshots come in the order they were posted,
none twice, and the last one (the job settled) always.
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

from .status import JobStatus

#: How often a blocking wait runs the while_waiting callbacks (the panel's clock), seconds.
WAIT_TICK_SECONDS = 1.0
#: How often the driver checks that the home loop still runs while it waits on it, seconds.
HOME_CHECK_SECONDS = 0.5

log = logging.getLogger("batch_magic")


class Delivery:
    """The mailbox of one job: the driver posts, the home thread delivers."""

    def __init__(self, job_id: str, first: JobStatus) -> None:
        self.job_id = job_id
        # Home: the loop and thread that started the job (None: no running loop there).
        self._home_loop: asyncio.AbstractEventLoop | None = None
        self._home_thread: int | None = None
        self._home_context: contextvars.Context | None = None
        self._mail = threading.Condition()  # notified on every post and home call
        self._status = first
        self._posted = 0  # sequence number of self._status
        self._seen = 0  # the latest sequence number a delivery looked at
        self._delivered: JobStatus | None = None
        self._settled = False  # the driver has finished: a final state may be shown
        self._flush_scheduled = False  # a delivery is queued on the home loop
        self._home_calls: list[_HomeCall] = []
        self._deliver_lock = threading.Lock()  # one delivery at a time, in order
        self._delivering: int | None = None  # the thread delivering now (re-entry check)
        #: Set once the driver settled and observers were given the end.
        self.complete = threading.Event()
        self._observers: list[_Observer] = []
        self._waiting_hooks: list[Callable[[], None]] = []

    # -- the home ----------------------------------------------------------------------------
    def bind_home(self) -> None:
        """Make the calling thread the home, if it runs an event loop (call once, at start)."""
        try:
            home: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            home = None
        if home is not None:
            self._home_loop = home
            self._home_thread = threading.get_ident()
            self._home_context = contextvars.copy_context()

    def is_home(self) -> bool:
        return self._home_thread is not None and threading.get_ident() == self._home_thread

    def home_live(self) -> bool:
        """Is there a home loop that will run our callbacks?"""
        loop = self._home_loop
        return loop is not None and loop.is_running() and not loop.is_closed()

    # -- the driver's side ---------------------------------------------------------------------
    @property
    def latest(self) -> JobStatus:
        with self._mail:
            return self._status

    @property
    def settled(self) -> bool:
        return self._settled

    def post(self, snapshot: JobStatus, *, settled: bool = False) -> None:
        """The new latest snapshot: delivered here, or on the home thread soon.
        ``settled``: the driver has finished; this is the job's last snapshot."""
        with self._mail:
            self._status = snapshot
            self._posted += 1
            if settled:
                self._settled = True
            self._mail.notify_all()
        self.deliver_soon()

    async def on_home(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the home thread (here when there is no live home) and await it."""
        if not self.home_live() or self.is_home():
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
            if not waiter.done() and not self.home_live():
                call.run()  # the home loop is gone: run it here (once: calls are claimed)
        waiter.result()

    async def until_delivered(self) -> None:
        """Stay until the home has given observers the end (or is gone: then give it here)."""
        while not self.complete.is_set():
            if not self.home_live():
                self.flush()
                return
            await asyncio.to_thread(self.complete.wait, HOME_CHECK_SECONDS)

    # -- the observers' side --------------------------------------------------------------------
    def observe(self, callback: Callable[[JobStatus], None]) -> Callable[[], None]:
        """Call ``callback(status)`` now and on every change; returns an unsubscribe.
        (Not now if the latest is a final state the driver has not settled yet.)"""
        observer = _Observer(callback)
        me = threading.get_ident()
        if self._delivering == me:  # from an observer: already in order
            self._add_observer(observer)
        else:
            with self._deliver_lock:
                self._delivering = me  # what the callback causes is delivered below
                try:
                    self._add_observer(observer)
                finally:
                    self._delivering = None
            self.deliver_soon()

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._observers.remove(observer)

        return unsubscribe

    def _add_observer(self, observer: _Observer) -> None:
        self._observers.append(observer)
        with self._mail:
            status: JobStatus | None = self._status
            if status is not None and not self._deliverable(status):
                # The end is shown once the merge is done (or failed): until then what was
                # delivered last, or nothing (a job ended in the journal, not merged yet).
                status = self._delivered
        if status is not None:
            observer.give(status, self.job_id)

    def while_waiting(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` about once a second while a blocking wait holds the home."""
        self._waiting_hooks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._waiting_hooks.remove(callback)

        return unsubscribe

    def _deliverable(self, status: JobStatus) -> bool:
        # A final state is shown once the driver has settled (the merge is done).
        return self._settled or not status.done

    def deliver_soon(self) -> None:
        if self.is_home() or not self.home_live():
            self.flush()
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
            self.flush()

    def _flush_on_home(self) -> None:
        with self._mail:
            self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Run waiting home calls, then give observers the latest snapshot (once)."""
        me = threading.get_ident()
        if self._delivering == me:
            return  # re-entered from an observer or a home call: the outer flush goes on
        with self._deliver_lock:
            self._delivering = me
            try:
                while True:
                    call = self._next_home_call() if self.is_home() else None
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
            self._seen = self._posted
            if not self._deliverable(status):
                return None  # held until the driver settles (it posts again)
            self._delivered = status
            return status

    def _give(self, snapshot: JobStatus) -> None:
        interrupted: BaseException | None = None
        for observer in list(self._observers):
            try:
                observer.give(snapshot, self.job_id)
            except BaseException as exc:  # Interrupt in a callback: give the others, then raise
                interrupted = exc
        if self._settled:
            self.complete.set()
            with self._mail:
                self._mail.notify_all()
        if interrupted is not None:
            raise interrupted

    def pump(self, deadline: float | None) -> None:
        """Wait on the home thread: deliver snapshots and run home calls as they come."""
        next_tick = time.monotonic() + WAIT_TICK_SECONDS
        while True:
            self.flush()
            if self.complete.is_set():
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            if now >= next_tick:
                for hook in list(self._waiting_hooks):
                    try:
                        hook()
                    except Exception:
                        log.exception("a while_waiting callback of job %s failed", self.job_id)
                next_tick = now + WAIT_TICK_SECONDS
            until = next_tick if deadline is None else min(next_tick, deadline)
            with self._mail:
                if self._seen == self._posted and not self._home_calls:
                    self._mail.wait(max(0.0, until - now))


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
