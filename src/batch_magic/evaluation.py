"""A job's answers measured against gold labels, and two jobs' answers against each other.

``evaluate(df, "team", gold="label")`` and ``compare(df, "team", "team_v2", gold="label")``
read the columns a job merged into a DataFrame (named by ``columns.job_columns``, never
guessed) and return report objects: their HTML shows every figure, ``.metrics`` holds
them as a typed record and ``.to_frame()`` as a DataFrame.

A Polars frame is read the same way: only the columns the figures need are converted
to pandas (never the whole frame), and the rows shown (the disagreements, the rows
where two jobs differ) are taken from the Polars frame itself, as a Polars frame.

Pure: no I/O, no job. The statistics are the field's own libraries, not formulas of
ours: scikit-learn's metrics, scipy's binomial test (for the Wilson interval and the
exact McNemar test). Both are the optional extra ``eval`` and are imported only here,
inside the functions, so the package imports without them.

Every row counts somewhere: a row without gold is "not evaluated"; an evaluated row
that has no usable answer (invalid, refused, errored, expired, canceled, skipped, not
sent, no result) is counted by its status and is wrong in the accuracy over all rows.
"""

from __future__ import annotations

import base64
import html
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import pandas as pd

from .columns import job_columns
from .errors import BatchMagicError, ConfigError, quote
from .frames import is_polars
from .panel import html_no_math
from .report import _STYLE, money
from .states import RowStatus

INSTALL_EVAL = 'pip install "batch-magic[eval]"'
CONFIDENCE = 0.95
#: The status shown for a row whose status cell is empty: the job had no such row
#: (a row added to the frame after the merge) or its answer never came back.
NO_RESULT = "no result"
#: The most classes a confusion matrix is drawn for; more are listed as a table.
MAX_HEATMAP_CLASSES = 25
#: Rows of a frame shown in the HTML (the whole frame is the attribute).
SHOWN_ROWS = 20


class MissingExtraError(BatchMagicError, ImportError):
    """scikit-learn or scipy (the ``eval`` extra) is not installed."""


def _libraries() -> tuple[Any, Any]:
    """``sklearn.metrics`` and ``scipy.stats``, or an error naming the install command."""
    try:
        from scipy import stats
        from sklearn import metrics
    except ImportError as exc:
        raise MissingExtraError(
            f"Evaluating answers needs scikit-learn and scipy, and {exc.name or 'one of them'!r} "
            f"is not installed: {INSTALL_EVAL}"
        ) from None
    return metrics, stats


# -- the records -----------------------------------------------------------------------
@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n``, with its 95% Wilson interval (None when ``n`` is 0)."""

    k: int
    n: int
    low: float | None
    high: float | None

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    def text(self) -> str:
        if not self.n:
            return "n/a (no rows)"
        return (
            f"{_pct(self.value)} ({self.k:,}/{self.n:,}; 95% CI {_pct(self.low)} to {_pct(self.high)}, Wilson)"
        )


def _proportion(stats: Any, k: int, n: int) -> Proportion:
    if n == 0:
        return Proportion(0, 0, None, None)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return Proportion(k, n, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Cost:
    """What the evaluated rows cost, and where the figure comes from."""

    #: USD billed for the job(s) that wrote the column (None: not given).
    billed: float | None
    #: Where that figure comes from: "the bill given (cost=)", "the bill of job ...".
    source: str
    #: Rows the job was paid for (output tokens billed), in the whole frame.
    paid_rows: int
    #: Of those, the rows evaluated.
    paid_evaluated: int

    @property
    def evaluated(self) -> float | None:
        """The evaluated rows' share of the bill, by paid rows."""
        if self.billed is None:
            return None
        if self.paid_rows == 0:
            return self.billed
        return self.billed * self.paid_evaluated / self.paid_rows

    def per_correct(self, correct: int) -> float | None:
        share = self.evaluated
        return share / correct if share is not None and correct else None

    def text(self, correct: int) -> str:
        if self.billed is None:
            return "n/a: give the job (cost=job) or what it was billed in USD"
        shared = ""
        if self.paid_evaluated != self.paid_rows:
            shared = (
                f"; the {self.paid_evaluated:,} rows measured: their share of the "
                f"{self.paid_rows:,} paid rows: {money(self.evaluated)}"
            )
        per = self.per_correct(correct)
        return (
            f"{money(per) if per is not None else 'n/a (no correct answer)'} per correct answer "
            f"({money(self.billed)} billed{shared}; / {correct:,} correct)"
        )


