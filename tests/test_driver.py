"""Failures reach the user as what they were: one case per way a failure used to pass
unseen, each met through the simulator's faults.

Whatever stops a job (a step, its merge, a retry's write-back, a cancel the API
refused) must reach ``wait()`` as raised, and the last snapshot (what the panel
and the status line show) as "failed" with its message, never as "done" or
"canceled"; and a Cancel must reach the driver however it is asked and wake any
wait it is in.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

import batch_magic as bm
from batch_magic.errors import APIError, BatchMagicError, JournalError
from batch_magic.index_codec import INDEX_META
from batch_magic.job import BatchJob, JobSettings
from batch_magic.journal import Journal
from batch_magic.record import BatchState, JobState, now_iso
from batch_magic.retry import retry_failed
from batch_magic.simulator import Simulator
from batch_magic.states import DisplayState
from batch_magic.status import JobStatus

FAST = JobSettings(poll_min=0.05, poll_max=0.2, backoff_min=0.05, backoff_max=0.2, create_grace=1.0)


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"ticket {i}" for i in range(n)]})


def submit(df: pd.DataFrame, sim: Simulator, journal: Journal, **kwargs: Any) -> BatchJob:
    kwargs.setdefault("settings", FAST)
    kwargs.setdefault("max_tokens", 20)
    kwargs.setdefault("client", sim.client(max_retries=0))
    kwargs.setdefault("out", "x")
    return bm.submit(df, "Q: {{ text }}", journal=journal, **kwargs)


def until_sent(journal: Journal, job_id: str, n: int = 1) -> None:
    """Until the job's first ``n`` batches are created (their ids recorded)."""
    while sum(1 for b in journal.read_record(job_id).batches if b.batch_id) < n:
        time.sleep(0.02)


def statuses(sim: Simulator, endpoint: str) -> list[int]:
    return [r.status for r in sim.requests if r.endpoint == endpoint]


def shows_failure(status: JobStatus, text: str) -> None:
    """What the panel and the status line read: failed, the error, no new columns."""
    assert status.state is DisplayState.FAILED and status.outcome == "danger"
    assert text in (status.error or ""), status.error
    assert status.columns == () and f"error: {status.error}" in str(status)


# -- errors at one boundary ---------------------------------------------------------------------
def test_a_retry_whose_write_back_fails_fails_its_wait(simulator: Simulator, journal: Journal) -> None:
    simulator.configure(error_rates={"overloaded_error": 1.0})
    df = frame(4)
    first = submit(df, simulator, journal, settings=JobSettings(**{**FAST.__dict__, "max_attempts": 1}))
    first.wait(30)
    assert (df["x_status"] == "errored").all()
    simulator.configure(error_rates={})
    retry = retry_failed(first.id, df, client=simulator.client(max_retries=0), journal=journal,
                         settings=FAST, start=False)
    df["x"] = df["x"].astype("category")  # as a user may, to save memory: no new answer fits in
    with pytest.raises(BatchMagicError, match="not written back into the DataFrame"):
        retry.wait(30)
    shows_failure(retry.status, "not written back")
    # The retry's own answers are kept: its job ended, only the write-back failed.
    assert journal.read_record(retry.id).state is JobState.DONE


def test_a_cancel_the_api_refuses_is_a_failure_not_canceled(simulator: Simulator, journal: Journal) -> None:
    simulator.configure(processing_time=30.0)
    simulator.add_fault("cancel", 403, message="this key may not cancel")
    df = frame(3)
    job = submit(df, simulator, journal)
    until_sent(journal, job.id)
    job.cancel()
    with pytest.raises(APIError, match=r"^Canceling batch msgbatch_\w+ was refused: 403 .*may not cancel"):
        job.wait(30)
    shows_failure(job.status, "goes on running")
    record = journal.read_record(job.id)
    assert record.state is JobState.FAILED and record.cancel_requested_at is not None
    assert record.batches[0].state is BatchState.IN_PROGRESS  # it runs on: recorded as it is
    # With a key that may cancel, attaching resumes the cancel.
    simulator.clear_faults()
    again = bm.attach(job.id, df, client=simulator.client(max_retries=0), journal=journal, settings=FAST)
    again.wait(30)
    assert again.status.state is DisplayState.CANCELED and (df["x_status"] == "canceled").all()


