"""Fifteen ways a batch job goes wrong, met the way a user meets them.

Each scenario runs a job through the Python API against the simulator over
HTTP (faults injected in the server, answers lost on the way back, drivers
killed with SIGKILL, frames reordered in another process, bad input), then
checks the same four things a user would:

1. **no row lost**: every row has an answer, or a status and an error saying why;
2. **answers aligned**: each row's answer is the one for its own prompt (the
   simulator's model echoes the prompt it was given);
3. **nothing paid twice**: no request (custom_id) succeeded in two batches on
   the server, read from every batch's results through the API;
4. **the job's state matches its rows**: a done job has no pending row and no
   live batch, and the counts it reports are the DataFrame's.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import numpy as np
import pandas as pd
import pytest

from _gateway import gateway
from _jobs import fast
from _jobs import submit as submit_job
from batch_magic.errors import APIError, ConfigError, TemplateError
from batch_magic.job import BatchJob
from batch_magic.journal import Journal
from batch_magic.record import BatchState, JobState
from batch_magic.simulator import Simulator

#: A create whose answer was lost is looked for 1 s, not the real API's 10 minutes.
SETTINGS = fast(create_grace=1.0)
TEMPLATE = "Q: {{ text }}"
OUT = "x"
ECHO_SCHEMA = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}


def echo(params: dict[str, Any]) -> str:
    """The simulator's model: the prompt back (as JSON when a schema is asked; a wrong type
    for a prompt that says "bad", which makes that row invalid)."""
    prompt = params["messages"][-1]["content"]
    if "output_config" in params:
        return json.dumps({"echo": 5 if "bad" in prompt else prompt})
    return f"echo: {prompt}"


def frame(n: int, *, labels: bool = True) -> pd.DataFrame:
    texts = [f"ticket {i} about order {1000 + i}" for i in range(n)]
    index = [f"t{i:03d}" for i in range(n)] if labels else None
    return pd.DataFrame({"text": texts}, index=index)


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    simulator.configure(responder=echo, processing_time=0.0, cancel_delay=0.0)
    return simulator


def client(sim: Simulator, url: str | None = None, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(api_key=kwargs.pop("api_key", "sk-test"), base_url=url or sim.url, **kwargs)


def submit(df: pd.DataFrame, sim: Simulator, journal: Journal, template: str = TEMPLATE, **options: Any) -> BatchJob:
    """A scenario's job: ``template`` into column ``OUT``."""
    options.setdefault("settings", SETTINGS)
    return submit_job(df, template, sim, journal, out=OUT, **options)


def creates(sim: Simulator) -> list[int]:
    """The status of every create the server answered (or began to), in order."""
    return [r.status for r in sim.requests if r.endpoint == "create"]


# -- the four invariants ----------------------------------------------------------------------
def check_invariants(sim: Simulator, journal: Journal, job_id: str, df: pd.DataFrame, *,
                     answer: str = OUT, expect: str = "done") -> None:
    """The four invariants of the module docstring, for the job and the DataFrame it filled."""
    status, error = df[f"{OUT}_status"].astype("object"), df[f"{OUT}_error"]
    record = journal.read_record(job_id)
    # 1. No row lost: an answer, or a status and a reason.
    assert status.notna().all(), "a row has no status"
    ok = status == "succeeded"
    assert df.loc[ok, answer].notna().all(), "a succeeded row has no answer"
    reasons = error[~ok]
    assert reasons.notna().all() and (reasons.str.len() > 0).all(), df.loc[~ok, [f"{OUT}_status", f"{OUT}_error"]]
    # 2. Answers aligned: the echo of the row's own prompt.
    prompts = "Q: " + df["text"].astype("object")
    expected = prompts if answer != OUT else "echo: " + prompts
    wrong = df.index[ok & (df[answer].astype("object") != expected)]
    assert wrong.empty, df.loc[wrong, ["text", answer]]
    # 3. Nothing paid twice: no custom_id succeeded in two batches of the server.
    assert paid_twice(sim) == {}
    # 4. The job's state matches its rows.
    assert record.state.value == expect, (record.state, record.error)
    assert not [b for b in record.batches if b.live], "the job ended with a batch still live"
    assert "pending" not in set(status)
    assert record.row_counts == {k: int(v) for k, v in status.value_counts().items() if v}
    assert sum(record.row_counts.values()) == record.n_rows == len(df)


def paid_twice(sim: Simulator) -> dict[str, int]:
    """custom_id -> the number of batches it succeeded in, where more than one."""
    sim.clear_faults()
    sim.configure(api_keys=None)  # read as the account's owner, whatever key the job used
    reader = client(sim)
    succeeded: collections.Counter[str] = collections.Counter()
    for batch_id in sim.batch_ids():
        while sim.batch(batch_id)["processing_status"] != "ended":
            time.sleep(0.05)
        for line in reader.messages.batches.results(batch_id):
            if line.result.type == "succeeded":
                succeeded[line.custom_id] += 1
    return {cid: n for cid, n in succeeded.items() if n > 1}


