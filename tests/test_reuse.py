"""Every prompt paid for once: samples, the answer store, and what each job sends.

The simulator's own batches are the evidence: a request the journal already
answered never reaches the server again.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from _jobs import fast
from _jobs import submit as submit_to
from batch_magic import api
from batch_magic.errors import PlanError
from batch_magic.format import money
from batch_magic.sampling import choose_rows


def shown(markup: str) -> str:
    """The text a browser shows for some HTML."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def submit(df, template, sim, journal, **options):
    options.setdefault("max_tokens", 40)
    return submit_to(df, template, sim, journal, **options)


def sent_prompts(sim) -> list[str]:
    """Every user prompt the server was asked, over all its batches."""
    return [
        r["params"]["messages"][0]["content"] for b in sim.batch_ids() for r in sim.batch_requests(b)
    ]


def tickets(n: int) -> pd.DataFrame:
    teams = ["billing", "shipping", "technical"]
    return pd.DataFrame(
        {"text": [f"ticket {i} about {teams[i % 3]}" for i in range(n)], "gold": [teams[i % 3] for i in range(n)]}
    )


def test_a_full_run_after_a_sample_sends_only_the_rows_the_sample_did_not(simulator, journal):
    df = tickets(40)
    sample = submit(df, "Route: {{ text }}", simulator, journal, out="team", sample=10, seed=3)
    sample.wait(timeout=60)
    status = df["team_status"].astype(str)
    assert (status == "succeeded").sum() == 10
    assert (status == "not_sent").sum() == 30
    assert df.loc[status == "not_sent", "team"].isna().all()
    first = sent_prompts(simulator)
    assert len(first) == 10
    # The sample's status says what the whole frame would cost at its measured cost per row.
    assert sample.status.projected_full_cost == pytest.approx(sample.status.actual_cost * 40 / 10)

    full = submit(df, "Route: {{ text }}", simulator, journal, out="team")
    full.wait(timeout=60)
    assert (df["team_status"] == "succeeded").all()
    everything = sent_prompts(simulator)
    assert len(everything) == 40  # 10, then the other 30: no prompt twice
    assert len(set(everything)) == 40
    assert full.status.n_reused == 10
    assert full.status.saved_cost and full.status.saved_cost > 0
    # The reused rows keep their answers; this job paid only for its 30 requests.
    assert full.status.actual_cost == pytest.approx(sample.status.actual_cost * 3, rel=0.2)


def test_rows_appended_cost_only_the_new_rows(simulator, journal):
    df = tickets(20)
    submit(df, "Route: {{ text }}", simulator, journal, out="team").wait(timeout=60)
    grown = pd.concat([df[["text", "gold"]], tickets(25).iloc[20:]], ignore_index=True)
    job = submit(grown, "Route: {{ text }}", simulator, journal, out="team")
    job.wait(timeout=60)
    assert len(sent_prompts(simulator)) == 25
    assert job.status.n_reused == 20
    assert (grown["team_status"] == "succeeded").all()
    assert grown.loc[3, "team"] == df.loc[3, "team"]


def test_a_frame_answered_already_sends_nothing_and_fresh_sends_everything(simulator, journal):
    df = tickets(6)
    submit(df, "Route: {{ text }}", simulator, journal, out="team").wait(timeout=60)
    other = df.copy()
    other.index = other.index + 100  # another frame: another job, nothing new to ask
    job = submit(other, "Route: {{ text }}", simulator, journal, out="team", force=True)
    job.wait(timeout=60)
    assert job.status.n_reused == 6 and job.status.batches_total == 0
    assert (other["team_status"] == "succeeded").all()
    assert len(sent_prompts(simulator)) == 6
    fresh = submit(df, "Route: {{ text }}", simulator, journal, out="team", fresh=True)
    fresh.wait(timeout=60)
    assert fresh.status.n_reused == 0
    assert len(sent_prompts(simulator)) == 12


def test_only_good_answers_are_reused(simulator, journal):
    """An errored or invalid answer is asked again; a changed parameter is another request."""
    df = pd.DataFrame({"text": ["alpha", "beta", "gamma", "delta"]})
    simulator.configure(error_rates={"invalid_request_error": 1.0})  # every request errors on the server
    job = submit(df, "{{ text }}", simulator, journal, out="a", settings=fast(max_attempts=1))
    job.wait(timeout=60)
    assert (df["a_status"] == "errored").all()
    simulator.configure(error_rates={})
    again = submit(df, "{{ text }}", simulator, journal, out="a", force=True)
    again.wait(timeout=60)
    assert again.status.n_reused == 0 and (df["a_status"] == "succeeded").all()
    # Another max_tokens is another request: nothing to reuse.
    other = submit(df, "{{ text }}", simulator, journal, out="b", max_tokens=41)
    other.wait(timeout=60)
    assert other.status.n_reused == 0
    # The same request as the good job: all four reused.
    same = submit(df, "{{ text }}", simulator, journal, out="c")
    same.wait(timeout=60)
    assert same.status.n_reused == 4


