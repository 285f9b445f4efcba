"""Displays of a dry run (a ``Prepared`` job) and of a pilot run, as text and HTML.

Pure functions of the objects they show: no I/O, nothing sent. Each display
has a text form (terminals, logs, ``repr``) and an HTML form (notebooks,
``_repr_html_``) built from the same facts, so they never disagree.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import TYPE_CHECKING, Any

import pandas as pd

from .columns import job_columns
from .format import format_counts, format_seconds, money, plural
from .media import readable
from .panel import html_no_math
from .states import RowStatus

if TYPE_CHECKING:
    from .api import Prepared
    from .pilot import PilotResult

#: Prompts shown in a dry run, and how much of each.
SHOWN_PROMPTS = 3
PROMPT_CHARS = 1200
ANSWER_CHARS = 600


def _clip(text: Any, limit: int) -> str:
    s = "" if text is None or (not isinstance(text, str) and pd.isna(text)) else str(text)
    return s if len(s) <= limit else s[:limit] + f"... [{len(s) - limit:,} more characters]"


# -- dry run -----------------------------------------------------------------------------------
def dry_run_facts(p: Prepared) -> dict[str, Any]:
    """Everything a dry run shows, as plain values (both displays read this)."""
    plan, e, spec = p.plan, p.estimate, p.spec
    n_rows = plan.n_rows
    reasons = Counter(plan.skip_reasons.values())
    # Rows skipped without a recorded reason (more than the plan keeps) still count.
    unexplained = plan.n_skipped - sum(reasons.values())
    if unexplained > 0:
        reasons["other"] += unexplained
    skipped_examples = [plan.index[pos] for pos in sorted(plan.skip_reasons)[:5]]
    if spec.kind == "labels":
        output = f"labels: {', '.join(spec.labels)} (a Categorical column)"
    elif spec.kind == "schema":
        output = "schema fields: " + ", ".join(f"{f.name} ({f.dtype or 'object'})" for f in spec.fields())
    elif spec.kind == "json":
        output = "JSON object; its keys become columns"
    else:
        output = "free text"
    options = plan.options
    discount = e.batch_cost / e.realtime_cost if e.realtime_cost else 0.5
    # A sample's estimate per row sent (the reused answers' worth counted in, as the job's
    # status counts it) says what every row of the frame would cost.
    sent_rows = n_rows - plan.n_not_sent
    projected = (e.batch_cost + p.saved_cost) * n_rows / max(1, sent_rows) if plan.n_not_sent else None
    tc = p.token_count
    if tc is None:
        tokens_how = f"a local estimate, about {e.chars_per_token:.2g} characters a token"
    elif tc.method == "all":
        tokens_how = f"counted by the API's count_tokens for all {tc.n_requests:,} requests"
    else:
        tokens_how = (
            f"calibrated from count_tokens on a sample of {tc.counted:,} of {tc.n_requests:,} "
            f"requests ({tc.chars_per_token:.2f} characters a token)"
        )
        if tc.failed:
            tokens_how += f"; {tc.failed:,} counts failed"
    if e.media_tokens:
        tokens_how += f"; ~{e.media_tokens:,} of them for images and PDFs, approximate"
    return {
        "model": options.model,
        "out": p.out,
        "output": output,
        "via_tool": bool(options.use_tool and spec.json_schema() is not None),
        "cached_system": bool(options.system and options.cache_system),
        "system_chars": len(options.system or ""),
        "rows": n_rows,
        "requests": plan.n_requests,
        "deduplicated": plan.n_deduplicated,
        "skipped": plan.n_skipped,
        "reused": p.known.n,
        "saved_cost": p.saved_cost,
        "to_send": plan.n_requests - p.known.n,
        "not_sent": plan.n_not_sent,
        "sample_rows": sent_rows,
        "sample_seed": p.sample_seed,
        "sample_stratify": p.sample_stratify,
        "projected_full_cost": projected,
        "skip_reasons": dict(reasons.most_common()),
        "skipped_examples": skipped_examples,
        "batches": len(plan.batches),
        "batch_sizes": [len(b) for b in plan.batches],
        "input_tokens": e.input_tokens,
        "tokens_how": tokens_how,
        "expected_output_tokens": e.expected_output_tokens,
        "max_output_tokens": e.max_output_tokens,
        "max_tokens": options.max_tokens,
        "batch_cost": e.batch_cost,
        "batch_cost_upper": e.batch_cost_upper,
        "realtime_cost": e.realtime_cost,
        "realtime_cost_upper": e.batch_cost_upper / discount if discount else None,
        "price_known": e.price_known,
        "prices_taken": e.prices_taken,
        "columns": [*spec.column_names(p.out), job_columns(p.out).status, job_columns(p.out).error],
        "prompts": [readable(prompt, plan.media) for prompt in plan.prompts[:SHOWN_PROMPTS]],
        # What the model accepts and what was chosen from it (models.py), then cautions.
        "notes": list(p.notes),
        "warnings": list(p.warnings),
    }


def prepared_text(p: Prepared) -> str:
    f = dry_run_facts(p)
    saved = f["deduplicated"]
    lines = [
        f"Dry run: nothing was sent. {f['model']} -> column {f['out']!r} ({f['output']})",
        f"  rows:      {f['rows']:,}",
        f"  requests:  {f['requests']:,}"
        + (f" (deduplication saved {plural(saved, 'identical prompt')})" if saved else ""),
        f"  skipped:   {f['skipped']:,}" + _reasons_text(f),
        *([f"  reused:    {_reused_text(f)}"] if f["reused"] else []),
        *([f"  sample:    {_sample_text(f)}"] if f["not_sent"] else []),
        f"  batches:   {f['batches']:,}"
        + (f" ({', '.join(f'{s:,}' for s in f['batch_sizes'][:6])}{' ...' if f['batches'] > 6 else ''} requests)" if f["batches"] > 1 else ""),
        f"  input:     ~{f['input_tokens']:,} tokens ({f['tokens_how']})",
        f"  output:    ~{f['expected_output_tokens']:,} tokens expected; at most {f['max_output_tokens']:,} (max_tokens={f['max_tokens']:,})",
        f"  cost:      batch {money(f['batch_cost'])} expected, {money(f['batch_cost_upper'])} at most;"
        f" realtime {money(f['realtime_cost'])} expected, {money(f['realtime_cost_upper'])} at most",
        f"  prices:    taken {f['prices_taken']}"
        + ("" if f["price_known"] else f"; {f['model']!r} is not in the price table, priced as the dearest model"),
    ]
    if f["via_tool"]:
        lines.append("  note:      this model has no structured outputs; the schema goes as a forced tool call")
    if f["cached_system"]:
        lines.append(f"  note:      the system prompt ({f['system_chars']:,} characters) is cached (1-hour TTL)")
    lines += [f"  note:      {note}" for note in f["notes"]]
    lines += [f"  warning:   {w}" for w in f["warnings"]]
    lines.append(f"  columns:   {', '.join(f['columns'])}")
    for i, prompt in enumerate(f["prompts"], 1):
        lines.append(f"--- prompt {i} " + "-" * 40)
        lines.append(_clip(prompt, PROMPT_CHARS))
    return "\n".join(lines)


def _reused_text(f: dict[str, Any]) -> str:
    """The requests the journal's answer store answered already: not sent, not paid again."""
    return (
        f"{f['reused']:,} of the {plural(f['requests'], 'request')} answered already in the journal "
        f"(not sent; saves {money(f['saved_cost'])}); {f['to_send']:,} to send"
    )


