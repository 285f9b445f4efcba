"""Where a job runs and how it is waited for, without a kernel.

A running asyncio loop (``asyncio.run``) stands in for a kernel's: the job
started there is driven on its own thread, its observers and its merge come
back to the loop's thread, and a blocking ``wait()`` from a coroutine
delivers them itself without re-entering the loop. The kernel tests
(test_kernel_e2e.py, test_run_all.py) check the same in real kernels.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import threading
import time
from typing import Any

import pandas as pd
import pytest

from _jobs import submit as submit_job
from batch_magic.errors import APIError
from batch_magic.journal import Journal
from batch_magic.simulator import Simulator
from batch_magic.states import DisplayState
from batch_magic.status import FINAL_STATES, JobStatus

ROWS = pd.DataFrame({"text": ["a", "b", "c"]})


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    """Batches that take 0.3 s, long enough to be seen running."""
    simulator.configure(processing_time=0.3, cancel_delay=1.0)
    return simulator


def submit(df: pd.DataFrame, sim: Simulator, journal: Journal, **options: Any) -> Any:
    return submit_job(df, "Echo {{ text }}", sim, journal, **{"max_tokens": 20, **options})


class Recorder:
    """An observer that notes each snapshot and the thread it came on."""

    def __init__(self) -> None:
        self.seen: list[JobStatus] = []
        self.threads: set[int] = set()

    def __call__(self, status: JobStatus) -> None:
        self.seen.append(status)
        self.threads.add(threading.get_ident())

    def repeats(self) -> int:
        return sum(a == b for a, b in itertools.pairwise(self.seen))

    def finals(self) -> list[str]:
        return [s.state for s in self.seen if s.done]

    def states(self) -> list[str]:
        return [s.state for s in self.seen]


def never_regresses(states: list[str]) -> bool:
    """The delivery may skip a snapshot (the latest wins) but never goes back: planned,
    then the running steps, then one final state, last."""
    rank = [0 if s == DisplayState.PLANNED else 2 if s in FINAL_STATES else 1 for s in states]
    return rank == sorted(rank) and rank.count(2) <= 1


def test_blocking_wait_inside_a_running_loop_delivers_on_the_loop_thread(sim: Simulator, journal: Journal) -> None:
    df = ROWS.copy()

    async def main() -> tuple[Recorder, int, int]:
        home = threading.get_ident()
        job = submit(df, sim, journal, start=False)
        rec = Recorder()
        job.observe(rec)
        job.wait(30)  # blocks this coroutine (and the loop); must not re-enter the loop
        return rec, home, job._driver.thread.ident

    rec, home, driver = asyncio.run(main())
    assert rec.threads == {home} and driver != home
    assert rec.repeats() == 0 and rec.finals() == ["done"] and never_regresses(rec.states())
    assert rec.seen[0].state == "planned"
    assert (df["answer_status"] == "succeeded").all()


def test_between_awaits_the_loop_delivers(sim: Simulator, journal: Journal) -> None:
    df = ROWS.copy()

    async def main() -> tuple[Recorder, int, bool]:
        home = threading.get_ident()
        job = submit(df, sim, journal)
        rec = Recorder()
        job.observe(rec)
        merged_before_done = "answer" in df.columns
        while not job.done:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        return rec, home, merged_before_done

    rec, home, early = asyncio.run(main())
    assert not early
    assert rec.threads == {home}
    assert rec.repeats() == 0 and rec.finals() == ["done"] and never_regresses(rec.states())
    assert rec.seen[-1].state == "done" and rec.seen[-1].row_counts == {"succeeded": 3}


def test_observe_print_prints_each_snapshot_once(sim: Simulator, journal: Journal, capsys: Any) -> None:
    job = submit(ROWS.copy(), sim, journal, start=False)
    job.observe(print)
    job.wait(30)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 3
    assert all(a != b for a, b in itertools.pairwise(lines))
    assert [line for line in lines if f"{job.id}: done ·" in line] == lines[-1:]


def test_cancel_of_an_unstarted_job_inside_a_running_loop(sim: Simulator, journal: Journal) -> None:
    df = ROWS.copy()

    async def main() -> str:
        job = submit(df, sim, journal, out="x", start=False)
        job.cancel()  # starts the driver, which cancels first
        job.wait(30)
        return job.status.state

    assert asyncio.run(main()) == "canceled"
    assert df["x_status"].tolist() == ["canceled"] * 3
    assert sim.batch_ids() == []


def test_wait_raises_our_error_as_raised(sim: Simulator, journal: Journal) -> None:
    sim.add_fault("create", 400, times=1, message="refused for this test")
    job = submit(ROWS.copy(), sim, journal)
    with pytest.raises(APIError, match=r"^Creating a batch was refused: .*refused for this test"):
        job.wait(30)
    assert job.status.state == "failed"


def test_wait_raises_a_foreign_error_as_itself(sim: Simulator, journal: Journal) -> None:
    job = submit(ROWS.copy(), sim, journal, start=False)
    shutil.rmtree(journal.job_dir(job.id))
    with pytest.raises(FileNotFoundError):
        job.wait(30)
    assert job.done and job.status.state == "failed" and "FileNotFoundError" in (job.status.error or "")


def test_a_timed_out_wait_leaves_the_job_going(sim: Simulator, journal: Journal) -> None:
    sim.configure(processing_time=1.5)
    df = ROWS.copy()

    async def main() -> tuple[float, bool, str]:
        job = submit(df, sim, journal)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"has not ended within 0\.3 s; it goes on"):
            job.wait(0.3)
        took = time.monotonic() - started
        again = job.wait(30)
        return took, again is df, job.status.state

    took, same, state = asyncio.run(main())
    assert took < 1.0 and same and state == "done"


def test_while_waiting_ticks_during_a_blocking_wait(sim: Simulator, journal: Journal) -> None:
    sim.configure(processing_time=2.5)

    async def main() -> tuple[int, set[int], int]:
        job = submit(ROWS.copy(), sim, journal)
        ticks: list[int] = []
        job.while_waiting(lambda: ticks.append(threading.get_ident()))
        job.wait(30)
        return len(ticks), set(ticks), threading.get_ident()

    count, threads, home = asyncio.run(main())
    assert count >= 2 and threads == {home}


def test_an_observer_may_act_on_the_job_when_first_called(sim: Simulator, journal: Journal) -> None:
    """observe() calls back at once; a callback that cancels must not deadlock."""
    df = ROWS.copy()

    async def main() -> tuple[list[str], str]:
        job = submit(df, sim, journal, out="x", start=False)
        states: list[str] = []

        def cancel_at_once(status: JobStatus) -> None:
            states.append(status.state)
            if status.state == "planned":
                job.cancel()

        job.observe(cancel_at_once)
        job.wait(30)
        return states, job.status.state

    states, final = asyncio.run(main())
    # What the design guarantees: the first (given at once), the last, and the order;
    # a snapshot in between ("canceling") may be overtaken before it is delivered.
    assert final == "canceled" and states[0] == "planned" and states[-1] == "canceled"
    assert never_regresses(states)
    assert df["x_status"].tolist() == ["canceled"] * 3