@dataclass(frozen=True)
class EvaluationMetrics:
    """The figures of an evaluation (``Evaluation.metrics``)."""

    out: str
    gold: str
    rows: int
    #: Rows with a gold value: the ones measured.
    evaluated: int
    #: Rows without one: not measured.
    no_gold: int
    #: Evaluated rows by ``{out}_status`` (``no result``: the cell is empty); every
    #: evaluated row is in exactly one.
    status_counts: dict[str, int]
    #: Evaluated rows with an answer (status succeeded).
    answered: int
    #: Answered rows equal to gold (for a schema: every field right).
    correct: int
    accuracy_answered: Proportion
    accuracy_all: Proportion
    macro_f1: float | None
    weighted_f1: float | None
    kappa: float | None
    cost: float | None
    cost_per_correct: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """An answer column against gold (``batch_magic.evaluate``); shows itself as HTML."""

    metrics: EvaluationMetrics
    #: Per class: precision, recall, f1, support (rows "macro avg", "weighted avg"); None for a schema.
    per_class: pd.DataFrame | None
    #: Gold (rows) by answer (columns), over the answered rows; None for a schema.
    confusion: pd.DataFrame | None
    #: The same, each row divided by its total.
    confusion_normalized: pd.DataFrame | None
    #: Per schema field: how it is compared, its counts and accuracies; None for labels.
    fields: pd.DataFrame | None
    #: Evaluated rows not right (wrong or not answered): the inputs, the gold, the answer
    #: (a ``polars.DataFrame`` when the frame evaluated is one).
    disagreements: Any
    cost: Cost
    #: Gold values the answers never take (a spelling that differs from the labels?).
    unseen_gold: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """The headline figures, one row each, in a column named after the job's ``out``
        (``pd.concat([r1.to_frame(), r2.to_frame()], axis=1)`` sets runs side by side)."""
        return _figures_frame(self.metrics.out, _evaluation_figures(self.metrics))

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"<Evaluation of {m.out!r} against {m.gold!r}: {m.evaluated:,} rows, "
            f"accuracy {_pct(m.accuracy_answered.value)} over answered, {_pct(m.accuracy_all.value)} over all>"
        )

    def _repr_html_(self) -> str:
        return _evaluation_html(self)


@dataclass(frozen=True)
class ComparisonMetrics:
    """The figures of a comparison (``Comparison.metrics``)."""

    a: str
    b: str
    gold: str | None
    #: Rows compared: all, or with gold when there is gold.
    rows: int
    both_answered: int
    only_a_answered: int
    only_b_answered: int
    neither_answered: int
    #: On the rows both answered: the share where the answers are equal, and kappa.
    agreement: Proportion
    kappa: float | None
    #: With gold, on the rows both answered.
    accuracy_a: Proportion | None
    accuracy_b: Proportion | None
    #: Rows A got right and B wrong, and the other way round (the discordant pairs).
    only_a_right: int | None
    only_b_right: int | None
    #: Accuracy of B minus accuracy of A.
    difference: float | None
    #: McNemar's exact test of that difference (two-sided).
    p_value: float | None
    cost_a: float | None
    cost_b: float | None
    cost_per_correct_a: float | None
    cost_per_correct_b: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Comparison:
    """Two answer columns on the same rows (``batch_magic.compare``); shows itself as HTML."""

    metrics: ComparisonMetrics
    #: Rows both answered where the answers differ: the inputs, the gold, both answers
    #: (a ``polars.DataFrame`` when the frame compared is one).
    differences: Any
    costs: tuple[Cost, Cost]

    def to_frame(self) -> pd.DataFrame:
        """The figures, one row each."""
        return _figures_frame(f"{self.metrics.a} vs {self.metrics.b}", _comparison_figures(self.metrics))

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"<Comparison of {m.a!r} and {m.b!r}: {m.both_answered:,} rows both answered, "
            f"agreement {_pct(m.agreement.value)}>"
        )

    def _repr_html_(self) -> str:
        return _comparison_html(self)


# -- reading the frame -----------------------------------------------------------------
def _measured(df: Any, names: Sequence[str]) -> pd.DataFrame:
    """The columns the figures read, as pandas: a pandas frame as it is; of a Polars frame,
    only these columns (those it has) are converted, so a wide frame is never copied whole.
    A Polars ``Enum`` becomes a pandas Categorical with the same categories (the labels'
    order); a row's position is its index."""
    if not is_polars(df):
        return df
    present = [n for n in dict.fromkeys(names) if n in df.columns]
    return df.select(present).to_pandas()


def _rows_of(df: Any, rows: pd.Series, columns: list[str]) -> Any:
    """The rows marked in ``rows`` (aligned with the frame's rows), with ``columns``:
    a pandas frame by its index, a Polars frame as a Polars frame (only those rows)."""
    if is_polars(df):
        import polars as pl

        return df.filter(pl.Series(rows.to_numpy(dtype=bool))).select(columns)
    return df.loc[rows, columns]


def _require_columns(df: Any, names: Sequence[str], what: str) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        shown = ", ".join(repr(str(c)) for c in list(df.columns)[:30])
        raise ConfigError(
            f"The DataFrame has no column {quote(missing[0])} ({what}). Columns: {shown}."
        )


def _statuses(df: pd.DataFrame, out: str) -> pd.Series:
    """The rows' statuses as words (``no result`` where the cell is empty)."""
    column = _status_column(df, out)
    return df[column].astype(object).where(df[column].notna(), NO_RESULT).astype(str)


