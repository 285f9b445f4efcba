"""Pilot runs: a few rows through the realtime API, shown side by side, nothing merged."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

import batch_magic as bm
from batch_magic import pricing
from batch_magic.errors import ConfigError, MissingAPIKeyError
from batch_magic.pilot import PilotResult, run_pilot

SENTIMENTS = ["positive", "negative", "neutral"]


def endpoint_calls(simulator, endpoint: str) -> int:
    return sum(1 for r in simulator.requests if r.endpoint == endpoint)


def reviews(n: int = 30) -> pd.DataFrame:
    words = ["I love it", "broken on arrival", "it is fine", "great, thank you", "awful, refund please"]
    texts = [f"{words[i % len(words)]} (order {i})" for i in range(n)]
    texts[3] = None
    texts[7] = texts[6]
    return pd.DataFrame({"review": pd.array(texts, dtype="string")}, index=[f"r{i}" for i in range(n)])


def test_pilot_answers_n_rows_through_messages_and_leaves_everything_else_alone(simulator, sdk_client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a journal would appear
    df = reviews()
    before = df.copy()
    result = run_pilot(df, "Sentiment of: {{ review }}", n=5, client=sdk_client, labels=SENTIMENTS, out="s")
    assert isinstance(result, PilotResult)
    assert endpoint_calls(simulator, "messages") == 5
    # The free Models API once (what the model accepts), then the five realtime calls.
    assert sorted(r.endpoint for r in simulator.requests) == ["messages"] * 5 + ["model"]
    assert simulator.batch_ids() == []
    pd.testing.assert_frame_equal(df, before)  # nothing merged, no column added
    assert list(tmp_path.iterdir()) == []  # nothing written to a journal
    frame = result.frame
    assert len(frame) == 5
    assert (frame["status"] == "succeeded").all()
    assert set(frame["s"]) <= set(SENTIMENTS)
    assert list(frame["s"].cat.categories) == SENTIMENTS
    # Each row shows its own prompt, rendered from that row of the DataFrame.
    for _, row in frame.iterrows():
        assert row["prompt"] == f"Sentiment of: {df.loc[row['row'], 'review']}"
    assert (frame["input_tokens"] > 0).all() and (frame["output_tokens"] > 0).all()


def test_sample_is_distinct_requests_from_sent_rows_and_fixed_by_seed(simulator, sdk_client):
    df = reviews(40)
    a = run_pilot(df, "{{ review }}", n=8, seed=1, client=sdk_client)
    b = run_pilot(df, "{{ review }}", n=8, seed=1, client=sdk_client)
    c = run_pilot(df, "{{ review }}", n=8, seed=2, client=sdk_client)
    assert list(a.frame["row"]) == list(b.frame["row"])
    assert list(a.frame["row"]) != list(c.frame["row"])
    for r in (a, c):
        assert r.frame["prompt"].is_unique  # distinct requests
        assert "r3" not in set(r.frame["row"])  # a skipped row is never sampled
        assert "r7" not in set(r.frame["row"])  # r7 repeats r6's text: its request is r6's
        positions = [df.index.get_loc(x) for x in r.frame["row"]]
        assert positions == sorted(positions)  # shown in DataFrame order
    # More rows asked for than there are requests: every request once.
    small = pd.DataFrame({"review": ["a", "b", "a"]})
    everything = run_pilot(small, "{{ review }}", n=10, client=sdk_client)
    assert sorted(everything.frame["prompt"]) == ["a", "b"]


def test_pilot_calls_run_concurrently_but_never_above_the_cap(simulator, sdk_client):
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(params):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.3)
        with lock:
            state["now"] -= 1
        return "ok"

    simulator.configure(responder=slow)
    df = reviews(20)
    started = time.perf_counter()
    result = run_pilot(df, "{{ review }}", n=6, concurrency=3, client=sdk_client)
    elapsed = time.perf_counter() - started
    assert state["peak"] == 3  # three at once, never more
    # The pilot's wall time is the run's: two rounds of three 0.3 s answers at least.
    assert 2 * 0.3 <= result.wall_time <= elapsed
    assert (result.frame["answer"] == "ok").all()


def test_a_failed_call_is_shown_in_its_row_not_raised(simulator, sdk_client):
    simulator.add_fault("messages", 400, times=1, message="prompt is too long")
    result = run_pilot(reviews(), "{{ review }}", n=4, concurrency=1, client=sdk_client)
    frame = result.frame
    assert list(frame["status"]).count("errored") == 1
    bad = frame[frame["status"] == "errored"].iloc[0]
    assert "400" in bad["error"] and "prompt is too long" in bad["error"]
    assert pd.isna(bad["answer"]) and bad["cost"] == 0
    assert (frame["status"] != "errored").sum() == 3
    assert "prompt is too long" in repr(result) and "prompt is too long" in result._repr_html_()


def test_answers_that_do_not_fit_are_marked_invalid_with_the_reason(simulator, sdk_client):
    simulator.configure(responder=lambda params: "Honestly? Mixed feelings.")
    result = run_pilot(reviews(), "{{ review }}", n=3, client=sdk_client, labels=SENTIMENTS, out="s")
    assert (result.frame["status"] == "invalid").all()
    assert result.frame["s"].isna().all()
    assert result.frame["error"].str.contains("not one of the labels").all()
    assert (result.frame["answer"] == "Honestly? Mixed feelings.").all()


def test_schema_pilot_shows_typed_fields(simulator, sdk_client):
    schema = {
        "type": "object",
        "properties": {"refund": {"type": "boolean"}, "items": {"type": "integer"}, "topic": {"enum": ["billing", "shipping"]}},
        "required": ["refund", "items", "topic"],
    }
    result = run_pilot(bm.load_tickets(), "Ticket: {{ text }}", n=4, client=sdk_client, schema=schema, out="t")
    frame = result.frame
    assert str(frame["t_refund"].dtype) == "boolean"
    assert str(frame["t_items"].dtype) == "Int64"
    assert list(frame["t_topic"].cat.categories) == ["billing", "shipping"]
    assert (frame["status"] == "succeeded").all()
    assert "t" not in frame.columns  # the raw JSON is the answer column already


def test_cost_is_at_the_realtime_price_and_the_display_shows_it(simulator, sdk_client):
    result = run_pilot(reviews(), "Review: {{ review }}", n=5, client=sdk_client, model="claude-haiku-4-5")
    expected = pricing.actual_cost("claude-haiku-4-5", result.usage, batch=False)
    assert result.total_cost == pytest.approx(expected)
    assert result.total_cost == pytest.approx(result.frame["cost"].sum())
    assert result.total_cost > 0
    # The full batch hint: from the plan's estimate and from the pilot's own token use.
    per_request = result.total_cost / 5
    n_requests = result.prepared.plan.n_requests
    assert result.batch_estimate_from_pilot == pytest.approx(per_request * n_requests * 0.5)
    text = repr(result)
    assert "Pilot: 5 rows" in text and "Nothing was merged" in text
    assert "Full batch:" in text and f"{n_requests:,} requests" in text
    for prompt, answer in zip(result.frame["prompt"], result.frame["answer"]):
        assert prompt in text and answer in text
    html = result._repr_html_()
    assert "<table class='bm-table'>" in html and "Full batch:" in html
    assert "&lt;" not in repr(result)


def test_html_display_escapes_prompts_and_answers(simulator, sdk_client):
    simulator.configure(responder=lambda params: "<script>alert(1)</script>")
    df = pd.DataFrame({"t": ["<b>bold</b> & co"]})
    html = run_pilot(df, "{{ t }}", n=1, client=sdk_client)._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html


def test_bad_arguments_and_a_missing_key_are_refused_before_any_call(simulator, monkeypatch):
    df = reviews()
    with pytest.raises(ConfigError, match="n=0"):
        run_pilot(df, "{{ review }}", n=0, client=simulator.client())
    with pytest.raises(ConfigError, match="concurrency"):
        run_pilot(df, "{{ review }}", concurrency=0, client=simulator.client())
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(MissingAPIKeyError):
        run_pilot(df, "{{ review }}")
    assert simulator.requests == []


def test_pilot_is_exported_lazily():
    assert bm.run_pilot is run_pilot


def test_pilot_display_says_simulated_when_answers_are_simulated(simulator):
    import pandas as pd

    from batch_magic.pilot import run_pilot

    result = run_pilot(pd.DataFrame({"t": ["a", "b"]}), "{{ t }}", n=1, client=simulator.client())
    assert result.simulated
    assert "SIMULATED" in repr(result) and "SIMULATED" in result._repr_html_()


def test_the_pilot_shows_one_estimate_of_the_full_batch_and_why(simulator, sdk_client):
    result = run_pilot(reviews(), "Review: {{ review }}", n=5, client=sdk_client, labels=SENTIMENTS)
    text = repr(result)
    hint = text.splitlines()[-1]
    assert hint.count("$") == 1  # one figure, not the quick estimate beside the pilot's
    from batch_magic.report import money

    assert f"about {money(result.batch_estimate_from_pilot)} at the batch price" in hint
    assert "from the tokens this pilot's rows used" in hint and "closer than the quick estimate" in hint
    assert money(result.prepared.estimate.batch_cost) not in hint
    # No row answered: the quick estimate is all there is, and it says so.
    simulator.add_fault("messages", 400, error_type="invalid_request_error")
    failed = run_pilot(reviews(), "Review: {{ review }}", n=2, client=sdk_client)
    hint = repr(failed).splitlines()[-1]
    assert f"about {money(failed.prepared.estimate.batch_cost)}" in hint and "no pilot row was answered" in hint


def test_the_pilot_table_never_breaks_a_word_in_jupyterlab(simulator, sdk_client):
    """JupyterLab's own rules break words anywhere in an output's <pre> (`{"label":"n eutral"}`)
    and lay tables out in fixed equal columns; the report's rules must outrank them."""
    html = run_pilot(reviews(), "Review: {{ review }}", n=2, client=sdk_client, labels=SENTIMENTS)._repr_html_()
    style = html[html.index("<style>") : html.index("</style>")]
    # JupyterLab: `.jp-OutputArea-output pre {word-break: break-all}`, `.jp-RenderedHTMLCommon table
    # {table-layout: fixed}`; `div.bm-report pre` / `div.bm-report table.bm-table` are more specific.
    # (tests/browser/test_outputs_browser.py checks the rendered page.)
    assert "div.bm-report pre{" in style and "word-break:normal" in style.split("div.bm-report pre{")[1].split("}")[0]
    assert "table-layout:auto" in style.split("div.bm-report table.bm-table{")[1].split("}")[0]
    assert "<table class='bm-table'>" in html
    assert html.count("class='bm-nowrap") == 2 * 4  # row, status, tokens and cost never wrap
