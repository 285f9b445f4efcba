"""The live view of a job: an ipywidgets panel, or short text lines.

Both render the same pure functions of ``format.py`` (``format_status(status)``
and ``format_summary``), the way tqdm's notebook bar and its text bar both
render ``format_meter``. The panel only observes the job
(``job.observe(panel.update)``): it never drives it. The one thing a person can
ask of it is Cancel, which calls ``job.cancel()``.

What a snapshot means is the snapshot's (its state, its ``outcome``); the panel
renders it, with tqdm's rule that danger, once shown, is never turned back into
success. A job that stopped without results to show is rendered as the failure
it is, never as "done".

Widgets are touched only on the kernel's thread: the job calls its observers
there (between cells through the kernel's loop, during a blocking wait from the
waiting cell), and the clock that keeps "elapsed" ticking is a small asyncio
task on that loop, ticked by the job while a blocking wait holds the loop
(ipykernel 7 drops widget traffic sent from other threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .columns import job_columns
from .format import (
    NO_HISTORY_HINT,
    format_duration_hint,
    format_interval,
    format_status,
    format_summary,
    is_failure,
    outcome,
    plural,
    shown_state,
    state_word,
)
from .states import DisplayState, RowStatus

if TYPE_CHECKING:
    import pandas as pd

    from .status import JobStatus

PREVIEW_ROWS = 5
#: Characters of a cell shown in the preview (the whole value is in its tooltip).
PREVIEW_CHARS = 80
#: Characters of a cell kept in its tooltip.
TITLE_CHARS = 2000
#: Rows not succeeded shown in the preview besides the first ones, with their error.
PREVIEW_PROBLEMS = 3
TICK_SECONDS = 1.0


def html_no_math(markup: str) -> str:
    """HTML in which no ``$`` can start LaTeX.

    JupyterLab typesets text between two ``$`` in HTML outputs as maths (so
    "$0.07 expected, $0.11 at most" comes out as italic maths). MathJax reads
    the text through HTML entities, so ``&#36;`` alone is not enough; it does
    not join text across elements, so each dollar goes in its own span.
    """
    return markup.replace("$", "<span>&#36;</span>")


def escape(text: str) -> str:
    """``html.escape`` for text shown in a notebook: also no ``$`` maths."""
    return html_no_math(html.escape(text))


class JobLike(Protocol):
    """What the panel needs of a job (``BatchJob`` has it)."""

    id: str

    @property
    def status(self) -> JobStatus: ...

    @property
    def done(self) -> bool:
        """The driver has finished (merged, refused or failed). A job re-attached from the
        journal reports its recorded final state before its results are merged into the
        DataFrame; the panel waits for the merge."""
        ...

    def observe(self, callback: Callable[[JobStatus], None]) -> Callable[[], None]: ...

    def while_waiting(self, callback: Callable[[], None]) -> Callable[[], None]: ...

    def cancel(self) -> None: ...

    def result(self) -> pd.DataFrame: ...


def reattach_hint(job_id: str) -> str:
    """What a view that outlived its kernel says instead of a live state."""
    return (
        f"This view is live only while its kernel runs. After a kernel restart, "
        f"%batch attach {job_id} DF shows the job again (nothing sent is paid twice)."
    )


def preview_columns(status: JobStatus, frame: pd.DataFrame) -> list[str]:
    """The answer first (for a schema or JSON job: its fields, not the wide raw JSON),
    then status and error, then the raw text."""
    names = job_columns(status.out)
    shown = [c for c in status.columns if c in frame.columns and c not in names.details]
    bookkeeping = names.bookkeeping
    fields = [c for c in shown if c != names.answer and c not in bookkeeping]
    answer = fields or [c for c in shown if c == names.answer]
    raw = [c for c in shown if c not in answer and c not in bookkeeping]  # the raw JSON of fields
    tail = [c for c in (names.raw,) if c in shown]
    middle = [c for c in (names.status, names.error) if c in shown]
    return answer + middle + raw + tail


def preview_rows(status: JobStatus, frame: pd.DataFrame) -> tuple[list[int], int]:
    """Row positions to preview: the first rows, then a few that did not succeed (not
    skipped ones first); and how many rows did not succeed in all."""
    first = list(range(min(PREVIEW_ROWS, len(frame))))
    column = job_columns(status.out).status
    if column not in frame.columns:
        return first, 0
    states = frame[column].astype("object").to_numpy()
    problems = [i for i, s in enumerate(states) if s != RowStatus.SUCCEEDED]
    extra = sorted((i for i in problems if i not in first), key=lambda i: (states[i] == RowStatus.SKIPPED, i))
    return first + sorted(extra[:PREVIEW_PROBLEMS]), len(problems)


def _cell_text(value: Any) -> str:
    """A cell as text: missing values blank, the rest as pandas writes them."""
    import pandas as pd

    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preview_table(frame: pd.DataFrame, columns: list[str], rows: list[int]) -> str:
    """The preview as an HTML table that fits the panel.

    Every cell stays on one line (a date never wraps) and is cut at
    ``PREVIEW_CHARS`` with the whole value in its tooltip; headers are aligned
    as their values are (numbers right, the rest left); what is still wider
    than the panel scrolls sideways inside it. ``$`` is left as it is (the
    caller makes the markup maths-safe).
    """
    import pandas as pd

    numeric = {
        c: pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in columns
    }

    def cell(tag: str, text: str, number: bool = False) -> str:
        shown = _clip(text, PREVIEW_CHARS)
        title = f' title="{html.escape(_clip(text, TITLE_CHARS))}"' if shown != text else ""
        kind = ' class="bm-num"' if number else ""
        return f"<{tag}{kind}{title}>{html.escape(shown)}</{tag}>"

    head = "<th></th>" + "".join(cell("th", str(c), numeric[c]) for c in columns)
    body = []
    for i in rows:
        label = cell("th", _cell_text(frame.index[i]))
        values = "".join(cell("td", _cell_text(frame[c].iloc[i]), numeric[c]) for c in columns)
        body.append(f"<tr>{label}{values}</tr>")
    return (
        '<div class="batch-magic-scroll"><table class="batch-magic-table">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


# -- the widget panel ------------------------------------------------------------
_CSS = """<style>
.batch-magic-panel { border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px;
  padding: 4px 8px; }
