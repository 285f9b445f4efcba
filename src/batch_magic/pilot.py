"""Pilot runs: a few sampled rows through the realtime Messages API, in seconds.

The prompt-iteration loop before paying for a whole batch: the same planning
as a batch job (``api.prepare``), then ``n`` distinct requests sent
concurrently to ``/v1/messages`` and parsed exactly as the batch's answers
would be. The DataFrame is not touched and nothing goes into the journal; a
failed request is shown in its row, never raised.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import models, pricing
from .api import Prepared, _client, prepare
from .client import describe_error
from .columns import job_columns
from .errors import ConfigError
from .media import inline_source, message_content, readable
from .media import markers as media_markers
from .merge import typed_array
from .options import JobOptions, takes_job_options
from .plan import request_params
from .results import message_answer
from .states import RowStatus
from .template import Template

DEFAULT_PILOT_ROWS = 5
DEFAULT_CONCURRENCY = 4
#: More than this many calls at once only earns rate-limit errors.
MAX_CONCURRENCY = 16


@dataclass(frozen=True)
class PilotResult:
    """What a pilot run saw, one row per request sent."""

    #: row (the DataFrame's index label), prompt, answer, parsed column(s),
    #: status, error, token counts, cost (realtime price) and seconds.
    frame: pd.DataFrame
    prepared: Prepared
    out: str
    total_cost: float
    wall_time: float
    usage: dict[str, int]
    #: True when the answers came from a local simulator, not Claude.
    simulated: bool = False

    @property
    def batch_estimate_from_pilot(self) -> float | None:
        """The whole job at the batch price, at this pilot's mean cost per answered request."""
        ok = self.frame["status"].isin([RowStatus.SUCCEEDED, RowStatus.INVALID])
        if not ok.any():
            return None
        discount = pricing.load_prices().batch_discount
        mean = float(self.frame.loc[ok, "cost"].mean())
        return mean * self.prepared.plan.n_requests * discount

    def __repr__(self) -> str:
        from .report import pilot_text

        return pilot_text(self)

    def _repr_html_(self) -> str:
        from .report import pilot_html

        return pilot_html(self)


@takes_job_options(run=False)
def run_pilot(
    df: pd.DataFrame,
    template: str | Template,
    *,
    options: JobOptions,
    n: int = DEFAULT_PILOT_ROWS,
    concurrency: int = DEFAULT_CONCURRENCY,
    client: Any | None = None,
) -> PilotResult:
    """Send ``n`` sampled rows through the realtime API and show prompts and answers.

    ``options`` are those of :func:`batch_magic.api.prepare` (``out``, ``model``,
    ``system``, ``labels``, ``schema``, ``json``, ...). The sample is ``n``
    distinct requests among the rows that would be sent, the same for the same
    ``seed`` option. Costs are at the realtime price (a pilot is not a batch).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"n={n!r} must be a whole number of rows of at least 1 (e.g. n=5).")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ConfigError(f"concurrency={concurrency!r} must be a whole number of at least 1.")
    batch_client = _client(client)
    # What the model accepts, asked before any call is paid for (cached for prepare).
    models.model_card(options.model, batch_client)
    prepared = prepare(df, template, options=options, client=batch_client)
    plan = prepared.plan
    shared = plan.options.shared_params()
    model = plan.options.model

    chosen = _sample(plan.n_requests, n, options.seed)
    first_row = _first_rows(plan.row_requests, plan.n_requests)
    chosen.sort(key=lambda k: first_row[k])  # show them in DataFrame order
    m = len(chosen)

    answers = np.full(m, None, dtype=object)
    succeeded = np.zeros(m, dtype=bool)
    errors: list[str | None] = [None] * m
    usages: list[dict[str, int]] = [{} for _ in range(m)]
    stops: list[str | None] = [None] * m
    seconds = np.zeros(m)
    lock = threading.Lock()

    # A pilot's few rows show their files inline (base64): a handful of realtime requests,
    # nothing in the journal, so nothing is worth an upload.
    sources = {
        sha: inline_source(item, item.read())
        for sha, item in plan.media.items()
        if any(sha == s for k in chosen for _, s in media_markers(plan.prompts[k]))
    }

    def call(i: int) -> None:
        started = time.perf_counter()
        try:
            content = message_content(plan.prompts[chosen[i]], sources)
            message = batch_client.create_message(request_params(shared, content))
        except Exception as exc:  # shown in the row, never raised
            with lock:
                errors[i] = describe_error(exc)
                seconds[i] = time.perf_counter() - started
            return
        usage = message.get("usage") or {}
        with lock:
            answers[i] = message_answer(message)
            succeeded[i] = True
            stops[i] = message.get("stop_reason")
            usages[i] = {
                key: int(usage.get(key) or 0)
                for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            }
            seconds[i] = time.perf_counter() - started

    wall_start = time.perf_counter()
    workers = min(concurrency, MAX_CONCURRENCY, m)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch_magic-pilot") as pool:
        list(pool.map(call, range(m)))
    wall_time = time.perf_counter() - wall_start

    parsed = prepared.spec.parse(answers, succeeded)
    status = np.where(succeeded, RowStatus.SUCCEEDED.value, RowStatus.ERRORED.value).astype(object)
    status[parsed.invalid] = RowStatus.INVALID.value
    error_col = [errors[i] if errors[i] is not None else parsed.reasons[i] for i in range(m)]
    costs = [
        pricing.actual_cost(model, usages[i], batch=False) if succeeded[i] else 0.0 for i in range(m)
    ]
    out = prepared.out
    frame: dict[str, Any] = {
        "row": [plan.index[first_row[k]] for k in chosen],
        "prompt": pd.array([readable(plan.prompts[k], plan.media) for k in chosen], dtype="string"),
        "answer": pd.array(answers, dtype="string"),
    }
    if prepared.spec.kind != "text":
        for suffix, values in parsed.columns.items():
            if suffix == "" and prepared.spec.kind != "labels":
                continue  # the raw JSON text is the answer column already
            frame[job_columns(out).field(suffix)] = typed_array(values, parsed.dtypes.get(suffix))
    frame["status"] = pd.Categorical(
        status, categories=[RowStatus.SUCCEEDED.value, RowStatus.INVALID.value, RowStatus.ERRORED.value]
    )
    frame["error"] = pd.array(error_col, dtype="string")
    for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        frame[key] = pd.array([usages[i].get(key) if succeeded[i] else None for i in range(m)], dtype="Int64")
    frame["stop_reason"] = pd.array(stops, dtype="string")
    frame["cost"] = costs
    frame["seconds"] = seconds.round(3)
    totals = {
        key: int(sum(u.get(key, 0) for u in usages))
        for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    }
    return PilotResult(
        frame=pd.DataFrame(frame),
        prepared=prepared,
        out=out,
        total_cost=float(sum(costs)),
        wall_time=wall_time,
        usage=totals,
        simulated=batch_client.is_simulator,
    )


def _sample(n_requests: int, n: int, seed: int) -> list[int]:
    """``n`` distinct request numbers, the same ones for the same seed."""
    if n >= n_requests:
        return list(range(n_requests))
    rng = np.random.default_rng(seed)
    return [int(k) for k in rng.choice(n_requests, size=n, replace=False)]


def _first_rows(row_requests: np.ndarray, n_requests: int) -> np.ndarray:
    """For each request, the position of the first row that asks it."""
    first = np.full(n_requests, -1, dtype=np.int64)
    sent = np.flatnonzero(row_requests >= 0)
    ks, where = np.unique(row_requests[sent], return_index=True)
    first[ks] = sent[where]
    return first


__all__ = ["PilotResult", "run_pilot"]