def _sample_text(f: dict[str, Any]) -> str:
    """A sample's rows sent and left out, and what the whole frame would cost at its rate."""
    how = f"seed {f['sample_seed']}" if f["sample_seed"] is not None else ""
    if f["sample_stratify"]:
        how += f"{', ' if how else ''}stratified by {f['sample_stratify']!r}"
    return (
        f"{plural(f['sample_rows'], 'row')} sent, {f['not_sent']:,} not sent"
        + (f" ({how})" if how else "")
        + f"; all {plural(f['rows'], 'row')} ≈ {money(f['projected_full_cost'])} at the batch price "
        "(this sample's estimate per row)"
    )


def _reasons_text(f: dict[str, Any]) -> str:
    if not f["skipped"]:
        return ""
    parts = [f"{reason}: {n:,}" for reason, n in list(f["skip_reasons"].items())[:4]]
    examples = ", ".join(map(repr, f["skipped_examples"][:3]))
    return f" ({'; '.join(parts)}; e.g. rows {examples})"


# The selectors outrank JupyterLab's own output rules, which lay tables out in equal
# fixed columns, right-align every cell and break words anywhere in a <pre> ("n eutral").
_STYLE = (
    "<style>div.bm-report{font-family:var(--jp-ui-font-family,sans-serif);font-size:13px}"
    "div.bm-report table.bm-table{border-collapse:collapse;margin:4px 0;table-layout:auto}"
    "div.bm-report table.bm-table th,div.bm-report table.bm-table td{text-align:left;vertical-align:top;padding:3px 8px;"
    "border-bottom:1px solid var(--jp-border-color2,#ddd);word-break:normal;overflow-wrap:break-word}"
    "div.bm-report pre{white-space:pre-wrap;word-break:normal;overflow-wrap:break-word;max-height:14em;"
    "overflow:auto;margin:0;font-size:12px;background:var(--jp-layout-color2,#f6f6f6);padding:4px}"
    "div.bm-report .bm-nowrap{white-space:nowrap}"
    "div.bm-report .bm-muted{color:var(--jp-ui-font-color2,#666)}"
    "div.bm-report .bm-bad{color:var(--jp-error-color1,#b00)}</style>"
)