def _status_column(df: Any, out: str) -> str:
    """The name of ``out``'s status column, or an error saying ``out`` is no job's column."""
    column = job_columns(out).status
    if column not in df.columns:
        raise ConfigError(
            f"The DataFrame has no column {column!r}, so {out!r} is not the answer column of a "
            f"job merged into it: give the --out of a job (its answers are {out!r}, its row "
            f"statuses {column!r})."
        )
    return column


def _status_counts(statuses: pd.Series) -> dict[str, int]:
    """Counts by status, in ``RowStatus`` order, then any other word (none dropped)."""
    counts = statuses.value_counts()
    order = [str(s) for s in RowStatus]
    words = [w for w in order if w in counts.index] + sorted(w for w in counts.index if w not in order)
    return {w: int(counts[w]) for w in words}


def _as_text(values: pd.Series) -> pd.Series:
    """Values as strings for an exact comparison (labels, text, enums, booleans). A whole
    float reads as an integer: gold labels 1, 2, 3 in a column with gaps are floats."""
    return values.astype(object).map(_text)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _paid(df: pd.DataFrame, out: str) -> pd.Series:
    """Rows whose answer was billed: the API reported output tokens for them (an
    errored, expired or skipped row has none; a refusal before any output is not billed)."""
    column = job_columns(out).output_tokens
    if column not in df.columns:
        return pd.Series(False, index=df.index)
    return pd.to_numeric(df[column], errors="coerce").fillna(0).gt(0)


