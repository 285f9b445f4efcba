"""Every option of a job is declared once, in ``JobOptions``: each place that names
options (the magic's flags and defaults, the Python API's keywords, the job record,
a retry) names exactly the options it declares. And one choice of engine settings
for the magic and the API alike."""

from __future__ import annotations

import inspect
from dataclasses import fields, replace
from typing import Any

import pandas as pd
import pytest
from traitlets import TraitError

import batch_magic as bm
from _shell import magic_instance
from batch_magic import api, magics
from batch_magic.errors import ConfigError
from batch_magic.journal import KEYS_DATA, Journal
from batch_magic.options import JobOptions, declared, option_names
from batch_magic.pilot import run_pilot
from batch_magic.plan import RequestOptions
from batch_magic.record import JobRecord
from batch_magic.settings import JobSettings

REQUEST = set(option_names(run=False))
ALL = set(option_names())
RUN = ALL - REQUEST


def reviews() -> pd.DataFrame:
    return pd.DataFrame({"review": ["great kettle", "awful toaster", "fine lamp", "love the fan"]})


# -- every place names exactly the declared options ---------------------------------
def test_the_magic_has_a_flag_for_each_option_with_one_and_no_other() -> None:
    dests = {a.dest for a in magics.BatchMagic.batch.parser._actions if a.dest != "help"}
    flagged = {f.name for f, option in declared() if option.flag}
    # The cell's own arguments: what to send, and what to do instead of sending it.
    assert dests - flagged == {"target", "pilot", "dry_run", "exact_tokens"}
    assert flagged <= dests
    assert flagged == ALL - {"cache_system", "use_tool", "extra_params"}  # Python only


def test_the_magic_defaults_are_the_session_options_and_the_engine_settings() -> None:
    traits = set(magics.BatchMagic.class_traits(config=True))
    session = {f.name for f, option in declared() if option.session_default}
    assert session == {"model", "system", "max_tokens", "effort", "chunk_size", "max_cost"}
    assert traits == session | set(magics.SETTINGS_TRAITS) | {"journal_dir", "display"}
    # The engine's traits name JobSettings fields that the destination's choice takes.
    takes = set(inspect.signature(JobSettings.for_destination).parameters) - {"local"}
    assert set(magics.SETTINGS_TRAITS.values()) == takes
    assert takes <= {f.name for f in fields(JobSettings)}
    # Each option's trait has the option's default.
    defaults = JobOptions()
    magic = magics.BatchMagic()
    for name in session:
        assert getattr(magic, name) == getattr(defaults, name), name


@pytest.mark.parametrize(
    ("function", "names"),
    [(api.submit, ALL), (api.prepare, REQUEST), (api.dry_run, REQUEST), (run_pilot, REQUEST)],
    ids=["submit", "prepare", "dry_run", "run_pilot"],
)
def test_the_python_api_takes_each_option_as_a_keyword_with_its_default(function: Any, names: set[str]) -> None:
    params = inspect.signature(function).parameters
    own = {"df", "template", "options", "client", "journal", "settings", "start", "exact_tokens", "n",
           "concurrency"}
    assert set(params) - own == names
    defaults = JobOptions()
    for name in names:
        assert params[name].default == getattr(defaults, name), name
        assert f"{name}=" in function.__doc__  # help(submit) lists it


def test_the_job_record_keeps_every_request_option() -> None:
    """The record keeps the request options as asked (RequestOptions, plus out, the chunk
    size and the output spec); nothing there is an option JobOptions lacks."""
    stored = {f.name for f in fields(RequestOptions)}
    derived = {"thinking", "output_schema"}  # chosen by prepare from effort, labels/schema/json
    renamed = {"extra": "extra_params"}
    assert {renamed.get(n, n) for n in stored - derived} <= REQUEST
    in_record = {renamed.get(n, n) for n in stored - derived} | {"out", "chunk_size"}
    from_output = {"labels", "schema", "json"}  # the record's output spec
    # Which rows were sent: the row map (rows left out are NOT_SENT), with the seed and column.
    sampled = {"sample", "seed", "stratify"}
    record_fields = {f.name for f in fields(JobRecord)}
    assert {"out", "chunk_size", "output", "options", "n_not_sent", "sample_seed", "sample_stratify"} <= record_fields
    # Which rows are which: a Polars frame's key columns, kept as data beside the row map.
    assert KEYS_DATA == "keys.arrow"
    identity = {"key"}
    assert in_record | from_output | sampled | identity == REQUEST
    assert not RUN & (stored | {f.name for f in fields(JobRecord)})  # how a run went is not an option


#: A value other than the default for every request option but the output shape.
CHANGED: dict[str, Any] = {
    "out": "topic",
    "model": "claude-opus-4-5",
    "system": "Be brief.",
    "max_tokens": 300,
    "effort": "low",
    "chunk_size": 2,
    "cache_system": True,
    "use_tool": True,
    "extra_params": {"stop_sequences": ["END"]},
}
SHAPES: dict[str, dict[str, Any]] = {
    "labels": {"labels": ["kitchen", "garden"]},
    "schema": {"schema": {"type": "object", "properties": {"room": {"type": "string"}}, "required": ["room"]}},
    "json": {"json": True},
}


#: Which rows a job sends and how they are found again: a retry sends the rows that failed,
#: whatever the sample was (a Polars retry passes the job's key itself: tests/test_polars.py).
ROWS = {"sample", "seed", "stratify", "key"}


