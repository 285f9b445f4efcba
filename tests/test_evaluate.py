"""``batch_magic.evaluate`` and ``compare``: figures worked out by hand on small frames,
checked again against scikit-learn and scipy called directly, and the ``%batch eval`` /
``%batch compare`` line commands in a real IPython shell."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from scipy import stats
from sklearn import metrics

import batch_magic
from batch_magic.columns import job_columns
from batch_magic.errors import ConfigError
from batch_magic.evaluation import Comparison, Evaluation, MissingExtraError
from batch_magic.merge import ROW_STATUSES

ANIMALS = ["cat", "dog", "bird"]


def job_frame(
    out: str,
    answers: list[Any],
    statuses: list[str],
    *,
    labels: list[str] | None = None,
    output_tokens: list[int | None] | None = None,
    fields: dict[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """The columns a merged job adds, as merge.build_columns makes them: the answer (a
    Categorical of the labels), a Categorical status, the error text, nullable token
    counts (None where the API reported none) and the stop reason."""
    names = job_columns(out)
    n = len(answers)
    answer: Any = pd.Categorical(answers, categories=labels) if labels else pd.array(answers, dtype="string")
    tokens = output_tokens if output_tokens is not None else [5 if s == "succeeded" else None for s in statuses]
    columns: dict[str, Any] = {names.answer: answer}
    for name, values in (fields or {}).items():
        columns[names.field(name)] = values.array
    columns.update({
        names.status: pd.Categorical(statuses, categories=ROW_STATUSES),
        names.error: pd.array([None if s == "succeeded" else f"{s} here" for s in statuses], dtype="string"),
        names.input_tokens: pd.array([None if t is None else 20 for t in tokens], dtype="Int64"),
        names.output_tokens: pd.array(tokens, dtype="Int64"),
        names.thinking_tokens: pd.array([None if t is None else 0 for t in tokens], dtype="Int64"),
        names.stop_reason: pd.array(["end_turn" if t else None for t in tokens], dtype="string"),
    })
    frame = pd.DataFrame(columns)
    assert len(frame) == n
    return frame


def animals() -> pd.DataFrame:
    """Ten rows with gold over three classes, and an eleventh without gold.

    row  gold  answer  status      paid
    0    cat   cat     succeeded   yes   right
    1    cat   cat     succeeded   yes   right
    2    cat   dog     succeeded   yes   wrong
    3    dog   dog     succeeded   yes   right
    4    dog   dog     succeeded   yes   right
    5    dog   cat     succeeded   yes   wrong
    6    bird  bird    succeeded   yes   right
    7    bird  -       invalid     yes (answered, unusable)
    8    bird  -       errored     no
    9    cat   -       refused     no (refused before any output)
    10   -     cat     succeeded   yes   (no gold: not evaluated)
    """
    gold = ["cat", "cat", "cat", "dog", "dog", "dog", "bird", "bird", "bird", "cat", None]
    answers = ["cat", "cat", "dog", "dog", "dog", "cat", "bird", None, None, None, "cat"]
    statuses = ["succeeded"] * 7 + ["invalid", "errored", "refused", "succeeded"]
    tokens = [5] * 7 + [5, None, 0, 5]
    frame = job_frame("animal", answers, statuses, labels=ANIMALS, output_tokens=tokens)
    frame.insert(0, "text", [f"text {i}" for i in range(11)])
    frame.insert(1, "label", gold)
    return frame


# -- evaluate: figures by hand ---------------------------------------------------------
def test_counts_every_row_and_never_drops_one() -> None:
    report = batch_magic.evaluate(animals(), "animal", gold="label")
    m = report.metrics
    assert (m.rows, m.evaluated, m.no_gold) == (11, 10, 1)
    assert m.status_counts == {"succeeded": 7, "errored": 1, "invalid": 1, "refused": 1}
    assert sum(m.status_counts.values()) == m.evaluated
    assert (m.answered, m.correct) == (7, 5)
    # The rows not right: the two wrong answers and the three rows without an answer.
    assert list(report.disagreements.index) == [2, 5, 7, 8, 9]
    assert list(report.disagreements.columns) == ["text", "label", "animal", "animal_status", "animal_error"]
    assert report.disagreements.loc[8, "animal_status"] == "errored"


def test_rows_the_job_never_answered_are_counted_too() -> None:
    """Rows added to the frame after the merge have no status: counted as "no result",
    wrong over all rows, listed with the disagreements."""
    df = pd.concat([animals(), pd.DataFrame({"text": ["new 1", "new 2"], "label": ["cat", "dog"]})],
                   ignore_index=True)
    report = batch_magic.evaluate(df, "animal", gold="label")
    m = report.metrics
    assert m.status_counts == {"succeeded": 7, "errored": 1, "invalid": 1, "refused": 1, "no result": 2}
    assert (m.evaluated, m.answered, m.correct) == (12, 7, 5)
    assert m.accuracy_all.value == pytest.approx(5 / 12)
    assert list(report.disagreements.index) == [2, 5, 7, 8, 9, 11, 12]
    assert "2 no result" in report._repr_html_()


def test_whole_float_gold_matches_integer_labels() -> None:
    # Gold 1, 2, 1 read from a file with a gap becomes 1.0, 2.0, 1.0, NaN; the labels are "1", "2".
    df = job_frame("stars", ["1", "2", "2", "1"], ["succeeded"] * 4, labels=["1", "2"])
    df["gold"] = [1.0, 2.0, 1.0, None]
    m = batch_magic.evaluate(df, "stars", gold="gold").metrics
    assert (m.evaluated, m.correct) == (3, 2)


def test_the_package_imports_without_the_eval_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None; sys.modules['scipy'] = None\n"
        "import batch_magic, batch_magic.evaluation\n"
        "try:\n"
        "    batch_magic.evaluate(None, 'x', gold='y')\n"
        "except batch_magic.evaluation.MissingExtraError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith('is not installed: pip install "batch-magic[eval]"')


def test_accuracy_and_wilson_interval_by_hand() -> None:
    m = batch_magic.evaluate(animals(), "animal", gold="label").metrics
    # Over answered rows: 5/7 = 0.714286. Wilson, z = 1.959964, n = 7, p = 5/7:
    #   centre = (p + z²/2n) / (1 + z²/n) = 0.988676 / 1.548780 = 0.638360
    #   half   = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²) = 1.265489 * 0.220802 = 0.279424
    #   -> 0.358936 to 0.917784
    assert m.accuracy_answered.value == pytest.approx(5 / 7)
    assert m.accuracy_answered.low == pytest.approx(0.358936, abs=1e-5)
    assert m.accuracy_answered.high == pytest.approx(0.917784, abs=1e-5)
    # Over all ten evaluated rows, an unanswered row counting as wrong: 5/10.
    #   centre = (0.5 + 0.192073) / 1.384146 = 0.5
    #   half   = 1.959964 / 1.384146 * sqrt(0.025 + 0.009604) = 1.416007 * 0.186020 = 0.263407
    #   -> 0.236593 to 0.763407
    assert m.accuracy_all.value == 0.5
    assert m.accuracy_all.low == pytest.approx(0.236593, abs=1e-5)
    assert m.accuracy_all.high == pytest.approx(0.763407, abs=1e-5)


def test_per_class_f1_and_kappa_by_hand() -> None:
    report = batch_magic.evaluate(animals(), "animal", gold="label")
    per_class = report.per_class
    assert per_class is not None
    # Over the 7 answered rows: gold cat,cat,cat,dog,dog,dog,bird; answers cat,cat,dog,dog,dog,cat,bird.
    # cat: 3 answered cat, 2 right -> precision 2/3; 3 gold cat, 2 found -> recall 2/3. dog alike.
    # bird: 1 of 1 both ways.
    assert list(per_class.index) == ["cat", "dog", "bird", "macro avg", "weighted avg"]
    assert per_class.loc["cat", ["precision", "recall", "f1"]].tolist() == pytest.approx([2 / 3] * 3)
    assert per_class.loc["dog", "f1"] == pytest.approx(2 / 3)
    assert per_class.loc["bird", ["precision", "recall", "f1"]].tolist() == [1.0, 1.0, 1.0]
    assert per_class["support"].tolist() == [3, 3, 1, 7, 7]
    m = report.metrics
    # Macro F1 = (2/3 + 2/3 + 1) / 3 = 7/9; weighted = (3·2/3 + 3·2/3 + 1·1) / 7 = 5/7.
    assert m.macro_f1 == pytest.approx(7 / 9)
    assert m.weighted_f1 == pytest.approx(5 / 7)
    # Kappa: observed 5/7; expected (3/7)² + (3/7)² + (1/7)² = 19/49; (35/49 - 19/49) / (30/49) = 16/30.
    assert m.kappa == pytest.approx(16 / 30)


def test_confusion_matrix_by_hand() -> None:
    report = batch_magic.evaluate(animals(), "animal", gold="label")
    assert report.confusion is not None and report.confusion_normalized is not None
    # Gold in rows, answers in columns, in the labels' order.
    assert report.confusion.to_numpy().tolist() == [[2, 1, 0], [1, 2, 0], [0, 0, 1]]
    assert list(report.confusion.index) == ANIMALS and list(report.confusion.columns) == ANIMALS
    assert report.confusion_normalized.to_numpy().ravel() == pytest.approx(
        [2 / 3, 1 / 3, 0, 1 / 3, 2 / 3, 0, 0, 0, 1]
    )


def test_agrees_with_scikit_learn_and_scipy_computed_independently() -> None:
    df = animals()
    report = batch_magic.evaluate(df, "animal", gold="label")
    answered = df["label"].notna() & (df["animal_status"] == "succeeded")
    y_true = df.loc[answered, "label"].astype(str).tolist()
    y_pred = df.loc[answered, "animal"].astype(str).tolist()
    m = report.metrics
    assert m.accuracy_answered.value == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert m.macro_f1 == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"))
    assert m.weighted_f1 == pytest.approx(metrics.f1_score(y_true, y_pred, average="weighted"))
    assert m.kappa == pytest.approx(metrics.cohen_kappa_score(y_true, y_pred))
    expected = metrics.classification_report(y_true, y_pred, output_dict=True)
    assert report.per_class is not None
    for label in ANIMALS:
        assert report.per_class.loc[label, "f1"] == pytest.approx(expected[label]["f1-score"])
        assert report.per_class.loc[label, "support"] == expected[label]["support"]
    ci = stats.binomtest(5, 10).proportion_ci(method="wilson")
    assert (m.accuracy_all.low, m.accuracy_all.high) == pytest.approx((ci.low, ci.high))


def test_cost_per_correct_answer_from_the_bill() -> None:
    df = animals()
    # Paid rows (output tokens billed): 0-7 and 10 = 9; of them evaluated: 0-7 = 8.
    # $0.09 billed -> the evaluated rows' share 0.09 · 8/9 = $0.08; / 5 correct = $0.016.
    report = batch_magic.evaluate(df, "animal", gold="label", cost=0.09)
    assert (report.cost.paid_rows, report.cost.paid_evaluated) == (9, 8)
    assert report.metrics.cost == pytest.approx(0.08)
    assert report.metrics.cost_per_correct == pytest.approx(0.016)
    page = report._repr_html_()
    assert "<span>&#36;</span>0.016 per correct answer" in page
    assert "the bill given (cost=)" in page
    # Without a cost it says how to give one rather than inventing a figure.
    bare = batch_magic.evaluate(df, "animal", gold="label")
    assert bare.metrics.cost_per_correct is None
    assert "n/a: give the job (cost=job)" in bare._repr_html_()
    with pytest.raises(ConfigError, match=r"cost=-1"):
        batch_magic.evaluate(df, "animal", gold="label", cost=-1)


def test_html_shows_the_key_figures() -> None:
    page = batch_magic.evaluate(animals(), "animal", gold="label", cost=0.09)._repr_html_()
    for text in (
        "11", "1 without gold", "7 answered, 1 errored, 1 invalid, 1 refused",
        "71.4% (5/7; 95% CI 35.9% to 91.8%, Wilson)", "50.0% (5/10; 95% CI 23.7% to 76.3%, Wilson)",
        "0.778", "0.714", "0.533", "Per class", "Confusion matrix", "5 evaluated rows not right",
        "text 9",
    ):
        assert text in page, text
    assert "$" not in page  # every dollar is an entity in its own span: no maths in Jupyter
    assert "data:image/png;base64," in page  # matplotlib is installed with the test extra


def test_confusion_matrix_as_a_table_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import raises ImportError
    page = batch_magic.evaluate(animals(), "animal", gold="label")._repr_html_()
    assert "data:image/png" not in page
    assert "2 (67%)" in page and "1 (100%)" in page


def test_gold_outside_the_labels_is_pointed_out() -> None:
    df = animals()
    df.loc[0, "label"] = "Cat"
    report = batch_magic.evaluate(df, "animal", gold="label")
    assert report.unseen_gold == ("Cat",)
    assert "gold values no answer takes: &#x27;Cat&#x27;" in report._repr_html_()


def test_figures_as_data() -> None:
    report = batch_magic.evaluate(animals(), "animal", gold="label", cost=0.09)
    frame = report.to_frame()
    assert list(frame.columns) == ["animal"]
    assert frame.loc["accuracy over answered", "animal"] == pytest.approx(5 / 7)
    assert frame.loc["status refused", "animal"] == 1
    assert frame.loc["cost per correct (USD)", "animal"] == pytest.approx(0.016)
    as_dict = report.metrics.as_dict()
    assert as_dict["accuracy_all"] == {"k": 5, "n": 10, "low": pytest.approx(0.236593, abs=1e-5),
                                       "high": pytest.approx(0.763407, abs=1e-5)}


def test_bad_names_are_refused_with_the_columns_listed() -> None:
    df = animals()
    with pytest.raises(ConfigError, match=r"no column 'lable' \(the gold labels\). Columns: 'text', 'label'"):
        batch_magic.evaluate(df, "animal", gold="lable")
    with pytest.raises(ConfigError, match=r"no column 'text_status', so 'text' is not the answer column of a job"):
        batch_magic.evaluate(df, "text", gold="label")


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingExtraError, match=r"'sklearn' is not installed: pip install \"batch-magic\[eval\]\""):
        batch_magic.evaluate(animals(), "animal", gold="label")


# -- evaluate: schema fields -----------------------------------------------------------
def invoices() -> pd.DataFrame:
    """Five schema answers, each field against its own gold column.

    row  status     total (gold)      currency (gold)  paid (gold)
    0    succeeded  10.00 (10.00) ok  EUR (EUR) ok     True (True) ok
    1    succeeded  19.99 (20.00) ok  USD (EUR) wrong  False (False) ok
    2    succeeded  7.50 (7.00) wrong GBP (GBP) ok     True (False) wrong
    3    invalid    -     (5.00)      -   (USD)        -    (True)
    4    succeeded  3.00  (3.00) ok   USD (USD) ok     False (False) ok
    """
    currency = pd.Series(pd.Categorical(["EUR", "USD", "GBP", None, "USD"], categories=["EUR", "USD", "GBP"]))
    fields = {
        "total": pd.Series([10.0, 19.99, 7.5, None, 3.0], dtype="Float64"),
        "currency": currency,
        "paid": pd.Series([True, False, True, None, False], dtype="boolean"),
    }
    statuses = ["succeeded", "succeeded", "succeeded", "invalid", "succeeded"]
    frame = job_frame("inv", ['{"...": 1}'] * 3 + [None, '{"...": 1}'], statuses, fields=fields)
    frame.insert(0, "file", [f"invoice{i}.pdf" for i in range(5)])
    frame["true_total"] = [10.0, 20.0, 7.0, 5.0, 3.0]
    frame["true_currency"] = ["EUR", "EUR", "GBP", "USD", "USD"]
    frame["true_paid"] = [True, False, False, True, False]
    return frame


GOLD_FIELDS = {"total": "true_total", "currency": "true_currency", "paid": "true_paid"}


def test_schema_fields_each_against_their_gold() -> None:
    report = batch_magic.evaluate(invoices(), "inv", gold=GOLD_FIELDS, tolerance=0.05)
    fields = report.fields
    assert fields is not None
    # total within 0.05: rows 0, 1, 4 right (row 2 is 0.5 off); currency: 0, 2, 4; paid: 0, 1, 4.
    assert fields["correct"].tolist() == [3, 3, 3]
    assert fields["answered"].tolist() == [4, 4, 4]
    assert fields["evaluated"].tolist() == [5, 5, 5]
    assert fields["compared"].tolist() == ["within ±0.05", "exact", "exact"]
    assert [p.value for p in fields["accuracy_answered"]] == [0.75, 0.75, 0.75]
    assert [p.value for p in fields["accuracy_all"]] == [0.6, 0.6, 0.6]
    m = report.metrics
    # Every field right: rows 0 and 4 only, of 4 answered and 5 evaluated.
    assert (m.answered, m.correct, m.evaluated) == (4, 2, 5)
    assert m.status_counts == {"succeeded": 4, "invalid": 1}
    assert list(report.disagreements.index) == [1, 2, 3]
    assert "true_total" in report.disagreements.columns and "inv_total" in report.disagreements.columns
    # A tolerance of zero: 19.99 is not 20.
    exact = batch_magic.evaluate(invoices(), "inv", gold=GOLD_FIELDS)
    assert exact.fields is not None and exact.fields.loc["total", "correct"] == 2
    page = report._repr_html_()
    assert "within ±0.05" in page and "75.0% (3/4" in page and "Fields" in page


def test_schema_per_field_tolerance_names_a_field() -> None:
    report = batch_magic.evaluate(invoices(), "inv", gold=GOLD_FIELDS, tolerance={"total": 0.6})
    assert report.fields is not None and report.fields.loc["total", "correct"] == 4
    with pytest.raises(ConfigError, match="tolerance names 'price'"):
        batch_magic.evaluate(invoices(), "inv", gold=GOLD_FIELDS, tolerance={"price": 1})
    with pytest.raises(ConfigError, match=r"no column 'inv_price'"):
        batch_magic.evaluate(invoices(), "inv", gold={"price": "true_total"})


# -- compare ---------------------------------------------------------------------------
def two_prompts() -> pd.DataFrame:
    """Two jobs over the same rows, labels x and y.

    row  gold  a  b   a right  b right
    0    x     x  x   yes      yes
    1    y     y  y   yes      yes
    2    x     x  y   yes      no     <- only a right
    3    x     y  x   no       yes    <- only b right (rows 3-7)
    4    x     y  x   no       yes
    5    y     x  y   no       yes
    6    y     x  y   no       yes
    7    y     x  y   no       yes
    8    x     x  -   (b errored: only a answered)
    9    y     -  -   (both errored)
    10   -     x  x   (no gold)
    """
    a = job_frame("a", ["x", "y", "x", "y", "y", "x", "x", "x", "x", None, "x"],
                  ["succeeded"] * 9 + ["errored", "succeeded"], labels=["x", "y"])
    b = job_frame("b", ["x", "y", "y", "x", "x", "y", "y", "y", None, None, "x"],
                  ["succeeded"] * 8 + ["errored", "errored", "succeeded"], labels=["x", "y"])
    frame = pd.concat([a, b], axis=1)
    frame.insert(0, "text", [f"row {i}" for i in range(11)])
    frame.insert(1, "gold", ["x", "y", "x", "x", "x", "y", "y", "y", "x", "y", None])
    return frame


def test_compare_with_gold_by_hand() -> None:
    report = batch_magic.compare(two_prompts(), "a", "b", gold="gold")
    m = report.metrics
    assert (m.rows, m.both_answered, m.only_a_answered, m.only_b_answered, m.neither_answered) == (10, 8, 1, 0, 1)
    # On the 8 rows both answered: a right 3 (rows 0-2), b right 7 (rows 0, 1, 3-7).
    assert m.accuracy_a is not None and m.accuracy_b is not None
    assert (m.accuracy_a.k, m.accuracy_a.n) == (3, 8)
    assert (m.accuracy_b.k, m.accuracy_b.n) == (7, 8)
    assert m.difference == pytest.approx(0.5)
    assert (m.only_a_right, m.only_b_right) == (1, 5)
    # McNemar exact: 6 discordant pairs, 1 favouring a. Two-sided binomial p with n=6, p=1/2:
    # 2 · P(X ≤ 1) = 2 · (1 + 6) / 64 = 14/64 = 0.21875.
    assert m.p_value == pytest.approx(0.21875)
    # Agreement: equal answers on rows 0 and 1 only, 2/8. Kappa, a against b: a says x 5 times
    # and y 3, b x 3 and y 5; expected agreement 5/8·3/8 + 3/8·5/8 = 30/64;
    # (16/64 - 30/64) / (34/64) = -14/34 = -7/17.
    assert m.agreement.value == 0.25
    assert m.kappa == pytest.approx(-7 / 17)
    assert list(report.differences.index) == [2, 3, 4, 5, 6, 7]
    assert list(report.differences.columns) == ["text", "gold", "a", "b"]


def test_compare_agrees_with_scipy_and_sklearn() -> None:
    df = two_prompts()
    m = batch_magic.compare(df, "a", "b", gold="gold").metrics
    both = list(range(8))
    assert m.p_value == pytest.approx(stats.binomtest(1, 6, 0.5).pvalue)
    assert m.kappa == pytest.approx(metrics.cohen_kappa_score(df.loc[both, "a"].astype(str), df.loc[both, "b"].astype(str)))


def test_compare_without_gold_reports_agreement_and_differences() -> None:
    report = batch_magic.compare(two_prompts(), "a", "b")
    m = report.metrics
    # All 11 rows; both answered: rows 0-7 and 10; equal on 0, 1 and 10.
    assert (m.rows, m.both_answered) == (11, 9)
    assert (m.agreement.k, m.agreement.n) == (3, 9)
    assert m.accuracy_a is None and m.p_value is None
    assert list(report.differences.columns) == ["text", "gold", "a", "b"]  # gold: just a column here
    page = report._repr_html_()
    assert "(no gold)" in page and "33.3% (3/9" in page and "McNemar" not in page


def test_compare_html_and_costs() -> None:
    # Paid rows (output tokens): a 10 (all but row 9), b 9; both-answered rows 0-7: 8 each.
    # a: $0.10 · 8/10 = $0.08 / 3 right = $0.026667; b: $0.18 · 8/9 = $0.16 / 7 = $0.022857.
    report = batch_magic.compare(two_prompts(), "a", "b", gold="gold", cost_a=0.10, cost_b=0.18)
    m = report.metrics
    assert m.cost_a == pytest.approx(0.08) and m.cost_b == pytest.approx(0.16)
    assert m.cost_per_correct_a == pytest.approx(0.08 / 3)
    assert m.cost_per_correct_b == pytest.approx(0.16 / 7)
    page = report._repr_html_()
    for text in ("37.5% (3/8", "87.5% (7/8", "+50.0 points", "0.2188", "25.0% (2/8", "-0.412",
                 "6 of the 8 rows both answered"):
        assert text in page, text
    assert "$" not in page
    frame = report.to_frame()
    assert frame.loc["McNemar exact p"].iloc[0] == pytest.approx(0.21875)
    with pytest.raises(ConfigError, match="both sides are 'a'"):
        batch_magic.compare(two_prompts(), "a", "a")


def test_cost_given_as_jobs() -> None:
    class Ended:  # what evaluate reads of a BatchJob: its id and its snapshot's bill
        def __init__(self, job_id: str, cost: float | None) -> None:
            self.id, self.status = job_id, type("S", (), {"actual_cost": cost})()

    report = batch_magic.evaluate(animals(), "animal", gold="label", cost=[Ended("j1", 0.05), Ended("j2", 0.04)])
    assert report.metrics.cost == pytest.approx(0.08)
    assert "the bill of jobs j1, j2" in report._repr_html_()
    with pytest.raises(ConfigError, match="job j3 has no billed cost yet"):
        batch_magic.evaluate(animals(), "animal", gold="label", cost=Ended("j3", None))


# -- the magics ------------------------------------------------------------------------
def test_eval_and_compare_line_commands(ip: Any) -> None:
    ip.user_ns["df"] = animals()
    result = ip.run_cell("%batch eval df animal --gold label").result
    assert isinstance(result, Evaluation)
    assert result.metrics.correct == 5 and result.metrics.cost is None  # no job of this session wrote it
    ip.user_ns["pair"] = two_prompts()
    comparison = ip.run_cell("%batch compare pair a b --gold gold").result
    assert isinstance(comparison, Comparison)
    assert comparison.metrics.p_value == pytest.approx(0.21875)
    assert ip.run_cell("%batch compare pair a b").result.metrics.gold is None
    ip.user_ns["inv"] = invoices()
    fields = ip.run_cell(
        "%batch eval inv inv --gold total=true_total --gold currency=true_currency --tolerance 0.05"
    ).result
    assert fields.fields["correct"].tolist() == [3, 3]
    with pytest.raises(UsageError, match="give one gold column"):
        ip.run_cell("%batch eval inv inv --gold total=true_total --gold true_paid")
    with pytest.raises(UsageError, match=r"no column 'lable'"):
        ip.run_cell("%batch eval df animal --gold lable")
    with pytest.raises(UsageError, match=r"Which DataFrame\? No job of this session wrote 'animal'"):
        ip.run_cell("%batch eval animal --gold label")
    with pytest.raises(UsageError, match=r"the following arguments are required: --gold/-g"):
        ip.run_cell("%batch eval df animal")


def test_eval_after_a_real_job_takes_its_frame_and_bill(ip_sim: Any) -> None:
    """A job through the simulator: `%batch eval OUT` finds the DataFrame the job filled
    and reads the cost from the job's own bill."""
    df = pd.DataFrame({
        "text": ["the cat sat", "a dog barked", "a bird sang", "the cat slept", "a dog ran"],
        # The simulator answers the label the text names (word overlap, docs/simulator.md),
        # so row 2, whose gold says dog, is its one wrong answer.
        "label": ["cat", "dog", "dog", "cat", "dog"],
    })
    ip_sim.user_ns["df"] = df
    ip_sim.run_cell("%%batch df --out animal --labels cat,dog,bird --wait\nWhich animal? {{ text }}")
    from _shell import magic_instance

    job = magic_instance(ip_sim)._session_jobs()[-1]
    assert job.status.actual_cost is not None and job.status.actual_cost > 0
    report = ip_sim.run_cell("%batch eval animal --gold label").result
    m = report.metrics
    assert (m.evaluated, m.answered, m.correct) == (5, 5, 4)
    assert list(report.disagreements.index) == [2]
    # Every row was paid for and evaluated, so the whole bill is the evaluated rows' cost.
    assert m.cost == pytest.approx(job.status.actual_cost)
    assert m.cost_per_correct == pytest.approx(job.status.actual_cost / 4)
    assert f"the bill of job {job.id}" in report._repr_html_()
    # The same figures as the Python API given the job.
    direct = batch_magic.evaluate(df, "animal", gold="label", cost=job)
    assert direct.metrics == m


