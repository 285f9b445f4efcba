"""Journals of format 1 read as format 2.

Format 1 stored an untyped dict with the wire params (``params``); format 2 stores
the options as the user gave them (``record.py``). A format-1 manifest is migrated
in memory when it is read: reading writes nothing, so a journal on a read-only
share still opens. The file is written in format 2 when the job next changes
(``Journal.write_record`` keeps the old one as ``manifest.v1.json``), or for every
job at once by ``upgrade``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import JournalError
from .record import FORMAT_VERSION, now_iso

if TYPE_CHECKING:
    from .journal import Journal


def upgrade(journal: Journal) -> list[str]:
    """Write every format-1 manifest of ``journal`` in format 2 (the old file kept as
    ``manifest.v1.json``); the ids of the jobs rewritten. A job that cannot be read is
    left as it is (``Journal.scan`` lists it, with why)."""
    upgraded = []
    records, _ = journal.scan()
    for record in records:
        if record.read_from_format == 1:
            journal.write_record(record)
            upgraded.append(record.job_id)
    return upgraded


def from_format_1(old: dict[str, Any], where: str) -> dict[str, Any]:
    """A format-1 manifest (an untyped dict with the wire params) as a format-2 one."""
    params = dict(old.get("params") or {})
    output = old.get("output") or {}
    system = params.pop("system", None)
    cache_system = isinstance(system, list)  # cached: [{"type": "text", "text": ..., "cache_control": ...}]
    if cache_system:
        system = "".join(block.get("text", "") for block in system if isinstance(block, dict))
    schema = None
    config = params.pop("output_config", None)
    if isinstance(config, dict):
        schema = (config.get("format") or {}).get("schema")
    tools = params.pop("tools", None)
    params.pop("tool_choice", None)
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        schema = tools[0].get("input_schema")
    options = {
        "model": params.pop("model", None),
        "max_tokens": params.pop("max_tokens", None),
        "system": system or None,
        "output_schema": schema,
        "use_tool": tools is not None,
        "cache_system": cache_system,
        "extra": params,
    }
    states = {"planned": "planned", "in_progress": "running", "done": "done", "canceled": "canceled", "failed": "failed"}
    state = states.get(old.get("state"))  # type: ignore[arg-type]
    if state is None:
        raise JournalError(f"{where}: the job state {old.get('state')!r} is not one batch_magic wrote.")
    batches = []
    for b in old.get("batches") or []:
        if not isinstance(b, dict):
            raise JournalError(f"{where}: a batch entry is not an object.")
        entry = {k: b[k] for k in ("n", "attempt", "size", "ids", "batch_id", "adopted", "intent_at",
                                   "created_at", "expires_at", "ended_at", "counts", "rejected") if k in b}
        if "range" in b and isinstance(b["range"], list) and len(b["range"]) == 2:
            entry["first"], entry["stop"] = b["range"]
        entry["state"] = b.get("state")
        entry["first_intent_at"] = b.get("intent_at")
        entry["counts"] = entry.get("counts") or {}
        batches.append(entry)
    cancel = bool(old.get("cancel_requested"))
    live = [b for b in batches if b["state"] in ("pending", "submitting", "in_progress", "canceling")]
    if state in ("done", "canceled") and live:
        # Format 1 marked a failed job done when it was re-run, its batches still in
        # flight: resume it instead (its collected results are kept).
        state = "failed"
        old["error"] = old.get("error") or "marked ended with batches still in flight; resumes where it stopped"
    keep = ("job_id", "fingerprint", "created_at", "out", "template", "id_tag", "chunk_size", "simulated",
            "n_rows", "n_requests", "n_skipped", "n_deduplicated", "skip_reasons", "estimate", "started_at",
            "finished_at", "error", "usage", "actual_cost", "row_counts", "columns", "updated_at")
    new = {k: old[k] for k in keep if k in old and old[k] is not None}
    new.update(
        version=FORMAT_VERSION,
        state=state,
        options=options,
        output={"kind": output.get("kind"), "labels": output.get("labels") or [], "schema": output.get("schema")},
        batches=batches,
        cancel_requested_at=(old.get("updated_at") or now_iso()) if cancel else None,
    )
    new.setdefault("id_tag", "")  # format-1 jobs from before tags: custom_ids without one
    if state == "failed" and new.get("finished_at") is not None:
        new["finished_at"] = None  # it has not finished: it resumes
    return new
