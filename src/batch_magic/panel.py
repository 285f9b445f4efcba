"""The live view of a job: an ipywidgets panel, or short text lines.

Both render the same pure function, ``format_status(status)``, the way tqdm's
notebook bar and its text bar both render ``format_meter``. The panel only
observes the job (``job.observe(panel.update)``): it never drives it. The one
thing a person can ask of it is Cancel, which calls ``job.cancel()``.

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
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .columns import job_columns

if TYPE_CHECKING:
    import pandas as pd

    from .status import JobStatus

#: Row statuses in the order they are listed.
COUNT_ORDER = ("succeeded", "errored", "invalid", "expired", "canceled", "skipped", "pending")
PREVIEW_ROWS = 5
#: Characters of a cell shown in the preview.
PREVIEW_CHARS = 80
#: Rows not succeeded shown in the preview besides the first ones, with their error.
PREVIEW_PROBLEMS = 3
TICK_SECONDS = 1.0
#: What the API says of batch durations, shown while this journal has no history.
NO_HISTORY_HINT = "most batches end within an hour (the API's estimate)"


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

    def observe(self, callback: Callable[[JobStatus], None]) -> Callable[[], None]: ...

    def cancel(self) -> None: ...

    def result(self) -> pd.DataFrame: ...


def settled(job: Any) -> bool:
    """True once the job's driver has finished (merged, refused or failed).

    A job re-attached from the journal reports its recorded final state before
    its results are merged into the DataFrame; the panel waits for the merge.
    """
    return bool(getattr(job, "done", True))


# -- the one pure formatter ----------------------------------------------------
def state_word(state: str) -> str:
    """A display state (``status.STATES``) as a person reads it: ``in_progress`` is "in progress"."""
    return state.replace("_", " ")


def format_interval(seconds: float | None) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` beyond (as tqdm does)."""
    if seconds is None:
        return "?"
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


def format_cost(dollars: float | None) -> str:
    if dollars is None:
        return "?"
    if dollars == 0:
        return "$0"
    if abs(dollars) < 0.0001:
        return "<$0.0001"
    if abs(dollars) < 1:
        return "$" + f"{dollars:.4f}".rstrip("0").rstrip(".")
    return f"${dollars:,.2f}"


def format_counts(counts: dict[str, int]) -> str:
    """``8 succeeded, 2 errored`` in a fixed order, zeros left out."""
    keys = [k for k in COUNT_ORDER if counts.get(k)] + sorted(
        k for k in counts if k not in COUNT_ORDER and counts.get(k)
    )
    return ", ".join(f"{counts[k]:,} {k}" for k in keys)


def format_status(status: JobStatus) -> str:
    """One short line: state, batches, elapsed, time to expiry, cost, counts."""
    final = status.done
    parts = [state_word(status.state)]
    if status.reconnecting and not final:
        parts[0] += " (reconnecting)"
    if status.state == "uploading":
        # Before any batch exists the files are what moves: real counts, not batches.
        parts[0] += f" {status.uploads_done:,}/{status.uploads_total:,} files"
    else:
        parts.append(f"{status.batches_ended}/{status.batches_total} batches")
    parts.append(f"{format_interval(status.elapsed)} elapsed")
    running = status.state in ("in_progress", "canceling") and status.batches_submitted > status.batches_ended
    if running and not final:
        parts.append(format_duration_hint(status))
    left = status.time_to_expiry
    if left is not None and not final:
        parts.append(f"{format_interval(left)} to expiry")
    if status.actual_cost is not None and final:
        est = f" (est. {format_cost(status.estimated_cost)})" if status.estimated_cost is not None else ""
        parts.append(f"cost {format_cost(status.actual_cost)}{est}")
    elif status.estimated_cost is not None:
        upper = status.estimated_cost_upper
        bound = f", at most {format_cost(upper)}" if upper is not None else ""
        source = f", prices {status.prices}" if status.prices else ""
        parts.append(f"est. {format_cost(status.estimated_cost)}{bound}{source}")
    counts = status.row_counts if final and status.row_counts else status.counts
    text = format_counts(counts)
    if text:
        parts.append(text)
    line = " · ".join(parts)
    if status.simulated:
        line += " · SIMULATED"
    return line