# -- 1-4: creating a batch ---------------------------------------------------------------------
def test_create_answered_500_is_looked_for_then_sent_once(sim, journal):
    sim.add_fault("create", 500, times=1)
    df = frame(5)
    job = submit(df, sim, journal)
    job.wait(30)
    # The 500 may have made a batch: the job looked for it for the grace period first.
    assert creates(sim) == [500, 200] and len(sim.batch_ids()) == 1
    listings = [r for r in sim.requests if r.endpoint == "list"]
    assert listings and listings[0].time > next(r for r in sim.requests if r.endpoint == "create").time
    check_invariants(sim, journal, job.id, df)


def test_create_answered_429_waits_as_asked_and_sends_again(sim, journal):
    sim.add_fault("create", 429, times=2, retry_after=0.3)
    df = frame(5)
    job = submit(df, sim, journal)
    job.wait(30)
    attempts = [r for r in sim.requests if r.endpoint == "create"]
    assert [r.status for r in attempts] == [429, 429, 200] and len(sim.batch_ids()) == 1
    assert all(later.time - earlier.time >= 0.28 for earlier, later in itertools.pairwise(attempts))
    check_invariants(sim, journal, job.id, df)


def test_create_whose_answer_is_lost_is_found_and_adopted(sim, journal):
    """The server made the batch; the connection dropped before its answer came back."""
    lost: list[str] = []

    def lose_first_create(method: str, path: str) -> bool:
        if method == "POST" and path == "/v1/messages/batches" and not lost:
            lost.append(path)
            return True
        return False

    with gateway(sim.url, {}, lose=lose_first_create) as url:
        df = frame(5)
        job = submit(df, sim, journal, client=client(sim, url))
        job.wait(30)
    assert lost and creates(sim) == [200] and len(sim.batch_ids()) == 1
    entry = job.record.batches[0]
    assert entry.adopted and entry.batch_id == sim.batch_ids()[0]
    check_invariants(sim, journal, job.id, df)


@pytest.mark.slow
def test_create_committed_after_the_client_gave_up_is_canceled_not_paid_twice(sim, journal):
    """The server holds the create past the client's timeout and the grace period, then
    makes the batch, after the job has sent it again: that late copy is canceled at once."""
    sim.configure(processing_time=3.0)
    sim.add_fault("create", None, delay=2.5, times=1)
    df = frame(5)
    job = submit(df, sim, journal, client=client(sim, timeout=0.5))
    job.wait(60)
    assert len(sim.batch_ids()) == 2
    entry = job.record.batches[0]
    late = [b for b in sim.batch_ids() if b != entry.batch_id]
    assert entry.duplicates == late and sim.batch(late[0])["cancel_initiated_at"] is not None
    assert sim.batch(late[0])["request_counts"]["succeeded"] == 0
    check_invariants(sim, journal, job.id, df)


# -- 5-6: polling and downloading -------------------------------------------------------------
def test_retrieve_answered_5xx_reconnects(sim, journal):
    sim.configure(processing_time=0.3)
    sim.add_fault("retrieve", 503, times=3)
    sim.add_fault("retrieve", 500, times=1)
    df = frame(5)
    job = submit(df, sim, journal)
    job.wait(30)
    assert [r.status for r in sim.requests if r.endpoint == "retrieve"][:4] == [503, 503, 503, 500]
    assert creates(sim) == [200]
    check_invariants(sim, journal, job.id, df)


def test_results_cut_mid_stream_are_downloaded_again_never_half_merged(sim, journal):
    sim.add_fault("results", None, drop_after_lines=2, times=2)
    df = frame(8)
    job = submit(df, sim, journal)
    job.wait(30)
    downloads = [r for r in sim.requests if r.endpoint == "results"]
    assert [r.dropped for r in downloads] == [True, True, False]
    check_invariants(sim, journal, job.id, df)


# -- 7-9: rows that come back without an answer -------------------------------------------------
def test_overloaded_rows_are_sent_again(sim, journal):
    sim.configure(error_rates={"overloaded_error": 0.3})
    df = frame(30)
    job = submit(df, sim, journal, settings=replace(SETTINGS, max_attempts=3))
    job.wait(30)
    status = df[f"{OUT}_status"].astype("object")
    assert job.status.attempt >= 2 and len(sim.batch_ids()) >= 2
    assert set(status) <= {"succeeded", "errored"}
    assert df.loc[status == "errored", f"{OUT}_error"].str.startswith("overloaded_error: ").all()
    check_invariants(sim, journal, job.id, df)


