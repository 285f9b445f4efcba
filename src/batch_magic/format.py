"""How a job and its numbers are written for a person: money, counts, durations, status lines.

Pure functions of values and of ``JobStatus`` snapshots, the way tqdm keeps one
``format_meter`` apart from its bars: the ipywidgets panel, the text fallback,
``%batch status``, ``str(job.status)``, the dry-run and pilot reports and the
command line all write through these, so they never disagree. Nothing heavy is
imported here (no pandas, no widgets), so any module can use it.

What a snapshot *is* (its state, its ``outcome``) is decided by the snapshot
(``status.py``); this module only decides how that reads. One rule is written
here because every display must keep it: a snapshot carrying an error is never
shown as a success (no "done", no "new columns" above a failure).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .columns import job_columns
from .states import DisplayState, RowStatus

if TYPE_CHECKING:
    from .status import JobStatus

#: What the API says of batch durations, shown while this journal has no history.
NO_HISTORY_HINT = "most batches end within an hour (the API's estimate)"
#: Row statuses in the order they are listed (``RowStatus``'s own order).
COUNT_ORDER: tuple[str, ...] = tuple(RowStatus)
#: The smallest amount ``money`` writes out; anything above zero but below it is "<$0.000001".
SMALLEST_DOLLARS = 0.000001


# -- numbers ---------------------------------------------------------------------
def money(dollars: Any, *, cents: bool = False, missing: str = "n/a") -> str:
    """US dollars as a person reads them, with as many digits as tell something.

    From a dollar up, to the cent (``$1,234.50``). Below, at least two
    significant digits and at least four decimals (``$0.0042``, ``$0.05``,
    ``$0.000073``), since a pilot's or a small job's costs are fractions of a
    cent. ``cents=True`` rounds to the cent for a list (``<$0.01`` below it).
    ``missing`` stands for None or NaN.
    """
    try:
        value = float(dollars)
    except (TypeError, ValueError):
        return missing
    if math.isnan(value):
        return missing
    if value == 0:
        return "$0"
    sign = "-" if value < 0 else ""
    size = abs(value)
    if size >= 1 or (cents and size >= 0.01):
        return f"{sign}${size:,.2f}"
    if cents:
        return f"{sign}<$0.01"
    if size < SMALLEST_DOLLARS:
        return f"{sign}<${SMALLEST_DOLLARS:.6f}"
    # Two significant digits: the first one is at decimal -floor(log10(size)).
    decimals = min(6, max(4, 1 - math.floor(math.log10(size))))
    return f"{sign}$" + f"{size:.{decimals}f}".rstrip("0").rstrip(".")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``3 batches``: the count and the word that agrees with it."""
    if n == 1:
        return f"{n:,} {word}"
    if many is None:
        many = word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")
    return f"{n:,} {many}"


def format_counts(counts: Mapping[str, int]) -> str:
    """``8 succeeded, 2 errored``: row statuses in ``RowStatus``'s order, zeros left out."""
    keys = [k for k in COUNT_ORDER if counts.get(k)] + sorted(
        k for k in counts if k not in COUNT_ORDER and counts.get(k)
    )
    return ", ".join(f"{counts[k]:,} {k}" for k in keys)


