"""The typed job record: its states and transitions, its round trip through the
journal, the migration of a format-1 journal, and the bugs an untyped manifest
caused, reproduced as a user meets them (Python API, simulator over HTTP)."""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import orjson
import pandas as pd
import pytest

import batch_magic as bm
from _jobs import fast
from _jobs import submit as submit_job
from batch_magic import migrate
from batch_magic.errors import APIError, JournalError
from batch_magic.journal import Journal
from batch_magic.record import (
    BATCH_TRANSITIONS,
    FORMAT_VERSION,
    JOB_TRANSITIONS,
    BatchState,
    IllegalTransition,
    JobState,
)
from batch_magic.structured import OutputSpec

#: A create whose answer was lost is looked for 5 s, not the real API's 10 minutes.
SETTINGS = fast(create_grace=5.0)
FIXTURE = Path(__file__).parent / "fixtures" / "journal_v1"
#: Answers of at most 40 tokens: the simulator stops its model there, as the API would.
submit = partial(submit_job, max_tokens=40, settings=SETTINGS)


def creates(sim) -> int:
    return sum(1 for r in sim.requests if r.endpoint == "create" and r.status == 200)


# -- the record itself -------------------------------------------------------------------
def test_every_state_has_its_moves_in_one_table_and_others_raise():
    assert set(JOB_TRANSITIONS) == set(JobState)
    assert set(BATCH_TRANSITIONS) == set(BatchState)
    assert JOB_TRANSITIONS[JobState.DONE] == frozenset() == JOB_TRANSITIONS[JobState.CANCELED]
    assert JobState.RUNNING in JOB_TRANSITIONS[JobState.FAILED]  # failed is not ended
    assert {s.value for s in JobState}.isdisjoint({"in_progress"})  # a job state is not a batch state


def test_what_a_display_shows_follows_the_recorded_state():
    from dataclasses import MISSING, fields

    from batch_magic.status import DISPLAY_STATE, FINAL_STATES, STATES, JobStatus

    assert set(DISPLAY_STATE) == set(JobState)  # every recorded state shows, under one word
    assert {DISPLAY_STATE[s] for s in (JobState.DONE, JobState.CANCELED, JobState.FAILED)} == FINAL_STATES
    assert set(DISPLAY_STATE.values()) <= set(STATES)
    required = [f.name for f in fields(JobStatus) if f.default is MISSING and f.default_factory is MISSING]
    blank: dict[str, object] = dict.fromkeys(required, 0)
    blank.update(job_id="j", model="m", out="x", counts={})
    with pytest.raises(ValueError, match="'running' is not a job state a snapshot shows"):
        JobStatus(**{**blank, "state": "running"})


def test_illegal_transitions_raise(sim, journal):
    job = submit(pd.DataFrame({"text": ["a"]}), "{{ text }}", sim, journal, start=False)
    record = job.record
    with pytest.raises(IllegalTransition, match="planned -> canceled"):
        record.move_to(JobState.CANCELED)
    entry = record.batches[0]
    with pytest.raises(IllegalTransition, match="pending -> ended"):
        entry.move_to(BatchState.ENDED)
    record.move_to(JobState.RUNNING)
    record.move_to(JobState.DONE)
    with pytest.raises(IllegalTransition):
        record.move_to(JobState.FAILED)


def test_the_record_round_trips_through_a_fresh_journal(sim, journal):
    sim.configure(error_rates={"overloaded_error": 0.4})
    df = pd.DataFrame({"text": [f"row {i}" for i in range(30)] + [None]})
    job = submit(
        df, "{{ text }}", sim, journal, out="x", labels=["yes", "no"], system="Be brief. " * 500,
        extra_params={"stop_sequences": ["###"]}, chunk_size=7,
    )
    job.wait(30)
    first = job.record
    again = Journal(journal.root).read_record(job.id)
    assert again == first
    assert any(b.ids is not None for b in again.batches)  # retries of scattered requests
    assert again.options.cache_system and again.options.extra == {"stop_sequences": ["###"]}
    assert again.output == OutputSpec.from_labels(["yes", "no"]) and again.skip_reasons
    on_disk = orjson.loads((journal.job_dir(job.id) / "manifest.json").read_bytes())
    assert on_disk["version"] == FORMAT_VERSION and "params" not in on_disk  # as given, not the wire