def test_the_dry_run_says_what_is_reused_and_estimates_only_the_rest(simulator, journal):
    df = tickets(12)
    submit(df, "Route: {{ text }}", simulator, journal, out="team", sample=4).wait(timeout=60)
    prepared = api.dry_run(df, "Route: {{ text }}", out="team", max_tokens=40, client=simulator.client(), journal=journal)
    assert prepared.known.n == 4
    assert prepared.estimate.n_requests == 8
    assert prepared.summary()["reused"] == 4
    saved = money(prepared.saved_cost)
    assert prepared.saved_cost > 0
    # Both displays say it: 4 of the 12 answered already, what that saves, 8 to send.
    text = repr(prepared)
    assert f"reused:    4 of the 12 requests answered already in the journal (not sent; saves {saved}); 8 to send" in text
    assert "sample:" not in text
    page = shown(prepared._repr_html_())
    assert f"4 of the 12 requests answered already in the journal (not sent; saves {saved}); 8 to send" in page
    # Counted exactly by the API, the estimate is still of the 8 requests sent.
    exact = api.dry_run(
        df, "Route: {{ text }}", out="team", max_tokens=40, client=simulator.client(), journal=journal,
        exact_tokens=True,
    )
    assert exact.known.n == 4 and exact.estimate.n_requests == 8


def test_the_dry_run_of_a_sample_says_the_rows_sent_left_out_and_the_whole_frames_cost(simulator, journal):
    df = tickets(40)
    prepared = api.dry_run(
        df, "Route: {{ text }}", out="team", max_tokens=40, sample=10, seed=3, stratify="gold",
        client=simulator.client(), journal=journal,
    )
    assert prepared.plan.n_not_sent == 30 and prepared.estimate.n_requests == 10
    whole = money(prepared.estimate.batch_cost * 40 / 10)
    line = f"10 rows sent, 30 not sent (seed 3, stratified by 'gold'); all 40 rows ≈ {whole} at the batch price"
    assert f"sample:    {line}" in repr(prepared)
    assert line in shown(prepared._repr_html_())
    assert "reused" not in repr(prepared)
    # After the sample ran, the full run's dry run counts its answers as reused.
    submit(df, "Route: {{ text }}", simulator, journal, out="team", sample=10, seed=3, stratify="gold").wait(timeout=60)
    full = api.dry_run(df, "Route: {{ text }}", out="team", max_tokens=40, client=simulator.client(), journal=journal)
    assert full.known.n == 10 and full.estimate.n_requests == 30
    assert "10 of the 40 requests answered already in the journal" in repr(full)
    assert "sample:" not in repr(full)


def test_a_sample_is_reproducible_and_stratified():
    df = pd.DataFrame({"c": ["a"] * 80 + ["b"] * 20, "x": range(100)})
    first = choose_rows(df, 10, seed=5)
    assert np.array_equal(first, choose_rows(df, 10, seed=5))
    assert not np.array_equal(first, choose_rows(df, 10, seed=6))
    strat = choose_rows(df, 10, seed=1, stratify="c")
    assert len(strat) == 10
    assert (df["c"].iloc[strat] == "a").sum() == 8  # 80% of the frame, 80% of the sample
    assert len(choose_rows(df, 500)) == 100
    with pytest.raises(PlanError, match="'nope' is not a column"):
        choose_rows(df, 10, stratify="nope")
    with pytest.raises(PlanError, match="sample=0"):
        choose_rows(df, 0)


def test_sample_in_the_magic(ip_sim):
    ip = ip_sim
    ip.user_ns["df"] = tickets(30)
    ip.run_cell("%%batch df --out team --labels billing,shipping,technical --sample 6 --seed 2 --wait\nRoute: {{ text }}")
    df = ip.user_ns["df"]
    assert (df["team_status"].astype(str) == "not_sent").sum() == 24
    ip.run_cell("%%batch df --out team --labels billing,shipping,technical --wait\nRoute: {{ text }}")
    assert (df["team_status"] == "succeeded").all()