def test_a_failed_listing_while_canceling_keeps_looking_for_the_orphan(simulator: Simulator, journal: Journal) -> None:
    """A create whose answer was lost may have made a batch: canceling must find it (and
    cancel it), not drop it unlisted because the list could not be read at first."""
    simulator.configure(processing_time=30.0)
    df = frame(3)
    job = submit(df, simulator, journal, start=False)
    record = journal.read_record(job.id)  # as a driver that died right after its create left it
    record.batches[0].move_to(BatchState.SUBMITTING)
    record.batches[0].intent_at = now_iso()
    journal.write_record(record)
    orphan = simulator.client().messages.batches.create(requests=[
        {"custom_id": f"{record.id_tag}r{k}", "params": {"model": "claude-haiku-4-5", "max_tokens": 20,
                                                         "messages": [{"role": "user", "content": f"Q: ticket {k}"}]}}
        for k in range(3)
    ])
    simulator.add_fault("list", 503, times=2)
    resumed = bm.attach(job.id, df, client=simulator.client(max_retries=0), journal=journal, settings=FAST,
                        start=False)
    resumed.cancel()
    resumed.wait(30)
    assert statuses(simulator, "list")[:3] == [503, 503, 200]
    entry = journal.read_record(job.id).batches[0]
    assert entry.batch_id == orphan.id and entry.adopted
    assert simulator.batch(orphan.id)["cancel_initiated_at"] is not None  # found, and canceled
    assert resumed.status.state is DisplayState.CANCELED and simulator.batch_ids() == [orphan.id]


def test_a_refused_listing_while_canceling_is_raised(simulator: Simulator, journal: Journal) -> None:
    df = frame(3)
    job = submit(df, simulator, journal, start=False)
    record = journal.read_record(job.id)
    record.batches[0].move_to(BatchState.SUBMITTING)
    record.batches[0].intent_at = now_iso()
    journal.write_record(record)
    simulator.add_fault("list", 403)
    resumed = bm.attach(job.id, df, client=simulator.client(max_retries=0), journal=journal, settings=FAST,
                        start=False)
    resumed.cancel()
    with pytest.raises(APIError, match=r"^Listing batches .* failed: 403"):
        resumed.wait(30)
    shows_failure(resumed.status, "Listing batches")
    assert journal.read_record(job.id).batches[0].state is BatchState.SUBMITTING  # not dropped unlooked


def test_a_cancel_asked_of_a_follower_reaches_the_driver(simulator: Simulator, journal: Journal) -> None:
    """Two objects of one job (two kernels, say): the one that follows passes the cancel on,
    so the one that drives drops what it has not sent yet."""
    simulator.configure(processing_time=30.0)
    df = frame(9)
    driving = submit(df, simulator, journal, chunk_size=3,
                     settings=JobSettings(**{**FAST.__dict__, "max_in_flight": 1}))
    until_sent(journal, driving.id)
    other = frame(9)
    follower = BatchJob(journal, driving.id, simulator.client(max_retries=0), df=other, settings=FAST).start()
    follower.cancel()
    follower.wait(30)
    driving.wait(30)
    record = journal.read_record(driving.id)
    assert record.state is JobState.CANCELED
    assert [b.state for b in record.batches] == [BatchState.ENDED, BatchState.DROPPED, BatchState.DROPPED]
    assert len(simulator.batch_ids()) == 1
    assert follower.status.state is DisplayState.CANCELED and (other["x_status"] == "canceled").all()


def test_cancel_wakes_the_create_backoff(simulator: Simulator, journal: Journal) -> None:
    # The server asks for a minute; the cancel must not wait for it.
    simulator.add_fault("create", 429, retry_after=60.0)
    df = frame(3)
    job = submit(df, simulator, journal)
    while not statuses(simulator, "create"):
        time.sleep(0.02)
    job.cancel()
    job.wait(30)  # well under the 60 s asked: the backoff was cut short
    assert job.status.state is DisplayState.CANCELED and statuses(simulator, "create") == [429]
    assert simulator.batch_ids() == [] and (df["x_status"] == "canceled").all()


def test_cancel_wakes_the_download_backoff(simulator: Simulator, journal: Journal) -> None:
    simulator.add_fault("results", 503, times=1, retry_after=60.0)
    df = frame(3)
    job = submit(df, simulator, journal)
    while not statuses(simulator, "results"):
        time.sleep(0.02)
    job.cancel()
    job.wait(30)  # well under the 60 s asked: the download went on at once
    assert statuses(simulator, "results") == [503, 200]
    assert (df["x_status"] == "succeeded").all()  # the batch had ended: its answers are kept


