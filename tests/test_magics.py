"""``%%batch`` and ``%batch`` in a real IPython shell, against the simulator."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

from _shell import magic_instance
from batch_magic.journal import Journal


def reviews() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "review": [
                "great product, works well",
                "awful, broke on day one",
                "fine I guess",
                "love it, would buy again",
            ],
            "stars": [5, 1, 3, 5],
        }
    )


def journal() -> Journal:
    return Journal()  # BATCH_MAGIC_DIR, set by the ip fixture


def only_job(ip: Any) -> Any:
    jobs = magic_instance(ip)._session_jobs()
    assert len(jobs) == 1
    return jobs[0]


def forget_session_jobs() -> None:
    """As after a kernel restart: the process no longer knows the jobs it started."""
    from batch_magic import registry

    registry.forget_all()


def creates(simulator: Any) -> int:
    return sum(1 for r in simulator.requests if r.endpoint == "create")


# -- loading ------------------------------------------------------------------------
def test_load_ext_is_cheap() -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "import batch_magic\n"
        "batch_magic.load_ipython_extension(ip)\n"
        "heavy = [m for m in ('pandas', 'anthropic', 'batch_magic.api', 'batch_magic.job', 'ipywidgets') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "assert ip.find_cell_magic('batch') is not None and ip.find_line_magic('batch') is not None\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "HEAVY []" in out.stdout


# -- the cell -------------------------------------------------------------------
def test_wait_fills_the_columns(ip_sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    df = reviews()
    ip_sim.user_ns["df"] = df
    result = ip_sim.run_cell("%%batch df --out x --wait --max-tokens 50\nWhat is this review about? {{ review }}")
    assert result.result is None
    assert ip_sim.user_ns["df"] is df
    assert (df["x_status"] == "succeeded").all()
    assert df["x"].notna().all() and (df["x"].str.len() > 0).all()
    for col in ("x_error", "x_input_tokens", "x_output_tokens", "x_stop_reason"):
        assert col in df.columns
    out = capsys.readouterr().out
    assert "done · 1/1 batches" in out and "SIMULATED" in out
    assert "4 of 4 rows answered" in out
    job = only_job(ip_sim)
    assert job.record.options.max_tokens == 50


def test_column_form_sends_instructions_then_the_column(ip_sim: Any) -> None:
    df = reviews()
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df.review --out summary --wait\nSummarise in three words:")
    assert (df["summary_status"] == "succeeded").all()
    job = only_job(ip_sim)
    prompts = journal().read_prompts(job.id)
    assert prompts[0] == "Summarise in three words:\n\ngreat product, works well"


def test_column_form_with_brackets_for_any_column_name(ip_sim: Any) -> None:
    df = pd.DataFrame({"the text": ["a red apple", "a blue sea"]})
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df['the text'] --out a --wait\nColour?")
    assert (df["a_status"] == "succeeded").all()
    assert journal().read_prompts(only_job(ip_sim).id)[1] == "Colour?\n\na blue sea"


def test_cell_returns_at_once_and_the_job_goes_on(ip_sim: Any, simulator: Any) -> None:
    simulator.configure(processing_time=2.0)
    df = reviews()
    ip_sim.user_ns["df"] = df
    started = time.monotonic()
    ip_sim.run_cell("%%batch df --out x\n{{ review }}")
    assert time.monotonic() - started < 1.5
    job = only_job(ip_sim)
    assert not job.done
    assert "x" not in df.columns
    ip_sim.run_cell("%batch wait --timeout 30")
    assert job.status.state == "done"
    assert (df["x_status"] == "succeeded").all()


def test_rerun_of_an_identical_cell_reattaches_without_paying_again(ip_sim: Any, simulator: Any) -> None:
    ip_sim.user_ns["df"] = reviews()
    cell = "%%batch df --out x --wait\n{{ review }}"
    ip_sim.run_cell(cell)
    first = only_job(ip_sim).id
    ip_sim.user_ns["df"] = reviews()  # a fresh copy, e.g. after re-reading the CSV
    ip_sim.run_cell(cell)
    assert only_job(ip_sim).id == first
    assert creates(simulator) == 1
    assert (ip_sim.user_ns["df"]["x_status"] == "succeeded").all()
    ip_sim.run_cell(cell.replace("--wait", "--wait --force"))  # a new job: its answers reused
    assert creates(simulator) == 1
    ip_sim.run_cell(cell.replace("--wait", "--wait --fresh"))  # every row asked again
    assert creates(simulator) == 2


def test_rerun_of_a_live_job_keeps_one_driver(ip_sim: Any, simulator: Any) -> None:
    simulator.configure(processing_time=1.5)
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x\n{{ review }}")
    first = only_job(ip_sim)
    fresh = reviews()
    ip_sim.user_ns["df"] = fresh
    ip_sim.run_cell("%%batch df --out x\n{{ review }}")
    assert only_job(ip_sim) is first  # the live job, not a second driver
    ip_sim.run_cell("%batch wait --timeout 30")
    assert creates(simulator) == 1
    assert (fresh["x_status"] == "succeeded").all()  # merged into the DataFrame named last


def test_var_expansion_never_touches_the_line(ip_sim: Any) -> None:
    ip_sim.user_ns["df"] = reviews()
    ip_sim.user_ns["x"] = 42
    ip_sim.run_cell('%%batch df --out a --wait --system "Keep {x} and $x as written"\n{{ review }}')
    assert only_job(ip_sim).record.options.system == "Keep {x} and $x as written"


def test_line_commands_expand_names_as_ipythons_own_magics_do(
    ip_sim: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x --wait\n{{ review }}")
    job_id = only_job(ip_sim).id
    ip_sim.user_ns.update(first=job_id, frame="again", again=reviews())
    capsys.readouterr()
    ip_sim.run_cell("%batch status $first")
    assert capsys.readouterr().out.startswith(f"{job_id}: done")
    forget_session_jobs()
    ip_sim.run_cell("%batch attach {first} $frame --wait")
    assert (ip_sim.user_ns["again"]["x_status"] == "succeeded").all()
    # Inside a function, its own names count, as for any line magic.
    ip_sim.run_cell("def status_of(job):\n    get_ipython().run_line_magic('batch', 'status $job')")
    capsys.readouterr()
    ip_sim.run_cell("status_of(first)")
    assert capsys.readouterr().out.startswith(f"{job_id}: done")


def test_labels_from_a_list_name_give_a_categorical(ip_sim: Any) -> None:
    df = reviews()
    ip_sim.user_ns.update(df=df, moods=["positive", "negative", "neutral"])
    ip_sim.run_cell("%%batch df --out mood --labels moods --wait\nSentiment of: {{ review }}")
    assert isinstance(df["mood"].dtype, pd.CategoricalDtype)
    assert list(df["mood"].cat.categories) == ["positive", "negative", "neutral"]
    assert df["mood"].notna().all()


def test_labels_inline(ip_sim: Any) -> None:
    df = reviews()
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df.review --out mood -l good,bad --wait\nIs this good or bad?")
    assert set(df["mood"].dropna()) <= {"good", "bad"}


def test_schema_by_name(ip_sim: Any) -> None:
    df = reviews()
    schema = {
        "type": "object",
        "properties": {
            "topic": {"type": "string", "enum": ["quality", "price", "delivery"]},
            "score": {"type": "integer"},
        },
        "required": ["topic", "score"],
        "additionalProperties": False,
    }
    ip_sim.user_ns.update(df=df, fields=schema)
    ip_sim.run_cell("%%batch df --out info --schema fields --wait\nExtract from: {{ review }}")
    assert (df["info_status"] == "succeeded").all()
    assert {"info_topic", "info_score"} <= set(df.columns)


def test_json_flag(ip_sim: Any) -> None:
    df = reviews()
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df --out j --json --wait\nAnswer in JSON with keys a and b: {{ review }}")
    assert "j_status" in df.columns


def test_dry_run_sends_nothing(ip_sim: Any, simulator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    df = reviews()
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df --out x --dry-run\n{{ review }}")
    # Only the free Models API was asked what the model accepts.
    assert [r.endpoint for r in simulator.requests] == ["model"]
    assert "x" not in df.columns
    assert journal().job_ids() == []
    shown = capsys.readouterr().out
    assert "Dry run: nothing was sent" in shown and "requests:  4" in shown


def test_dry_run_with_exact_tokens_counts_through_the_api(
    ip_sim: Any, simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x --dry-run --exact-tokens\n{{ review }}")
    endpoints = {r.endpoint for r in simulator.requests}
    assert endpoints == {"model", "count_tokens"}  # asked and counted, nothing created
    assert "count_tokens" in capsys.readouterr().out
    with pytest.raises(UsageError, match="--exact-tokens goes with --dry-run"):
        ip_sim.run_cell("%%batch df --out x --exact-tokens\n{{ review }}")


def test_index_levels_in_the_template(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    df = reviews().set_index(pd.Index(["kettle", "toaster", "lamp", "fan"], name="product"))
    ip.user_ns["df"] = df
    ip.run_cell("%%batch df --out x --dry-run\nA review of the {{ product }}: {{ review }}")
    assert "A review of the kettle: great product" in capsys.readouterr().out
    ip.user_ns["df"] = df.reset_index(drop=True)
    with pytest.raises(UsageError, match=r"The index has no name; .* df.index.name = 'product'"):
        ip.run_cell("%%batch df --out x --dry-run\nA review of the {{ product }}: {{ review }}")


def test_max_cost_refuses_before_sending(ip_sim: Any, simulator: Any) -> None:
    ip_sim.user_ns["df"] = reviews()
    with pytest.raises(UsageError, match=r"Not sent: .* max_cost is \$0\.0000"):
        ip_sim.run_cell("%%batch df --out x --max-cost 0.00000001\n{{ review }}")
    assert creates(simulator) == 0


def test_max_cost_default_from_config(ip_sim: Any, simulator: Any) -> None:
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%config BatchMagic.max_cost = 0.00000001")
    with pytest.raises(UsageError, match="Not sent"):
        ip_sim.run_cell("%%batch df --out x\n{{ review }}")
    assert creates(simulator) == 0


def test_pilot(ip_sim: Any, simulator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    df = reviews()
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df --out x --pilot 2\n{{ review }}")
    assert "x" not in df.columns
    assert creates(simulator) == 0
    assert sum(1 for r in simulator.requests if r.endpoint == "messages") == 2
    assert "Pilot: 2 rows" in capsys.readouterr().out


# -- usage errors -------------------------------------------------------------------
def test_unknown_dataframe_suggests_close_names(ip: Any) -> None:
    ip.user_ns.update(reviews_df=reviews(), other=reviews())
    with pytest.raises(UsageError, match=r"No DataFrame named 'review_df'\. Did you mean 'reviews_df'"):
        ip.run_cell("%%batch review_df --out x\n{{ review }}")


def test_no_dataframe_at_all(ip: Any) -> None:
    with pytest.raises(UsageError, match="There is no DataFrame in the notebook yet"):
        ip.run_cell("%%batch df\n{{ review }}")


def test_not_a_dataframe(ip: Any) -> None:
    ip.user_ns["s"] = pd.Series(["a"])
    with pytest.raises(UsageError, match=r"'s' is a Series, not a DataFrame\. Use s\.to_frame\(\)"):
        ip.run_cell("%%batch s\n{{ x }}")


def test_unknown_column(ip: Any) -> None:
    ip.user_ns["df"] = reviews()
    with pytest.raises(UsageError, match=r"'df' has no column 'reveiw'\. Did you mean 'review'\?"):
        ip.run_cell("%%batch df.reveiw\nSummarise:")


def test_bad_flag_suggests_the_right_one(ip: Any) -> None:
    ip.user_ns["df"] = reviews()
    with pytest.raises(UsageError, match=r"unrecognized arguments: --wiat \(did you mean --wait"):
        ip.run_cell("%%batch df --wiat\n{{ review }}")
    with pytest.raises(UsageError, match="argument --max-tokens: invalid int value: 'lots'"):
        ip.run_cell("%%batch df --max-tokens lots\n{{ review }}")


def test_usage_errors_print_without_a_traceback(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.user_ns["df"] = reviews()
    with pytest.raises(UsageError):
        ip.run_cell("%%batch dff\n{{ review }}")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "UsageError: No DataFrame named 'dff'" in text
    assert "Traceback" not in text


def test_template_errors_are_usage_errors(ip: Any) -> None:
    ip.user_ns["df"] = reviews()
    with pytest.raises(UsageError, match="'revue', which is neither a column"):
        ip.run_cell("%%batch df\n{{ revue }}")
    with pytest.raises(UsageError, match=r"no \{\{ column \}\} placeholder"):
        ip.run_cell("%%batch df\nSame prompt for every row")
    with pytest.raises(UsageError, match="name the DataFrame alone"):
        ip.run_cell("%%batch df.review\n{{ review }}")
    with pytest.raises(UsageError, match="Name the DataFrame"):
        ip.run_cell("%%batch --out x\n{{ review }}")
    with pytest.raises(UsageError, match="either --labels or --schema"):
        ip.run_cell("%%batch df --labels a,b --schema s\n{{ review }}")
    with pytest.raises(UsageError, match="--labels good: give at least two labels"):
        ip.run_cell("%%batch df --labels good\n{{ review }}")
    with pytest.raises(UsageError, match="--schema nothere: no variable 'nothere'"):
        ip.run_cell("%%batch df --schema nothere\n{{ review }}")
    with pytest.raises(UsageError, match="check the quotes"):
        ip.run_cell("%%batch df --system 'open\n{{ review }}")


def test_no_key_says_what_to_do(ip: Any) -> None:
    ip.user_ns["df"] = reviews()
    with pytest.raises(UsageError) as info:
        ip.run_cell("%%batch df --out x\n{{ review }}")
    message = str(info.value)
    assert "No Anthropic API key" in message
    assert "ANTHROPIC_API_KEY" in message and "%batch simulator start" in message
    assert journal().job_ids() == []  # nothing written before the key is found


# -- help ---------------------------------------------------------------------------
def test_help_lists_the_options(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    doc = ip.find_cell_magic("batch").__doc__
    ip.run_cell("%%batch?")
    shown = capsys.readouterr().out
    for text in (doc, shown):
        for option in (
            "--out", "--model", "--system", "--max-tokens", "--effort", "--wait", "--force",
            "--chunk-size", "--labels", "--schema", "--json", "--pilot", "--dry-run", "--max-cost",
            "%batch list", "%batch status", "%batch attach", "%batch cancel", "%batch retry",
            "%batch simulator start",
        ):
            assert option in text, option
    assert "%%batch [--out OUT]" in shown
    # The usage starts the help (no reST '::' before it), its lines aligned under the first.
    assert "::" not in shown
    docstring = shown.split("Docstring:", 1)[1].lstrip("\n").splitlines()
    assert docstring[0].startswith("%%batch [--out OUT]")
    assert docstring[1].startswith(" " * len("%%batch ") + "[")


def test_line_help_lists_the_line_commands(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("%batch?")
    shown = capsys.readouterr().out
    assert "IPython expands ``$name`` and ``{name}``" in shown
    for command in ("%batch list", "%batch attach JOB [DF] [--wait]", "%batch retry", "%batch simulator"):
        assert command in shown, command


def test_unknown_line_command(ip: Any) -> None:
    with pytest.raises(UsageError, match=r"Unknown command 'stauts'\. Did you mean %batch status\?"):
        ip.run_cell("%batch stauts")
    with pytest.raises(UsageError, match="%batch needs a command"):
        ip.run_cell("%batch")
    with pytest.raises(UsageError, match=r"%batch attach: the following arguments are required: JOB"):
        ip.run_cell("%batch attach")


def test_help_of_one_line_command(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("%batch help retry")
    out = capsys.readouterr().out
    assert out.startswith("%batch retry JOB [DF] [--wait]\n")
    assert "JOB         a job id, a unique prefix of one, or last" in out
    assert "--wait, -w  block until the columns are merged" in out
    with pytest.raises(UsageError, match="no command 'retyr'"):
        ip.run_cell("%batch help retyr")
    # A repeatable flag reads as one value per flag, and its help says it repeats.
    ip.run_cell("%batch help simulator")
    out = capsys.readouterr().out
    assert "[--error-rate CATEGORY=F]" in out and "CATEGORY=F ..." not in out
    assert "repeat the flag for more categories" in " ".join(out.split())


def test_dry_run_warns_when_out_would_overwrite_an_input(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.user_ns["df"] = reviews()
    ip.run_cell("%%batch df --out review --dry-run\nSummarise: {{ review }}")
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        "warning: The real run would refuse: out='review' would overwrite the column(s) 'review' of the "
        "DataFrame (an input of the template)" in shown
    )
    assert "Choose another out name (--out NAME)" in shown


def test_batch_wait_sees_a_job_the_python_api_started(ip_sim: Any, simulator: Any) -> None:
    """One registry of jobs in a kernel: a job from batch_magic.submit() in a cell is
    what `%batch wait` (and `last`) finds."""
    simulator.configure(processing_time=0.5)
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("import batch_magic\njob = batch_magic.submit(df, '{{ review }}', out='x')")
    job = ip_sim.user_ns["job"]
    assert not job.done
    ip_sim.run_cell("%batch wait")
    assert job.done and ip_sim.user_ns["df"]["x_status"].eq("succeeded").all()
    assert ip_sim.run_cell("%batch job").result is job


# -- line commands ------------------------------------------------------------------
def test_list_and_status(ip_sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip_sim.run_cell("%batch status")
    assert "No jobs yet" in capsys.readouterr().out
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x --wait\n{{ review }}")
    job = only_job(ip_sim)
    listing = ip_sim.run_cell("%batch list").result
    assert list(listing.frame["job_id"]) == [job.id]
    assert listing.frame["state"].iloc[0] == "done" and bool(listing.frame["simulated"].iloc[0])
    capsys.readouterr()
    ip_sim.run_cell(f"%batch status {job.id[:17]}")
    out = capsys.readouterr().out
    assert out.startswith(f"{job.id}: done · 1/1 batches")
    ip_sim.run_cell("got = %batch job")
    assert ip_sim.user_ns["got"] is job


def test_list_is_compact_with_short_ids_that_attach(ip_sim: Any) -> None:
    ip_sim.user_ns["df"] = reviews()
    for out in ("x", "y"):
        ip_sim.run_cell(f"%%batch df --out {out} --wait --model claude-sonnet-4-5\n{{{{ review }}}}")
    listing = ip_sim.run_cell("%batch list").result
    table = listing.table()
    assert list(table.columns) == ["job", "state", "out", "model", "rows", "cost", "simulated"]
    full = list(listing.frame["job_id"])
    for short, job_id in zip(table["job"], full):
        assert len(short) < len(job_id) or short == job_id
        assert journal().resolve(short) == job_id  # what %batch attach takes
    assert set(table["model"]) == {"claude-sonnet-4-5"} and set(table["rows"]) == {"4"}
    assert all(c == "<$0.01" or c.startswith("$") for c in table["cost"])
    text = repr(listing)
    assert "\n" in text and len(text.splitlines()) == 3  # a header and one line a job
    html = listing._repr_html_()
    assert "$" not in html.replace("<span>&#36;</span>", "")
    assert "white-space:nowrap" in html and html.count("class='bm-nowrap'") == 2 * 7
    forget_session_jobs()
    ip_sim.run_cell(f"%batch attach {table['job'].iloc[0]} df --wait")  # a short id works


def test_status_of_a_job_from_the_journal_needs_no_key(ip_sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x --wait\n{{ review }}")
    job_id = only_job(ip_sim).id
    forget_session_jobs()  # as in a new session
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    capsys.readouterr()
    ip_sim.run_cell("%batch status")
    assert f"{job_id}: done" in capsys.readouterr().out


def test_attach_merges_into_another_dataframe(ip_sim: Any) -> None:
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x --wait\n{{ review }}")
    job_id = only_job(ip_sim).id
    forget_session_jobs()
    fresh = reviews()
    ip_sim.user_ns["df2"] = fresh
    ip_sim.run_cell(f"%batch attach {job_id} df2 --wait")
    assert (fresh["x_status"] == "succeeded").all()
    assert fresh["x"].tolist() == ip_sim.user_ns["df"]["x"].tolist()
    with pytest.raises(UsageError, match="No job 'nope'"):
        ip_sim.run_cell("%batch attach nope df2")


def test_cancel(ip_sim: Any, simulator: Any) -> None:
    simulator.configure(processing_time=60.0)
    df = reviews()
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df --out x\n{{ review }}")
    job = only_job(ip_sim)
    deadline = time.monotonic() + 10
    while job.status.batches_submitted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    ip_sim.run_cell(f"%batch cancel {job.id}")
    ip_sim.run_cell("%batch wait --timeout 20")
    assert job.status.state == "canceled"
    assert (df["x_status"] == "canceled").all()
    assert any(r.endpoint == "cancel" for r in simulator.requests)


def test_retry_resends_only_the_failed_rows(ip_sim: Any, simulator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    simulator.configure(error_rates={"overloaded_error": 0.5})
    ip_sim.run_cell("%config BatchMagic.max_attempts = 1")  # no automatic retry: leave failures
    df = pd.DataFrame({"text": [f"ticket number {i}" for i in range(40)]}, index=range(100, 140))
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df --out x --wait\nRoute: {{ text }}")
    first = only_job(ip_sim)
    failed = df["x_status"] == "errored"
    assert 0 < failed.sum() < len(df)
    kept = df.loc[~failed, "x"].copy()
    simulator.configure(error_rates={})
    capsys.readouterr()
    ip_sim.run_cell(f"%batch retry {first.id} --wait")
    assert f"retrying {int(failed.sum())} rows of job {first.id}" in capsys.readouterr().out
    assert (df["x_status"] == "succeeded").all()
    assert df["x"].notna().all()
    pd.testing.assert_series_equal(df.loc[~failed, "x"], kept)  # the others untouched
    retry_job = next(j for j in magic_instance(ip_sim)._session_jobs() if j is not first)
    assert retry_job.record.n_rows == int(failed.sum())
    assert isinstance(df["x_status"].dtype, pd.CategoricalDtype)
    capsys.readouterr()
    ip_sim.run_cell(f"%batch retry {retry_job.id}")
    assert "nothing to retry" in capsys.readouterr().out


def test_retry_last_works_any_number_of_times_over_duplicate_labels(
    ip_sim: Any, simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``last`` is the previous retry job after the first retry: retrying it over the whole
    frame retries the rows of the job the frame holds, however its labels repeat."""
    simulator.configure(error_rates={"overloaded_error": 0.5})
    ip_sim.run_cell("%config BatchMagic.max_attempts = 1")  # no automatic retry: leave failures
    df = pd.DataFrame({"text": [f"ticket number {i}" for i in range(40)]}, index=list("ab") * 20)
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df --out x --wait\nRoute: {{ text }}")
    first = only_job(ip_sim)
    failed = (df["x_status"] == "errored").to_numpy()
    assert 0 < failed.sum() < len(df)
    kept = df.loc[~failed, "x"].copy()

    simulator.configure(error_rates={"overloaded_error": 1.0})  # every retried row fails again
    retries = []
    for _ in range(2):
        capsys.readouterr()
        ip_sim.run_cell("%batch retry last df --wait")
        job = magic_instance(ip_sim)._find("last")
        assert job is not None and job.id not in [first.id, *retries]
        assert f"Job {job.id}: retrying {int(failed.sum())} rows of job" in capsys.readouterr().out
        retries.append(job.id)
        assert ((df["x_status"] == "errored").to_numpy() == failed).all()

    simulator.configure(error_rates={})
    ip_sim.run_cell("%batch retry last df --wait")
    assert (df["x_status"] == "succeeded").all() and df["x"].notna().all()
    pd.testing.assert_series_equal(df.loc[~failed, "x"], kept)  # the others untouched
    assert len(df) == 40 and list(df.index) == list("ab") * 20
    capsys.readouterr()
    ip_sim.run_cell("%batch retry last df")
    assert "nothing to retry" in capsys.readouterr().out