def test_the_round_trip_below_changes_every_request_option() -> None:
    assert set(CHANGED) | set(SHAPES) | ROWS == REQUEST


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_retry_asks_again_exactly_what_the_recorded_job_asked(shape: str, tmp_path: Any) -> None:
    df = reviews()
    asked = {**CHANGED, **SHAPES[shape]}
    first = api.prepare(df, "{{ review }}", **asked)
    journal = Journal(tmp_path / "journal")
    job_id = api.create_job(journal, first, api._job_fingerprint(first), simulated=True)
    record = journal.read_record(job_id)  # through the manifest on disk

    again = api.prepare(df, record.template, options=JobOptions.from_record(record))
    assert again.plan.options == first.plan.options  # the same params on the wire
    assert (again.out, again.spec) == (first.out, first.spec)
    assert again.plan.prompts == first.plan.prompts
    assert again.plan.batches == first.plan.batches  # the same chunk size


def test_the_readme_lists_every_option() -> None:
    from _scripts import load_script

    block = load_script("options_table").generate()
    for name in ALL:
        assert f"`--{name.replace('_', '-')}" in block or f"| `{name}` |" in block, name


# -- checked as given, named in the error --------------------------------------------
@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"max_tokens": 0}, r"max_tokens=0 must be a whole number of at least 1"),
        ({"chunk_size": "ten"}, r"chunk_size='ten' must be a whole number of at least 1"),
        ({"out": "my answer"}, r"out='my answer' must be a column name made of letters, digits and _"),
        ({"model": ""}, r"model='' is not a model name; use e.g. 'claude-haiku-5-5'"),
        ({"effort": "extreme"}, r"effort='extreme' is not an effort level; use one of low, medium"),
        ({"labels": "good"}, r"labels='good' gives 1 label\(s\); give at least two"),
        ({"labels": ["a", "b"], "json": True}, r"Give only one of labels, schema and json \(got labels and json\)"),
        ({"use_tool": "yes"}, r"use_tool='yes' must be True or False"),
        ({"extra_params": ["stop"]}, r"extra_params=\['stop'\] must be a dict of Messages API params"),
        ({"max_cost": "a lot"}, r"max_cost='a lot' must be a number of US dollars"),
        ({"max_cost": -1}, r"max_cost=-1 must be at least 0 US dollars"),
        ({"modle": "claude-opus-4-5"}, r"submit\(\) has no option 'modle'\. Did you mean model=\?"),
        ({"temperature": 0.2}, r"temperature"),
    ],
)
def test_a_bad_option_is_refused_before_anything_is_sent(
    given: dict[str, Any], message: str, simulator: Any, journal: Journal
) -> None:
    with pytest.raises(ConfigError, match=message):
        bm.submit(reviews(), "{{ review }}", client=simulator.client(), journal=journal, **given)
    assert simulator.requests == [] and journal.job_ids() == []


def test_prepare_takes_no_run_option() -> None:
    with pytest.raises(ConfigError, match=r"prepare\(\) takes no wait=: it is an option of submit\(\)"):
        api.prepare(reviews(), "{{ review }}", wait=True)


def test_options_given_whole_or_as_keywords_are_the_same_job() -> None:
    options = JobOptions(out="x", labels="kitchen,garden", max_tokens=40)
    whole = api.prepare(reviews(), "{{ review }}", options=options)
    keywords = api.prepare(reviews(), "{{ review }}", out="x", labels=["kitchen", "garden"], max_tokens=40)
    assert whole.plan.fingerprint == keywords.plan.fingerprint and whole.spec == keywords.spec
    # A keyword beside options= replaces its value.
    assert api.prepare(reviews(), "{{ review }}", options=options, out="y").out == "y"


def test_a_bad_session_default_is_refused_with_the_options_message(
    ip: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ip.run_cell("%config BatchMagic.max_tokens = 0")  # %config logs the refusal
    ip.run_cell("%config BatchMagic.model = ''")
    assert "max_tokens=0 must be a whole number of at least 1" in caplog.text
    assert "model='' is not a model name" in caplog.text
    magic = magic_instance(ip)
    assert magic.max_tokens is None and magic.model == JobOptions().model
    with pytest.raises(TraitError, match=r"effort='extreme' is not an effort level|expected any of"):
        magic.effort = "extreme"


# -- one choice of engine settings --------------------------------------------------
def test_settings_for_a_local_simulator_and_for_the_api() -> None:
    local = JobSettings.for_destination(local=True)
    assert (local.poll_min, local.poll_max, local.backoff_min, local.create_grace) == (0.2, 5.0, 0.2, 10.0)
    assert JobSettings.for_destination(local=False) == JobSettings()
    assert JobSettings().create_grace == 600.0
    # What the user set wins; the longest poll wait never falls below the shortest.
    mine = JobSettings.for_destination(local=True, max_in_flight=8, poll_min=30.0)
    assert (mine.max_in_flight, mine.poll_min, mine.poll_max, mine.create_grace) == (8, 30.0, 30.0, 10.0)


def test_a_changed_setting_keeps_the_local_simulators_grace(ip: Any, simulator: Any, tmp_path: Any) -> None:
    """With the in-notebook simulator, `%config BatchMagic.max_in_flight = 8` once made the
    wait after a lost create 600 s (the real API's) instead of 10 s: the magic chose its
    settings apart from the Python API."""
    ip.run_cell("%batch simulator start --processing-time 0")
    ip.run_cell("%config BatchMagic.max_in_flight = 8")
    ip.user_ns["df"] = reviews()
    ip.run_cell("%%batch df --out x --wait\n{{ review }}")
    job = ip.run_cell("%batch job").result
    assert job.settings.create_grace == 10.0 and job.settings.max_in_flight == 8
    # The same choice as the Python API makes for a local simulator.
    from_api = bm.submit(
        reviews(), "{{ review }}", client=simulator.client(), journal=Journal(tmp_path / "api"), start=False
    )
    assert job.settings == replace(from_api.settings, max_in_flight=8)
