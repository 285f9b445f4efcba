"""Dry runs (plan and estimate, nothing created) and the max_cost budget gate."""

from __future__ import annotations

import html
import re

import pandas as pd
import pytest

import batch_magic as bm
from _jobs import FAST
from batch_magic import pricing
from batch_magic.api import count_exact, dry_run, prepare
from batch_magic.errors import BudgetExceededError, ConfigError
from batch_magic.report import money


def frame() -> pd.DataFrame:
    texts = [f"Ticket {i}: my order {i % 40} is late" for i in range(50)]
    texts[5] = None
    texts[6] = "   "
    texts[9] = texts[8]  # a duplicate prompt
    texts[11] = texts[10]
    return pd.DataFrame({"text": texts}, index=[f"t{i}" for i in range(50)])


# -- dry run -----------------------------------------------------------------------------------
def test_dry_run_sends_nothing_and_needs_no_key(simulator, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    p = dry_run(frame(), "Summarise: {{ text }}", out="summary")
    assert (p.plan.n_rows, p.plan.n_requests, p.plan.n_skipped, p.plan.n_deduplicated) == (50, 46, 2, 2)
    assert simulator.requests == [] and simulator.batch_ids() == []


def test_dry_run_display_says_everything_the_issue_lists():
    df = frame()
    p = dry_run(df, "Summarise: {{ text }}", out="summary", model="claude-haiku-4-5", max_tokens=100, chunk_size=20)
    text = repr(p)
    assert text.startswith("Dry run: nothing was sent.")
    assert re.search(r"rows:\s+50\b", text)
    assert re.search(r"requests:\s+46 \(deduplication saved 2 identical prompts\)", text)
    assert re.search(r"skipped:\s+2 \(text is missing: 2; e\.g\. rows 't5', 't6'\)", text)
    assert re.search(r"batches:\s+3 \(20, 20, 6 requests\)", text)
    e = p.estimate
    assert f"~{e.input_tokens:,} tokens" in text and "about 4 characters a token" in text
    # Haiku 4.5's tokenizer: about four characters a token, plus a few tokens per request.
    assert e.input_tokens == round(sum(map(len, p.plan.prompts)) / 4 + 8 * 46)
    # Batch and realtime, expected and upper bound, with the price table's date.
    assert f"batch {money(e.batch_cost)} expected, {money(e.batch_cost_upper)} at most" in text
    assert f"realtime {money(e.realtime_cost)} expected" in text
    assert "at most 4,600 (max_tokens=100)" in text
    assert f"taken {pricing.load_prices().taken}" in text
    # The first three rendered prompts, and only three.
    for prompt in p.plan.prompts[:3]:
        assert prompt in text
    assert p.plan.prompts[3] not in text
    shown = p._repr_html_()
    for fragment in ["Dry run", "deduplication saved 2", "batch cost", "realtime cost", p.plan.prompts[0], "taken "]:
        assert fragment in shown


def test_dry_run_says_what_the_real_run_would_refuse(simulator, journal):
    """The real run refuses an out whose columns would overwrite the DataFrame's own; the
    dry run says so first, and still sends nothing."""
    df = frame()
    p = dry_run(df, "Summarise: {{ text }}", out="text", journal=journal)
    refusal = "out='text' would overwrite the column(s) 'text' of the DataFrame (an input of the template)"
    assert f"The real run would refuse: {refusal}" in " ".join(repr(p).split())
    assert html.escape(refusal) in p._repr_html_()
    with pytest.raises(ConfigError, match=re.escape(refusal)):
        bm.submit(df, "Summarise: {{ text }}", out="text", client=simulator.client(), journal=journal)
    assert simulator.batch_ids() == [] and journal.job_ids() == []
    # Columns an earlier job of the journal wrote may be replaced: no warning then.
    assert not any("real run" in w for w in dry_run(df, "Summarise: {{ text }}", out="summary").warnings)


def test_dry_run_shows_the_output_shape():
    df = frame()
    labels = repr(dry_run(df, "{{ text }}", labels=["late", "fine"]))
    assert "labels: late, fine (a Categorical column)" in labels
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}}}
    shown = repr(dry_run(df, "{{ text }}", schema=schema, out="x"))
    assert "schema fields: n (Int64), ok (boolean)" in shown and "x_n, x_ok" in shown
    unknown = repr(dry_run(df, "{{ text }}", model="claude-nova-9"))
    assert "not in the price table" in unknown


def test_exact_tokens_counts_every_request_through_count_tokens_only(simulator, sdk_client):
    p = dry_run(frame(), "Summarise: {{ text }}", exact_tokens=True, client=sdk_client)
    endpoints = [r.endpoint for r in simulator.requests]
    # What the model accepts (the free Models API), then every unique request counted.
    assert endpoints == ["model"] + ["count_tokens"] * 46
    assert simulator.batch_ids() == []
    assert p.estimate.exact_input and p.token_count.method == "all"
    assert p.estimate.input_tokens == p.token_count.counted_tokens
    # The simulator counts about chars/4 per request: the count is of the same order.
    quick = prepare(frame(), "Summarise: {{ text }}").estimate.input_tokens
    assert 0.3 * quick < p.estimate.input_tokens < 3 * quick
    assert "counted by the API's count_tokens for all 46 requests" in repr(p)