def test_retry_needs_an_ended_job_and_a_dataframe(ip_sim: Any, simulator: Any) -> None:
    simulator.configure(processing_time=60.0)
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x\n{{ review }}")
    job = only_job(ip_sim)
    with pytest.raises(UsageError, match="retry its failed rows once it has ended"):
        ip_sim.run_cell(f"%batch retry {job.id}")
    ip_sim.run_cell(f"%batch cancel {job.id}")
    ip_sim.run_cell("%batch wait --timeout 20")
    forget_session_jobs()
    with pytest.raises(UsageError, match="Which DataFrame"):
        ip_sim.run_cell(f"%batch retry {job.id}")


def test_embedded_simulator(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("%batch simulator start --processing-time 0 --error-rate overloaded_error=0")
    magic = magic_instance(ip)
    assert magic.simulator is not None and magic.simulator.running
    assert "Simulator running at http://127.0.0.1:" in capsys.readouterr().out
    df = reviews()
    ip.user_ns["df"] = df
    ip.run_cell("%%batch df --out x --wait\n{{ review }}")  # no key needed
    assert (df["x_status"] == "succeeded").all()
    job = only_job(ip)
    assert job.status.simulated
    assert "SIMULATED" in capsys.readouterr().out
    ip.run_cell("%batch simulator status")
    assert "its batches are kept in" in capsys.readouterr().out
    ip.run_cell("%batch simulator stop")
    assert magic.simulator is None
    ip.run_cell("%batch simulator status")
    assert "No simulator is running" in capsys.readouterr().out
    with pytest.raises(UsageError, match="--error-rate oops: write CATEGORY=FRACTION"):
        ip.run_cell("%batch simulator start --error-rate oops")


# -- configuration --------------------------------------------------------------------
def test_config_magic_sets_the_defaults(ip_sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip_sim.run_cell("%config BatchMagic")
    listing = capsys.readouterr().out
    for trait in ("model", "max_tokens", "journal_dir", "max_in_flight", "max_cost", "poll_interval_min"):
        assert f"BatchMagic.{trait}" in listing
    ip_sim.run_cell('%config BatchMagic.model = "claude-sonnet-4-5"')
    ip_sim.run_cell("%config BatchMagic.max_tokens = 64")
    assert magic_instance(ip_sim).model == "claude-sonnet-4-5"
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x --wait\n{{ review }}")
    options = only_job(ip_sim).record.options
    assert options.model == "claude-sonnet-4-5" and options.max_tokens == 64
    ip_sim.run_cell("%%batch df --out y --wait --model claude-haiku-4-5\n{{ review }}")
    models = {j.record.options.model for j in magic_instance(ip_sim)._session_jobs()}
    assert models == {"claude-sonnet-4-5", "claude-haiku-4-5"}


def test_journal_dir_from_config(ip_sim: Any, tmp_path: Any) -> None:
    where = tmp_path / "elsewhere"
    ip_sim.run_cell(f'%config BatchMagic.journal_dir = "{where}"')
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x --wait\n{{ review }}")
    assert Journal(where).job_ids() == [only_job(ip_sim).id]


def test_pyproject_defaults_and_typo_suggestion(ip: Any, tmp_path: Any) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "notebooks"\n\n'
        "[tool.batch_magic]\n"
        'model = "claude-opus-4-1"\n'
        "maxtokens = 99\n"
        "max_cost = 2.5\n"
        'max_in_flight = "many"\n'
    )
    ip.run_cell("%unload_ext batch_magic")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ip.run_cell("%load_ext batch_magic")
    messages = [str(w.message) for w in caught]
    assert any("Unknown key 'maxtokens'" in m and "did you mean 'max_tokens'?" in m for m in messages), messages
    assert any("max_in_flight = 'many'" in m for m in messages), messages
    magic = magic_instance(ip)
    assert magic.model == "claude-opus-4-1"
    assert magic.max_cost == 2.5
    assert magic.max_in_flight == 4


def test_config_in_ipython_wins_over_pyproject(ip: Any, tmp_path: Any) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.batch_magic]\nmodel = "claude-opus-4-1"\nmax_tokens = 10\n')
    ip.run_cell("%unload_ext batch_magic")
    ip.config.BatchMagic.model = "claude-sonnet-4-5"
    try:
        ip.run_cell("%load_ext batch_magic")
        magic = magic_instance(ip)
        assert magic.model == "claude-sonnet-4-5"
        assert magic.max_tokens == 10
    finally:
        del ip.config.BatchMagic["model"]


