"""The engine end to end through the official SDK against the simulator over HTTP."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pytest

import batch_magic as bm
from _jobs import FAST, fast
from _jobs import submit as submit_job
from batch_magic import api
from batch_magic.errors import BudgetExceededError, MissingAPIKeyError, TemplateError
from batch_magic.record import SentTo

#: Answers of at most 40 tokens: the simulator stops its model there, as the API would.
submit = partial(submit_job, max_tokens=40)


def messy_frame(n: int) -> pd.DataFrame:
    """Non-unique index, missing values, duplicate texts: what real data looks like."""
    rng = np.random.default_rng(0)
    texts = [f"ticket about order {i % (n * 3 // 4)}" for i in range(n)]
    for pos in rng.choice(n, size=n // 50, replace=False):
        texts[pos] = None
    return pd.DataFrame({"text": texts, "n": range(n)}, index=[i % 97 for i in range(n)])


def test_ten_thousand_rows_every_row_answered_in_its_own_row(sim, journal):
    df = messy_frame(10_000)
    job = submit(df, "Summarise: {{ text }}", sim, journal, out="summary")
    out = job.wait(timeout=120)
    assert out is df  # merged into the same object
    missing = df["text"].isna()
    assert (df.loc[missing, "summary_status"] == "skipped").all()
    assert (df.loc[~missing, "summary_status"] == "succeeded").all()
    # Each answer belongs to its own row: the fake model echoes the prompt's words.
    for i in [0, 1, 5_000, 9_999]:
        if not missing.iloc[i]:
            order = df["text"].iloc[i].split()[-1]
            assert order in df["summary"].iloc[i], (df["text"].iloc[i], df["summary"].iloc[i])
    # Duplicates were sent once.
    sent = sum(sim.batch(b)["request_counts"]["succeeded"] for b in sim.batch_ids())
    assert sent == df.loc[~missing, "text"].nunique() == job.status.n_requests
    assert str(df["summary_input_tokens"].dtype) == "Int64"
    assert job.status.actual_cost and job.status.actual_cost > 0


def test_identical_rerun_reattaches_force_makes_a_new_job_and_fresh_pays_again(sim, journal):
    df = pd.DataFrame({"text": ["a b c", "d e f"]})
    first = submit(df, "{{ text }}", sim, journal)
    first.wait(30)
    again = submit(df.copy(), "{{ text }}", sim, journal)
    assert again.id == first.id and again.done
    assert len(sim.batch_ids()) == 1
    # A new job, whose answers the journal has already: nothing is sent.
    forced = submit(df.copy(), "{{ text }}", sim, journal, force=True)
    forced.wait(30)
    assert forced.id != first.id and len(sim.batch_ids()) == 1 and forced.status.n_reused == 2
    fresh = submit(df.copy(), "{{ text }}", sim, journal, fresh=True)
    fresh.wait(30)
    assert fresh.id not in (first.id, forced.id) and len(sim.batch_ids()) == 2


def test_the_same_cell_over_another_frame_is_another_job_that_pays_nothing_again(sim, journal):
    """The same rows under a plain index are another frame: a job of their own (never the
    MultiIndex frame's, which could not merge into them), whose prompts are all reused."""
    index = pd.MultiIndex.from_arrays([["north", "south"] * 3, [1, 1, 2, 2, 3, 3]], names=["region", "week"])
    raw = pd.DataFrame({"text": [f"ticket {i}" for i in range(6)]}, index=index)
    first = submit(raw, "{{ text }}", sim, journal)
    first.wait(30)
    flat = raw[["text"]].reset_index(drop=True)
    second = submit(flat, "{{ text }}", sim, journal)
    second.wait(30)
    assert second.id != first.id
    assert second.status.n_reused == second.status.n_requests == 6
    assert len(sim.batch_ids()) == 1  # the second job sent no batch
    assert flat["answer"].tolist() == raw["answer"].tolist()
    assert (flat["answer_status"] == "succeeded").all()
    # The same data read again (as after a kernel restart) is the same job.
    again = submit(pd.DataFrame({"text": raw["text"].tolist()}, index=index.copy()), "{{ text }}", sim, journal)
    assert again.id == first.id


def test_the_fingerprint_follows_the_rows_labels_not_their_dtype_spelling():
    opts = bm.JobOptions(max_tokens=40)
    texts = {"text": ["a", "b", "c"]}

    def fingerprint(df: pd.DataFrame) -> str:
        return api._job_fingerprint(api.prepare(df, "{{ text }}", options=opts))

    base = fingerprint(pd.DataFrame(texts))
    assert fingerprint(pd.DataFrame(texts, index=[0, 1, 2])) == base  # a RangeIndex's own labels
    assert fingerprint(pd.DataFrame(texts, index=[0, 1, 3])) != base
    assert fingerprint(pd.DataFrame(texts, index=["x", "y", "z"])) != base
    labelled = fingerprint(pd.DataFrame(texts, index=pd.Index(["x", "y", "z"], name="id")))
    assert labelled == fingerprint(pd.DataFrame(texts, index=pd.Index(["x", "y", "z"], dtype="string")))
    assert fingerprint(pd.DataFrame(texts, index=pd.Index([{"k": 1}, {"k": 2}, {"k": 3}]))) != base


def test_a_polars_frames_keys_are_its_rows_identity():
    pl = pytest.importorskip("polars")
    opts = bm.JobOptions(max_tokens=40, key="id")
    frame = pl.DataFrame({"id": [10, 11, 12], "text": ["a", "b", "c"]})

    def fingerprint(frame: Any, options: bm.JobOptions = opts) -> str:
        return api._job_fingerprint(api.prepare(frame, "{{ text }}", options=options))

    base = fingerprint(frame)
    assert fingerprint(pl.DataFrame({"id": [10, 11, 12], "text": ["a", "b", "c"]})) == base
    assert fingerprint(frame.with_columns(pl.Series("id", [20, 21, 22]))) != base
    unkeyed = fingerprint(frame, bm.JobOptions(max_tokens=40))  # no key: its rows by position
    assert unkeyed != base and fingerprint(frame.drop("id"), bm.JobOptions(max_tokens=40)) == unkeyed


def test_reattach_in_a_new_process_state_without_dataframe(sim, journal):
    df = pd.DataFrame({"text": ["one", "two", "three"]}, index=["x", "y", "z"])
    job = submit(df, "{{ text }}", sim, journal, out="a")
    job.wait(30)
    attached = bm.attach(job.id[:12], journal=journal, client=sim.client())
    cols = attached.wait(10)
    assert list(cols.index) == ["x", "y", "z"]
    assert cols["a_status"].tolist() == ["succeeded"] * 3
    assert bm.jobs(journal)["job_id"].tolist() == [job.id]


def test_faults_on_create_and_retrieve_and_per_request_errors_are_retried(sim, journal):
    sim.add_fault("create", 429, times=2, retry_after=0)
    sim.add_fault("create", 529, times=1)
    sim.add_fault("retrieve", 529, times=2)
    sim.add_fault("retrieve", 500, times=1)
    sim.configure(error_rates={"overloaded_error": 0.05, "invalid_request_error": 0.01}, expire_rate=0.03)
    df = pd.DataFrame({"text": [f"row {i}" for i in range(2_000)]})
    # Enough attempts that a 5% fault rate cannot plausibly outlast them (0.05**6).
    settings = fast(max_attempts=6)
    job = submit(df, "{{ text }}", sim, journal, out="x", settings=settings)
    job.wait(120)
    status = df["x_status"]
    # Everything retriable ended answered; invalid requests are not retried.
    assert set(status.unique()) <= {"succeeded", "errored"}
    errored = df.loc[status == "errored", "x_error"]
    assert len(errored) > 0 and errored.str.startswith("invalid_request_error").all()
    assert job.status.attempt >= 2
    # The fault paths were really taken.
    created = [r for r in sim.requests if r.endpoint == "create"]
    assert [r.status for r in created[:3]] == [429, 429, 529]


def test_cancel_keeps_what_finished_and_marks_the_rest(sim, journal):
    sim.configure(processing_time=600.0, cancel_delay=0.0)
    df = pd.DataFrame({"text": [f"row {i}" for i in range(50)]})
    job = submit(df, "{{ text }}", sim, journal, out="x")
    # Wait for the batch to exist, then cancel it.
    for _ in range(200):
        if job.status.batches_submitted:
            break
        import time

        time.sleep(0.05)
    job.cancel()
    job.wait(30)
    assert job.status.state == "canceled"
    assert set(df["x_status"].unique()) <= {"canceled", "succeeded"}
    assert (df["x_status"] == "canceled").any()


def test_no_key_says_how_to_set_one_and_how_to_simulate(monkeypatch, journal):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(MissingAPIKeyError) as err:
        bm.submit(pd.DataFrame({"t": ["x"]}), "{{ t }}", journal=journal)
    assert "ANTHROPIC_API_KEY" in str(err.value) and "simulator" in str(err.value)
    assert journal.job_ids() == []  # nothing written before the key check


def test_bad_template_fails_before_anything_is_sent(sim, journal):
    with pytest.raises(TemplateError, match="'txt'"):
        submit(pd.DataFrame({"text": ["x"]}), "{{ txt }}", sim, journal)
    assert sim.batch_ids() == [] and journal.job_ids() == []


def test_budget_refuses_before_sending(sim, journal):
    df = pd.DataFrame({"text": ["word " * 200] * 3 + [f"r{i}" for i in range(100)]})
    with pytest.raises(BudgetExceededError) as err:
        submit(df, "{{ text }}", sim, journal, max_tokens=4000, max_cost=0.0001)
    assert "$0.0001" in str(err.value)
    assert sim.batch_ids() == []


def test_orphaned_create_is_adopted_not_paid_twice(sim, journal):
    """A create whose answer was lost (process died) is found on the server."""
    df = pd.DataFrame({"text": ["p", "q", "r"]})
    job = submit(df, "{{ text }}", sim, journal, start=False)
    from batch_magic.record import BatchState, now_iso

    # As a driver that died right after sending the create left the journal.
    record = journal.read_record(job.id)
    record.batches[0].move_to(BatchState.SUBMITTING)
    record.batches[0].intent_at = now_iso()
    journal.write_record(record)
    # The server got the create (same size) but the id was never recorded.
    orphan = sim.client().messages.batches.create(
        requests=[
            {"custom_id": f"{job.record.id_tag}r{k}", "params": {"model": "claude-haiku-4-5", "max_tokens": 40,
                                              "messages": [{"role": "user", "content": t}]}}
            for k, t in enumerate(["p", "q", "r"])
        ]
    )
    resumed = bm.attach(job.id, df, journal=journal, client=sim.client(), settings=FAST)
    resumed.wait(30)
    assert sim.batch_ids() == [orphan.id]
    assert resumed.record.batches[0].batch_id == orphan.id
    assert (df["answer_status"] == "succeeded").all()


def test_changed_dataframe_merges_by_labels(sim, journal):
    df = pd.DataFrame({"text": ["a", "b", "c"]}, index=["k1", "k2", "k3"])
    job = submit(df, "{{ text }}", sim, journal, out="x", start=False)
    later = df.iloc[[2, 1]].copy()
    job.df = later
    job.start()
    job.wait(30)
    assert later.index.tolist() == ["k3", "k2"]
    assert later["x"].str.contains("c").iloc[0]


def test_rerunning_the_cell_while_it_runs_returns_the_same_job(sim, journal):
    sim.configure(processing_time=1.0)
    df = pd.DataFrame({"text": ["a", "b"]})
    first = submit(df, "{{ text }}", sim, journal)
    again = submit(df, "{{ text }}", sim, journal)
    assert again is first
    again.wait(30)
    assert len(sim.batch_ids()) == 1 and (df["answer_status"] == "succeeded").all()


def test_a_job_driven_elsewhere_is_followed_then_taken_over(sim, journal):
    """Another process holds the job's driver lock: attach watches; when that
    process goes away, it takes over and finishes without a second batch."""
    sim.configure(processing_time=0.5)
    df = pd.DataFrame({"text": ["a", "b"]})
    job = submit(df, "{{ text }}", sim, journal, start=False)
    other = journal.try_lock(job.id)  # stands in for a driver in another kernel
    assert other is not None
    follower = bm.attach(job.id, df, journal=journal, client=sim.client(), settings=FAST)
    import time

    time.sleep(0.5)
    assert sim.batch_ids() == [] and not follower.done  # it did not drive
    other.release()  # the other kernel died
    follower.wait(30)
    assert len(sim.batch_ids()) == 1 and (df["answer_status"] == "succeeded").all()


def test_cancel_before_anything_was_sent_marks_rows_canceled(sim, journal):
    df = pd.DataFrame({"text": ["a", "b"]})
    job = submit(df, "{{ text }}", sim, journal, out="x", start=False)
    job.cancel()
    job.wait(30)
    assert job.status.state == "canceled"
    assert df["x_status"].tolist() == ["canceled", "canceled"]
    assert sim.batch_ids() == []


def test_a_new_job_with_the_same_out_replaces_the_old_columns(sim, journal):
    df = pd.DataFrame({"text": ["I love it", "broken"]})
    submit(df, "{{ text }}", sim, journal, out="x", schema={
        "type": "object", "properties": {"mood": {"type": "string"}}, "required": ["mood"],
    }).wait(30)
    assert "x_mood" in df.columns
    submit(df, "{{ text }}", sim, journal, out="x", labels="positive,negative").wait(30)
    assert "x_mood" not in df.columns and str(df["x"].dtype) == "category"
    assert "text" in df.columns


def test_journal_is_private_and_holds_no_key(sim, tmp_path):
    import os
    import stat

    root = tmp_path / "deep" / "journal"
    df = pd.DataFrame({"text": ["a", "b"]})
    client = sim.client(api_key="sk-secret-key-123")
    job = bm.submit(df, "{{ text }}", client=client, journal=root, settings=FAST)
    job.wait(30)
    # Where it was sent is recorded (the base URL), the key never.
    assert job.record.sent_to == SentTo(sim.url, simulator=True, builtin=True)
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
        if path.is_file():
            assert b"sk-secret-key-123" not in path.read_bytes()


def test_an_adopted_batch_that_is_not_ours_is_rejected_and_ours_sent(sim, journal):
    """Same size, same minutes, but other custom_ids: never merged, ours is sent."""
    df = pd.DataFrame({"text": ["p", "q", "r"]})
    job = submit(df, "{{ text }}", sim, journal, start=False)
    from batch_magic.record import BatchState, now_iso

    record = journal.read_record(job.id)
    record.batches[0].move_to(BatchState.SUBMITTING)
    record.batches[0].intent_at = now_iso()
    journal.write_record(record)
    stranger = sim.client().messages.batches.create(
        requests=[
            {"custom_id": f"someone-else-{k}", "params": {"model": "claude-haiku-4-5", "max_tokens": 5,
                                                        "messages": [{"role": "user", "content": "zzz"}]}}
            for k in range(3)
        ]
    )
    resumed = bm.attach(job.id, df, journal=journal, client=sim.client(), settings=FAST)
    resumed.wait(30)
    entry = resumed.record.batches[0]
    assert entry.rejected == [stranger.id] and entry.batch_id != stranger.id
    assert len(sim.batch_ids()) == 2
    assert (df["answer_status"] == "succeeded").all()
    assert all(t in a for t, a in zip(df["text"], df["answer"]))


def test_a_results_download_cut_midway_is_redone_not_half_merged(sim, journal):
    sim.add_fault("results", None, drop_after_lines=3, times=2)
    df = pd.DataFrame({"text": [f"row {i}" for i in range(20)]})
    job = submit(df, "{{ text }}", sim, journal, out="x")
    job.wait(30)
    assert (df["x_status"] == "succeeded").all() and len(sim.batch_ids()) == 1
    downloads = [r for r in sim.requests if r.endpoint == "results"]
    assert len(downloads) == 3


def test_retry_failed_sends_only_failed_rows_and_writes_them_back(sim, journal):
    sim.configure(error_rates={"overloaded_error": 0.3})
    once = fast(max_attempts=1)
    df = pd.DataFrame({"text": [f"row {i}" for i in range(200)]})
    submit(df, "{{ text }}", sim, journal, out="x", settings=once).wait(30)
    failed = df["x_status"] == "errored"
    answered_before = df.loc[~failed, "x"].copy()
    assert failed.sum() > 20
    sim.configure(error_rates={})
    retry = bm.retry_failed("last", df, client=sim.client(), journal=journal, settings=FAST)
    assert retry is not None and retry.status.n_rows == failed.sum()
    retry.wait(30)
    assert (df["x_status"] == "succeeded").all()
    assert df.loc[~failed, "x"].equals(answered_before)  # the others were not touched
    assert all(t in a for t, a in zip(df["text"], df["x"]))


def test_out_never_overwrites_the_users_columns(sim, journal):
    from batch_magic.errors import ConfigError

    df = pd.DataFrame({"text": ["a"], "label": ["x"]})
    with pytest.raises(ConfigError, match=r"'text'.*input of the template"):
        submit(df, "{{ text }}", sim, journal, out="text")
    with pytest.raises(ConfigError, match="'label'"):
        submit(df, "{{ text }}", sim, journal, out="label")
    assert sim.batch_ids() == []
    # Columns our own earlier job wrote may be replaced by a new job.
    submit(df, "{{ text }}", sim, journal, out="answer").wait(30)
    submit(df, "{{ text }}!", sim, journal, out="answer").wait(30)
    assert df["answer_status"].tolist() == ["succeeded"]


def test_polling_backs_off_while_the_api_is_down(sim, journal):
    """Each failed poll in a row waits twice as long as the one before (up to the max),
    so an outage is not hammered; the job ends answered once the API is back."""
    sim.configure(processing_time=0.5)
    sim.add_fault("retrieve", 503, times=5)
    settings = fast(poll_min=0.02, poll_max=0.02, backoff_min=0.1, backoff_max=0.4)
    df = pd.DataFrame({"text": ["a", "b"]})
    submit(df, "{{ text }}", sim, journal, out="x", settings=settings).wait(30)
    assert (df["x_status"] == "succeeded").all()
    polls = [r for r in sim.requests if r.endpoint == "retrieve"]
    failed = [r.time for r in polls if r.status == 503]
    gaps = np.diff([*failed, next(r.time for r in polls if r.status == 200)])
    assert len(gaps) == 5
    # 0.1, 0.2, 0.4, 0.4, 0.4 (each plus the poll interval): it grows, then stays at the cap.
    assert gaps[0] < gaps[1] < gaps[2] and gaps[2] > 2 * gaps[0], gaps
    assert all(0.35 < g < 1.0 for g in gaps[2:]), gaps


def test_a_field_named_like_a_bookkeeping_column_does_not_take_its_place(sim, journal):
    """A schema field ``order_status`` becomes ``x_order_status``; the row statuses stay in
    ``x_status`` and the job's counts, message and colour are read from there."""
    schema = {
        "type": "object",
        "properties": {"order_status": {"type": "string", "enum": ["shipped", "pending", "lost"]}},
        "required": ["order_status"],
    }
    df = pd.DataFrame({"text": ["order 1 shipped", "order 2 pending", "order 3 lost"]})
    job = submit(df, "Where is it? {{ text }}", sim, journal, out="x", schema=schema)
    job.wait(30)
    assert df["x_status"].tolist() == ["succeeded"] * 3
    assert set(df["x_order_status"].dropna()) <= {"shipped", "pending", "lost"}
    assert job.status.row_counts == {"succeeded": 3}
    assert job.status.message.startswith("done: 3 of 3 rows answered")
    assert job.status.outcome == "success"
    assert job.record.row_counts == {"succeeded": 3}