# -- a journal of the current release -------------------------------------------------------
def test_a_format_1_journal_opens_migrated_and_merges_without_unpickling(tmp_path):
    root = tmp_path / "old"
    shutil.copytree(FIXTURE, root)
    jr = Journal(root)
    records = {r.out: r for r in jr.records()}
    assert set(records) == {"answer", "mood", "info", "js", "tl", "rt", "f", "cx", "pl"}
    assert records["mood"].output.kind == "labels" and records["mood"].output.labels == ("positive", "negative", "neutral")
    info = records["info"]
    assert info.output.kind == "schema" and info.options.cache_system and info.options.system.startswith("You are terse.")
    assert info.options.output_schema == info.output.json_schema()
    assert records["js"].output.kind == "json" and records["js"].options.extra == {"temperature": 0.2}
    tl = records["tl"]
    assert tl.options.use_tool and tl.options.extra == {"top_k": 5} and tl.output.labels == ("yes", "no")
    assert any(b.ids for b in records["rt"].batches) and records["rt"].state is JobState.DONE
    failed = records["f"]
    assert failed.state is JobState.FAILED and failed.batches[0].state is BatchState.IN_PROGRESS
    assert records["cx"].state is JobState.CANCELED and records["cx"].cancel_requested_at
    assert records["pl"].state is JobState.PLANNED
    # Reading writes nothing: the old manifest stays as it was (a read-only share opens).
    folder = jr.job_dir(info.job_id)
    assert orjson.loads((folder / "manifest.json").read_bytes())["version"] == 1
    assert not (folder / "manifest.v1.json").exists()
    # Upgraded when asked: rewritten as the current format, the old file kept beside it.
    assert info.job_id in migrate.upgrade(jr)
    assert orjson.loads((folder / "manifest.json").read_bytes())["version"] == FORMAT_VERSION
    assert orjson.loads((folder / "manifest.v1.json").read_bytes())["version"] == 1
    again = Journal(root).read_record(info.job_id)
    assert replace(again, updated_at=info.updated_at) == info and again.read_from_format == FORMAT_VERSION
    assert migrate.upgrade(jr) == []  # nothing left in format 1
    # An ended job merges from the journal alone, by position when asked (its index.pkl untouched).
    df = pd.DataFrame({"text": ["I love it", "broken on arrival", "fine"]})
    bm.attach(records["answer"].job_id, df, journal=jr, by_position=True).wait(30)
    assert (df["answer_status"] == "succeeded").all()
    assert all(t in a for t, a in zip(df["text"], df["answer"]))
    assert (jr.job_dir(records["answer"].job_id) / "index.pkl").exists()
    listed = bm.jobs(jr)
    assert listed.loc[listed["out"] == "f", "next"].str.contains("resume").all()


def test_a_format_1_journal_opens_read_only_and_is_written_when_the_job_next_changes(sim, tmp_path):
    root = tmp_path / "old"
    shutil.copytree(FIXTURE, root)
    folders = sorted((root / "jobs").iterdir())
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for folder in [root, root / "jobs", *folders]:
        folder.chmod(0o555)  # a read-only share
    try:
        assert len(list(Journal(root).records())) == 9
        assert bm.jobs(Journal(root))["state"].notna().all()
    finally:
        for folder in [root, root / "jobs", *folders]:
            folder.chmod(0o755)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing written
    jr = Journal(root)
    failed = next(r for r in jr.records() if r.out == "f")
    folder = jr.job_dir(failed.job_id)
    old = (folder / "manifest.json").read_bytes()
    # The failed job resumes: its first change writes the manifest in format 2, the old one kept.
    with pytest.raises(APIError):  # its batch is not on this simulator
        bm.attach(failed.job_id, pd.DataFrame({"text": ["a"]}), journal=jr, client=sim.client(),
                  settings=SETTINGS, by_position=True).wait(30)
    assert orjson.loads((folder / "manifest.json").read_bytes())["version"] == FORMAT_VERSION
    assert (folder / "manifest.v1.json").read_bytes() == old