def test_expired_rows_are_sent_again_then_marked_expired(sim, journal):
    sim.configure(expire_rate=0.5)
    df = frame(20)
    job = submit(df, sim, journal, settings=replace(SETTINGS, max_attempts=2))
    job.wait(30)
    status = df[f"{OUT}_status"].astype("object")
    assert job.status.attempt == 2
    assert set(status) == {"succeeded", "expired"}
    assert df.loc[status == "expired", f"{OUT}_error"].str.contains("expired").all()
    check_invariants(sim, journal, job.id, df)


def test_invalid_rows_keep_their_raw_answer_and_say_why(sim, journal):
    df = frame(6)
    df.loc[["t001", "t004"], "text"] = ["a bad answer comes back", "bad again"]
    job = submit(df, sim, journal, schema=ECHO_SCHEMA)
    job.wait(30)
    status = df[f"{OUT}_status"].astype("object")
    assert status[["t001", "t004"]].tolist() == ["invalid", "invalid"]
    assert (df.loc[["t001", "t004"], f"{OUT}_error"] == "$.echo: 5 is not of type 'string'").all()
    assert df.loc["t001", OUT] == '{"echo": 5}'  # the raw answer kept
    assert (status.drop(["t001", "t004"]) == "succeeded").all()
    check_invariants(sim, journal, job.id, df, answer=f"{OUT}_echo")


# -- 10-11: the user's doing -------------------------------------------------------------------
def test_a_rejected_key_then_a_rerun_goes_on_without_sending_again(sim, journal):
    sim.configure(api_keys=["sk-first"], processing_time=1.0)
    df = frame(5)
    # A key the API rejects: refused before anything is written or sent.
    with pytest.raises(APIError, match="401"):
        submit(df, sim, journal, client=client(sim, api_key="sk-wrong"))
    assert journal.job_ids() == [] and sim.batch_ids() == []
    job = submit(df, sim, journal, client=client(sim, api_key="sk-first"))
    while not job.record.batches[0].batch_id:
        time.sleep(0.02)
    # The key is revoked while the batch runs: the job fails, its batch kept.
    sim.configure(api_keys=["sk-second"])
    with pytest.raises(APIError, match="401"):
        job.wait(30)
    failed = journal.read_record(job.id)
    assert failed.state is JobState.FAILED and failed.batches[0].state is BatchState.IN_PROGRESS
    assert f"{OUT}_status" not in df.columns  # nothing merged
    # Re-run with the new key: the same job resumes where it stopped.
    again = submit(df, sim, journal, client=client(sim, api_key="sk-second"))
    again.wait(30)
    assert again.id == job.id and creates(sim) == [200]
    check_invariants(sim, journal, job.id, df)


def test_a_cancel_keeps_what_finished_and_drops_what_was_not_sent(sim, journal):
    sim.configure(processing_time=30.0)
    df = frame(9)
    settings = replace(SETTINGS, max_in_flight=1)
    job = submit(df, sim, journal, chunk_size=3, settings=settings)
    while not job.record.batches[0].batch_id:
        time.sleep(0.02)
    job.cancel()
    job.wait(30)
    states = [b.state for b in job.record.batches]
    assert states == [BatchState.ENDED, BatchState.DROPPED, BatchState.DROPPED]
    assert len(sim.batch_ids()) == 1
    assert (df[f"{OUT}_status"] == "canceled").all()
    assert df[f"{OUT}_error"].iloc[3:].str.contains("canceled before this request was sent").all()
    check_invariants(sim, journal, job.id, df, expect="canceled")


# -- 12-14: other processes --------------------------------------------------------------------
DRIVER = textwrap.dedent(
    """
    import json, sys
    import anthropic, pandas as pd
    import batch_magic as bm
    url, journal, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    df = pd.DataFrame({"text": texts}, index=[f"t{i:03d}" for i in range(len(texts))])
    settings = bm.JobSettings(poll_min=0.05, poll_max=0.2, backoff_min=0.05, backoff_max=0.2, create_grace=1.0)
    client = anthropic.Anthropic(api_key="sk-test", base_url=url, max_retries=0)
    job = bm.submit(df, "Q: {{ text }}", out="x", client=client, journal=journal, settings=settings)
    print(job.id, flush=True)
    job.wait(120)
    """
)

ATTACHER = textwrap.dedent(
    """
    import json, sys
    import anthropic, pandas as pd
    import batch_magic as bm
    url, journal, job_id, texts, order = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
    df = pd.DataFrame({"text": texts}, index=[f"t{i:03d}" for i in range(len(texts))]).iloc[order]
    client = anthropic.Anthropic(api_key="sk-test", base_url=url, max_retries=0)
    bm.attach(job_id, df, client=client, journal=journal).wait(120)
    print(df.astype(object).where(df.notna(), None).reset_index().to_json(orient="records"))
    """
)