class BilledJob(Protocol):
    """What the cost is read from when a job is given (``BatchJob`` has it)."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> Any: ...  # a JobStatus: its actual_cost


#: What ``cost=`` takes: USD, a job, or the jobs (a job and its retries) that wrote the column.
CostGiven = float | BilledJob | Sequence[BilledJob] | None


def _billed(cost: CostGiven) -> tuple[float | None, str]:
    """The USD billed, and where that figure comes from."""
    if cost is None:
        return None, ""
    if isinstance(cost, bool) or (isinstance(cost, (int, float)) and (cost < 0 or math.isnan(cost))):
        raise ConfigError(f"cost={quote(cost)}: give the USD billed for the job, or the job itself.")
    if isinstance(cost, (int, float)):
        return float(cost), "the bill given (cost=)"
    jobs: list[Any] = list(cost) if isinstance(cost, Sequence) else [cost]
    if not jobs or not all(hasattr(j, "status") and hasattr(j, "id") for j in jobs):
        raise ConfigError(f"cost={quote(cost)}: give the USD billed for the job, or the job (or jobs) itself.")
    billed = [j.status.actual_cost for j in jobs]
    unpriced = [j.id for j, b in zip(jobs, billed) if b is None]
    if unpriced:
        raise ConfigError(
            f"cost=: job {', '.join(unpriced)} has no billed cost yet (it has not ended); "
            "evaluate once it has, or give the cost in USD."
        )
    ids = ", ".join(j.id for j in jobs)
    return float(sum(billed)), f"the bill of job{'s' if len(jobs) > 1 else ''} {ids}"


def _cost(df: pd.DataFrame, out: str, rows: pd.Series, given: CostGiven) -> Cost:
    billed, source = _billed(given)
    paid = _paid(df, out)
    return Cost(billed, source, int(paid.sum()), int((paid & rows).sum()))


def _job_outs(df: Any) -> list[str]:
    """Answer columns of the jobs merged into the frame (a column with its own status column)."""
    names = {str(c) for c in df.columns}
    return [str(c) for c in df.columns if job_columns(str(c)).status in names]


def _input_columns(df: Any, inputs: Sequence[str] | None, shown: Sequence[str]) -> list[str]:
    """The columns shown beside the answers: ``inputs`` when given, else the frame's
    columns that no job wrote (other jobs' answers and bookkeeping left out)."""
    if inputs is not None:
        _require_columns(df, list(inputs), "named in inputs=")
        return list(inputs)
    taken = set(shown)
    for out in _job_outs(df):
        names = job_columns(out)
        taken.update((names.answer, *names.bookkeeping))
    return [str(c) for c in df.columns if str(c) not in taken]


def _columns(inputs: list[str], shown: Sequence[str], df: Any) -> list[str]:
    """The inputs, then the columns compared (once each; those the frame has)."""
    return list(dict.fromkeys([*inputs, *(c for c in shown if c in df.columns)]))


def _kappa(metrics: Any, a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa, or None where it is undefined (one class only, or no rows)."""
    if len(a) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns before returning nan
        value = float(metrics.cohen_kappa_score(a, b))
    return None if math.isnan(value) else value


# -- evaluate --------------------------------------------------------------------------
def evaluate(
    df: Any,
    out: str,
    gold: str | Mapping[str, str],
    *,
    cost: CostGiven = None,
    tolerance: float | Mapping[str, float] = 0.0,
    inputs: Sequence[str] | None = None,
) -> Evaluation:
    """Measure the job's answers in ``df[out]`` against the gold labels in ``df[gold]``.

    ``gold`` is a column name, or for a ``--schema`` job a mapping of fields to
    their gold columns (``{"price": "true_price"}``): strings, booleans and enums are
    scored exactly, numbers within ``tolerance`` (one for all, or per field). Rows
    without gold are not evaluated. ``cost`` is the job that wrote ``out`` (or the
    jobs: with its retries), or what it was billed in USD: the evaluated rows' share
    of the bill, by rows paid for, divided by the correct answers is the cost per
    correct answer.
    ``inputs`` chooses the columns shown beside the disagreements.
    ``df`` is a pandas or a Polars frame.
    """
    metrics, stats = _libraries()
    names = job_columns(out)
    _status_column(df, out)
    read = [names.status, names.error, names.output_tokens]
    if isinstance(gold, str):
        _require_columns(df, [out], f"the answers of {out!r}")
        _require_columns(df, [gold], "the gold labels")
        data = _measured(df, [out, gold, *read])
        return _evaluate_labels(df, data, out, gold, _statuses(data, out), metrics, stats, cost, inputs)
    if not isinstance(gold, Mapping) or not gold:
        raise ConfigError(
            f"gold={quote(gold)}: give the gold column's name, or for a schema job a dict of "
            "fields to gold columns, e.g. gold={'price': 'true_price'}."
        )
    _require_columns(df, [names.field(f) for f in gold], f"fields of {out!r}")
    _require_columns(df, list(gold.values()), "the gold columns")
    data = _measured(df, [*(names.field(f) for f in gold), *gold.values(), *read])
    return _evaluate_fields(df, data, out, dict(gold), _statuses(data, out), metrics, stats, cost, tolerance, inputs)


def _class_order(answers: pd.Series, values: Sequence[str]) -> list[str]:
    """The classes in the labels' order (a Categorical's categories), then the rest sorted."""
    present = set(values)
    first = [str(c) for c in answers.cat.categories] if isinstance(answers.dtype, pd.CategoricalDtype) else []
    ordered = [c for c in first if c in present]
    return ordered + sorted(present - set(ordered))


def _evaluate_labels(
    frame: Any, df: pd.DataFrame, out: str, gold: str, statuses: pd.Series, metrics: Any, stats: Any,
    billed: CostGiven, inputs: Sequence[str] | None,
) -> Evaluation:
    """``df``: the columns measured, as pandas; ``frame``: the frame given (its rows shown)."""
    has_gold = df[gold].notna()
    evaluated = statuses[has_gold]
    answered = has_gold & statuses.eq(str(RowStatus.SUCCEEDED)) & df[out].notna()
    y_true = _as_text(df.loc[answered, gold])
    y_pred = _as_text(df.loc[answered, out])
    right = pd.Series(False, index=df.index)
    right[answered] = (y_true == y_pred).to_numpy()
    correct = int(right.sum())
    n_answered = int(answered.sum())

    classes = _class_order(df[out], [*y_true.unique(), *y_pred.unique()])
    per_class = confusion = normalized = None
    macro_f1 = weighted_f1 = None
    if n_answered:
        p, r, f, s = metrics.precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
        per_class = pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": s}, index=pd.Index(classes, name="class"))
        for average in ("macro", "weighted"):
            ap, ar, af, _ = metrics.precision_recall_fscore_support(
                y_true, y_pred, labels=classes, average=average, zero_division=0
            )
            per_class.loc[f"{average} avg"] = [ap, ar, af, len(y_true)]
        per_class["support"] = per_class["support"].astype(int)
        macro_f1 = float(per_class.loc["macro avg", "f1"])
        weighted_f1 = float(per_class.loc["weighted avg", "f1"])
        # Every label is a row and a column (one never given or never right shows as such).
        axis = _class_order(df[out], [*classes, *_categories(df[out])])
        gold_axis, answer_axis = pd.Index(axis, name="gold"), pd.Index(axis, name="answer")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one class only: sklearn warns, the matrix is right
            counts = metrics.confusion_matrix(y_true, y_pred, labels=axis)
            shares = metrics.confusion_matrix(y_true, y_pred, labels=axis, normalize="true")
        confusion = pd.DataFrame(counts, gold_axis, answer_axis)
        normalized = pd.DataFrame(shares, gold_axis, answer_axis)

    cost = _cost(df, out, has_gold, billed)
    wrong = has_gold & ~right
    shown = [gold, out, job_columns(out).status, job_columns(out).error]
    columns = _columns(_input_columns(frame, inputs, shown), shown, frame)
    # With labels, a gold value outside them is never right: most often a spelling.
    labels = _categories(df[out])
    unseen = tuple(sorted(set(_as_text(df.loc[has_gold, gold]).unique()) - set(labels))) if labels else ()
    record = EvaluationMetrics(
        out=out, gold=gold, rows=len(df), evaluated=int(has_gold.sum()), no_gold=int((~has_gold).sum()),
        status_counts=_status_counts(evaluated), answered=n_answered, correct=correct,
        accuracy_answered=_proportion(stats, correct, n_answered),
        accuracy_all=_proportion(stats, correct, int(has_gold.sum())),
        macro_f1=macro_f1, weighted_f1=weighted_f1, kappa=_kappa(metrics, list(y_true), list(y_pred)),
        cost=cost.evaluated, cost_per_correct=cost.per_correct(correct),
    )
    return Evaluation(record, per_class, confusion, normalized, None, _rows_of(frame, wrong, columns), cost, unseen)


def _categories(values: pd.Series) -> list[str]:
    return [str(c) for c in values.cat.categories] if isinstance(values.dtype, pd.CategoricalDtype) else []


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def _field_right(answer: pd.Series, truth: pd.Series, tol: float) -> pd.Series:
    """Per row: the answer equals gold (numbers: within ``tol``); False where either is missing."""
    both = answer.notna() & truth.notna()
    right = pd.Series(False, index=answer.index)
    if _is_number(answer):
        a = pd.to_numeric(answer[both], errors="coerce").astype(float)
        g = pd.to_numeric(truth[both], errors="coerce").astype(float)
        right[both] = ((a - g).abs() <= tol).fillna(False).to_numpy(dtype=bool)
    else:
        right[both] = (_as_text(answer[both]) == _as_text(truth[both])).to_numpy()
    return right


def _evaluate_fields(
    frame: Any, df: pd.DataFrame, out: str, gold: dict[str, str], statuses: pd.Series, metrics: Any, stats: Any,
    billed: CostGiven, tolerance: float | Mapping[str, float], inputs: Sequence[str] | None,
) -> Evaluation:
    names = job_columns(out)
    succeeded = statuses.eq(str(RowStatus.SUCCEEDED))
    unknown = [f for f in (tolerance if isinstance(tolerance, Mapping) else {}) if f not in gold]
    if unknown:
        raise ConfigError(f"tolerance names {quote(unknown[0])}, which is not a field in gold= ({', '.join(gold)}).")
    has_gold = pd.concat([df[g].notna() for g in gold.values()], axis=1).all(axis=1)
    all_right = has_gold & succeeded
    rows = []
    for name, gold_col in gold.items():
        answer = df[names.field(name)]
        number = _is_number(answer)
        tol = float(tolerance.get(name, 0.0) if isinstance(tolerance, Mapping) else tolerance)
        field_gold = df[gold_col].notna()
        field_answered = field_gold & succeeded & answer.notna()
        right = _field_right(answer, df[gold_col], tol) & field_answered
        all_right &= right
        k, n_answered, n_gold = int(right.sum()), int(field_answered.sum()), int(field_gold.sum())
        kappa = macro_f1 = None
        if not number and n_answered:
            y_true, y_pred = list(_as_text(df.loc[field_answered, gold_col])), list(_as_text(answer[field_answered]))
            kappa = _kappa(metrics, y_true, y_pred)
            macro_f1 = float(metrics.f1_score(y_true, y_pred, average="macro", zero_division=0))
        rows.append({
            "field": name, "column": names.field(name), "gold": gold_col,
            "compared": f"within ±{tol:g}" if number and tol else "exact",
            "evaluated": n_gold, "answered": n_answered, "correct": k,
            "accuracy_answered": _proportion(stats, k, n_answered),
            "accuracy_all": _proportion(stats, k, n_gold),
            "macro_f1": macro_f1, "kappa": kappa,
        })
    fields = pd.DataFrame(rows).set_index("field")
    answered = has_gold & succeeded
    correct, n_answered = int(all_right.sum()), int(answered.sum())
    cost = _cost(df, out, has_gold, billed)
    shown = [c for name, g in gold.items() for c in (g, names.field(name))] + [names.status, names.error]
    columns = _columns(_input_columns(frame, inputs, [*shown, names.answer]), shown, frame)
    label = ", ".join(f"{k}={v}" for k, v in gold.items())
    record = EvaluationMetrics(
        out=out, gold=label, rows=len(df), evaluated=int(has_gold.sum()), no_gold=int((~has_gold).sum()),
        status_counts=_status_counts(statuses[has_gold]), answered=n_answered, correct=correct,
        accuracy_answered=_proportion(stats, correct, n_answered),
        accuracy_all=_proportion(stats, correct, int(has_gold.sum())),
        macro_f1=None, weighted_f1=None, kappa=None,
        cost=cost.evaluated, cost_per_correct=cost.per_correct(correct),
    )
    wrong = has_gold & ~all_right
    return Evaluation(record, None, None, None, fields, _rows_of(frame, wrong, columns), cost)


# -- compare ---------------------------------------------------------------------------
def compare(
    df: Any,
    a: str,
    b: str,
    gold: str | None = None,
    *,
    cost_a: CostGiven = None,
    cost_b: CostGiven = None,
    inputs: Sequence[str] | None = None,
) -> Comparison:
    """Two jobs' answers (``df[a]``, ``df[b]``) on the rows both answered.

    With ``gold``: each side's accuracy with its interval, the paired difference with
    McNemar's exact test, and each side's cost per correct answer (``cost_a``,
    ``cost_b``: each side's job, or what it was billed in USD). With or without gold: how often they agree,
    Cohen's kappa between them, and the rows where they differ.
    """
    metrics, stats = _libraries()
    if a == b:
        raise ConfigError(f"compare: both sides are {a!r}; give two answer columns, e.g. compare(df, 'team', 'team_v2').")
    frame = df
    _status_column(frame, a), _status_column(frame, b)
    _require_columns(frame, [a, b], "an answer column")
    if gold is not None:
        _require_columns(frame, [gold], "the gold labels")
    names_a, names_b = job_columns(a), job_columns(b)
    df = _measured(frame, [
        a, b, *([gold] if gold is not None else []),
        names_a.status, names_a.output_tokens, names_b.status, names_b.output_tokens,
    ])
    status_a, status_b = _statuses(df, a), _statuses(df, b)
    if gold is not None:
        rows = df[gold].notna()
    else:
        rows = pd.Series(True, index=df.index)
    answered_a = rows & status_a.eq(str(RowStatus.SUCCEEDED)) & df[a].notna()
    answered_b = rows & status_b.eq(str(RowStatus.SUCCEEDED)) & df[b].notna()
    both = answered_a & answered_b
    va, vb = _as_text(df.loc[both, a]), _as_text(df.loc[both, b])
    same = (va == vb).to_numpy()
    n = int(both.sum())

    accuracy_a = accuracy_b = None
    only_a_right = only_b_right = None
    difference = p_value = None
    cost_of_a, cost_of_b = _cost(df, a, both, cost_a), _cost(df, b, both, cost_b)
    per_correct_a = per_correct_b = None
    if gold is not None:
        truth = _as_text(df.loc[both, gold])
        right_a, right_b = (va == truth).to_numpy(), (vb == truth).to_numpy()
        accuracy_a = _proportion(stats, int(right_a.sum()), n)
        accuracy_b = _proportion(stats, int(right_b.sum()), n)
        only_a_right = int((right_a & ~right_b).sum())
        only_b_right = int((right_b & ~right_a).sum())
        if n:
            difference = (int(right_b.sum()) - int(right_a.sum())) / n
        # McNemar's exact test: under "no difference" each discordant pair (one side
        # right, the other wrong) is equally likely to favour either side, so the count
        # favouring A is Binomial(discordant, 1/2); the exact test is that binomial test.
        # No discordant pair is no evidence of a difference (p = 1); no pair at all, no test.
        discordant = only_a_right + only_b_right
        if discordant:
            p_value = float(stats.binomtest(only_a_right, discordant, 0.5).pvalue)
        elif n:
            p_value = 1.0
        per_correct_a = cost_of_a.per_correct(int(right_a.sum()))
        per_correct_b = cost_of_b.per_correct(int(right_b.sum()))

    differ = pd.Series(False, index=df.index)
    differ[both] = ~same
    shown = [c for c in (gold, a, b) if c is not None]
    columns = _columns(_input_columns(frame, inputs, shown), shown, frame)
    record = ComparisonMetrics(
        a=a, b=b, gold=gold, rows=int(rows.sum()), both_answered=n,
        only_a_answered=int((answered_a & ~answered_b).sum()),
        only_b_answered=int((answered_b & ~answered_a).sum()),
        neither_answered=int((rows & ~answered_a & ~answered_b).sum()),
        agreement=_proportion(stats, int(same.sum()), n), kappa=_kappa(metrics, list(va), list(vb)),
        accuracy_a=accuracy_a, accuracy_b=accuracy_b, only_a_right=only_a_right, only_b_right=only_b_right,
        difference=difference, p_value=p_value,
        cost_a=cost_of_a.evaluated, cost_b=cost_of_b.evaluated,
        cost_per_correct_a=per_correct_a, cost_per_correct_b=per_correct_b,
    )
    return Comparison(record, _rows_of(frame, differ, columns), (cost_of_a, cost_of_b))


# -- figures as data -------------------------------------------------------------------
def _evaluation_figures(m: EvaluationMetrics) -> dict[str, Any]:
    figures: dict[str, Any] = {"rows": m.rows, "evaluated": m.evaluated, "no gold": m.no_gold}
    figures.update({f"status {k}": v for k, v in m.status_counts.items()})
    figures.update({
        "answered": m.answered, "correct": m.correct,
        "accuracy over answered": m.accuracy_answered.value,
        "accuracy over answered, CI low": m.accuracy_answered.low,
        "accuracy over answered, CI high": m.accuracy_answered.high,
        "accuracy over all": m.accuracy_all.value,
        "accuracy over all, CI low": m.accuracy_all.low,
        "accuracy over all, CI high": m.accuracy_all.high,
        "macro F1": m.macro_f1, "weighted F1": m.weighted_f1, "Cohen's kappa": m.kappa,
        "cost (USD)": m.cost, "cost per correct (USD)": m.cost_per_correct,
    })
    return figures


def _comparison_figures(m: ComparisonMetrics) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "rows": m.rows, "both answered": m.both_answered, f"only {m.a} answered": m.only_a_answered,
        f"only {m.b} answered": m.only_b_answered, "neither answered": m.neither_answered,
        "agreement": m.agreement.value, "Cohen's kappa": m.kappa,
    }
    if m.gold is not None and m.accuracy_a is not None and m.accuracy_b is not None:
        for side, acc in ((m.a, m.accuracy_a), (m.b, m.accuracy_b)):
            figures.update({
                f"accuracy {side}": acc.value, f"accuracy {side}, CI low": acc.low, f"accuracy {side}, CI high": acc.high,
            })
        figures.update({
            f"only {m.a} right": m.only_a_right, f"only {m.b} right": m.only_b_right,
            f"difference ({m.b} - {m.a})": m.difference, "McNemar exact p": m.p_value,
        })
    figures.update({
        f"cost {m.a} (USD)": m.cost_a, f"cost {m.b} (USD)": m.cost_b,
        f"cost per correct {m.a} (USD)": m.cost_per_correct_a, f"cost per correct {m.b} (USD)": m.cost_per_correct_b,
    })
    return figures


def _figures_frame(name: str, figures: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(figures, dtype=object)}).rename_axis("figure")


# -- HTML ------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _table(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table; keys are escaped, values are markup already."""
    return "<table class='bm-table'>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows
    ) + "</table>"


def _frame_html(frame: Any, *, digits: int | None = 3, index: bool = True) -> str:
    """A frame as an HTML table: its first rows, figures to ``digits`` decimals (None:
    values as they are), missing values blank."""
    if is_polars(frame):  # only the rows shown become pandas (no index: a Polars frame has none)
        return _frame_html(frame.head(SHOWN_ROWS).to_pandas(), digits=digits, index=False) + _more_rows(frame)
    shown = frame.head(SHOWN_ROWS).rename_axis(None)
    cells = pd.DataFrame(index=shown.index)
    for name in shown.columns:
        column = shown[name]
        if digits is not None and pd.api.types.is_float_dtype(column.dtype):
            cells[name] = column.map(lambda x: "" if pd.isna(x) else f"{x:.{digits}f}")
        else:
            cells[name] = column.astype(object).where(column.notna(), "")
    return cells.to_html(classes="bm-table", border=0, escape=True, index=index) + _more_rows(frame)


def _more_rows(frame: Any) -> str:
    more = len(frame) - SHOWN_ROWS
    if more <= 0:
        return ""
    return f"<div class='bm-muted'>... and {more:,} more rows (the whole frame is the attribute)</div>"


def _counts_text(m: EvaluationMetrics) -> str:
    parts = [f"{n:,} {html.escape('answered' if w == str(RowStatus.SUCCEEDED) else w)}"
             for w, n in m.status_counts.items()]
    return ", ".join(parts) if parts else "none"


def _heatmap(counts: pd.DataFrame, normalized: pd.DataFrame) -> str | None:
    """The confusion matrix drawn as a PNG data URI, or None without matplotlib."""
    if len(counts) > MAX_HEATMAP_CLASSES:
        return None
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    n = len(counts)
    size = 1.2 + 0.6 * n
    fig = Figure(figsize=(size + 1.2, size), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(normalized.to_numpy(dtype=float), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the gold row")

    def plain(text: Any) -> str:  # matplotlib reads text between two $ as maths
        return str(text).replace("$", r"\$")

    ax.set_xticks(range(n), [plain(c) for c in counts.columns], rotation=45, ha="right")
    ax.set_yticks(range(n), [plain(c) for c in counts.index])
    ax.set_xlabel("answer")
    ax.set_ylabel("gold")
    for i in range(n):
        for j in range(n):
            share = float(normalized.iat[i, j])
            ax.text(j, i, f"{int(counts.iat[i, j])}\n{100 * share:.0f}%", ha="center", va="center",
                    fontsize=8, color="white" if share > 0.5 else "black")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _confusion_html(counts: pd.DataFrame, normalized: pd.DataFrame, answered: int) -> str:
    head = f"<h4>Confusion matrix</h4><div class='bm-muted'>gold in rows, answers in columns, over the {answered:,} answered rows</div>"
    uri = _heatmap(counts, normalized)
    if uri is not None:
        return head + f"<img alt='confusion matrix: counts and share of each gold row' src='{uri}'/>"
    cells = counts.astype(str) + " (" + (100 * normalized).round().astype(int).astype(str) + "%)"
    return head + "<div class='bm-muted'>count (share of the gold row)</div>" + _frame_html(cells)


def _evaluation_html(r: Evaluation) -> str:
    m, e = r.metrics, html.escape
    rows: list[tuple[str, str]] = [
        ("rows", f"{m.rows:,}" + (f" <span class='bm-muted'>({m.no_gold:,} without gold, not evaluated)</span>" if m.no_gold else "")),
        ("evaluated", f"{m.evaluated:,}: {_counts_text(m)}"),
        ("accuracy over answered", f"<b>{e(m.accuracy_answered.text())}</b>"),
        ("accuracy over all", e(m.accuracy_all.text()) + " <span class='bm-muted'>(a row not answered counts as wrong)</span>"),
    ]
    if r.fields is None:
        rows += [
            ("macro F1", _num(m.macro_f1)),
            ("weighted F1", _num(m.weighted_f1)),
            ("Cohen's kappa", _num(m.kappa) + " <span class='bm-muted'>(answers against gold, over answered rows)</span>"),
        ]
    rows.append(("cost", e(r.cost.text(m.correct))))
    if r.cost.billed is not None:
        rows.append(("cost from", e(r.cost.source) + ", shared among the rows paid for "
                     "(a row is paid for when the API billed output tokens for it)"))
    if r.unseen_gold:
        shown = ", ".join(repr(v) for v in r.unseen_gold[:10])
        rows.append(("warning", f"<span class='bm-bad'>gold values no answer takes: {e(shown)}; "
                                "check the spelling against the labels</span>"))
    parts = [
        f"{_STYLE}<div class='bm-report'><b>Evaluation</b> of <code>{e(m.out)}</code> against "
        f"<code>{e(m.gold)}</code>",
        _table(rows),
    ]
    if r.fields is not None:
        fields = r.fields.copy()
        for col in ("accuracy_answered", "accuracy_all"):
            fields[col] = [p.text() for p in fields[col]]
        parts.append("<h4>Fields</h4>" + _frame_html(fields))
    if r.per_class is not None:
        parts.append("<h4>Per class</h4>" + _frame_html(r.per_class))
    if r.confusion is not None and r.confusion_normalized is not None:
        parts.append(_confusion_html(r.confusion, r.confusion_normalized, m.answered))
    parts.append(
        f"<h4>Disagreements</h4><div class='bm-muted'>{len(r.disagreements):,} evaluated rows not right "
        "(wrong, or not answered); <code>.disagreements</code> is the frame</div>"
    )
    if len(r.disagreements):
        parts.append(_frame_html(r.disagreements, digits=None))
    return html_no_math("".join(parts) + "</div>")


def _comparison_html(r: Comparison) -> str:
    m, e = r.metrics, html.escape
    a, b = e(m.a), e(m.b)
    on = f"the {m.both_answered:,} rows both answered"
    rows: list[tuple[str, str]] = [
        ("rows", f"{m.rows:,}" + (" with gold" if m.gold is not None else "")
         + f": {m.both_answered:,} both answered, {m.only_a_answered:,} only {a}, "
           f"{m.only_b_answered:,} only {b}, {m.neither_answered:,} neither"),
        ("agreement", e(m.agreement.text()) + f" <span class='bm-muted'>(equal answers, on {on})</span>"),
        ("Cohen's kappa", _num(m.kappa) + f" <span class='bm-muted'>({a} against {b})</span>"),
    ]
    if m.accuracy_a is not None and m.accuracy_b is not None:
        rows += [
            (f"accuracy {m.a}", f"<b>{e(m.accuracy_a.text())}</b>"),
            (f"accuracy {m.b}", f"<b>{e(m.accuracy_b.text())}</b>"),
            ("difference", (f"{100 * m.difference:+.1f} points ({b} − {a})" if m.difference is not None else "n/a")
             + f"; right on {_rows(m.only_a_right or 0)} only by {a}, on {_rows(m.only_b_right or 0)} only by {b}"),
            ("McNemar exact p", _num(m.p_value, 4) + " <span class='bm-muted'>(two-sided; the exact "
             "binomial test on the rows where one side is right and the other wrong)</span>"),
        ]
    for side, cost, acc in ((m.a, r.costs[0], m.accuracy_a), (m.b, r.costs[1], m.accuracy_b)):
        text = cost.text(acc.k) if acc is not None else (
            f"{money(cost.evaluated)} for {on}" if cost.billed is not None else "n/a: not given"
        )
        rows.append((f"cost {side}", e(text)))
    head = (
        f"{_STYLE}<div class='bm-report'><b>Comparison</b> of <code>{a}</code> and <code>{b}</code>"
        + (f" against <code>{e(m.gold)}</code>" if m.gold is not None else " (no gold)")
    )
    parts = [head, _table(rows)]
    parts.append(
        f"<h4>Rows where they differ</h4><div class='bm-muted'>{len(r.differences):,} of {on}; "
        "<code>.differences</code> is the frame</div>"
    )
    if len(r.differences):
        parts.append(_frame_html(r.differences, digits=None))
    return html_no_math("".join(parts) + "</div>")


__all__ = [
    "INSTALL_EVAL", "Comparison", "ComparisonMetrics", "Cost", "Evaluation", "EvaluationMetrics",
    "MissingExtraError", "Proportion", "compare", "evaluate",
]
