"""The prompt-iteration loop on labelled data of our own: a sample, a second prompt on the
same sample, a comparison, then the full run of the winner.

Two things are checked, as a user would: the server's log (the simulator's batches) shows
each distinct request once across all of it, and the figures ``evaluate`` and ``compare``
give are the ones scikit-learn and scipy give, called here on the same frame.
"""

from __future__ import annotations

from collections import Counter

import orjson
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics

import batch_magic as bm
from _jobs import submit
from batch_magic.evaluation import Comparison, Evaluation

LABELS = ["fruit", "vehicle", "weather"]
WORDS = {
    "fruit": ["apple", "mango", "cherry", "banana"],
    "vehicle": ["truck", "bicycle", "tractor", "scooter"],
    "weather": ["rain", "thunder", "snowfall", "drizzle"],
}
FIRST = "Which topic? {{ text }}"
SECOND = "Name the topic of this note (fruit, vehicle or weather): {{ text }}"


def notes() -> pd.DataFrame:
    """48 notes with a gold topic: most name their topic's word, some only a vague one
    (so an answer can be wrong), the classes in unequal shares."""
    rows = []
    for i in range(48):
        gold = LABELS[0] if i % 4 == 0 else LABELS[1 + i % 2]
        word = WORDS[gold][i % 4]
        text = f"note {i}: about the {word} we saw" if i % 5 else f"note {i}: something happened today"
        rows.append({"note_id": f"N{i:02d}", "text": text, "gold": gold})
    return pd.DataFrame(rows)


def requests_sent(sim) -> list[bytes]:
    """Every request the server was sent, over all its batches, as its exact parameters."""
    return [
        orjson.dumps(r["params"], option=orjson.OPT_SORT_KEYS)
        for b in sim.batch_ids()
        for r in sim.batch_requests(b)
    ]


def run(df: pd.DataFrame, template: str, sim, journal, **options):
    job = submit(df, template, sim, journal, labels=LABELS, max_tokens=40, **options)
    job.wait(timeout=60)
    return job


def test_sample_second_prompt_compare_and_full_run_send_each_request_once(simulator, journal):
    df = notes()
    sample = {"sample": 12, "seed": 7, "stratify": "gold"}

    first = run(df, FIRST, simulator, journal, out="topic", **sample)
    assert (df["topic_status"].astype(str) == "not_sent").sum() == 36
    report = bm.evaluate(df, "topic", gold="gold", cost=first)
    m = report.metrics
    # All 48 rows have gold; only the 12 sent are answered, the rest counted as not sent.
    assert (m.evaluated, m.answered) == (48, 12)
    assert m.status_counts == {"succeeded": 12, "not_sent": 36}
    assert m.accuracy_all.n == 48 and m.accuracy_answered.n == 12

    second = run(df, SECOND, simulator, journal, out="topic_v2", **sample)
    sent_rows = df["topic_status"].astype(str) == "succeeded"
    # The same seed and column draw the same rows for the second prompt.
    assert (sent_rows == (df["topic_v2_status"].astype(str) == "succeeded")).all()
    comparison = bm.compare(df, "topic", "topic_v2", gold="gold", cost_a=first, cost_b=second)
    assert comparison.metrics.both_answered == 12

    # The winner on every row: only the 36 rows the sample left out are sent.
    full = run(df, SECOND, simulator, journal, out="topic_v2")
    assert full.status.n_reused == 12
    assert (df["topic_v2_status"] == "succeeded").all()
    assert "12 answers reused" in str(full.status)

    sent = requests_sent(simulator)
    assert len(sent) == 12 + 12 + 36
    repeated = [n for n in Counter(sent).values() if n > 1]
    assert not repeated, "a request reached the server twice"
    # The rows where the prompts differ are sample rows, shown with their inputs.
    assert set(comparison.differences.index) <= set(df.index[sent_rows])
    assert list(comparison.differences.columns[:2]) == ["note_id", "text"]

    # The figures, against scikit-learn and scipy on the same frame.
    final = bm.evaluate(df, "topic_v2", gold="gold")
    truth, answers = df["gold"].astype(str), df["topic_v2"].astype(str)
    f = final.metrics
    assert f.answered == 48
    assert f.accuracy_answered.value == pytest.approx(metrics.accuracy_score(truth, answers))
    assert f.macro_f1 == pytest.approx(metrics.f1_score(truth, answers, labels=LABELS, average="macro", zero_division=0))
    assert f.weighted_f1 == pytest.approx(
        metrics.f1_score(truth, answers, labels=LABELS, average="weighted", zero_division=0)
    )
    assert f.kappa == pytest.approx(metrics.cohen_kappa_score(truth, answers))
    assert (final.confusion.loc[LABELS, LABELS].to_numpy() == metrics.confusion_matrix(truth, answers, labels=LABELS)).all()
    ci = stats.binomtest(f.correct, 48).proportion_ci(confidence_level=0.95, method="wilson")
    assert (f.accuracy_answered.low, f.accuracy_answered.high) == pytest.approx((ci.low, ci.high))

    # The comparison on the sample's rows.
    on = df[sent_rows]
    a, b, g = on["topic"].astype(str), on["topic_v2"].astype(str), on["gold"].astype(str)
    c = comparison.metrics
    assert c.accuracy_a.value == pytest.approx(metrics.accuracy_score(g, a))
    assert c.accuracy_b.value == pytest.approx(metrics.accuracy_score(g, b))
    assert c.agreement.k == int((a == b).sum())
    only_a, only_b = int(((a == g) & (b != g)).sum()), int(((b == g) & (a != g)).sum())
    assert (c.only_a_right, c.only_b_right) == (only_a, only_b)
    expected_p = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    assert c.p_value == pytest.approx(expected_p)
    assert c.kappa == pytest.approx(metrics.cohen_kappa_score(a, b))
    # Each side's cost is its own job's bill (all its evaluated rows were paid for).
    assert c.cost_a == pytest.approx(first.status.actual_cost)
    assert c.cost_b == pytest.approx(second.status.actual_cost)


def test_the_loop_in_the_magics_asks_nothing_twice(ip_sim, simulator):
    """The four cells of the README: sample, eval, a better prompt and compare, then the
    full run; and running them all again sends nothing."""
    ip_sim.user_ns["df"] = notes()
    labels = ",".join(LABELS)
    cells = [
        f"%%batch df --out topic --labels {labels} --sample 12 --stratify gold --seed 7 --max-tokens 40 --wait\n{FIRST}",
        "%batch eval topic --gold gold",
        f"%%batch df --out topic_v2 --labels {labels} --sample 12 --stratify gold --seed 7 --max-tokens 40 --wait\n{SECOND}",
        "%batch compare topic topic_v2 --gold gold",
        f"%%batch df --out topic_v2 --labels {labels} --max-tokens 40 --wait\n{SECOND}",
        "%batch eval topic_v2 --gold gold",
    ]
    results = [ip_sim.run_cell(cell).result for cell in cells]
    assert isinstance(results[1], Evaluation) and results[1].metrics.answered == 12
    assert isinstance(results[3], Comparison) and results[3].metrics.both_answered == 12
    assert results[5].metrics.answered == 48
    sent = requests_sent(simulator)
    assert len(sent) == 60 and len(set(sent)) == 60
    for cell in cells:  # Run All again: every job is found in the journal
        ip_sim.run_cell(cell)
    assert len(requests_sent(simulator)) == 60