def test_pyproject_of_the_project_above_the_notebooks_folder(ip: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """A notebook in project/notebooks/ranking/ takes project/pyproject.toml, as jupysql
    does; the search stops at a repository's root."""
    project = tmp_path / "project"
    notebooks = project / "notebooks" / "ranking"
    notebooks.mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.batch_magic]\nmax_tokens = 77\n')
    monkeypatch.chdir(notebooks)
    ip.run_cell("%unload_ext batch_magic")
    ip.run_cell("%load_ext batch_magic")
    assert magic_instance(ip).max_tokens == 77
    # A repository inside it, without a pyproject.toml of its own: nothing above it counts.
    repo = notebooks / "course"
    (repo / ".git").mkdir(parents=True)
    (repo / "week1").mkdir()
    monkeypatch.chdir(repo / "week1")
    ip.run_cell("%unload_ext batch_magic")
    ip.run_cell("%load_ext batch_magic")
    assert magic_instance(ip).max_tokens is None


def test_no_pyproject_is_fine(ip: Any) -> None:
    from batch_magic.config import apply_to

    assert apply_to(magic_instance(ip)) == {}


def test_cancel_without_a_kernel_loop_takes_effect_before_the_next_poll(ip_sim: Any, simulator: Any) -> None:
    simulator.configure(processing_time=60.0)
    ip_sim.run_cell("%config BatchMagic.poll_interval_min = 30")
    ip_sim.run_cell("%config BatchMagic.poll_interval_max = 30")
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out x\n{{ review }}")
    job = only_job(ip_sim)
    deadline = time.monotonic() + 10
    while job.status.state != "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the driver is now in its 30 s sleep between polls
    ip_sim.run_cell(f"%batch cancel {job.id}")
    ip_sim.run_cell("%batch wait --timeout 5")
    assert job.status.state == "canceled"