def test_a_format_2_manifest_is_written_back_byte_for_byte(sim, journal):
    sim.configure(error_rates={"overloaded_error": 0.4})
    df = pd.DataFrame({"text": [f"row {i}" for i in range(20)] + [None]})
    job = submit(df, "{{ text }}", sim, journal, out="x", labels=["yes", "no"], chunk_size=6)
    job.wait(30)
    path = journal.job_dir(job.id) / "manifest.json"
    raw = path.read_bytes()
    assert Journal(journal.root).read_record(job.id).to_json() == raw
    data = orjson.loads(raw)
    assert data["estimate"]["n_requests"] == 20 and data["sent_to"]["simulator"] is True
    assert all("batch_id" in b and None not in b.values() for b in data["batches"])  # None left out


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d.__setitem__("chunk_size", "7"), "chunk_size='7'"),
        (lambda d: d.__setitem__("simulated", 1), "simulated='1'"),
        (lambda d: d["batches"][0].__setitem__("size", True), "batches[0].size='True'"),
        (lambda d: d["options"].__setitem__("max_tokens", 40.0), "options.max_tokens='40.0'"),
        (lambda d: d["estimate"].__setitem__("batch_cost", "0.1"), "estimate.batch_cost='0.1'"),
        (lambda d: d.__setitem__("skip_reasons", {"first": "empty"}), "skip_reasons.first"),
        (lambda d: d["sent_to"].pop("simulator"), "sent_to.simulator"),
    ],
    ids=["text-count", "number-flag", "bool-size", "float-tokens", "text-cost", "word-row", "missing"],
)
def test_a_manifest_value_of_another_type_is_refused_naming_it_never_coerced(sim, journal, change, named):
    job = submit(pd.DataFrame({"text": ["a", ""]}), "{{ text }}", sim, journal, out="x")
    job.wait(30)
    path = journal.job_dir(job.id) / "manifest.json"
    data = orjson.loads(path.read_bytes())
    change(data)
    path.write_bytes(orjson.dumps(data))
    with pytest.raises(JournalError, match=re.escape(named)) as err:
        Journal(journal.root).read_record(job.id)
    assert str(path) in str(err.value)


# -- bug: a failed job could never be resumed --------------------------------------------------
def test_a_job_that_failed_while_polling_resumes_when_the_cell_is_run_again(sim, journal):
    sim.configure(processing_time=1.0)
    df = pd.DataFrame({"text": ["a", "b", "c"]})
    job = submit(df, "Say {{ text }}", sim, journal, out="x")
    time.sleep(0.3)
    sim.add_fault("retrieve", 401, times=1, message="invalid x-api-key")  # the key rejected once
    with pytest.raises(APIError, match="401"):
        job.wait(30)
    assert job.record.state is JobState.FAILED
    assert job.record.batches[0].state is BatchState.IN_PROGRESS  # its batch is kept
    listed = bm.jobs(journal)
    assert listed["state"].tolist() == ["failed"] and "resume" in listed["next"][0]
    time.sleep(1.0)  # the batch ends on the server meanwhile
    again = submit(df, "Say {{ text }}", sim, journal, out="x")  # the identical cell, re-run
    again.wait(30)
    assert again.id == job.id and again.record.state is JobState.DONE
    assert (df["x_status"] == "succeeded").all() and df["x"].str.contains("c").iloc[2]
    assert creates(sim) == 1  # collected, not paid again
    assert bm.retry_failed(job.id, df, journal=journal, client=sim.client()).id == job.id  # nothing to retry