def format_interval(seconds: float | None) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` beyond (as tqdm does); ``?`` when unknown."""
    if seconds is None:
        return "?"
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


def format_seconds(seconds: float) -> str:
    """A short measured time: ``2.4 s``."""
    return f"{seconds:.1f} s"


# -- a snapshot --------------------------------------------------------------------
def state_word(state: str) -> str:
    """A display state (``DisplayState``) as a person reads it: ``in_progress`` is "in progress"."""
    return str(state).replace("_", " ")


def is_failure(status: JobStatus) -> bool:
    """Is this snapshot a failure? Its state is failed, or it has stopped with an error.

    A job that stopped with an error is shown as failed whatever else its
    snapshot says, so no display puts "done" above the error that undid it.
    """
    return status.state == DisplayState.FAILED or (status.done and bool(status.error))


def shown_state(status: JobStatus) -> DisplayState:
    """The state a display shows: the snapshot's, except that a failure always reads "failed"."""
    return DisplayState.FAILED if is_failure(status) else DisplayState(status.state)


def outcome(status: JobStatus) -> str | None:
    """The colour of the outcome (tqdm's bar styles): ``danger`` for any error, else the
    snapshot's own ``outcome`` (``success``, ``warning``, or None while it runs)."""
    if status.error or is_failure(status):
        return "danger"
    return status.outcome


def format_status(status: JobStatus) -> str:
    """One short line: state, batches (or files), elapsed, time to expiry, cost, counts."""
    final = status.done
    state = shown_state(status)
    parts = [state_word(state)]
    if status.reconnecting and not final:
        parts[0] += " (reconnecting)"
    if state == DisplayState.UPLOADING:
        # Before any batch exists the files are what moves: real counts, not batches.
        parts[0] += f" {status.uploads_done:,}/{status.uploads_total:,} files"
    else:
        parts.append(f"{status.batches_ended}/{status.batches_total} batches")
    parts.append(f"{format_interval(status.elapsed)} elapsed")
    running = state in (DisplayState.IN_PROGRESS, DisplayState.CANCELING)
    if running and not final and status.batches_submitted > status.batches_ended:
        parts.append(format_duration_hint(status))
    left = status.time_to_expiry
    if left is not None and not final:
        parts.append(f"{format_interval(left)} to expiry")
    if status.actual_cost is not None and final:
        est = f" (est. {money(status.estimated_cost)})" if status.estimated_cost is not None else ""
        parts.append(f"cost {money(status.actual_cost)}{est}")
    elif status.estimated_cost is not None:
        upper = status.estimated_cost_upper
        bound = f", at most {money(upper)}" if upper is not None else ""
        source = f", prices {status.prices}" if status.prices else ""
        parts.append(f"est. {money(status.estimated_cost)}{bound}{source}")
    counts = status.row_counts if final and status.row_counts else status.counts
    text = format_counts(counts)
    if text:
        parts.append(text)
    parts += format_reuse(status)
    line = " · ".join(parts)
    if status.simulated:
        line += " · SIMULATED"
    return line


def format_reuse(status: JobStatus) -> list[str]:
    """What the journal's answers saved, and what a sample says of the whole frame."""
    parts = []
    if status.n_reused:
        saved = f", saved {money(status.saved_cost)}" if status.saved_cost else ""
        parts.append(f"{plural(status.n_reused, 'answer')} reused{saved}")
    projected = status.projected_full_cost
    if projected is not None:
        sent = status.n_rows - status.n_not_sent
        parts.append(f"sample of {sent:,}: all {plural(status.n_rows, 'row')} ≈ {money(projected)}")
    return parts


def status_text(status: JobStatus) -> str:
    """The status line with its job id, and the error if there is one, on one line
    (``str(status)``)."""
    text = f"{status.job_id}: {format_status(status)}"
    if status.error:
        text += f" · error: {status.error}"
    return text


def format_duration_hint(status: JobStatus) -> str:
    """How long a batch may take, clearly an estimate: this journal's history, else the API's word."""
    hint = status.typical_duration
    if hint is None:
        return NO_HISTORY_HINT
    spread = f"{format_interval(hint.low)}–{format_interval(hint.high)}, " if hint.samples > 1 else ""
    earlier = plural(hint.samples, "earlier batch")
    return f"estimate ~{format_interval(hint.median)} a batch ({spread}{earlier} like it)"


def format_summary(status: JobStatus) -> str:
    """The one line shown when a job stops. A failure names no new columns: the error
    (shown beside it) says what happened, and nothing here reads as a success."""
    counts = status.row_counts or status.counts
    elapsed = format_interval(status.elapsed)
    cost = ""
    if status.actual_cost is not None:
        source = f" (prices {status.prices})" if status.prices else ""
        cost = f"; cost {money(status.actual_cost)}{source}"
    simulated = " (SIMULATED)" if status.simulated else ""
    if is_failure(status):
        known = format_counts(counts)
        return f"failed after {elapsed}" + (f" ({known})" if known else "") + cost + simulated
    ok = counts.get(RowStatus.SUCCEEDED, 0)
    line = f"{state_word(status.state)}: {ok:,} of {plural(status.n_rows, 'row')} answered in {elapsed}"
    bad = {k: v for k, v in counts.items() if k != RowStatus.SUCCEEDED and v}
    if bad:
        line += f" ({format_counts(bad)})"
    line += cost
    reuse = format_reuse(status)
    if reuse:
        line += "; " + "; ".join(reuse)
    if status.columns:
        details = job_columns(status.out).details
        line += f"; new columns: {', '.join(c for c in status.columns if c not in details)}"
    return line + simulated


__all__ = [
    "COUNT_ORDER",
    "NO_HISTORY_HINT",
    "format_counts",
    "format_duration_hint",
    "format_interval",
    "format_reuse",
    "format_seconds",
    "format_status",
    "format_summary",
    "is_failure",
    "money",
    "outcome",
    "plural",
    "shown_state",
    "state_word",
    "status_text",
]
