"""Random schedules of HTTP faults, abandoned drivers and re-runs against the
simulator (on a fake clock), checking the job record after every step: no row
lost, no request answered in two batches, no batch on the server the journal
does not know of, the record's states agreeing with its batches; and at the end
every row answered, in its own row.

A driver whose wait is given up (a cell interrupted, a timeout) goes on in the
background: the next run of the same job follows it through the journal, or
takes over once it stops. (Drivers killed outright, SIGKILL, are in
test_crash_recovery.py and test_fault_matrix.py.)"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import batch_magic as bm
from _jobs import fast
from batch_magic.errors import BatchMagicError
from batch_magic.journal import Journal
from batch_magic.record import BatchState, JobState
from batch_magic.simulator import Simulator

pytestmark = pytest.mark.slow

QUICK = fast(poll_min=0.02, poll_max=0.05, backoff_min=0.01, backoff_max=0.05, create_grace=0.3, max_attempts=3)
TEXTS = [f"ticket {i % 9}" for i in range(14)] + [None]


class JobUnderFaults(RuleBasedStateMachine):
    sim: Simulator

    def __init__(self) -> None:
        super().__init__()
        self.sim.reset()
        self.sim.configure(processing_time=60.0, cancel_delay=0.0)
        self.clock = self.sim.use_fake_clock()
        self.tmp = Path(tempfile.mkdtemp())
        self.journal = Journal(self.tmp)
        self.df = pd.DataFrame({"text": TEXTS})
        job = bm.submit(
            self.df, "Answer: {{ text }}", out="a", max_tokens=20, chunk_size=4,
            client=self.client(), journal=self.journal, settings=QUICK, start=False,
        )
        self.job_id = job.id
        self.runs = 0

    def client(self):
        return self.sim.client(max_retries=0, timeout=5)

    # -- what happens to the job -------------------------------------------------------------
    @rule(
        endpoint=st.sampled_from(["create", "retrieve", "list", "results", "cancel"]),
        status=st.sampled_from([401, 429, 500, 503, 529]),
        times=st.integers(1, 3),
    )
    def http_fault(self, endpoint, status, times):
        self.sim.add_fault(endpoint, status, times=times)

    @rule()
    def requests_error_on_the_server(self):
        self.sim.configure(error_rates={"overloaded_error": 0.3})

    @rule()
    def requests_succeed_again(self):
        self.sim.configure(error_rates={})

    @rule(seconds=st.sampled_from([5.0, 61.0, 200.0]))
    def time_passes_on_the_server(self, seconds):
        self.clock.advance(seconds)

    @rule(run_for=st.sampled_from([0.03, 0.15, 0.4]), how=st.sampled_from(["rerun", "attach"]))
    def drive_then_kill(self, run_for, how):
        """A driver is waited for a while, then left (it goes on in the background)."""
        self.runs += 1
        if how == "rerun":
            job = bm.submit(
                self.df, "Answer: {{ text }}", out="a", max_tokens=20, chunk_size=4,
                client=self.client(), journal=self.journal, settings=QUICK, start=False,
            )
            assert job.id == self.job_id  # the identical cell re-attaches
        else:
            job = bm.attach(self.job_id, self.df, client=self.client(), journal=self.journal,
                            settings=QUICK, start=False)
        try:
            job.wait(run_for)
        except (TimeoutError, BatchMagicError):
            pass

    # -- what must always hold ----------------------------------------------------------------
    @invariant()
    def the_record_agrees_with_its_batches(self):
        record = self.journal.read_record(self.job_id)
        first = sorted(k for b in record.batches if b.attempt == 1 for k in b.request_numbers().tolist())
        assert first == list(range(record.n_requests))  # no request (so no row) lost
        ids = [b.batch_id for b in record.batches if b.batch_id]
        assert len(ids) == len(set(ids))
        for b in record.batches:
            if b.batch_id:
                assert b.state in (BatchState.IN_PROGRESS, BatchState.CANCELING, BatchState.ENDED)
            else:
                assert b.state in (BatchState.PENDING, BatchState.SUBMITTING)
            if b.state is BatchState.ENDED:
                assert self.journal.results_path(self.job_id, b.batch_id).is_file()
        if record.ended:
            assert not [b for b in record.batches if b.live]
        if record.state is JobState.PLANNED:
            assert not ids
        # Every batch the server has is this job's recorded one, or one whose create's
        # answer was lost (still being looked for): none is paid for unknown.
        known = record.batch_ids
        unknown = [b for b in self.sim.batch_ids() if b not in known]
        assert len(unknown) <= len(record.batches_in(BatchState.SUBMITTING)), unknown

    def teardown(self):
        try:
            self.sim.clear_faults()
            self.sim.configure(error_rates={})
            df = self.df.copy()
            errors = []
            for _ in range(60):
                self.clock.advance(120.0)
                # A driver left running takes this frame (a Retarget), whenever it merges.
                job = bm.attach(self.job_id, df, client=self.client(), journal=self.journal,
                                settings=QUICK, start=False)
                try:
                    assert job.wait(1.0) is df
                    break
                except (TimeoutError, BatchMagicError) as exc:
                    errors.append(exc)
            else:
                pytest.fail(f"the job was not merged in 60 rounds; the last errors: {errors[-3:]}")
            record = self.journal.read_record(self.job_id)
            assert record.state is JobState.DONE, record.state
            assert "a_status" in df.columns, "wait() returned, but the frame it was attached to was not filled"
            sent = df["text"].notna()
            assert set(df.loc[sent, "a_status"]) <= {"succeeded", "errored"}
            ok = df["a_status"] == "succeeded"
            assert all(t.split()[-1] in a for t, a in zip(df.loc[ok, "text"], df.loc[ok, "a"]))
            assert (df.loc[~sent, "a_status"] == "skipped").all()
            # No request was answered in two batches on the server.
            answered: dict[str, int] = {}
            sdk = self.client()
            for batch_id in self.sim.batch_ids():
                if sdk.messages.batches.retrieve(batch_id).processing_status != "ended":
                    continue
                for item in sdk.messages.batches.results(batch_id):
                    if item.result.type == "succeeded":
                        answered[item.custom_id] = answered.get(item.custom_id, 0) + 1
            assert answered and max(answered.values()) == 1, answered
        finally:
            self.sim.clear_faults()
            shutil.rmtree(self.tmp, ignore_errors=True)


def test_the_schedule_that_once_left_the_frame_unmerged(simulator_server):
    """Found on a clean clone: the frame attached last never got its columns. A driver
    left running (the re-run, following the one that drove) could be merging into the
    earlier frame just as the teardown attached a new one: ``attach`` set the running
    job's ``df`` after its merge had read it, and ``wait()`` returned the earlier frame.
    The new frame now goes to the driver as a command, merged into even when it comes
    after the merge."""
    JobUnderFaults.sim = simulator_server  # reset and set up by the machine
    machine = JobUnderFaults()
    steps = [
        lambda: machine.http_fault("create", 429, 1),
        lambda: machine.drive_then_kill(0.4, "attach"),
        lambda: machine.drive_then_kill(0.4, "rerun"),
        lambda: machine.http_fault("results", 503, 2),
        lambda: machine.http_fault("retrieve", 529, 1),
        machine.requests_error_on_the_server,
        lambda: machine.time_passes_on_the_server(61.0),
        lambda: machine.http_fault("retrieve", 429, 3),
    ]
    machine.the_record_agrees_with_its_batches()
    for step in steps:
        step()
        machine.the_record_agrees_with_its_batches()
    machine.teardown()


def test_random_schedules_of_faults_kills_and_reruns(simulator_server):
    JobUnderFaults.sim = simulator_server  # reset and set up by each schedule
    # The "ci" profile (tests/conftest.py) runs the same 12 schedules every time;
    # HYPOTHESIS_PROFILE=explore draws ten times as many new ones.
    run = settings(
        max_examples=12 if settings.default.derandomize else 120, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )(JobUnderFaults).TestCase
    run("runTest").runTest()