def test_a_failed_job_resumes_on_attach_too(sim, journal):
    sim.configure(processing_time=0.5)
    df = pd.DataFrame({"text": ["a", "b"]})
    job = submit(df, "{{ text }}", sim, journal, out="x")
    time.sleep(0.2)
    sim.add_fault("retrieve", 403, times=1)
    with pytest.raises(APIError):
        job.wait(30)
    resumed = bm.attach(job.id, df, journal=journal, client=sim.client(), settings=SETTINGS)
    resumed.wait(30)
    assert resumed.record.state is JobState.DONE and (df["x_status"] == "succeeded").all()
    assert creates(sim) == 1


def test_a_create_refused_outright_is_sent_once_when_resumed(sim, journal):
    sim.add_fault("create", 401, times=1)
    df = pd.DataFrame({"text": ["a", "b"]})
    job = submit(df, "{{ text }}", sim, journal, out="x")
    with pytest.raises(APIError, match="refused"):
        job.wait(30)
    assert job.record.state is JobState.FAILED and job.record.batches[0].state is BatchState.PENDING
    submit(df, "{{ text }}", sim, journal, out="x").wait(30)
    assert (df["x_status"] == "succeeded").all() and len(sim.batch_ids()) == 1


def test_the_list_command_shows_failed_jobs_and_how_to_resume(ip_sim, simulator, capsys):
    simulator.configure(processing_time=0.5)
    ip_sim.user_ns["df"] = pd.DataFrame({"text": ["a", "b"]})
    ip_sim.run_cell("%%batch df --out x\n{{ text }}")
    time.sleep(0.1)
    simulator.add_fault("retrieve", 401, times=1)
    job = ip_sim.magics_manager.registry["BatchMagic"]._session_jobs()[-1]
    with pytest.raises(APIError):
        job.wait(30)
    capsys.readouterr()
    frame = ip_sim.run_line_magic("batch", "list")
    out = capsys.readouterr().out
    assert frame.frame["state"].tolist() == ["failed"]
    assert "resume where they stopped" in out and "%batch attach JOB DF" in out


# -- bug: retrying a --json job sent a text job ----------------------------------------------
def test_retrying_a_json_job_keeps_it_json(sim, journal):
    def flaky(params):
        text = params["messages"][-1]["content"]
        return "sorry, no JSON" if "broken" in text else f'{{"length": {len(text)}}}'

    sim.configure(responder=flaky)
    df = pd.DataFrame({"text": ["one", "broken two", "three"]})
    submit(df, "{{ text }}", sim, journal, out="j", json=True).wait(30)
    assert df["j_status"].tolist() == ["succeeded", "invalid", "succeeded"]
    sim.configure(responder=lambda params: f'{{"length": {len(params["messages"][-1]["content"])}}}')
    retry = bm.retry_failed("last", df, client=sim.client(), journal=journal, settings=SETTINGS)
    assert retry is not None and retry.record.output.kind == "json"
    retry.wait(30)
    assert df["j_status"].tolist() == ["succeeded", "succeeded", "succeeded"]
    assert df["j_length"].tolist() == [3, 10, 5]  # parsed, not raw text


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"labels": ["yes", "no"]},
        {"schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}},
        {"json": True},
        {"labels": ["yes", "no"], "use_tool": True, "system": "Short. " * 700,
         "extra_params": {"stop_sequences": ["###"]}},
    ],
    ids=["text", "labels", "schema", "json", "tool-cached-extra"],
)
def test_a_retry_asks_exactly_what_the_job_asked(sim, journal, shape):
    sim.configure(error_rates={"overloaded_error": 0.5})
    once = replace(SETTINGS, max_attempts=1)
    df = pd.DataFrame({"text": [f"row {i}" for i in range(40)]})
    first = submit(df, "{{ text }}", sim, journal, out="x", settings=once, **shape)
    first.wait(30)
    sim.configure(error_rates={})
    retry = bm.retry_failed(first.id, df, client=sim.client(), journal=journal, settings=SETTINGS, start=False)
    assert retry is not None
    assert retry.record.output == first.record.output
    assert retry.record.options == first.record.options
    assert retry.record.template == first.record.template and retry.record.out == "x"
    retry.start()
    retry.wait(30)
    assert not (df["x_status"] == "errored").any()  # the simulated model's free text may be invalid JSON