def run_script(tmp: Path, name: str, source: str, *args: str) -> subprocess.Popen[str]:
    script = tmp / f"{name}.py"
    script.write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_driver_when(sim: Simulator, journal: Journal, tmp: Path, df: pd.DataFrame, ready: Any) -> str:
    """Start a driver process, SIGKILL it once ``ready(record)`` holds; the job's id."""
    proc = run_script(tmp, "driver", DRIVER, sim.url, str(journal.root), json.dumps(df["text"].tolist()))
    assert proc.stdout is not None
    job_id = proc.stdout.readline().strip()
    assert job_id, proc.stderr.read() if proc.stderr else ""
    deadline = time.monotonic() + 60
    while not ready(journal.read_record(job_id)):
        assert time.monotonic() < deadline and proc.poll() is None, "the driver ended before the kill"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return job_id


@pytest.mark.slow
def test_driver_killed_while_polling_is_picked_up_by_a_rerun(sim, journal, tmp_path):
    sim.configure(processing_time=3.0)
    df = frame(12)
    job_id = kill_driver_when(sim, journal, tmp_path, df, lambda r: bool(r.batches[0].batch_id))
    assert journal.read_record(job_id).batches[0].state is BatchState.IN_PROGRESS
    rerun = submit(df, sim, journal)  # the same cell, run again after the crash
    rerun.wait(30)
    assert rerun.id == job_id and creates(sim) == [200]
    check_invariants(sim, journal, job_id, df)


@pytest.mark.slow
def test_driver_killed_while_downloading_downloads_again(sim, journal, tmp_path):
    sim.configure(processing_time=0.2)
    held = sim.add_fault("results", None, delay=3.0, times=1)
    df = frame(12)

    seen: list[float] = []

    def downloading(record: Any) -> bool:
        """The batch ends 0.2 s after it is made; its results are then held for 3 s."""
        if record.batches[0].batch_id and not seen:
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] > 1.2

    job_id = kill_driver_when(sim, journal, tmp_path, df, downloading)
    record = journal.read_record(job_id)
    assert record.batches[0].state is BatchState.IN_PROGRESS  # killed mid-download: not ended
    assert not journal.results_path(job_id, record.batches[0].batch_id or "x").exists()
    assert held.fired == 1  # the download the driver was in when it was killed
    rerun = submit(df, sim, journal)
    rerun.wait(30)
    assert rerun.id == job_id and creates(sim) == [200]
    assert [r.status for r in sim.requests if r.endpoint == "results"][-1] == 200
    check_invariants(sim, journal, job_id, df)


@pytest.mark.slow
def test_a_reordered_frame_attached_in_another_process_gets_its_own_answers(sim, journal, tmp_path):
    """Another notebook attaches to the running job with the rows shuffled and one left out:
    it follows this process's driver, then merges each answer into its own row."""
    sim.configure(processing_time=2.0)
    df = frame(10)
    job = submit(df, sim, journal)
    order = [int(i) for i in np.random.default_rng(1).permutation(10) if i != 4]
    proc = run_script(tmp_path, "attach", ATTACHER, sim.url, str(journal.root), job.id,
                      json.dumps(df["text"].tolist()), json.dumps(order))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    job.wait(30)
    other = pd.DataFrame(json.loads(out.strip().splitlines()[-1])).set_index("index")
    assert other.index.tolist() == [f"t{i:03d}" for i in order]
    assert creates(sim) == [200]
    check_invariants(sim, journal, job.id, df)  # this process's frame
    # The other process's frame: its rows in its order, each with its own answer.
    assert (other[f"{OUT}_status"] == "succeeded").all()
    assert (other[OUT] == "echo: Q: " + other["text"]).all()


# -- 15: bad input -----------------------------------------------------------------------------
def test_bad_input_is_refused_before_spending_and_blank_rows_say_why(sim, journal):
    df = frame(6)
    with pytest.raises(TemplateError, match="'txt'"):
        submit(df, sim, journal, template="Q: {{ txt }}")
    with pytest.raises(ConfigError, match="list of labels"):
        submit(df, sim, journal, labels={"a": 1})
    with pytest.raises(ConfigError, match="would overwrite"):
        submit(df.assign(x_status="mine"), sim, journal)
    assert sim.batch_ids() == [] and journal.job_ids() == []
    # Rows with nothing to ask are skipped, with the reason; the others are answered.
    df.loc[["t001", "t003"], "text"] = [None, "   "]
    job = submit(df, sim, journal)
    job.wait(30)
    status = df[f"{OUT}_status"].astype("object")
    assert status[["t001", "t003"]].tolist() == ["skipped", "skipped"]
    assert (status.drop(["t001", "t003"]) == "succeeded").all()
    sent = sum(sim.batch(b)["request_counts"]["succeeded"] for b in sim.batch_ids())
    assert sent == 4
    check_invariants(sim, journal, job.id, df)