def test_a_failing_job_is_shown_and_wait_raises_a_usage_error(
    ip_sim: Any, simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator.add_fault("create", 400, message="model: bad model name")
    df = reviews()
    ip_sim.user_ns["df"] = df
    with pytest.raises(UsageError, match="Creating a batch was refused: 400"):
        ip_sim.run_cell("%%batch df --out x --wait\n{{ review }}")
    out = capsys.readouterr().out
    assert "failed · 0/1 batches" in out
    assert "error: Creating a batch was refused: 400 invalid_request_error: model: bad model name" in out
    assert only_job(ip_sim).status.state == "failed"


def test_dataframe_reached_through_attributes(ip_sim: Any) -> None:
    from types import SimpleNamespace

    data = SimpleNamespace(train=reviews())
    ip_sim.user_ns["data"] = data
    ip_sim.run_cell("%%batch data.train.review --out x --wait\nTopic:")
    assert (data.train["x_status"] == "succeeded").all()


def test_retry_in_a_new_session_merges_the_job_first(ip_sim: Any, simulator: Any) -> None:
    simulator.configure(error_rates={"overloaded_error": 0.5})
    ip_sim.run_cell("%config BatchMagic.max_attempts = 1")
    ip_sim.user_ns["df"] = pd.DataFrame({"text": [f"ticket number {i}" for i in range(30)]})
    ip_sim.run_cell("%%batch df --out x --wait\nRoute: {{ text }}")
    job_id = only_job(ip_sim).id
    assert (ip_sim.user_ns["df"]["x_status"] == "errored").any()
    forget_session_jobs()  # as after a restart
    simulator.configure(error_rates={})
    fresh = pd.DataFrame({"text": [f"ticket number {i}" for i in range(30)]})
    ip_sim.user_ns["again"] = fresh
    ip_sim.run_cell(f"%batch retry {job_id} again --wait")
    assert (fresh["x_status"] == "succeeded").all()