# -- bug: a create that lands late was paid twice --------------------------------------------
def test_a_create_that_lands_after_the_client_gave_up_is_adopted_not_sent_again(sim, journal):
    sim.add_fault("create", None, delay=1.5, times=1)  # the server is slow; the client times out
    df = pd.DataFrame({"text": ["p", "q", "r"]})
    job = submit(df, "{{ text }}", sim, journal, client=sim.client(max_retries=0, timeout=0.5))
    job.wait(30)
    assert len(sim.batch_ids()) == 1  # one batch paid for
    assert job.record.batches[0].adopted and job.record.batches[0].batch_id == sim.batch_ids()[0]
    assert (df["answer_status"] == "succeeded").all()
    lists = [r for r in sim.requests if r.endpoint == "list"]
    assert len(lists) >= 2  # looked for it more than once before it appeared


def test_a_late_copy_after_the_grace_period_is_canceled_at_once_and_recorded(sim, journal):
    sim.configure(processing_time=4.0)
    sim.add_fault("create", None, delay=2.0, times=1)
    short = replace(SETTINGS, create_grace=0.5)
    df = pd.DataFrame({"text": ["p", "q", "r"]})
    job = submit(df, "{{ text }}", sim, journal, settings=short, client=sim.client(max_retries=0, timeout=0.3))
    job.wait(30)
    entry = job.record.batches[0]
    assert len(sim.batch_ids()) == 2 and len(entry.duplicates) == 1
    late = entry.duplicates[0]
    assert late != entry.batch_id and sim.batch(late)["cancel_initiated_at"] is not None
    assert (df["answer_status"] == "succeeded").all()
    assert late in journal.claimed_batch_ids()  # no other job adopts it


def test_the_architecture_doc_lists_every_transition_and_no_other():
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    jobs_part, batches_part = doc.split("| job state | moves to |")[1].split("| batch state | moves to |")
    for table, enum, part in ((JOB_TRANSITIONS, JobState, jobs_part), (BATCH_TRANSITIONS, BatchState, batches_part)):
        for state in enum:
            row = re.search(rf"^\| `{state.value}` \| (.*) \|$", part, re.M)
            assert row, f"no row for {state.value}"
            named = set(re.findall(r"`(\w+)`", row.group(1)))
            assert named == {s.value for s in table[state]}, (state, named)


def test_last_is_the_job_made_last_even_within_one_second(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Job ids sort by the second they were made in, then by a slice of the fingerprint:
    of jobs made in one second, ``last`` is the one made last, whatever its id."""
    import datetime as dt
    import itertools

    from batch_magic import api
    from batch_magic import journal as journal_module

    ticks = itertools.count(1)

    class OneSecond(dt.datetime):
        """Every job in the same second, each a millisecond after the one before."""

        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> OneSecond:  # type: ignore[override]
            return cls(2026, 12, 7, 4, 0, 0, next(ticks) * 1000, tzinfo=tz)

    monkeypatch.setattr(journal_module.dt, "datetime", OneSecond)
    made: list[str] = []
    for n in range(50):  # until the newest job's id is not the greatest
        prepared = api.prepare(pd.DataFrame({"t": [f"ticket {n}"]}), "{{ t }}", max_tokens=20)
        made.append(api.create_job(journal, prepared, api._job_fingerprint(prepared), simulated=True))
        if len(made) > 1 and made[-1] != max(made):
            break
    assert made[-1] != max(made) and len({job.split("-")[1] for job in made}) == 1
    assert journal.resolve("last") == made[-1]