def format_duration_hint(status: JobStatus) -> str:
    """How long a batch may take, clearly an estimate: this journal's history, else the API's word."""
    hint = status.typical_duration
    if hint is None:
        return NO_HISTORY_HINT
    spread = f"{format_interval(hint.low)}–{format_interval(hint.high)}, " if hint.samples > 1 else ""
    earlier = f"{hint.samples} earlier batch{'es' if hint.samples != 1 else ''}"
    return f"estimate ~{format_interval(hint.median)} a batch ({spread}{earlier} like it)"


def format_summary(status: JobStatus) -> str:
    """The one line shown when a job ends."""
    counts = status.row_counts or status.counts
    ok = counts.get("succeeded", 0)
    word = state_word(status.state)
    line = f"{word}: {ok:,} of {status.n_rows:,} rows answered in {format_interval(status.elapsed)}"
    bad = {k: v for k, v in counts.items() if k != "succeeded" and v}
    if bad:
        line += f" ({format_counts(bad)})"
    if status.actual_cost is not None:
        source = f" (prices {status.prices})" if status.prices else ""
        line += f"; cost {format_cost(status.actual_cost)}{source}"
    if status.columns:
        details = job_columns(status.out).details
        line += f"; new columns: {', '.join(c for c in status.columns if c not in details)}"
    if status.simulated:
        line += " (SIMULATED)"
    return line


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
    problems = [i for i, s in enumerate(states) if s != "succeeded"]
    extra = sorted((i for i in problems if i not in first), key=lambda i: (states[i] == "skipped", i))
    return first + sorted(extra[:PREVIEW_PROBLEMS]), len(problems)


