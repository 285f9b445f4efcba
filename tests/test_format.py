"""``format.py``: money, counts, durations and the status line, as a person reads them,
and the one rule every display keeps: a failure never reads as done."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from typing import Any

import pytest

from _snapshots import snapshot
from batch_magic import format as fmt
from batch_magic.states import DisplayState, RowStatus
from batch_magic.status import FINAL_STATES, STATES, JobStatus


def ended(**changes: Any) -> JobStatus:
    values: dict[str, Any] = {
        "state": DisplayState.DONE,
        "batches_ended": 2,
        "finished_at": time.time(),
        "actual_cost": 0.0042,
        "row_counts": {"succeeded": 8, "errored": 2},
        "columns": ("answer", "answer_status", "answer_error", "answer_input_tokens"),
    }
    values.update(changes)
    return snapshot(**values)


# -- money ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dollars", "text"),
    [
        (0, "$0"),
        (0.0, "$0"),
        (0.0042, "$0.0042"),
        (0.0123, "$0.0123"),
        (0.05, "$0.05"),
        (0.5, "$0.5"),
        (0.12345, "$0.1235"),  # four decimals under a dollar
        (0.000073, "$0.000073"),  # a pilot's fraction of a cent keeps two significant digits
        (0.00012345, "$0.00012"),
        (0.0000004, "<$0.000001"),
        (1, "$1.00"),
        (12.3456, "$12.35"),
        (1234.5, "$1,234.50"),
        (None, "n/a"),
        (math.nan, "n/a"),
    ],
)
def test_money(dollars: float | None, text: str) -> None:
    assert fmt.money(dollars) == text


def test_money_to_the_cent_for_a_list() -> None:
    assert fmt.money(0.004, cents=True) == "<$0.01"
    assert fmt.money(0.02, cents=True) == "$0.02"
    assert fmt.money(0, cents=True) == "$0"
    assert fmt.money(1234.567, cents=True) == "$1,234.57"
    assert fmt.money(None, cents=True, missing="") == ""


def test_money_reads_pandas_missing_values_as_missing() -> None:
    import pandas as pd

    assert fmt.money(pd.NA) == "n/a"
    assert fmt.money(pd.Series([0.25]).iloc[0]) == "$0.25"


# -- counts and durations ----------------------------------------------------------------
def test_plural_agrees_with_its_count() -> None:
    assert fmt.plural(1, "row") == "1 row"
    assert fmt.plural(0, "row") == "0 rows"
    assert fmt.plural(2, "batch") == "2 batches"
    assert fmt.plural(1, "batch") == "1 batch"
    assert fmt.plural(12_000, "request") == "12,000 requests"
    assert fmt.plural(3, "earlier batch") == "3 earlier batches"
    assert fmt.plural(2, "child", "children") == "2 children"


def test_one_row_holds_media_in_the_singular() -> None:
    from batch_magic.media import MediaProblem, problems_message

    one = problems_message([MediaProblem(0, "'x.png'", "not found")], 1, lambda i: i)
    assert one.startswith("1 row holds media that cannot be sent")
    two = problems_message([MediaProblem(0, "'x.png'", "not found")] * 2, 2, lambda i: i)
    assert two.startswith("2 rows hold media that cannot be sent")


def test_counts_in_the_order_of_row_statuses_zeros_left_out() -> None:
    counts = {"skipped": 1, "refused": 2, "pending": 0, "succeeded": 3, "errored": 4, "other": 5}
    assert fmt.format_counts(counts) == "3 succeeded, 4 errored, 2 refused, 1 skipped, 5 other"
    assert tuple(RowStatus) == fmt.COUNT_ORDER  # every row status, refused included
    assert fmt.format_counts({}) == ""


def test_interval_like_tqdm() -> None:
    assert fmt.format_interval(0) == "0:00"
    assert fmt.format_interval(65.9) == "1:05"
    assert fmt.format_interval(3600 * 23 + 61) == "23:01:01"
    assert fmt.format_interval(-3) == "0:00"
    assert fmt.format_interval(None) == "?"
    assert fmt.format_seconds(2.44) == "2.4 s"


# -- the status line -----------------------------------------------------------------
@pytest.mark.parametrize("state", STATES)
def test_every_state_has_a_status_line_of_one_line(state: DisplayState) -> None:
    final = state in FINAL_STATES
    status = ended(state=state) if final else snapshot(state=state)
    line = fmt.format_status(status)
    assert line.startswith(fmt.state_word(state))
    assert "\n" not in line
    assert ("to expiry" in line) is (not final)
    assert str(status) == f"{status.job_id}: {line}"


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
@pytest.mark.parametrize("error", [None, "JournalError: index.json is unreadable"])
def test_a_failure_never_reads_as_done(state: DisplayState, error: str | None) -> None:
    """Whatever the final state, a snapshot with an error (or failed) shows "failed", its
    error in ``str()``, no "new columns" and the danger colour."""
    status = ended(state=state, error=error)
    failure = state == DisplayState.FAILED or error is not None
    assert fmt.is_failure(status) is failure
    line, summary = fmt.format_status(status), fmt.format_summary(status)
    if failure:
        assert fmt.shown_state(status) == DisplayState.FAILED
        assert line.startswith("failed · ")
        assert summary.startswith("failed after ") and "new columns" not in summary
        assert fmt.outcome(status) == "danger"
        assert "done" not in line + summary
    else:
        assert line.startswith(f"{fmt.state_word(state)} · ")
        assert "new columns: answer, answer_status, answer_error" in summary
        assert fmt.outcome(status) == status.outcome != "danger"
    if error:
        assert str(status).endswith(f" · error: {error}")


def test_a_running_job_with_an_error_is_running_in_danger() -> None:
    status = snapshot(error="APIError: Polling batch b1 failed: 500 boom")
    assert not fmt.is_failure(status)
    assert fmt.format_status(status).startswith("in progress · ")
    assert fmt.outcome(status) == "danger"


def test_summary_counts_rows_in_the_singular_too() -> None:
    one = ended(n_rows=1, row_counts={"succeeded": 1}, columns=("answer",), actual_cost=0.00012)
    assert fmt.format_summary(one).startswith("done: 1 of 1 row answered in ")
    assert "; cost $0.00012" in fmt.format_summary(one)


def test_the_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, batch_magic.format;"
        "heavy = [m for m in ('pandas', 'numpy', 'ipywidgets', 'IPython', 'anthropic', 'jsonschema') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
