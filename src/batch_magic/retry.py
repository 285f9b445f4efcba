"""Send again only the rows of an ended job that failed, and write the answers
back into those rows.

A retry is a new job (its own batches, journal entry and cost) over the failed
rows, with the original job's options; when it ends its columns are copied into
the original DataFrame at those rows, so the other rows keep their answers.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pandas as pd

from . import api
from .errors import BatchMagicError
from .job import BatchJob, JobSettings, JobStatus
from .journal import Journal
from .merge import row_positions

#: Row statuses another attempt may fix (canceled rows were stopped on purpose).
RETRY_STATUSES = ("errored", "expired", "invalid")


def retry_failed(
    job_id: str,
    df: pd.DataFrame,
    *,
    client: Any | None = None,
    journal: Journal | str | os.PathLike[str] | None = None,
    settings: JobSettings | None = None,
    start: bool = True,
) -> BatchJob | None:
    """A new job over ``df``'s rows that job ``job_id`` left errored, expired or
    invalid (None if there are none); its answers are written back into ``df``."""
    jr = journal if isinstance(journal, Journal) else Journal(journal)
    full = jr.resolve(job_id)
    manifest = jr.read_manifest(full)
    if manifest.get("state") not in ("done", "canceled"):
        raise BatchMagicError(
            f"Job {full} is {manifest.get('state')}; retry its failed rows once it has ended "
            f"(wait for it: %batch wait {full}, or stop it: %batch cancel {full})."
        )
    planned = plan_retry(df, manifest, jr, full)
    if planned is None:
        return None
    subset, positions, kwargs = planned
    job = api.submit(
        subset, manifest["template"], **kwargs, force=True, client=client, journal=jr,
        settings=settings, start=False,
    )
    job.observe(WriteBack(df, positions, job))
    if start:
        job.start()
    return job


def manifest_kwargs(manifest: dict[str, Any]) -> dict[str, Any]:
    """The submit() options that rebuild a job's requests from its manifest."""
    params = dict(manifest.get("params") or {})
    output = manifest.get("output") or {}
    kwargs: dict[str, Any] = {
        "out": manifest["out"],
        "model": params.pop("model"),
        "max_tokens": params.pop("max_tokens"),
        "chunk_size": manifest.get("chunk_size"),
    }
    system = params.pop("system", None)
    if isinstance(system, list):  # cached: [{"type": "text", "text": ..., "cache_control": ...}]
        kwargs["system"] = "".join(block.get("text", "") for block in system)
        kwargs["cache_system"] = True
    elif system:
        kwargs["system"] = system
        kwargs["cache_system"] = False
    output_config = dict(params.pop("output_config", None) or {})
    output_config.pop("format", None)  # rebuilt from the output kind below
    if output_config.get("effort") is not None:
        kwargs["effort"] = output_config.pop("effort")
    if output_config:
        params["output_config"] = output_config
    thinking = params.get("thinking")
    chosen_off = isinstance(thinking, dict) and thinking.get("type") in ("disabled", "between_tools")
    if chosen_off and output.get("kind") in ("labels", "schema"):
        params.pop("thinking")  # prepare turned thinking off for the short answer: it will again
    if params.pop("tools", None) is not None:
        kwargs["use_tool"] = True
    params.pop("tool_choice", None)
    kind = output.get("kind")
    if kind == "labels":
        kwargs["labels"] = list(output.get("labels") or ())
    elif kind == "schema" and output.get("schema") is not None:
        kwargs["schema"] = output["schema"]
    if params:
        kwargs["extra_params"] = params
    return kwargs


def plan_retry(
    df: pd.DataFrame, manifest: dict[str, Any], journal: Any, job_id: str
) -> tuple[pd.DataFrame, Any, dict[str, Any]] | None:
    """(the failed rows, their positions in ``df``, submit options), or None if none failed."""

    out = manifest["out"]
    status_col = f"{out}_status"
    if status_col not in df.columns:
        # Merge the ended job's results first (from the journal alone: no API call).
        api.attach(job_id, df, journal=journal).wait()
    # Rows of df that were part of the job (the DataFrame may have grown since).
    index = journal.read_index(job_id)
    pos, _ = row_positions(df, index)
    in_job = np.ones(len(df), dtype=bool) if pos is None else pos >= 0
    failed = df[status_col].astype("object").isin(RETRY_STATUSES).to_numpy() & in_job
    positions = np.flatnonzero(failed)
    if positions.size == 0:
        return None
    subset = df.iloc[positions].copy()
    kwargs = manifest_kwargs(manifest)
    return subset, positions, kwargs


class WriteBack:
    """Observer of a retry job: when it ends, copy its columns into the original rows."""

    def __init__(self, df: pd.DataFrame, positions: Any, job: BatchJob) -> None:
        self.df = df
        self.positions = positions
        self.job = job
        self.done = False
        self.error: str | None = None

    def __call__(self, status: JobStatus) -> None:
        if self.done or status.state not in ("done", "canceled"):
            return
        self.done = True
        try:
            write_back(self.df, self.positions, self.job.result(), list(status.columns))
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            logging.getLogger("batch_magic").error(
                "job %s: retried rows not written back: %s", status.job_id, self.error
            )


def write_back(df: pd.DataFrame, positions: Any, subset: pd.DataFrame, columns: list[str]) -> None:
    """Put ``subset``'s columns into ``df`` at row ``positions`` (same order)."""
    for col in columns:
        if col not in subset.columns:
            continue
        values = subset[col]
        if col in df.columns:
            target = df[col].copy()
        else:
            target = pd.Series(None, index=df.index, dtype=values.dtype)
        if isinstance(target.dtype, pd.CategoricalDtype) and isinstance(values.dtype, pd.CategoricalDtype):
            missing = [c for c in values.cat.categories if c not in target.cat.categories]
            if missing:
                target = target.cat.add_categories(missing)
        target.iloc[positions] = values.to_numpy(dtype=object)
        df[col] = target