def _clip_cell(value: Any) -> Any:
    """A long text cut short for the preview (the raw JSON of a schema job can be wide)."""
    if isinstance(value, str) and len(value) > PREVIEW_CHARS:
        return value[: PREVIEW_CHARS - 1] + "…"
    return value


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
.batch-magic-error { color: var(--jp-error-color1, #c00); }
.batch-magic-simulated { color: var(--jp-warn-color1, #b60); font-weight: bold; }
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
        self._last = status
        word = state_word(status.state)
        self.state.value = f"<b>{escape(word)}</b>"
        self._render_cancel(status)
        self._render_header(status)
        self._render_bar(status)
        self._render_details(status)
        if status.error:
            self._show_error(status.error)
        if status.done and not self._final and settled(self.job):
            self._finish(status)

    def _render_cancel(self, status: JobStatus) -> None:
        """The button says what is happening: Canceling… while the API stops the
        batches, Canceled once they are."""
        if status.state == "canceling":
            self.cancel_button.disabled = True
            self.cancel_button.description = "Canceling…"
        elif status.state == "canceled":
            self.cancel_button.disabled = True
            self.cancel_button.description = "Canceled"
        elif status.done:  # ended before a cancel could: nothing left to cancel
            self.cancel_button.disabled = True
            self.cancel_button.description = "Cancel"

    def _render_header(self, status: JobStatus) -> None:
        sim = ' <span class="batch-magic-simulated">SIMULATED</span>' if status.simulated else ""
        self.header.value = (
            f"{_CSS}<b>batch</b> <code>{escape(status.job_id)}</code> · "
            f"{escape(status.model)} · {status.n_requests:,} requests → "
            f"<code>{escape(status.out)}</code>{sim}"
        )

    def _render_bar(self, status: JobStatus) -> None:
        if status.state == "uploading":
            self.bar.max = max(1, status.uploads_total)
            self.bar.value = status.uploads_done
            self.bar.description = f"{status.uploads_done}/{status.uploads_total} files"
            self.bar.remove_class("batch-magic-indeterminate")
            return
        total = max(1, status.batches_total)
        self.bar.max = total
        self.bar.description = f"{status.batches_ended}/{status.batches_total}"
        if status.done:
            self.bar.value = total
            self.bar.remove_class("batch-magic-indeterminate")
            outcome = status.outcome or "danger"
            if outcome == "danger":
                self._danger = True
            self.bar.bar_style = "danger" if self._danger else outcome
            return
        if status.error:
            self._danger = True
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
            "warning" if status.reconnecting or status.state == "canceling" else "info"
        )

    def _render_details(self, status: JobStatus) -> None:
        # The step under way; once final, the summary line says it all.
        show = status.message and not status.done
        message = f"<br><small>{escape(status.message)}</small>" if show else ""
        self.details.value = f"{escape(format_status(status))}{message}"

    def _show_error(self, text: str) -> None:
        self.error.value = f"<b>Error:</b> <pre style='white-space:pre-wrap'>{escape(text)}</pre>"
        self.error.layout.display = None

    def _finish(self, status: JobStatus) -> None:
        self._final = True
        self.cancel_button.disabled = True
        self._stop_ticker()
        self.summary.value = f"<b>{escape(format_summary(status))}</b>"
        self.summary.layout.display = None
        if status.state != "failed":
            self._render_preview(status)
        if self._display_handle is not None:
            # Refresh the saved output's text/plain (what nbconvert shows).
            with contextlib.suppress(Exception):
                self._display_handle.update(self.widget)

    def _render_preview(self, status: JobStatus) -> None:
        try:
            frame = self.job.result()
        except Exception as exc:
            self._show_error(f"results not available: {exc}")
            return
        cols = preview_columns(status, frame)
        if not cols:
            return
        rows, n_problems = preview_rows(status, frame)
        cells = frame[cols].iloc[rows].astype(object).map(_clip_cell)
        table = cells.to_html(max_cols=12, notebook=False, border=0, na_rep="")
        n_first = min(PREVIEW_ROWS, len(frame))
        caption = f"first {n_first} rows"
        if len(rows) > n_first:
            caption += f", then {len(rows) - n_first} of the {n_problems:,} rows not succeeded"
        self.preview.value = html_no_math(
            f"<small>{html.escape(caption)}</small><div style='overflow-x:auto'>{table}</div>"
        )
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
        while_waiting = getattr(self.job, "while_waiting", None)
        if while_waiting is not None:
            self._untick = while_waiting(self._tick_once)

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
    def text(self) -> str:
        status = self._last
        line = format_status(status)
        if status.error:
            line += f"\nerror: {status.error}"
        if status.done:
            line += "\n" + format_summary(status)
        return f"batch {status.job_id}: {line}"

    def display(self) -> None:
        from IPython.display import display

        self._display_handle = display(self.widget, display_id=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _panel_box_class() -> type:
    import ipywidgets as w

    class PanelBox(w.VBox):
        """A VBox whose text fallback is the job's status line (for nbconvert)."""

        def __init__(self, panel: JobPanel, children: list[Any]) -> None:
            super().__init__(children)
            self._panel = panel

        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            bundle = super()._repr_mimebundle_(**kwargs)
            if isinstance(bundle, dict):
                bundle["text/plain"] = self._panel.text()
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
        key = (status.state, status.batches_ended, status.batches_total, bool(status.reconnecting), status.error,
               # uploads: a line per tenth of the files, not one per file
               status.uploads_done * 10 // max(1, status.uploads_total) if status.state == "uploading" else 0)
        if key == self._key or self._final:
            return
        if status.done and not settled(self.job):
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
    "JobPanel",
    "TextStatus",
    "format_cost",
    "format_interval",
    "format_status",
    "format_summary",
    "has_widget_frontend",
    "show",
    "state_word",
]
