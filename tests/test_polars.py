"""Polars frames in and out, against the simulator over HTTP: every feature as on pandas,
the answers back as a new frame of Polars types, rows found again by key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pl = pytest.importorskip("polars")

import batch_magic as bm  # noqa: E402
from _jobs import FAST, fast  # noqa: E402
from batch_magic.errors import (  # noqa: E402
    BudgetExceededError,
    ConfigError,
    MergeError,
    PlanError,
    TemplateError,
)
from batch_magic.journal import Journal  # noqa: E402
from batch_magic.simulator.schema import Cues, fake_value  # noqa: E402
from batch_magic.states import RowStatus  # noqa: E402

SENTIMENTS = ["positive", "negative", "neutral"]
STATUS = pl.Enum([str(s) for s in RowStatus])
SRC = Path(__file__).resolve().parent.parent / "src"

TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "shipping", "technical", "account", "returns"]},
        "urgent": {"type": "boolean"},
        "order_number": {"type": ["string", "null"]},
        "items": {"type": "integer", "minimum": 0},
        "confidence": {"type": "number"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "customer": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    },
    "required": ["category", "urgent", "items", "confidence", "keywords", "customer"],
}


def submit(frame: Any, template: str, simulator: Any, journal: Journal, **kwargs: Any) -> Any:
    kwargs.setdefault("settings", FAST)
    kwargs.setdefault("max_tokens", 200)
    return bm.submit(frame, template, client=simulator.client(max_retries=0), journal=journal, **kwargs)


def tickets() -> Any:
    """The bundled tickets as a Polars frame (as a Polars user would load them)."""
    return pl.from_pandas(bm.load_tickets())


def reviews(n: int = 12) -> Any:
    texts = [f"review {i}: {'great value' if i % 2 else 'broken and late'}" for i in range(n)]
    texts[3] = None  # skipped: missing
    texts[4] = "   "  # skipped: blank
    texts[6] = texts[5]  # deduplicated
    stars = [i % 5 for i in range(n)]
    stars[6] = stars[5]
    return pl.DataFrame({"id": [f"R{i:03d}" for i in range(n)], "text": texts, "stars": stars})


# -- in and out ---------------------------------------------------------------------------------
def test_a_text_job_gives_a_new_frame_with_typed_columns_and_leaves_the_given_one_alone(simulator, journal):
    frame = reviews()
    job = submit(frame, "Summarise ({{ stars }} stars): {{ text }}", simulator, journal, out="summary")
    out = job.wait(60)
    assert isinstance(out, pl.DataFrame) and out is job.result() and out is not frame
    assert frame.columns == ["id", "text", "stars"]  # a Polars frame is never changed
    assert out.select(frame.columns).equals(frame)  # the user's columns, as they were
    assert out.schema["summary"] == pl.String
    assert out.schema["summary_status"] == STATUS
    for name in ("summary_input_tokens", "summary_output_tokens", "summary_thinking_tokens"):
        assert out.schema[name] == pl.Int64
    status = out["summary_status"].to_list()
    assert status[3] == status[4] == "skipped"
    assert out["summary_error"][3] == "text is missing"
    assert all(s == "succeeded" for i, s in enumerate(status) if i not in (3, 4))
    # Each answer in its own row: the fake model echoes the prompt's words.
    for i in (0, 1, 5, 6, 11):
        assert out["text"][i].split(":")[0] in out["summary"][i]
    assert job.status.n_deduplicated == 1
    assert out["summary_input_tokens"][3] is None and out["summary_input_tokens"][0] > 0


def test_a_template_name_that_is_not_a_column_is_refused_naming_the_columns(simulator, journal):
    with pytest.raises(TemplateError, match=r"'txt'.*Did you mean 'text'"):
        submit(reviews(), "{{ txt }}", simulator, journal)
    assert journal.job_ids() == []


def test_only_the_template_columns_are_read(simulator, journal):
    # A column of Python objects that could not even be turned into Arrow is not touched.
    frame = reviews().with_columns(pl.Series("blob", [object() for _ in range(12)], dtype=pl.Object))
    out = submit(frame, "{{ text }}", simulator, journal).wait(60)
    assert out.schema["blob"] == pl.Object and out["answer_status"][0] == "succeeded"


def test_labels_are_an_enum_of_exactly_the_labels_and_an_unfit_answer_keeps_its_text(simulator, journal):
    def responder(params: dict[str, Any]) -> str:
        text = params["messages"][-1]["content"]
        if "review 7" in text:
            return "Hard to say."
        return json.dumps(fake_value(params["output_config"]["format"]["schema"], Cues(text)))

    simulator.configure(responder=responder)
    out = submit(reviews(), "Sentiment: {{ text }}", simulator, journal, out="s", labels=SENTIMENTS).wait(60)
    assert out.schema["s"] == pl.Enum(SENTIMENTS)
    assert set(out["s"].drop_nulls().to_list()) <= set(SENTIMENTS)
    assert out["s_status"][7] == "invalid" and out["s"][7] is None
    assert out["s_raw"][7] == "Hard to say." and out.schema["s_raw"] == pl.String
    assert out.filter(pl.col("s_status") == "succeeded")["s"].null_count() == 0


def test_schema_fields_become_polars_types_nested_ones_struct_and_list(simulator, journal):
    frame = tickets().head(30)
    out = submit(frame, "Extract from this ticket: {{ text }}", simulator, journal, out="t",
                 schema=TICKET_SCHEMA).wait(60)
    schema = out.schema
    assert schema["t"] == pl.String  # the answer's JSON text
    assert schema["t_category"] == pl.Enum(["billing", "shipping", "technical", "account", "returns"])
    assert schema["t_urgent"] == pl.Boolean
    assert schema["t_order_number"] == pl.String
    assert schema["t_items"] == pl.Int64
    assert schema["t_confidence"] == pl.Float64
    assert schema["t_keywords"] == pl.List(pl.String)
    assert isinstance(schema["t_customer"], pl.Struct) and schema["t_customer"].to_schema() == {"name": pl.String}
    answered = out.filter(pl.col("t_status") == "succeeded")
    assert answered.height == frame["text"].drop_nulls().len()
    assert answered["t_items"].min() >= 0


def test_images_in_a_polars_column_are_uploaded_once_and_answered(simulator, journal):
    from batch_magic.datasets import COLOURS

    products = pl.from_pandas(bm.load_products())
    out = submit(products, "{{ image(photo) }} The main colour?", simulator, journal, out="guess",
                 labels=list(COLOURS)).wait(60)
    assert out.schema["guess"] == pl.Enum(list(COLOURS))
    assert (out["guess"].cast(pl.String) == out["colour"].cast(pl.String)).all()
    assert sum(1 for r in simulator.requests if r.endpoint == "file_upload") == products["photo"].n_unique()


# -- before anything is spent ------------------------------------------------------------------
def test_a_dry_run_plans_a_polars_frame_and_sends_nothing(simulator):
    prepared = bm.dry_run(reviews(), "{{ text }}", labels=SENTIMENTS, key="id", client=simulator.client())
    summary = prepared.summary()
    assert (summary["rows"], summary["requests"], summary["skipped"], summary["deduplicated"]) == (12, 9, 2, 1)
    assert prepared.keys.column_names == ["id"]
    assert not [r for r in simulator.requests if r.endpoint in ("create", "count_tokens")]


def test_a_pilot_answers_sample_rows_of_a_polars_frame(simulator):
    result = bm.run_pilot(reviews(), "{{ text }}", n=3, labels=SENTIMENTS, client=simulator.client())
    assert len(result.frame) == 3
    assert set(result.frame["status"]) == {"succeeded"}
    assert set(result.frame["row"]) <= set(range(12))  # rows by their position in the frame


def test_max_cost_refuses_a_polars_job_before_anything_exists(simulator, journal):
    with pytest.raises(BudgetExceededError, match="max_cost"):
        submit(reviews(), "{{ text }}", simulator, journal, max_cost=1e-9)
    assert journal.job_ids() == [] and not simulator.batch_ids()


@pytest.mark.parametrize(
    "key, fragment",
    [
        ("nope", "no column 'nope'"),
        ("stars,nope", "no column 'nope'"),
        ("flag", "share a key"),
        ("maybe", "missing values"),
        ("", "empty column"),
        ("id,id", "names a column twice"),
    ],
)
def test_a_key_that_cannot_find_rows_again_is_refused_up_front(simulator, journal, key, fragment):
    frame = reviews().with_columns(
        flag=pl.Series([i % 2 == 0 for i in range(12)]), maybe=pl.Series([1, None] * 6)
    )
    with pytest.raises(ConfigError, match=fragment):
        submit(frame, "{{ text }}", simulator, journal, key=key)
    assert journal.job_ids() == [] and not simulator.batch_ids()


def test_a_key_with_a_pandas_frame_is_refused_saying_the_index_does_that(simulator, journal):
    with pytest.raises(ConfigError, match="index"):
        submit(reviews().to_pandas(), "{{ text }}", simulator, journal, key="id")


# -- row identity: attach, by key and by position ---------------------------------------------------
def test_attach_by_key_into_a_reordered_filtered_fresh_load(simulator, journal, tmp_path):
    path = tmp_path / "reviews.parquet"
    reviews().write_parquet(path)
    job = submit(pl.read_parquet(path), "{{ text }}", simulator, journal, out="a", key="id",
                 labels=SENTIMENTS)
    first = job.wait(60)
    # A restart: a fresh journal object, a fresh load, filtered and reordered.
    fresh = pl.read_parquet(path).filter(pl.col("id") != "R008").sort("id", descending=True)
    again = bm.attach(job.id, fresh, journal=Journal(journal.root)).wait(30)
    assert again.height == 11 and again["id"].to_list() == fresh["id"].to_list()
    expected = first.select("id", "a", "a_status").filter(pl.col("id") != "R008")
    assert again.select("id", "a", "a_status").sort("id").equals(expected.sort("id"))
    assert again.schema["a"] == pl.Enum(SENTIMENTS) and again.schema["a_status"] == STATUS
    # A row the job never saw gets no answer (its status is missing), not another row's.
    grown = pl.concat([fresh, pl.DataFrame({"id": ["NEW"], "text": ["new"], "stars": [99]})])
    merged = bm.attach(job.id, grown, journal=Journal(journal.root)).wait(30)
    assert merged.row(-1, named=True)["a_status"] is None
    # Without a frame: the key columns and the new columns.
    alone = bm.attach(job.id, journal=Journal(journal.root)).wait(30)
    assert alone.columns[0] == "id" and alone.height == 12 and alone.schema["a"] == pl.Enum(SENTIMENTS)


def test_attach_by_position_takes_the_same_rows_and_refuses_changed_ones(simulator, journal):
    job = submit(reviews(), "{{ text }}", simulator, journal, out="a")
    first = job.wait(60)
    same = bm.attach(job.id, reviews(), journal=Journal(journal.root)).wait(30)  # a fresh, equal load
    assert same.equals(first)
    for changed, what in (
        (reviews().head(10), "has 10 rows and job"),
        (reviews().reverse(), "rows differ"),
        (reviews().with_columns(pl.col("text").str.to_uppercase()), "rows differ"),
    ):
        with pytest.raises(MergeError, match=what) as caught:
            bm.attach(job.id, changed, journal=Journal(journal.root)).wait(30)
        assert "key=" in str(caught.value) and "kept in the journal" in str(caught.value)


def test_a_fresh_process_attaches_by_key_and_gets_polars_types(simulator, journal, tmp_path):
    path = tmp_path / "reviews.parquet"
    reviews().write_parquet(path)
    job = submit(pl.read_parquet(path), "{{ text }}", simulator, journal, out="a", key=["id"], labels=SENTIMENTS)
    first = job.wait(60)
    script = textwrap.dedent(
        f"""
        import json, polars as pl, batch_magic as bm
        fresh = pl.read_parquet({str(path)!r}).sort("id", descending=True)
        out = bm.attach({job.id!r}, fresh, journal={str(journal.root)!r}).wait(30)
        print(json.dumps({{"schema": {{k: str(v) for k, v in out.schema.items()}},
                          "rows": out.select("id", "a", "a_status").rows()}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["schema"]["a"] == str(pl.Enum(SENTIMENTS)) and seen["schema"]["a_status"] == str(STATUS)
    expected = {row[0]: list(row) for row in first.select("id", "a", "a_status").rows()}
    assert [row[0] for row in seen["rows"]] == [f"R{i:03d}" for i in reversed(range(12))]
    assert all(row == expected[row[0]] for row in seen["rows"])


def test_keys_that_were_tampered_with_are_refused_naming_the_file(simulator, journal):
    from batch_magic.errors import JournalError
    from batch_magic.journal import KEYS_DATA

    job = submit(reviews(), "{{ text }}", simulator, journal, out="a", key="id")
    job.wait(60)
    path = journal.job_file(job.id, KEYS_DATA)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # cut short
    with pytest.raises(JournalError, match=KEYS_DATA):
        bm.attach(job.id, reviews(), journal=Journal(journal.root)).wait(30)
    shorter = pl.DataFrame({"id": ["R000", "R001"]}).to_arrow()
    journal.write_keys(job.id, shorter)  # whole, but not this job's rows
    with pytest.raises(JournalError, match="altered"):
        bm.attach(job.id, reviews(), journal=Journal(journal.root)).wait(30)


# -- retry ------------------------------------------------------------------------------------------
def test_retry_sends_only_the_failed_rows_and_gives_the_whole_frame_back(simulator, journal):
    simulator.configure(error_rates={"overloaded_error": 0.5})
    settings = fast(max_attempts=1)
    frame = pl.DataFrame({"id": list(range(40)), "text": [f"row {i}" for i in range(40)]})
    first = submit(frame, "{{ text }}", simulator, journal, out="a", key="id", labels=SENTIMENTS,
                   settings=settings).wait(60)
    failed = first.filter(pl.col("a_status") == "errored")
    assert 0 < failed.height < 40
    simulator.configure(error_rates={})
    creates = sum(1 for r in simulator.requests if r.endpoint == "create")
    retry = bm.retry_failed("last", first, client=simulator.client(max_retries=0), journal=journal, settings=settings)
    out = retry.wait(60)
    assert retry.status.n_rows == failed.height
    assert sum(1 for r in simulator.requests if r.endpoint == "create") == creates + 1
    assert out.height == 40 and out["id"].to_list() == list(range(40))
    assert (out["a_status"] == "succeeded").all() and out["a"].null_count() == 0
    assert out.schema["a"] == pl.Enum(SENTIMENTS) and out.schema["a_status"] == STATUS
    kept = first.filter(pl.col("a_status") == "succeeded")
    assert out.join(kept.select("id"), on="id").select("a").equals(kept.select("a"))
    assert (first["a_status"] == "errored").sum() == failed.height  # the given frame is unchanged


# -- the magic ----------------------------------------------------------------------------------------
def test_the_magic_rebinds_the_name_to_the_new_frame_and_says_so_once(ip_sim, capsys):
    ip_sim.user_ns["pl_df"] = reviews()
    ip_sim.run_cell("%%batch pl_df --out s --labels positive,negative,neutral --key id --wait\nSentiment: {{ text }}")
    out = ip_sim.user_ns["pl_df"]
    assert isinstance(out, pl.DataFrame) and out.schema["s"] == pl.Enum(SENTIMENTS)
    printed = capsys.readouterr().out
    assert printed.count("pl_df is now a new Polars frame") == 1
    # After a restart, attach by key into a reordered fresh load: that name is rebound.
    ip_sim.user_ns["fresh"] = reviews().sort("id", descending=True)
    ip_sim.run_cell("%batch attach last fresh --wait")
    fresh = ip_sim.user_ns["fresh"]
    assert fresh["id"][0] == "R011" and fresh["s_status"][0] == "succeeded"


def test_importing_batch_magic_and_a_pandas_job_never_import_polars(simulator, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        import anthropic
        import pandas as pd
        import batch_magic as bm
        client = anthropic.Anthropic(api_key="sk-test", base_url={simulator.url!r})
        df = pd.DataFrame({{"text": ["a b", "c d", None]}})
        out = bm.submit(df, "{{{{ text }}}}", client=client, journal={str(tmp_path / "j")!r}, max_tokens=20).wait(60)
        assert out["answer_status"].tolist() == ["succeeded", "succeeded", "skipped"]
        bm.attach("last", journal={str(tmp_path / "j")!r}).wait(30)
        print("polars" in sys.modules)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_the_magic_plans_a_polars_column_form_and_a_dry_run_sends_nothing(ip_sim, simulator, capsys):
    ip_sim.user_ns["pl_df"] = reviews()
    ip_sim.run_cell("%%batch pl_df --out s --labels positive,negative,neutral --key id --dry-run\n{{ text }}")
    assert "Dry run: nothing was sent." in capsys.readouterr().out
    assert not simulator.batch_ids() and ip_sim.user_ns["pl_df"].width == 3
    ip_sim.run_cell("%%batch pl_df.text --out gist --wait\nSum this up.")
    out = ip_sim.user_ns["pl_df"]
    assert out["gist_status"].to_list().count("succeeded") == 10 and out.schema["gist"] == pl.String


# -- a sample, and its answers measured ---------------------------------------------------------
def labelled(n: int = 30) -> Any:
    teams = ["billing", "shipping", "technical"]
    gold = [teams[0] if i % 5 == 0 else teams[1 + i % 2] for i in range(n)]  # billing rarer
    return pl.DataFrame({"id": [f"T{i:03d}" for i in range(n)], "text": [f"ticket {i}" for i in range(n)], "gold": gold})


def test_a_sample_of_a_polars_frame_is_stratified_by_a_column_the_template_does_not_read(simulator, journal):
    frame = labelled()
    job = submit(frame, "Route: {{ text }}", simulator, journal, out="team", labels="billing,shipping,technical",
                 sample=10, seed=4, stratify="gold")
    out = job.wait(60)
    status = out["team_status"].to_list()
    assert status.count("succeeded") == 10 and status.count("not_sent") == 20
    sent = out.filter(pl.col("team_status") == "succeeded")
    # Each gold class has its share of the ten rows: 6 billing of 30 is 2 of 10, 12 and 12 are 4 and 4.
    assert sorted(sent["gold"].value_counts().rows()) == [("billing", 2), ("shipping", 4), ("technical", 4)]
    # The same seed draws the same rows; the full run after it sends only the other 20.
    full = submit(out.select(frame.columns), "Route: {{ text }}", simulator, journal, out="team",
                  labels="billing,shipping,technical").wait(60)
    prompts = [r["params"]["messages"][0]["content"] for b in simulator.batch_ids() for r in simulator.batch_requests(b)]
    assert len(prompts) == 30 and len(set(prompts)) == 30
    # The sample's rows keep the answers the sample got.
    kept = [f for f, s in zip(full["team"].to_list(), status) if s == "succeeded"]
    assert kept == sent["team"].to_list()
    assert full.filter(pl.col("team_status") == "succeeded").height == 30
    with pytest.raises(PlanError, match="'nope' is not a column"):
        submit(frame, "Route: {{ text }}", simulator, journal, out="t2", sample=5, stratify="nope")


def test_evaluate_and_compare_a_polars_frame_read_only_the_columns_they_need(simulator, journal):
    metrics = pytest.importorskip("sklearn.metrics")
    frame = labelled()
    labels = "billing,shipping,technical"
    first = submit(frame, "Route: {{ text }}", simulator, journal, out="team", labels=labels).wait(60)
    both = submit(first, "Which team? {{ text }}", simulator, journal, out="team_v2", labels=labels).wait(60)
    assert isinstance(both, pl.DataFrame)
    report = bm.evaluate(both, "team", gold="gold")
    m = report.metrics
    assert m.rows == m.evaluated == m.answered == 30
    truth, answers = both["gold"].to_list(), both["team"].cast(pl.String).to_list()
    assert m.correct == sum(t == a for t, a in zip(truth, answers))
    assert m.macro_f1 == pytest.approx(metrics.f1_score(truth, answers, average="macro", zero_division=0))
    # The labels' order (the Enum's) is the confusion matrix's.
    assert list(report.confusion.index) == ["billing", "shipping", "technical"]
    # The rows shown are the Polars frame's own rows, its columns as they are.
    assert isinstance(report.disagreements, pl.DataFrame)
    assert report.disagreements.height == 30 - m.correct
    assert report.disagreements.columns[:2] == ["id", "text"] and "gold" in report.disagreements.columns
    assert "Disagreements" in report._repr_html_()
    # The same figures as the same frame in pandas.
    assert bm.evaluate(both.to_pandas(), "team", gold="gold").metrics == m
    c = bm.compare(both, "team", "team_v2", gold="gold")
    assert c.metrics == bm.compare(both.to_pandas(), "team", "team_v2", gold="gold").metrics
    other = both["team_v2"].cast(pl.String).to_list()
    assert c.metrics.agreement.k == sum(x == y for x, y in zip(answers, other))
    assert isinstance(c.differences, pl.DataFrame) and c.differences.height == 30 - c.metrics.agreement.k
    assert "Rows where they differ" in c._repr_html_()


def test_the_loop_in_the_magics_on_a_polars_frame(ip_sim):
    """A sample, its evaluation, a second prompt on the same rows and the comparison, on a
    Polars frame the magic rebinds after each job; the figures read from that new frame."""
    ip_sim.user_ns["notes"] = labelled()
    labels = "billing,shipping,technical"
    sample = "--sample 10 --stratify gold --seed 2"
    ip_sim.run_cell(f"%%batch notes --out team --labels {labels} {sample} --wait\nRoute: {{{{ text }}}}")
    report = ip_sim.run_cell("%batch eval team --gold gold").result
    assert report.metrics.answered == 10 and report.metrics.status_counts["not_sent"] == 20
    assert isinstance(report.disagreements, pl.DataFrame)
    ip_sim.run_cell(f"%%batch notes --out team_v2 --labels {labels} {sample} --wait\nWhich team? {{{{ text }}}}")
    comparison = ip_sim.run_cell("%batch compare notes team team_v2 --gold gold").result
    assert comparison.metrics.both_answered == 10
    named = ip_sim.run_cell("%batch eval notes team_v2 --gold gold").result
    assert named.metrics.answered == 10
    # Each report's cost is the bill of the job that gave the frame it read.
    assert report.metrics.cost is not None and named.metrics.cost is not None