def test_exact_tokens_over_1000_requests_calibrates_on_a_fixed_sample(simulator, sdk_client):
    df = pd.DataFrame({"text": [f"row number {i} " + "x" * (i % 50) for i in range(1500)]})
    p = prepare(df, "{{ text }}")
    a = count_exact(p, sdk_client)
    assert sum(r.endpoint == "count_tokens" for r in simulator.requests) == 200
    b = count_exact(p, sdk_client)
    assert a.token_count == b.token_count  # the same sample for the same seed
    assert a.token_count.method == "sample" and not a.estimate.exact_input
    assert a.token_count.counted == 200 and a.token_count.n_requests == 1500
    assert a.estimate.input_tokens == pytest.approx(
        sum(map(len, p.plan.prompts)) / a.token_count.chars_per_token, abs=1
    )
    assert "calibrated from count_tokens on a sample of 200 of 1,500 requests" in repr(a)
    assert simulator.batch_ids() == []


# -- budget ------------------------------------------------------------------------------------
#: Claude Sonnet 4.5's published batch prices (half the realtime $3 / $15), USD per million tokens.
SONNET_4_5_BATCH = (1.5, 7.5)


def test_upper_bound_is_every_request_at_max_tokens():
    p = prepare(frame(), "{{ text }}", max_tokens=500, model="claude-sonnet-4-5")
    inp, out = SONNET_4_5_BATCH
    upper = (p.estimate.input_tokens * inp + p.plan.n_requests * 500 * out) / 1e6
    assert p.estimate.batch_cost_upper == pytest.approx(upper, rel=1e-3)
    assert p.estimate.batch_cost < p.estimate.batch_cost_upper
    assert p.estimate.realtime_cost_upper == pytest.approx(2 * upper, rel=1e-3)


def test_max_cost_below_the_upper_bound_refuses_before_anything_exists(simulator, journal):
    df = frame()
    p = prepare(df, "{{ text }}", max_tokens=500)
    limit = p.estimate.batch_cost_upper / 2
    with pytest.raises(BudgetExceededError) as info:
        bm.submit(df, "{{ text }}", max_tokens=500, max_cost=limit, client=simulator.client(), journal=journal)
    message = str(info.value)
    assert f"${p.estimate.batch_cost_upper:,.4f}" in message and f"${limit:,.4f}" in message
    assert "max_tokens" in message
    # Only the free Models API was asked; nothing was created.
    assert [r.endpoint for r in simulator.requests] == ["model"] and simulator.batch_ids() == []
    assert list(journal.records()) == []
    assert "sent" not in df.columns and list(df.columns) == ["text"]


def test_max_cost_above_the_upper_bound_lets_the_job_run(simulator, journal):
    df = frame()
    p = prepare(df, "{{ text }}", max_tokens=50)
    job = bm.submit(df, "{{ text }}", max_tokens=50, max_cost=p.estimate.batch_cost_upper * 1.01,
                    client=simulator.client(), journal=journal, settings=FAST)
    job.wait(timeout=60)
    assert (df["answer_status"].isin(["succeeded", "skipped"])).all()
    assert len(simulator.batch_ids()) == 1


def test_reattaching_an_existing_job_does_not_check_the_budget_again(simulator, journal):
    df = frame()
    first = bm.submit(df, "{{ text }}", max_tokens=50, client=simulator.client(), journal=journal, settings=FAST)
    first.wait(timeout=60)
    calls = len(simulator.requests)
    again = bm.submit(df.drop(columns=[c for c in df.columns if c.startswith("answer")]), "{{ text }}",
                      max_tokens=50, max_cost=0.0000001, client=simulator.client(), journal=journal, settings=FAST)
    assert again.id == first.id  # re-attached, not refused, not paid twice
    again.wait(timeout=60)
    assert len(simulator.batch_ids()) == 1 and len(simulator.requests) == calls
    # A fresh re-run is a new job that pays for every row again, and is checked.
    with pytest.raises(BudgetExceededError):
        bm.submit(df, "{{ text }}", max_tokens=50, max_cost=0.0000001, fresh=True,
                  client=simulator.client(), journal=journal)
    # A forced one takes every answer from the journal: nothing to pay, nothing refused.
    forced = bm.submit(df, "{{ text }}", max_tokens=50, max_cost=0.0000001, force=True,
                       client=simulator.client(), journal=journal, settings=FAST)
    assert forced.id != first.id and forced.status.n_reused == forced.status.n_requests


@pytest.mark.parametrize("bad", ["ten dollars", None, [1]])
def test_max_cost_must_be_a_number(bad):
    p = prepare(frame(), "{{ text }}")
    if bad is None:
        bm.api.check_budget(p.estimate, 1e9)  # plenty: no error
        return
    with pytest.raises(ConfigError, match="must be a number of US dollars"):
        bm.api.check_budget(p.estimate, bad)


def test_the_upper_bound_counts_cache_writes_on_every_request():
    """Caching in batches is best effort: the bound assumes every request pays the
    cache write on a cached system prompt; the expectation assumes one write."""
    import pandas as pd

    from batch_magic.api import prepare

    df = pd.DataFrame({"t": [f"row {i}" for i in range(100)]})
    system = "Policy. " * 1000  # long enough to be cached
    cached = prepare(df, "{{ t }}", system=system, max_tokens=10, cache_system=True).estimate
    plain = prepare(df, "{{ t }}", system=system, max_tokens=10, cache_system=False).estimate
    assert cached.cached_tokens_per_request > 1000
    assert cached.batch_cost_upper > plain.batch_cost_upper  # 2x input on the cached part
    assert cached.batch_cost < plain.batch_cost  # reads at a tenth after the first write