.batch-magic-indeterminate .progress-bar, .batch-magic-indeterminate [class*="progress-bar"] {
  background-image: linear-gradient(45deg, rgba(255,255,255,.35) 25%, transparent 25%,
    transparent 50%, rgba(255,255,255,.35) 50%, rgba(255,255,255,.35) 75%, transparent 75%,
    transparent);
  background-size: 1rem 1rem; animation: batch-magic-stripes 1s linear infinite; }
@keyframes batch-magic-stripes { from { background-position: 1rem 0; } to { background-position: 0 0; } }
.batch-magic-error, .batch-magic-panel .batch-magic-failed { color: var(--jp-error-color1, #c00); }
.batch-magic-simulated { color: var(--jp-warn-color1, #b60); font-weight: bold; }
.batch-magic-panel .batch-magic-note { color: var(--jp-ui-font-color2, #666); }
.batch-magic-preview, .batch-magic-preview .widget-html-content { min-width: 0; max-width: 100%; }
.batch-magic-preview .batch-magic-scroll { overflow-x: auto; max-width: 100%; }
.batch-magic-preview table.batch-magic-table { border-collapse: collapse; table-layout: auto;
  width: auto; margin: 2px 0; }
.batch-magic-preview table.batch-magic-table th, .batch-magic-preview table.batch-magic-table td {
  text-align: left; vertical-align: top; white-space: nowrap; padding: 2px 8px;
  border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.batch-magic-preview table.batch-magic-table .bm-num { text-align: right;
  font-variant-numeric: tabular-nums; }
</style>"""


class JobPanel:
    """An ipywidgets view of one job; ``display(panel)`` shows it."""

    def __init__(self, job: JobLike, *, tick: bool = True) -> None:
        import ipywidgets as w

        self.job = job
        self._final = False
        self._danger = False
        self._unsubscribe: Callable[[], None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._untick: Callable[[], None] | None = None
        self._last: JobStatus = job.status
        self._display_handle: Any = None
        self._saved_key: tuple[DisplayState, bool] | None = None  # the state the saved output shows

        self.header = w.HTML()
        self.state = w.HTML()
        self.state.add_class("batch-magic-state")
        self.bar = w.IntProgress(value=0, min=0, max=1, description="", bar_style="info")
        self.bar.add_class("batch-magic-bar")
        self.details = w.HTML()
        self.details.add_class("batch-magic-details")
        self.cancel_button = w.Button(description="Cancel", tooltip="Cancel the batches still running")
        self.cancel_button.add_class("batch-magic-cancel")
        self.cancel_button.on_click(self._on_cancel)
        self.error = w.HTML()
        self.error.add_class("batch-magic-error")
        self.error.layout.display = "none"
        self.summary = w.HTML()
        self.summary.add_class("batch-magic-summary")
        self.summary.layout.display = "none"
        self.preview = w.HTML()
        self.preview.add_class("batch-magic-preview")
        self.preview.layout.display = "none"
        top = w.HBox([self.state, self.bar, self.cancel_button])
        self.widget = _panel_box(
            self, [self.header, top, self.details, self.error, self.summary, self.preview]
        )
        self.widget.add_class("batch-magic-panel")
        self._render_header(self._last)
        self._unsubscribe = job.observe(self.update)
        if self._final:
            self.close()
        elif tick:
            self._start_ticker()

    # -- observer ---------------------------------------------------------------
    def update(self, status: JobStatus) -> None:
        """Called by the job (on the kernel's thread) with every new snapshot."""
        try:
            self._render(status)
        except Exception as exc:  # a display bug must show, not vanish into the engine
            self._show_error(f"panel error: {type(exc).__name__}: {exc}")

    def _render(self, status: JobStatus) -> None:
        if self._final or (status.done and not self.job.done):
            return  # the end is shown once, when the merge into the DataFrame is over
        finishing = status.done
        frame = None
        if finishing and not is_failure(status):
            try:
                frame = self.job.result()
            except Exception as exc:
                # No merged result is a failure, whatever the snapshot said: shown as one,
                # so nothing below reads as a success.
                status = replace(status, error=f"results not available: {exc}")
        self._last = status
        failure = is_failure(status)
        word = escape(state_word(shown_state(status)))
        self.state.value = f"<b class='batch-magic-failed'>{word}</b>" if failure else f"<b>{word}</b>"
        self._render_cancel(status)
        self._render_header(status)
        self._render_bar(status)
        self._render_details(status)
        if status.error:
            self._show_error(status.error)
        if finishing:
            self._finish(status, frame)
        else:
            self._refresh_saved_output(status)

    def _render_cancel(self, status: JobStatus) -> None:
        """The button says what is happening: Canceling… while the API stops the
        batches, Canceled once they are."""
        if status.state == DisplayState.CANCELING:
            self.cancel_button.disabled = True
            self.cancel_button.description = "Canceling…"
        elif status.state == DisplayState.CANCELED:
            self.cancel_button.disabled = True
            self.cancel_button.description = "Canceled"
        elif status.done:  # ended before a cancel could: nothing left to cancel
            self.cancel_button.disabled = True
            self.cancel_button.description = "Cancel"

    def _render_header(self, status: JobStatus) -> None:
        sim = ' <span class="batch-magic-simulated">SIMULATED</span>' if status.simulated else ""
        self.header.value = (
            f"{_CSS}<b>batch</b> <code>{escape(status.job_id)}</code> · "
            f"{escape(status.model)} · {plural(status.n_requests, 'request')} → "
            f"<code>{escape(status.out)}</code>{sim}"
        )

    def _render_bar(self, status: JobStatus) -> None:
        # tqdm's rule: once danger, never success.
        colour = outcome(status)
        if colour == "danger":
            self._danger = True
        if status.state == DisplayState.UPLOADING and not status.done:
            self.bar.max = max(1, status.uploads_total)
            self.bar.value = status.uploads_done
            self.bar.description = f"{status.uploads_done}/{status.uploads_total} files"
            self.bar.remove_class("batch-magic-indeterminate")
            self.bar.bar_style = "danger" if self._danger else "info"
            return
        total = max(1, status.batches_total)
        self.bar.max = total
        self.bar.description = f"{status.batches_ended}/{status.batches_total}"
        if status.done:
            self.bar.value = total
            self.bar.remove_class("batch-magic-indeterminate")
            self.bar.bar_style = "danger" if self._danger else (colour or "danger")
            return
        # The API's counts do not move until a batch ends: show batches ended,
        # and a moving stripe while none has, so the bar never looks stuck.
        if status.batches_ended == 0:
            self.bar.value = total
            self.bar.add_class("batch-magic-indeterminate")
        else:
            self.bar.value = status.batches_ended
            if status.batches_ended >= total:
                self.bar.remove_class("batch-magic-indeterminate")
        self.bar.bar_style = "danger" if self._danger else (
            "warning" if status.reconnecting or status.state == DisplayState.CANCELING else "info"
        )

    def _render_details(self, status: JobStatus) -> None:
        # The step under way; once final, the summary line says it all. While the job
        # runs, a note says what to do if this view outlives its kernel (a restarted
        # kernel leaves this view as it last was, and it cannot say so itself then).
        running = not status.done
        message = f"<br><small>{escape(status.message)}</small>" if status.message and running else ""
        note = f"<br><small class='batch-magic-note'>{escape(reattach_hint(status.job_id))}</small>" if running else ""
        self.details.value = f"{escape(format_status(status))}{message}{note}"

    def _show_error(self, text: str) -> None:
        self.error.value = f"<b>Error:</b> <pre style='white-space:pre-wrap'>{escape(text)}</pre>"
        self.error.layout.display = None

    def _finish(self, status: JobStatus, frame: pd.DataFrame | None) -> None:
        self._final = True
        self.cancel_button.disabled = True
        self._stop_ticker()
        summary = escape(format_summary(status))
        failed = " class='batch-magic-failed'" if is_failure(status) else ""
        self.summary.value = f"<b{failed}>{summary}</b>"
        self.summary.layout.display = None
        if frame is not None and not is_failure(status):
            self._render_preview(status, frame)
        self._refresh_saved_output(status, force=True)

    def _refresh_saved_output(self, status: JobStatus, *, force: bool = False) -> None:
        """Put the latest state into the output the notebook saves (its text and HTML
        fallbacks), once per state, not per tick: a notebook reopened after its kernel
        is gone, or read without widgets, says the last state and how to pick the job
        up again, not a live "in progress"."""
        if self._display_handle is None:
            return
        key = (shown_state(status), bool(status.error))
        if key == self._saved_key and not force:
            return
        self._saved_key = key
        with contextlib.suppress(Exception):
            self._display_handle.update(self.widget)

    def _render_preview(self, status: JobStatus, frame: pd.DataFrame) -> None:
        cols = preview_columns(status, frame)
        if not cols:
            return
        rows, n_problems = preview_rows(status, frame)
        table = preview_table(frame, cols, rows)
        n_first = min(PREVIEW_ROWS, len(frame))
        caption = f"first {plural(n_first, 'row')}"
        if len(rows) > n_first:
            caption += f", then {len(rows) - n_first} of the {plural(n_problems, 'row')} not succeeded"
        self.preview.value = html_no_math(f"<small>{html.escape(caption)}</small>{table}")
        self.preview.layout.display = None

    # -- cancel -------------------------------------------------------------
    def _on_cancel(self, _button: Any = None) -> None:
        self.cancel_button.disabled = True
        self.cancel_button.description = "Canceling…"
        try:
            self.job.cancel()
        except Exception as exc:
            self.cancel_button.disabled = False
            self.cancel_button.description = "Cancel"
            self._show_error(f"cancel failed: {type(exc).__name__}: {exc}")

    # -- the clock ------------------------------------------------------------
    def _start_ticker(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a script): the details refresh on each change only
        self._ticker = loop.create_task(self._tick())
        # A blocking wait() holds the loop; the job ticks the clock meanwhile.
        self._untick = self.job.while_waiting(self._tick_once)

    async def _tick(self) -> None:
        while not self._final:
            await asyncio.sleep(TICK_SECONDS)
            if self._final:
                break
            self._tick_once()

    def _tick_once(self) -> None:
        with contextlib.suppress(Exception):
            self._render_details(self.job.status)

    def _stop_ticker(self) -> None:
        untick, self._untick = self._untick, None
        if untick is not None:
            untick()
        task, self._ticker = self._ticker, None
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):
                current = asyncio.current_task()
                if task is not current:
                    task.cancel()

    def close(self) -> None:
        """Stop observing and ticking (the widget stays as it is)."""
        self._stop_ticker()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- display ------------------------------------------------------------
    def text_lines(self) -> list[str]:
        """The panel as text, for the output the notebook saves: the status line, the
        error, then the summary once the job has stopped, or while it runs, how to
        pick it up again (a view the kernel left behind cannot update itself)."""
        status = self._last
        lines = [f"batch {status.job_id}: {format_status(status)}"]
        if status.error:
            lines.append(f"error: {status.error}")
        lines.append(format_summary(status) if self._final else reattach_hint(status.job_id))
        return lines

    def text(self) -> str:
        return "\n".join(self.text_lines())

    def html(self) -> str:
        """``text_lines`` as static HTML (for a reader of the notebook without widgets)."""
        lines = self.text_lines()
        failed = " class='batch-magic-failed' style='color:#c00'"
        shown = [f"<b>{escape(lines[0])}</b>"] + [
            f"<span{failed if line.startswith('error: ') or is_failure(self._last) else ''}>{escape(line)}</span>"
            for line in lines[1:]
        ]
        return f"<div class='batch-magic-saved' style='white-space:pre-wrap'>{'<br>'.join(shown)}</div>"

    def display(self) -> None:
        from IPython.display import display

        self._display_handle = display(self.widget, display_id=True)
        self._saved_key = (shown_state(self._last), bool(self._last.error))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _panel_box_class() -> type:
    import ipywidgets as w

    class PanelBox(w.VBox):
        """A VBox whose fallbacks (text and HTML) are the job's last state, for a notebook
        read without widgets or a view left behind by a restarted kernel."""

        def __init__(self, panel: JobPanel, children: list[Any]) -> None:
            super().__init__(children)
            self._panel = panel

        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            bundle = super()._repr_mimebundle_(**kwargs)
            if isinstance(bundle, dict):
                bundle["text/plain"] = self._panel.text()
                bundle["text/html"] = self._panel.html()
            return bundle

    return PanelBox


_PANEL_BOX: type | None = None


def _panel_box(panel: JobPanel, children: list[Any]) -> Any:
    global _PANEL_BOX
    if _PANEL_BOX is None:
        _PANEL_BOX = _panel_box_class()
    return _PANEL_BOX(panel, children)


# -- the text fallback -----------------------------------------------------------
class TextStatus:
    """Short status lines on state changes only (terminal IPython, scripts)."""

    def __init__(self, job: JobLike, stream: TextIO | None = None) -> None:
        self.job = job
        self.stream = stream
        self._key: tuple[Any, ...] | None = None
        self._final = False
        self.lines: list[str] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._unsubscribe = job.observe(self.update)
        if self._final:
            self.close()

    def _write(self, text: str) -> None:
        self.lines.append(text)
        stream = self.stream if self.stream is not None else sys.stdout
        print(text, file=stream, flush=True)

    def update(self, status: JobStatus) -> None:
        uploading = status.state == DisplayState.UPLOADING
        key = (status.state, status.batches_ended, status.batches_total, bool(status.reconnecting), status.error,
               # uploads: a line per tenth of the files, not one per file
               status.uploads_done * 10 // max(1, status.uploads_total) if uploading else 0)
        if key == self._key or self._final:
            return
        if status.done and not self.job.done:
            return  # the journal says it ended; the merge into the DataFrame comes next
        self._key = key
        self._write(f"batch {status.job_id}: {format_status(status)}")
        if status.error:
            self._write(f"batch {status.job_id}: error: {status.error}")
        if status.done:
            self._final = True
            self._write(f"batch {status.job_id}: {format_summary(status)}")
            self.close()

    def close(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()


def has_widget_frontend(shell: Any) -> bool:
    """True in a Jupyter kernel (ZMQ shell), where widgets can render."""
    if shell is None:
        return False
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def show(job: JobLike, shell: Any = None, *, stream: TextIO | None = None) -> JobPanel | TextStatus:
    """Show a job the best way this front end allows."""
    if has_widget_frontend(shell):
        with contextlib.suppress(ImportError):
            panel = JobPanel(job)
            panel.display()
            return panel
    return TextStatus(job, stream=stream)


__all__ = [
    "NO_HISTORY_HINT",
    "JobPanel",
    "TextStatus",
    "format_duration_hint",
    "format_interval",
    "format_status",
    "format_summary",
    "has_widget_frontend",
    "preview_table",
    "show",
    "state_word",
]