def prepared_html(p: Prepared) -> str:
    f = dry_run_facts(p)
    e = html.escape
    rows = [
        ("rows", f"{f['rows']:,}"),
        ("requests", f"{f['requests']:,}" + (f" <span class='bm-muted'>(deduplication saved {f['deduplicated']:,})</span>" if f["deduplicated"] else "")),
        ("skipped", f"{f['skipped']:,}" + (f" <span class='bm-muted'>{e(_reasons_text(f))}</span>" if f["skipped"] else "")),
        *([("reused", e(_reused_text(f)))] if f["reused"] else []),
        *([("sample", e(_sample_text(f)))] if f["not_sent"] else []),
        ("batches", f"{f['batches']:,}"),
        ("input tokens", f"~{f['input_tokens']:,} <span class='bm-muted'>({e(f['tokens_how'])})</span>"),
        ("output tokens", f"~{f['expected_output_tokens']:,} expected, at most {f['max_output_tokens']:,} <span class='bm-muted'>(max_tokens={f['max_tokens']:,})</span>"),
        ("batch cost", f"<b>{money(f['batch_cost'])}</b> expected, {money(f['batch_cost_upper'])} at most"),
        ("realtime cost", f"{money(f['realtime_cost'])} expected, {money(f['realtime_cost_upper'])} at most"),
        ("prices", f"taken {e(f['prices_taken'])}" + ("" if f["price_known"] else f" <span class='bm-bad'>({e(f['model'])} is not in the price table; priced as the dearest model)</span>")),
        ("columns", e(", ".join(f["columns"]))),
    ]
    if f["via_tool"]:
        rows.append(("note", "this model has no structured outputs; the schema goes as a forced tool call"))
    if f["cached_system"]:
        rows.append(("note", f"the system prompt ({f['system_chars']:,} characters) is cached (1-hour TTL)"))
    rows += [("note", e(note)) for note in f["notes"]]
    rows += [("warning", f"<span class='bm-bad'>{e(w)}</span>") for w in f["warnings"]]
    table = "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    prompts = "".join(
        f"<details{' open' if i == 0 else ''}><summary>prompt {i + 1}</summary><pre>{e(_clip(pr, PROMPT_CHARS))}</pre></details>"
        for i, pr in enumerate(f["prompts"])
    )
    return html_no_math(
        f"{_STYLE}<div class='bm-report'><b>Dry run</b>: nothing was sent. "
        f"{e(f['model'])} &rarr; column <code>{e(f['out'])}</code> ({e(f['output'])})"
        f"<table class='bm-table'>{table}</table>{prompts}</div>"
    )