def test_help_of_eval_and_compare(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("%batch help eval")
    out = capsys.readouterr().out
    assert out.startswith("%batch eval [DF] OUT [--gold COL] [--tolerance X]\n")
    assert "--gold COL, -g COL  the gold column (required)" in out and "FIELD=COL, once per field" in out
    ip.run_cell("%batch help compare")
    assert capsys.readouterr().out.startswith("%batch compare [DF] A B [--gold COL]\n")
    ip.run_cell("%batch help")
    listing = capsys.readouterr().out
    assert "%batch eval [DF] OUT" in listing and "%batch compare [DF] A B" in listing


def test_nan_free_figures_when_kappa_is_undefined() -> None:
    # One class only: kappa is undefined (scikit-learn gives nan); the report says n/a.
    df = job_frame("one", ["x", "x"], ["succeeded", "succeeded"], labels=["x", "y"])
    df["gold"] = ["x", "x"]
    report = batch_magic.evaluate(df, "one", gold="gold")
    assert report.metrics.kappa is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in report.to_frame()["one"].dropna())


def test_nothing_answered_gives_no_figure_rather_than_a_wrong_one() -> None:
    df = job_frame("x", [None, None], ["errored", "expired"], labels=["a", "b"])
    df = pd.concat([df, job_frame("y", ["a", None], ["succeeded", "errored"], labels=["a", "b"])], axis=1)
    df["gold"] = ["a", "b"]
    report = batch_magic.evaluate(df, "x", gold="gold")
    m = report.metrics
    assert (m.answered, m.correct, m.accuracy_answered.value, m.macro_f1, m.kappa) == (0, 0, None, None, None)
    assert m.accuracy_all.value == 0.0 and m.status_counts == {"errored": 1, "expired": 1}
    assert "n/a (no rows)" in report._repr_html_()
    comparison = batch_magic.compare(df, "x", "y", gold="gold")
    assert comparison.metrics.both_answered == 0 and comparison.metrics.p_value is None
    assert (comparison.metrics.only_b_answered, comparison.metrics.neither_answered) == (1, 1)
    assert "n/a" in comparison._repr_html_()