# -- a failed merge is shown as a failure ------------------------------------------------------
def test_an_unreadable_index_shows_the_merge_error_never_done(simulator: Simulator, journal: Journal) -> None:
    df = frame(3)
    submit(df, simulator, journal).wait(30)
    job_id = journal.job_ids()[0]
    journal.job_file(job_id, INDEX_META).write_bytes(b"{not json")
    again = frame(3)
    seen: list[JobStatus] = []
    # As `%batch attach JOB df` (no --wait): the panel observes, then the job starts.
    job = bm.attach(job_id, again, journal=journal, start=False)
    job.observe(seen.append)
    job.start()
    assert job.done
    shows_failure(job.status, "index.json")
    states = [s.state for s in seen]
    assert states[-1] is DisplayState.FAILED and DisplayState.DONE not in states  # never "done"
    assert "x_status" not in again.columns
    with pytest.raises(JournalError, match=r"index\.json.*unreadable"):
        job.wait(5)
    with pytest.raises(BatchMagicError, match="failed"):
        job.result()
    assert journal.read_record(job_id).state is JobState.DONE  # the job itself stays done


def test_a_refused_merge_after_a_run_fails_the_wait(simulator: Simulator, journal: Journal) -> None:
    df = frame(3)
    job = submit(df, simulator, journal, start=False)
    journal.job_file(job.id, INDEX_META).write_bytes(b"{not json")
    with pytest.raises(JournalError, match="unreadable"):
        job.wait(30)
    shows_failure(job.status, "unreadable")
    assert journal.read_record(job.id).state is JobState.DONE


# -- attaching another DataFrame to a job that is about to end ------------------------------------
def test_attaching_a_new_frame_to_a_job_as_it_merges_fills_that_frame(simulator: Simulator, journal: Journal) -> None:
    """The DataFrame given last is the one filled, whenever it comes: before the merge, or
    after it (then merged into it too), never a wait() that returns another frame."""
    df = frame(3)
    job = submit(df, simulator, journal)
    job.wait(30)
    later = frame(3)
    job.df = later  # the driver has stopped: merged here, now
    assert (later["x_status"] == "succeeded").all() and job.df is later
    running = submit(frame(3), simulator, journal, out="y", start=False)
    target = frame(3)
    running.start()
    running.df = target
    assert running.wait(30) is target and (target["y_status"] == "succeeded").all()


# -- the estimate is a typed record, stored under the same keys ------------------------------
def test_the_estimate_is_read_back_typed_under_the_same_keys(simulator: Simulator, journal: Journal) -> None:
    import dataclasses

    import orjson

    from batch_magic.pricing import Estimate

    prepared = bm.prepare(frame(3), "Q: {{ text }}", max_tokens=20)
    job = submit(frame(3), simulator, journal, start=False)
    estimate = journal.read_record(job.id).estimate
    assert isinstance(estimate, Estimate) and estimate == prepared.estimate
    stored = orjson.loads(journal.job_file(job.id, "manifest.json").read_bytes())["estimate"]
    assert stored == dataclasses.asdict(prepared.estimate)  # the keys (and values) as before
    assert job.status.estimated_cost == estimate.batch_cost and job.status.prices == estimate.prices_taken


def test_attach_in_a_cell_shows_the_merge_error_in_the_status_lines(
    ip_sim: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`%batch attach JOB df` (no --wait) over an unreadable index: the lines say failed and
    why, never "done" or new columns, and `%batch wait` raises the merge's own error."""
    df = frame(3)
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df --out x --wait --max-tokens 20\nQ: {{ text }}")
    journal = Journal(os.environ["BATCH_MAGIC_DIR"])
    job_id = journal.job_ids()[0]
    journal.job_file(job_id, INDEX_META).write_bytes(b"{not json")
    capsys.readouterr()
    ip_sim.user_ns["again"] = frame(3)
    ip_sim.run_cell(f"%batch attach {job_id} again")
    out = capsys.readouterr().out
    assert f"batch {job_id}: failed" in out and "index.json" in out and "unreadable" in out
    assert ": done" not in out and "new columns" not in out
    assert "x_status" not in ip_sim.user_ns["again"].columns
    with pytest.raises(UsageError, match=r"index\.json.*unreadable"):  # the magic's way to say it
        ip_sim.run_cell(f"%batch wait {job_id}")


def test_cancel_of_a_job_that_failed_says_how_instead_of_nothing(simulator: Simulator, journal: Journal) -> None:
    simulator.configure(processing_time=30.0)
    df = frame(3)
    job = submit(df, simulator, journal)
    until_sent(journal, job.id)
    simulator.add_fault("retrieve", 401)
    with pytest.raises(APIError, match="401"):
        job.wait(30)
    with pytest.raises(BatchMagicError, match=r"batches may still run\. Attach it again"):
        job.cancel()
    simulator.clear_faults()
    again = bm.attach(job.id, df, client=simulator.client(max_retries=0), journal=journal, settings=FAST)
    again.cancel()
    again.wait(30)
    assert again.status.state is DisplayState.CANCELED