# -- pilot -------------------------------------------------------------------------------------
def _parsed_columns(r: PilotResult) -> list[str]:
    fixed = {"row", "prompt", "answer", "status", "error", "input_tokens", "output_tokens",
             "cache_creation_input_tokens", "cache_read_input_tokens", "cost", "seconds", "stop_reason"}
    return [c for c in r.frame.columns if c not in fixed]


def _parsed_text(row: pd.Series, cols: list[str], out: str) -> str:
    parts = []
    for c in cols:
        v = row[c]
        if v is None or (not isinstance(v, list | dict) and pd.isna(v)):
            v = "<NA>"
        name = c[len(out) + 1:] if c.startswith(out + "_") else c
        parts.append(f"{v}" if c == out else f"{name}={v}")
    return ", ".join(parts)


def pilot_facts(r: PilotResult) -> dict[str, Any]:
    statuses = r.frame["status"].value_counts()
    return {
        "n": len(r.frame),
        "model": r.prepared.plan.options.model,
        "statuses": {str(k): int(v) for k, v in statuses.items() if v},
        "cost": r.total_cost,
        "wall_time": r.wall_time,
        "batch_cost": r.prepared.estimate.batch_cost,
        "batch_cost_upper": r.prepared.estimate.batch_cost_upper,
        "requests": r.prepared.plan.n_requests,
        "batch_from_pilot": r.batch_estimate_from_pilot,
    }


