"""The panel: ``format_status`` for each state, the widget through its own objects,
the text fallback, and Cancel against a slow job on the simulator."""

from __future__ import annotations

import asyncio
import html
import io
import re
import time
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest

import batch_magic as bm
from _jobs import FAST
from _snapshots import snapshot
from batch_magic import panel as panel_mod
from batch_magic.job import JobStatus
from batch_magic.journal import Journal
from batch_magic.panel import JobPanel, TextStatus, format_interval, format_status, format_summary
from batch_magic.status import DurationHint


def shown(markup: str) -> str:
    """The text a browser shows for some HTML."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def status(**changes: Any) -> JobStatus:
    """A running job whose batches expire in 23 hours."""
    return snapshot(expires_in=3600 * 23, **changes)


def done_status(**changes: Any) -> JobStatus:
    values: dict[str, Any] = {
        "state": "done",
        "batches_ended": 2,
        "finished_at": time.time(),
        "actual_cost": 0.0042,
        "row_counts": {"succeeded": 8, "errored": 2},
        "counts": {"succeeded": 8, "errored": 2},
        "columns": ("answer", "answer_status", "answer_error", "answer_input_tokens"),
    }
    values.update(changes)
    return status(**values)


class FakeJob:
    """What the panel needs of a job, driven by hand."""

    def __init__(self, first: JobStatus, frame: pd.DataFrame | None = None) -> None:
        self.id = first.job_id
        self._status = first
        self.observers: list[Any] = []
        self.canceled = 0
        self.frame = frame

    @property
    def status(self) -> JobStatus:
        return self._status

    @property
    def done(self) -> bool:
        return self._status.state in ("done", "canceled", "failed")

    def observe(self, callback: Any) -> Any:
        self.observers.append(callback)
        callback(self._status)
        return lambda: self.observers.remove(callback)

    def push(self, new: JobStatus) -> None:
        self._status = new
        for cb in list(self.observers):
            cb(new)

    def while_waiting(self, callback: Any) -> Any:
        return lambda: None  # no blocking wait here: the loop ticks the clock

    def cancel(self) -> None:
        self.canceled += 1

    def result(self) -> pd.DataFrame:
        if self.frame is None:
            raise RuntimeError("no result")
        return self.frame


def result_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": ["a", "b"],
            "answer": ["first <answer>", "second"],
            "answer_status": ["succeeded", "errored"],
            "answer_error": [None, "overloaded_error: Overloaded"],
            "answer_input_tokens": [3, 4],
        }
    )


# -- format_status ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "word"),
    [
        ("planned", "planned"),
        ("submitting", "submitting"),
        ("queued", "queued"),
        ("in_progress", "in progress"),
        ("collecting", "collecting"),
        ("retrying", "retrying"),
        ("merging", "merging"),
        ("canceling", "canceling"),
    ],
)
def test_format_status_running_states(state: str, word: str) -> None:
    line = format_status(status(state=state))
    assert line.startswith(word + " · ")
    assert "0/2 batches" in line
    assert "1:05 elapsed" in line or "1:06 elapsed" in line
    assert "to expiry" in line
    assert "est. $0.0123, at most $0.05" in line
    assert "SIMULATED" not in line
    assert "\n" not in line


@pytest.mark.parametrize("state", ["done", "canceled", "failed"])
def test_format_status_final_states(state: str) -> None:
    line = format_status(done_status(state=state))
    assert line.startswith(state + " · ")
    assert "2/2 batches" in line
    assert "to expiry" not in line  # nothing left to expire
    assert "cost $0.0042 (est. $0.0123)" in line
    assert line.endswith("8 succeeded, 2 errored")


def test_format_status_counts_come_last_and_simulated_marker() -> None:
    line = format_status(done_status(simulated=True, row_counts={"succeeded": 3, "skipped": 1, "invalid": 2}))
    assert line.endswith("3 succeeded, 2 invalid, 1 skipped · SIMULATED")


def test_format_status_reconnecting_and_partial_counts() -> None:
    line = format_status(status(reconnecting=True, batches_ended=1, counts={"succeeded": 5}))
    assert line.startswith("in progress (reconnecting) · 1/2 batches")
    assert line.endswith("5 succeeded")


def test_format_interval_like_tqdm() -> None:
    assert format_interval(0) == "0:00"
    assert format_interval(65.9) == "1:05"
    assert format_interval(3600 * 23 + 61) == "23:01:01"
    assert format_interval(None) == "?"


def test_format_summary() -> None:
    line = format_summary(done_status(simulated=True))
    assert line.startswith("done: 8 of 10 rows answered in ")
    assert "(2 errored)" in line
    assert "new columns: answer, answer_status, answer_error" in line
    assert "input_tokens" not in line
    assert line.endswith("(SIMULATED)")


# -- the widget -----------------------------------------------------------------
def test_widget_structure_and_running_state() -> None:
    job = FakeJob(status(state="submitting", simulated=True))
    p = JobPanel(job, tick=False)
    assert "batch-magic-panel" in p.widget._dom_classes
    assert "batch-magic-state" in p.state._dom_classes
    assert "batch-magic-details" in p.details._dom_classes
    assert "batch-magic-cancel" in p.cancel_button._dom_classes
    assert "batch-magic-summary" in p.summary._dom_classes
    assert "batch-magic-preview" in p.preview._dom_classes
    assert "batch-magic-error" in p.error._dom_classes
    assert p.cancel_button.description == "Cancel"
    assert not p.cancel_button.disabled
    assert job.id in p.header.value and "claude-haiku-4-5" in p.header.value
    assert "SIMULATED" in p.header.value
    assert "submitting" in p.state.value
    job.push(status(state="in_progress", simulated=True))
    assert "in progress" in p.state.value
    # Indeterminate while no batch has ended: the API's counts do not move.
    assert "batch-magic-indeterminate" in p.bar._dom_classes
    assert p.bar.bar_style == "info"
    assert p.bar.description == "0/2"
    assert "elapsed" in p.details.value and "to expiry" in p.details.value
    assert p.summary.layout.display == "none" and p.preview.layout.display == "none"
    job.push(status(batches_ended=1))
    assert p.bar.value == 1 and p.bar.max == 2
    assert p.bar.description == "1/2"


def test_widget_done_summary_preview_and_button_disabled() -> None:
    job = FakeJob(status(), frame=result_frame())
    p = JobPanel(job, tick=False)
    job.push(done_status())
    assert "done" in p.state.value
    assert p.cancel_button.disabled
    assert p.bar.value == p.bar.max
    assert p.bar.bar_style == "warning"  # two rows errored
    assert "batch-magic-indeterminate" not in p.bar._dom_classes
    assert p.summary.layout.display is None
    assert "8 of 10 rows answered" in p.summary.value
    assert p.preview.layout.display is None
    assert "first &lt;answer&gt;" in p.preview.value  # escaped
    assert "answer_status" in p.preview.value
    assert "answer_input_tokens" not in p.preview.value
    assert "<th>text</th>" not in p.preview.value  # only the new columns
    assert "cost $0.0042" in shown(p.details.value)


def test_widget_success_colour() -> None:
    job = FakeJob(status(), frame=result_frame())
    p = JobPanel(job, tick=False)
    job.push(done_status(row_counts={"succeeded": 10}))
    assert p.bar.bar_style == "success"


def test_danger_is_never_overwritten_by_success() -> None:
    job = FakeJob(status(), frame=result_frame())
    p = JobPanel(job, tick=False)
    job.push(status(error="APIError: Polling batch b1 failed: 500 boom"))
    assert p.bar.bar_style == "danger"
    job.push(done_status(row_counts={"succeeded": 10}))
    assert p.bar.bar_style == "danger"


def test_error_is_shown_never_swallowed() -> None:
    job = FakeJob(status())
    p = JobPanel(job, tick=False)
    job.push(done_status(state="failed", error="APIError: Creating a batch was refused: 400 bad <model>"))
    assert p.error.layout.display is None
    assert "Creating a batch was refused" in p.error.value
    assert "&lt;model&gt;" in p.error.value
    assert p.bar.bar_style == "danger"
    assert p.cancel_button.disabled
    assert "failed" in p.state.value


def test_a_done_job_without_results_is_shown_as_failed_not_done() -> None:
    """The journal says done but there is nothing merged (say its index is unreadable):
    the panel shows a failure with the reason, never "done" or "new columns" above it."""
    job = FakeJob(status(), frame=None)  # result() raises
    p = JobPanel(job, tick=False)
    job.push(done_status(row_counts={"succeeded": 10}))
    assert "results not available" in p.error.value and "no result" in p.error.value
    assert p.error.layout.display is None
    assert shown(p.state.value) == "failed" and "batch-magic-failed" in p.state.value
    assert p.bar.bar_style == "danger"
    assert "new columns" not in shown(p.summary.value)
    assert shown(p.summary.value).startswith("failed after ")
    assert "batch-magic-failed" in p.summary.value
    assert p.preview.layout.display == "none"
    text = p.text()
    assert "done" not in text and "new columns" not in text
    assert "error: results not available: no result" in text


FINAL_STATES = ["done", "canceled", "failed"]


@pytest.mark.parametrize("state", FINAL_STATES)
@pytest.mark.parametrize("error", [None, "JournalError: index.json is unreadable"])
@pytest.mark.parametrize("merged", [True, False])
@pytest.mark.parametrize("earlier_error", [False, True])
def test_every_final_snapshot_renders_its_outcome(state: str, error: str | None, merged: bool,
                                                  earlier_error: bool) -> None:
    """Each combination of a final state, an error, results or none, and an error met on
    the way: an error is shown in the danger style with no "done" and no "new columns"
    above it, and danger once shown is never turned back into success."""
    job = FakeJob(status(), frame=result_frame() if merged else None)
    p = JobPanel(job, tick=False)
    if earlier_error:
        job.push(status(error="APIError: Polling batch b1 failed: 500 boom"))
    final = done_status(state=state, error=error, row_counts={"succeeded": 10})
    job.push(final)
    failure = state == "failed" or error is not None or not merged
    summary = shown(p.summary.value)
    assert p.summary.layout.display is None  # it has stopped, whatever the outcome
    if failure:
        assert shown(p.state.value) == "failed" and "batch-magic-failed" in p.state.value
        if error is not None or state != "failed":  # the reason, in the danger style
            assert p.error.layout.display is None and "batch-magic-error" in p.error._dom_classes
            assert (error or "results not available") in html.unescape(p.error.value)
        assert p.bar.bar_style == "danger"
        assert "new columns" not in summary and not summary.startswith(("done", "canceled"))
        assert p.preview.layout.display == "none"
        for line in p.text().splitlines():
            assert " done" not in f" {line}" and "new columns" not in line, line
    else:
        assert shown(p.state.value) == state
        assert "new columns: answer, answer_status, answer_error" in summary
        assert p.preview.layout.display is None
        expected = "danger" if earlier_error else ("warning" if state == "canceled" else "success")
        assert p.bar.bar_style == expected
    # The text fallback tells the same story.
    out = io.StringIO()
    text_job = FakeJob(status())
    TextStatus(text_job, stream=out)
    text_job.push(final)
    printed = out.getvalue()
    if state == "failed" or error is not None:
        assert "done" not in printed and "new columns" not in printed
        if error is not None:
            assert f": error: {error}\n" in printed
    else:
        assert f": {state} · " in printed and "new columns" in printed


def test_an_error_while_running_turns_the_bar_danger_but_leaves_the_state() -> None:
    """A running job that met an error is still running: the state says so, the error
    shows in the danger style, and the bar stays danger through the rest."""
    job = FakeJob(status())
    p = JobPanel(job, tick=False)
    job.push(status(error="APIError: Polling batch b1 failed: 500 boom"))
    assert shown(p.state.value) == "in progress"
    assert p.bar.bar_style == "danger"
    assert "Polling batch b1 failed" in p.error.value
    job.push(status(batches_ended=1))
    assert p.bar.bar_style == "danger"


def test_cancel_click_calls_job_cancel_once() -> None:
    job = FakeJob(status())
    p = JobPanel(job, tick=False)
    p.cancel_button.click()
    assert job.canceled == 1
    assert p.cancel_button.disabled


def test_text_fallback_in_the_mimebundle() -> None:
    job = FakeJob(status(), frame=result_frame())
    p = JobPanel(job, tick=False)
    bundle = p.widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert format_status(job.status).split(" · ")[0] in bundle["text/plain"]
    job.push(done_status())
    text = p.widget._repr_mimebundle_()["text/plain"]
    assert "done · 2/2 batches" in text and "8 of 10 rows answered" in text


def test_elapsed_ticks_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(panel_mod, "TICK_SECONDS", 0.05)

    async def main() -> tuple[str, str, bool]:
        job = FakeJob(status(started_at=time.time() - 5))
        p = JobPanel(job)  # a running loop: the clock task starts
        assert p._ticker is not None
        first = p.details.value
        await asyncio.sleep(1.2)
        later = p.details.value
        job.push(done_status())
        await asyncio.sleep(0.1)
        return first, later, p._ticker is None

    first, later, stopped = asyncio.run(main())
    assert "0:05 elapsed" in first
    assert "0:06 elapsed" in later  # nothing changed in the job, the clock moved
    assert stopped


def test_text_status_prints_on_state_changes_only() -> None:
    out = io.StringIO()
    job = FakeJob(status(state="submitting"))
    TextStatus(job, stream=out)
    for _ in range(5):
        job.push(status(state="in_progress"))  # repeated polls: no new line
    job.push(status(state="in_progress", batches_ended=1))
    job.push(done_status(simulated=True))
    job.push(done_status())  # after the end: nothing more
    lines = out.getvalue().splitlines()
    assert [line.split(": ", 1)[1].split(" · ")[0] for line in lines[:4]] == [
        "submitting", "in progress", "in progress", "done",
    ]
    assert len(lines) == 5
    assert lines[-1].endswith("(SIMULATED)") and "rows answered" in lines[-1]


def test_text_status_shows_errors() -> None:
    out = io.StringIO()
    job = FakeJob(status())
    TextStatus(job, stream=out)
    job.push(done_status(state="failed", error="APIError: boom"))
    assert "error: APIError: boom" in out.getvalue()


def test_show_picks_text_without_a_widget_front_end() -> None:
    job = FakeJob(status())
    assert isinstance(panel_mod.show(job, shell=None, stream=io.StringIO()), TextStatus)

    class ZMQInteractiveShell:  # only the name matters
        pass

    assert panel_mod.has_widget_frontend(ZMQInteractiveShell())


def test_no_dollar_in_any_html_of_the_panel_can_start_maths() -> None:
    """JupyterLab typesets text between two $ as LaTeX: "$0.0123, at most $0.05" must not."""
    frame = result_frame()
    frame.loc[0, "answer"] = "costs $5 or $6"
    job = FakeJob(status(), frame=frame)
    p = JobPanel(job, tick=False)
    job.push(status(error="APIError: a $1 refund and a $2 fee"))  # met while running; the job went on
    job.push(done_status())
    values = [w.value for w in (p.header, p.state, p.details, p.error, p.summary, p.preview)]
    values.append(p.html())
    assert any("&#36;" in v for v in values)
    for value in values:
        assert "$" not in value.replace("<span>&#36;</span>", ""), value
    assert "costs $5 or $6" in shown(p.preview.value)
    assert "cost $0.0042" in shown(p.details.value)


def test_cancel_button_says_canceling_then_canceled() -> None:
    job = FakeJob(status())
    p = JobPanel(job, tick=False)
    assert p.cancel_button.description == "Cancel"
    job.push(status(state="canceling"))  # e.g. canceled from another cell: %batch cancel
    assert p.cancel_button.description == "Canceling…" and p.cancel_button.disabled
    job.push(done_status(state="canceled"))
    assert p.cancel_button.description == "Canceled" and p.cancel_button.disabled


def test_a_job_that_ends_before_its_cancel_does_not_say_canceling() -> None:
    job = FakeJob(status(), frame=result_frame())
    p = JobPanel(job, tick=False)
    p.cancel_button.click()
    assert p.cancel_button.description == "Canceling…"
    job.push(done_status())
    assert p.cancel_button.description == "Cancel" and p.cancel_button.disabled


def test_schema_preview_puts_fields_status_and_error_first_and_shows_failed_rows() -> None:
    n = 12
    frame = pd.DataFrame(
        {
            "text": [f"t{i}" for i in range(n)],
            "x": ['{"product": "kettle", "urgent": true, "long": "' + "z" * 200 + '"}'] * n,
            "x_product": ["kettle"] * n,
            "x_urgent": [True] * n,
            "x_status": ["succeeded"] * 6 + ["skipped", "errored", "succeeded", "invalid", "errored", "errored"],
            "x_error": [None] * 6 + ["text is missing", "overloaded_error: Overloaded", None,
                                    "not valid JSON", "api_error: boom", "api_error: again"],
            "x_input_tokens": [3] * n,
        }
    )
    columns = ("x", "x_product", "x_urgent", "x_status", "x_error", "x_input_tokens")
    final = done_status(out="x", columns=columns, row_counts={"succeeded": 7, "errored": 3, "invalid": 1, "skipped": 1})
    assert panel_mod.preview_columns(final, frame) == ["x_product", "x_urgent", "x_status", "x_error", "x"]
    rows, problems = panel_mod.preview_rows(final, frame)
    assert problems == 5
    # The first five, then three rows that did not succeed (errors before skips).
    assert rows == [0, 1, 2, 3, 4, 7, 9, 10]
    job = FakeJob(status(out="x"), frame=frame)
    p = JobPanel(job, tick=False)
    job.push(final)
    text = shown(p.preview.value)
    assert text.index("x_product") < text.index("x_status") < text.index("x_error") < text.index('{"product"')
    assert "overloaded_error: Overloaded" in text and "not valid JSON" in text
    assert "then 3 of the 5 rows not succeeded" in text
    assert "z" * 100 not in text  # the wide raw JSON is cut short


def test_while_a_batch_runs_the_line_says_how_long_batches_take() -> None:
    line = format_status(status())
    assert "most batches end within an hour (the API's estimate)" in line
    hint = DurationHint(median=130, low=105, high=210, samples=6)
    line = format_status(status(typical_duration=hint))
    assert "estimate ~2:10 a batch (1:45–3:30, 6 earlier batches like it)" in line
    assert "estimate" not in format_status(done_status(typical_duration=hint))
    assert "estimate" not in format_status(status(state="submitting", batches_submitted=0))


def test_job_status_prints_the_status_line_on_one_line() -> None:
    """``str(status)`` (``%batch status``, a script's print) is the panel's own line with its id."""
    final = done_status(simulated=True)
    text = str(final)
    assert "\n" not in text
    assert text == f"20260101-000000-abcdef01: {format_status(final)}"
    assert text.startswith("20260101-000000-abcdef01: done · 2/2 batches · ")
    assert text.endswith("cost $0.0042 (est. $0.0123) · 8 succeeded, 2 errored · SIMULATED")
    assert repr(status()).startswith("<JobStatus 20260101-000000-abcdef01: in progress · 0/2 batches · ")
    failed = done_status(state="failed", error="JournalError: index.json is unreadable")
    assert str(failed).startswith("20260101-000000-abcdef01: failed · ")
    assert str(failed).endswith(" · error: JournalError: index.json is unreadable")


# -- against the simulator -------------------------------------------------------
def test_cancel_button_cancels_a_slow_job_on_the_simulator(simulator: Any, tmp_path: Any) -> None:
    simulator.configure(processing_time=60.0, cancel_delay=0.2)
    df = pd.DataFrame({"text": [f"row {i}" for i in range(5)]})

    async def main() -> tuple[JobPanel, Any]:
        # As in a kernel: the job and the click both run on the event loop.
        job = bm.submit(
            df, "Echo {{ text }}", client=simulator.client(max_retries=0),
            journal=Journal(tmp_path / "journal"), settings=FAST, max_tokens=20,
        )
        p = JobPanel(job)
        while job.status.state != "in_progress" and not job.done:
            await asyncio.sleep(0.05)
        assert "in progress" in p.state.value
        p.cancel_button.click()
        while not job.done:
            await asyncio.sleep(0.05)
        return p, job

    p, job = asyncio.run(main())
    assert job.status.state == "canceled"  # before its 60 s of processing ended
    assert "canceled" in p.state.value
    assert p.cancel_button.disabled and p.cancel_button.description == "Canceled"
    assert p.bar.bar_style == "warning"
    assert (df["answer_status"] == "canceled").all()
    assert "canceled" in p.summary.value


def test_uploading_shows_real_file_counts_in_the_line_the_bar_and_the_text() -> None:
    uploading = status(state="uploading", batches_submitted=0, started_at=None, expires_at=None,
                       uploads_total=120, uploads_done=37)
    assert format_status(uploading).startswith("uploading 37/120 files · 0:00 elapsed")
    assert "batches" not in format_status(uploading)
    job = FakeJob(uploading)
    p = JobPanel(job, tick=False)
    assert (p.bar.value, p.bar.max, p.bar.description) == (37, 120, "37/120 files")
    assert "batch-magic-indeterminate" not in p.bar._dom_classes
    job.push(replace(uploading, uploads_done=120, state="submitting"))
    assert p.bar.description == "0/2"  # batches again once the files are ready
    out = io.StringIO()
    job = FakeJob(replace(uploading, uploads_done=0))
    TextStatus(job, stream=out)
    for done in range(1, 121):
        job.push(replace(uploading, uploads_done=done))
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 12  # a line per tenth of the files, not one per file
    assert lines[-1].endswith("uploading 120/120 files · 0:00 elapsed · est. $0.0123, at most $0.05")


def test_a_jobs_costs_say_which_prices_they_use(simulator: Any, tmp_path: Any) -> None:
    """The estimate while it runs and the cost when it ends name the price data behind them."""
    df = pd.DataFrame({"text": ["a", "b", "c"]})
    job = bm.submit(df, "Say {{ text }}", client=simulator.client(), journal=tmp_path / "journal",
                    settings=FAST, start=False)
    assert "prices from genai-prices" in format_status(job.status)
    job.wait(30)
    assert re.search(r"cost \S+ \(prices from genai-prices [\d.]+\)", format_summary(job.status))


# -- the preview table fits the panel ----------------------------------------------
def test_preview_table_fits_the_panel_aligned_one_line_a_cell_with_the_whole_value_on_hover() -> None:
    raw = '{"product": "kettle", "note": "' + "z" * 300 + '"}'
    frame = pd.DataFrame(
        {
            "x_product": ["kettle", "toaster $5"],
            "x_when": pd.to_datetime(["2026-01-02 03:04:05", "2026-02-03 04:05:06"]),
            "x_price": [12.5, 3.25],
            "x_status": ["succeeded", "succeeded"],
            "x": [raw, raw],
        },
        index=pd.Index(["a", "b"], name="ticket"),
    )
    columns = ("x", "x_product", "x_when", "x_price", "x_status")
    final = done_status(out="x", columns=columns, row_counts={"succeeded": 2})
    job = FakeJob(status(out="x"), frame=frame)
    p = JobPanel(job, tick=False)
    job.push(final)
    markup = p.preview.value
    # One header per column, in the order of the values, and the row label first.
    heads = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", markup.split("<tbody>")[0])
    assert heads == ["", "x_product", "x_when", "x_price", "x_status", "x"]
    first_row = re.search(r"<tbody><tr>(.*?)</tr>", markup)
    assert first_row is not None
    cells = re.findall(r"<t[hd]((?: [^>]*)?)>(.*?)</t[hd]>", first_row.group(1))
    assert [html.unescape(re.sub(r"<[^>]+>", "", v)) for _, v in cells][:4] == [
        "a", "kettle", "2026-01-02 03:04:05", "12.5",
    ]
    # Numbers are right-aligned, header and values alike; the rest left, alike.
    assert re.search(r'<th class="bm-num">x_price</th>', markup)
    assert 'class="bm-num">12.5</td>' in markup
    assert "text-align: right" not in markup.replace(".bm-num { text-align: right;", "")
    # The wide raw JSON is cut in the cell, whole in its tooltip.
    long_cell = next(v for attrs, v in cells if "title=" in attrs)
    assert len(html.unescape(long_cell)) == panel_mod.PREVIEW_CHARS and long_cell.endswith("…")
    title = re.search(r'title="([^"]*)"', first_row.group(1))
    assert title is not None and html.unescape(title.group(1)) == raw
    # Its CSS keeps every cell on one line and lets the table scroll inside the panel.
    assert 'class="batch-magic-scroll"' in markup
    css = p.header.value
    assert re.search(r"table\.batch-magic-table td \{[^}]*white-space: nowrap", css.replace(
        ".batch-magic-preview table.batch-magic-table th, .batch-magic-preview ", ""))
    assert re.search(r"\.batch-magic-scroll \{ overflow-x: auto; max-width: 100%; \}", css)
    assert re.search(r"\.batch-magic-preview \.widget-html-content \{ min-width: 0;", css)
    # $ stays text.
    assert "$" not in markup.replace("<span>&#36;</span>", "")
    assert "toaster $5" in shown(markup)


# -- what a notebook keeps of the panel ------------------------------------------------
def test_saved_output_says_the_last_state_and_how_to_pick_the_job_up_after_a_restart() -> None:
    """The output a notebook saves is refreshed once per state (not per tick), its text
    and HTML fallbacks say the latest state, and while the job runs, how to pick it up
    again after a kernel restart; once it stops, its summary."""
    from IPython.utils.capture import capture_output

    from _shell import TestingShell

    TestingShell.make()
    job = FakeJob(status(state="submitting"), frame=result_frame())
    with capture_output() as captured:
        p = JobPanel(job, tick=False)
        p.display()
        for _ in range(3):
            job.push(status(state="in_progress"))  # polls with nothing new: no refresh
        job.push(status(state="in_progress", batches_ended=1))
        job.push(done_status())
    outputs = captured.outputs
    saved = [o.data for o in outputs]
    assert len(outputs) == 3  # shown submitting, refreshed at in progress and at done
    assert all("application/vnd.jupyter.widget-view+json" in d for d in saved)
    first, running, final = saved
    assert "submitting" in first["text/plain"]
    assert "in progress · " in running["text/plain"]
    for data in (first, running):
        assert f"%batch attach {job.id} DF" in data["text/plain"]
        assert f"%batch attach {job.id} DF" in html.unescape(re.sub(r"<[^>]+>", "", data["text/html"]))
    assert "done · 2/2 batches" in final["text/plain"] and "8 of 10 rows answered" in final["text/plain"]
    assert "%batch attach" not in final["text/plain"]
    assert "new columns: answer" in shown(final["text/html"])
    # While it runs the live view says the same, for the moment its kernel is gone.
    job2 = FakeJob(status())
    p2 = JobPanel(job2, tick=False)
    assert f"%batch attach {job2.id} DF" in shown(p2.details.value)
    job2.push(done_status(state="canceled"))
    assert "%batch attach" not in shown(p2.details.value)


def test_the_panel_uses_no_icon_font() -> None:
    """Icons of an icon font show broken in a view its kernel left behind: text only."""
    job = FakeJob(status())
    p = JobPanel(job, tick=False)
    assert p.cancel_button.icon == ""
    job.push(done_status(state="canceled"))
    assert p.cancel_button.icon == ""
    assert "fa-" not in "".join(w.value for w in (p.header, p.state, p.details, p.summary))


def test_reused_answers_and_a_samples_projection_in_the_line_the_summary_and_the_panel() -> None:
    """A job that took answers from the journal says so when it ends, and a sample says
    what the whole frame would cost at its measured cost per row."""
    reused = done_status(n_reused=6, saved_cost=0.0021, row_counts={"succeeded": 10})
    assert "6 answers reused, saved $0.0021" in format_status(reused)
    assert "; 6 answers reused, saved $0.0021" in format_summary(reused)
    sample = done_status(n_not_sent=30, n_rows=40, actual_cost=0.0042, row_counts={"succeeded": 10, "not_sent": 30})
    assert "sample of 10: all 40 rows ≈ $0.0168" in format_summary(sample)
    job = FakeJob(status(), frame=result_frame())
    p = JobPanel(job, tick=False)
    job.push(reused)
    assert "6 answers reused, saved $0.0021" in shown(p.summary.value)
    job = FakeJob(status(n_not_sent=30, n_rows=40), frame=result_frame())
    p = JobPanel(job, tick=False)
    job.push(sample)
    assert "sample of 10: all 40 rows ≈ $0.0168" in shown(p.summary.value)
    # Nothing reused, no sample: nothing said of either.
    plain = format_summary(done_status())
    assert "reused" not in plain and "sample" not in plain