def pilot_text(r: PilotResult) -> str:
    f = pilot_facts(r)
    cols = _parsed_columns(r)
    counts = format_counts(f["statuses"])
    lines = [
        ("SIMULATED answers (local simulator, not Claude). " if r.simulated else "")
        + f"Pilot: {plural(f['n'], 'row')} through the realtime API ({f['model']}) in {format_seconds(f['wall_time'])}, "
        f"{money(f['cost'])} at the realtime price ({counts}). Nothing was merged.",
    ]
    for _, row in r.frame.iterrows():
        lines.append(f"--- row {row['row']!r} [{row['status']}] "
                     f"{row['input_tokens'] if pd.notna(row['input_tokens']) else '?'} in / "
                     f"{row['output_tokens'] if pd.notna(row['output_tokens']) else '?'} out, {money(row['cost'])}")
        lines.append(_clip(row["prompt"], PROMPT_CHARS // 2))
        lines.append(f">>> {_clip(row['answer'], ANSWER_CHARS)}" if pd.notna(row["answer"]) else ">>> (no answer)")
        if cols and row["status"] != RowStatus.ERRORED:
            lines.append(f"    parsed: {_parsed_text(row, cols, r.out)}")
        if pd.notna(row["error"]):
            lines.append(f"    error: {row['error']}")
    lines.append(_full_batch_hint(f))
    return "\n".join(lines)


def _full_batch_hint(f: dict[str, Any]) -> str:
    """One estimate of the whole job: from the pilot's measured tokens when it has any.

    The quick local estimate guesses the tokens (about 4 characters a token,
    a typical answer length); the pilot measured them on real rows, so when
    both exist only the pilot's is shown (they can differ several-fold).
    """
    if f["batch_from_pilot"] is not None:
        return (
            f"Full batch: {f['requests']:,} requests, about {money(f['batch_from_pilot'])} at the batch "
            "price, from the tokens this pilot's rows used (closer than the quick estimate before "
            "sending, which guesses them)."
        )
    return (
        f"Full batch: {f['requests']:,} requests, about {money(f['batch_cost'])} at the batch price "
        "(the quick estimate, from the prompts' length: no pilot row was answered to measure)."
    )


def pilot_html(r: PilotResult) -> str:
    f = pilot_facts(r)
    e = html.escape
    cols = _parsed_columns(r)
    body = []
    for _, row in r.frame.iterrows():
        status = str(row["status"])
        bad = "" if status == RowStatus.SUCCEEDED else " bm-bad"
        parsed = e(_parsed_text(row, cols, r.out)) if cols and status != RowStatus.ERRORED else ""
        if pd.notna(row["error"]):
            parsed += f"<div class='bm-bad'>{e(str(row['error']))}</div>"
        tokens = (
            f"{row['input_tokens'] if pd.notna(row['input_tokens']) else '?'} in<br>"
            f"{row['output_tokens'] if pd.notna(row['output_tokens']) else '?'} out"
        )
        answer = e(_clip(row["answer"], ANSWER_CHARS)) if pd.notna(row["answer"]) else "<i>no answer</i>"
        body.append(
            f"<tr><td class='bm-nowrap'>{e(repr(row['row']))}</td><td><pre>{e(_clip(row['prompt'], PROMPT_CHARS))}</pre></td>"
            f"<td><pre>{answer}</pre></td><td>{parsed}</td><td class='bm-nowrap{bad}'>{e(status)}</td>"
            f"<td class='bm-nowrap'>{tokens}</td><td class='bm-nowrap'>{money(row['cost'])}</td></tr>"
        )
    counts = format_counts(f["statuses"])
    head = "<tr><th>row</th><th>prompt</th><th>answer</th><th>parsed</th><th>status</th><th>tokens</th><th>cost</th></tr>"
    return html_no_math(
        f"{_STYLE}<div class='bm-report'>"
        + ("<b style='color:#d97706'>SIMULATED</b> answers (local simulator, not Claude). " if r.simulated else "")
        + f"<b>Pilot</b>: {plural(f['n'], 'row')} through the realtime API "
        f"({e(f['model'])}) in {format_seconds(f['wall_time'])}, <b>{money(f['cost'])}</b> at the realtime "
        f"price ({e(counts)}). Nothing was merged into the DataFrame."
        f"<table class='bm-table'>{head}{''.join(body)}</table>"
        f"<div class='bm-muted'>{e(_full_batch_hint(f))}</div></div>"
    )


# -- the journal's jobs (%batch list) -------------------------------------------------------
#: A short id is at least the date and the time to the minute (YYYYMMDD-HHMM).
SHORT_ID_MIN = 13


def short_ids(ids: list[str]) -> list[str]:
    """For each id, the shortest prefix no other id starts with (what ``attach`` takes),
    never cut inside the date and minute."""
    shorts = []
    for job_id in ids:
        others = [o for o in ids if o != job_id]
        length = min(SHORT_ID_MIN, len(job_id))
        while length < len(job_id) and any(o.startswith(job_id[:length]) for o in others):
            length += 1
        shorts.append(job_id[:length])
    return shorts


def _listed_cost(actual: Any, estimated: Any) -> str:
    """A job's cost in a list, to the cent: what it cost, else its estimate marked as one."""
    spent = money(actual, cents=True, missing="")
    if spent:
        return spent
    guess = money(estimated, cents=True, missing="")
    return f"~{guess} est." if guess and guess != "$0" else ""


class JobList:
    """The journal's jobs, compact: short ids (any works with ``attach``), model,
    rows, state and cost. ``frame`` is the full table (``batch_magic.jobs()``)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def table(self) -> pd.DataFrame:
        """What is shown: one row a job, text cells."""
        f = self.frame
        ids = [str(i) for i in f["job_id"]]
        cost = [_listed_cost(actual, est) for actual, est in zip(f["actual_cost"], f["estimated_cost"])]
        return pd.DataFrame(
            {
                "job": short_ids(ids),
                "state": [str(s) for s in f["state"]],
                "out": [str(o) for o in f["out"]],
                "model": [str(m) for m in f["model"]],
                "rows": [f"{int(n):,}" if n is not None and not pd.isna(n) else "" for n in f["rows"]],
                "cost": cost,
                "simulated": [bool(x) for x in f["simulated"]],
            }
        )

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return self.table().to_string(index=False)

    def _repr_html_(self) -> str:
        t = self.table()
        e = html.escape
        head = "".join(f"<th>{e(c)}</th>" for c in t.columns)
        body = "".join(
            "<tr>" + "".join(f"<td class='bm-nowrap'>{e(str(v))}</td>" for v in row) + "</tr>"
            for row in t.itertuples(index=False)
        )
        note = "<div class='bm-muted'>any id here works with <code>%batch attach</code>, or <code>last</code></div>"
        return html_no_math(f"{_STYLE}<div class='bm-report'><table class='bm-table'><tr>{head}</tr>{body}</table>{note}</div>")
