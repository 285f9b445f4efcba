"""The public Python API: ``submit``, ``attach``, ``jobs``.

Everything the ``%%batch`` magic does is one of these calls, so a script with
no IPython gets the same behaviour: validation before any money is spent, the
journal written before the first request, re-attachment instead of paying
twice, and the results merged into the DataFrame it was given.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd

from . import frames, models, pricing
from .answer_store import REUSED_FILE, AnswerStore, KnownAnswers, request_keys
from .client import BatchClient, installed_api_version, make_sdk_client
from .columns import job_columns
from .destination import Destination, client_for_job
from .errors import BudgetExceededError, ConfigError, MissingAPIKeyError, PlanError
from .job import BatchJob, live_job
from .journal import Journal
from .media import MediaItem, check_model, check_requests
from .media import markers as media_markers
from .media import text_of as media_text
from .models import ModelCard
from .options import JobOptions, takes_job_options
from .plan import Plan, RequestOptions, build_plan, new_id_tag, row_name, split_batches
from .pricing import Estimate
from .record import BatchEntry, JobRecord, JobState, now_iso
from .sampling import choose_rows
from .settings import JobSettings
from .structured import OutputSpec
from .template import Template

#: The model of new jobs (``JobOptions``' default): current, cheap, and it takes batches,
#: effort and structured outputs.
DEFAULT_MODEL = JobOptions().model
#: System prompts shorter than this are not worth a cache write (about 1,024 tokens).
CACHE_MIN_CHARS = 4096


@dataclass(frozen=True)
class Prepared:
    """A job as planned, before anything is sent (what ``dry_run`` shows)."""

    plan: Plan
    spec: OutputSpec
    out: str
    template: Template
    estimate: Estimate
    chunk_size: int | None
    #: How input tokens were counted with ``count_tokens`` (None: the quick local estimate).
    token_count: TokenCount | None = None
    #: What the model accepts (from the Models API, or the bundled snapshot offline).
    model: ModelCard | None = None
    #: The ``anthropic-version`` the requests are checked against.
    api_version: str = ""
    #: Choices made and where facts came from, for the dry run ("thinking off for labels").
    notes: tuple[str, ...] = ()
    #: What may go wrong with these options (a deprecated model, no room to think).
    warnings: tuple[str, ...] = field(default=())
    #: Thinking tokens expected per request (in the estimate; kept to estimate a part again).
    expected_thinking: int = 0
    #: Requests already answered in the journal's answer store (not sent again), and what
    #: they would cost if they were; the estimate covers the other requests only.
    known: KnownAnswers = field(default_factory=KnownAnswers.none)
    saved_cost: float = 0.0
    #: A sample (``sample=``): its seed and stratifying column (rows left out: ``plan.n_not_sent``).
    sample_seed: int | None = None
    sample_stratify: str | None = None
    #: A Polars frame's key columns (a ``pyarrow.Table``, no column without a key), kept in
    #: the journal; None for a pandas DataFrame (its index is kept instead).
    keys: Any = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "rows": self.plan.n_rows,
            "requests": self.plan.n_requests,
            "skipped": self.plan.n_skipped,
            "deduplicated": self.plan.n_deduplicated,
            "not_sent": self.plan.n_not_sent,
            "reused": self.known.n,
            "saved_cost": self.saved_cost,
            "batches": len(self.plan.batches),
            "model": self.plan.options.model,
            "input_tokens_est": e.input_tokens,
            "input_tokens_exact": e.exact_input,
            "batch_cost_est": e.batch_cost,
            "batch_cost_upper": e.batch_cost_upper,
            "realtime_cost_est": e.realtime_cost,
            "prices_taken": e.prices_taken,
            "api_version": self.api_version,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        from .report import prepared_text

        return prepared_text(self)

    def _repr_html_(self) -> str:
        from .report import prepared_html

        return prepared_html(self)


@dataclass(frozen=True)
class TokenCount:
    """Input tokens counted by the API's ``count_tokens`` for a dry run."""

    #: "all": every unique request was counted; "sample": a deterministic sample
    #: calibrated the characters-per-token ratio for the rest.
    method: str
    counted: int
    n_requests: int
    counted_tokens: int
    chars_per_token: float
    input_tokens: int
    failed: int = 0


def _client(client: Any | None) -> BatchClient:
    if isinstance(client, BatchClient):
        return client
    return BatchClient(client if client is not None else make_sdk_client())


def _client_if_any(client: Any | None) -> BatchClient | None:
    """The client given, else one from the environment, else None (no key: offline)."""
    try:
        return _client(client)
    except MissingAPIKeyError:
        return None


@takes_job_options(run=False)
def prepare(
    df: pd.DataFrame,
    template: str | Template,
    *,
    options: JobOptions,
    client: Any | None = None,
) -> Prepared:
    """Validate and plan a job without sending any message.

    ``labels`` (a list, or a comma-separated string) asks for one label per row;
    ``schema`` (a JSON-schema dict, a pydantic v2 model class or an
    ``OutputSpec``) for one typed column per field; ``json=True`` parses free
    JSON answers into columns. ``effort`` (low, medium, high, xhigh, max) sets
    ``output_config.effort``.

    What the model accepts comes from the Models API through ``client`` (asked
    once per model and session), or, without a client, from the snapshot bundled
    with the package; ``notes`` on the result say which. From it: structured
    outputs, or a forced tool call (``use_tool``) on models without them; effort
    levels checked; thinking turned off for labels and schemas where the model
    allows it, else ``max_tokens`` raised to leave room for thinking.
    """
    out, model, system, effort = options.out, options.model, options.system, options.effort
    tpl = template if isinstance(template, Template) else Template.compile(template)
    if options.labels is not None:
        spec = OutputSpec.from_labels(options.labels)
    elif options.schema is not None:
        spec = _schema_spec(options.schema)
    elif options.json:
        spec = OutputSpec.json()
    else:
        spec = OutputSpec.text()
    extra = dict(options.extra_params or {})
    use_tool, cache_system, chunk_size = options.use_tool, options.cache_system, options.chunk_size
    batch_client = None if client is None else _client(client)
    api_version = batch_client.api_version if batch_client is not None else installed_api_version()
    for name in models.SAMPLING_PARAMS:  # before the model is even looked up
        if name in extra:
            raise ConfigError(models.sampling_refusal(name, api_version=api_version))
    _check_extra_output_config(extra, effort=effort)
    card = models.model_card(model, batch_client, offline_ok=True)
    notes = [card.provenance] if card.provenance else []
    cautions = []
    deprecation = models.check_usable(card, model)
    if deprecation:
        cautions.append(deprecation)
    if spec.json_schema() is not None and not use_tool and not card.structured_outputs:
        use_tool = True  # models without structured outputs: the same schema as a forced tool call
    budget = models.answer_budget(
        card, kind=spec.kind, effort=effort, max_tokens=options.max_tokens, thinking=extra.get("thinking")
    )
    if budget.note:
        notes.append(budget.note)
    if budget.warning:
        cautions.append(budget.warning)
        warnings.warn(budget.warning, models.AnswerRoomWarning, stacklevel=3)
    if cache_system is None:
        cache_system = bool(system) and len(system or "") >= CACHE_MIN_CHARS
    request = RequestOptions(
        model=model,
        max_tokens=budget.max_tokens,
        system=system,
        effort=effort,
        thinking=budget.thinking,
        output_schema=spec.json_schema(),
        use_tool=use_tool,
        cache_system=cache_system,
        extra=extra,
    )
    request.validate()
    models.check_request(request.shared_params(), card, api_version=api_version, model=model)
    keys = None
    if frames.is_polars(df) or options.key is not None:  # the template's columns of a Polars frame, and its keys
        also = [options.stratify] if options.stratify else []
        df, keys = frames.planning_input(df, tpl, options.key, also=also)
    send_rows = None
    if options.sample is not None:
        send_rows = choose_rows(df, options.sample, seed=options.seed, stratify=options.stratify)
    plan = build_plan(df, tpl, request, chunk_size=chunk_size, send_rows=send_rows)
    if plan.media:
        check_model(plan.media.values(), card)
        check_requests(
            plan.prompts, plan.media, max_input_tokens=card.max_input_tokens,
            first_row=lambda k: row_name(plan.index, int(np.flatnonzero(plan.row_requests == k)[0])),
        )
        notes.append(
            f"{len(plan.media):,} distinct image/PDF file{'s' if len(plan.media) != 1 else ''} "
            "(each uploaded once through the Files API); their tokens are estimated from pixel "
            "sizes and PDF pages, so the estimate is approximate"
        )
    estimate = quick_estimate(
        request, plan.prompts, spec, thinking_tokens=budget.expected_thinking, media=plan.media
    )
    return Prepared(
        plan, spec, out, tpl, estimate, chunk_size, model=card, api_version=api_version,
        notes=tuple(notes), warnings=tuple(cautions), expected_thinking=budget.expected_thinking,
        sample_seed=options.seed if options.sample is not None else None,
        sample_stratify=options.stratify, keys=keys,
    )


def with_known_answers(prepared: Prepared, jr: Journal, destination: Destination) -> Prepared:
    """``prepared`` with the requests the journal's answer store holds for ``destination``
    taken out of what is sent (and of the estimate)."""
    plan = prepared.plan
    keys = request_keys(
        destination.key, plan.options.shared_params(), plan.prompts
    )
    known = AnswerStore(jr.root).lookup(keys)
    if not known.n:
        return prepared
    new = np.ones(plan.n_requests, dtype=bool)
    new[known.numbers] = False
    prompts = [plan.prompts[k] for k in np.flatnonzero(new)]
    estimate = quick_estimate(
        plan.options, prompts, prepared.spec, thinking_tokens=prepared.expected_thinking, media=plan.media
    )
    saved = pricing.actual_cost(plan.options.model, known.usage())
    return replace(prepared, known=known, estimate=estimate, saved_cost=saved)


def _check_extra_output_config(extra: dict[str, Any], *, effort: str | None) -> None:
    """An ``output_config`` in extra_params must not contradict effort= or the schema."""
    oc = extra.get("output_config")
    if oc is None:
        return
    if not isinstance(oc, dict):
        raise ConfigError(f"extra_params output_config={oc!r} must be a dict such as {{'effort': 'low'}}.")
    if effort is not None and oc.get("effort") not in (None, effort):
        raise ConfigError(
            f"effort={effort!r} and extra_params output_config.effort={oc['effort']!r} disagree; give one."
        )
    if oc.get("format") is not None:
        raise ConfigError(
            "extra_params output_config.format is set by batch_magic from labels=, schema= or json=; "
            "give the schema as schema= (a JSON-schema dict or a pydantic model class)."
        )


def quick_estimate(
    options: RequestOptions,
    prompts: list[str],
    spec: OutputSpec,
    *,
    thinking_tokens: int = 0,
    media: Mapping[str, MediaItem] | None = None,
) -> Estimate:
    """The local estimate (characters per token of the model's tokenizer), before anything is sent.

    ``thinking_tokens`` per request are expected on top of the answer (thinking is
    billed as output); the upper bound is every request at ``max_tokens``, which
    already holds the room left for thinking. Images and PDFs (``media``, the
    plan's files) add their tokens by the documented rules: approximate.
    """
    system_chars = len(options.system or "")
    fixed = system_chars
    schema = spec.json_schema()
    if schema is not None:
        fixed += len(orjson.dumps(schema))
    texts = map(media_text, prompts) if media else prompts
    chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(prompts)) + fixed
    tokens = pricing.estimate_request_tokens(options.model, chars)
    media_total = 0
    if media:
        per_request = media_tokens(options.model, prompts, media)
        tokens = tokens + per_request
        media_total = int(per_request.sum())
    expected = {"labels": 10, "schema": 150}.get(spec.kind, 200) + thinking_tokens
    return pricing.estimate_cost(
        options.model,
        prompt_tokens=tokens,
        max_tokens=options.max_tokens,
        expected_output_per_request=expected,
        cached_tokens_per_request=(
            pricing.estimate_tokens(options.model, system_chars) if options.cache_system else 0
        ),
        media_tokens=media_total,
    )


def media_tokens(model: str, prompts: Sequence[str], media: Mapping[str, MediaItem]) -> np.ndarray:
    """Approximate input tokens of the images and PDFs each request shows."""
    per_file: dict[str, int] = {}
    for sha, item in media.items():
        if item.kind == "image":
            per_file[sha] = pricing.image_tokens(model, item.width or 0, item.height or 0)
        else:
            per_file[sha] = pricing.pdf_tokens(model, item.pages or 0, item.text_chars)
    return np.fromiter(
        (sum(per_file[sha] for _, sha in media_markers(p)) for p in prompts), dtype=np.float64, count=len(prompts)
    )


def _schema_spec(schema: Any) -> OutputSpec:
    """A JSON-schema dict, a pydantic v2 model class, or a ready ``OutputSpec``."""
    if isinstance(schema, OutputSpec):
        return schema
    return OutputSpec.from_schema(schema)


@takes_job_options(run=True)
def submit(
    df: pd.DataFrame,
    template: str | Template,
    *,
    options: JobOptions,
    client: Any | None = None,
    journal: Journal | str | os.PathLike[str] | None = None,
    settings: JobSettings | None = None,
    start: bool = True,
) -> BatchJob:
    """Send every row of ``df`` through the Message Batches API.

    ``template`` is a Jinja2 template over the columns (``{{ review }}``). The
    answers land in ``df`` as ``{out}``, ``{out}_status``, ``{out}_error`` and
    token columns when the job ends. An identical job already in the journal is
    re-attached instead of paid for again, unless ``force=True``. With
    ``wait=True`` this returns once the columns are merged.

    Before anything is written or sent, the Models API is asked what ``model``
    accepts: an unknown or retired model, or one without batch support, is an
    error; a deprecated one runs with a warning giving its retirement date.
    """
    batch_client = _client_if_any(client)
    if batch_client is not None:
        # Strict here (a job never plans from the snapshot when it can ask); cached for prepare.
        models.model_card(options.model, batch_client)
    prepared = prepare(df, template, options=options, client=batch_client)
    jr = Journal.of(journal)
    fingerprint = _job_fingerprint(prepared)
    scanned = jr.scan()  # every manifest read once, for both questions below
    existing = None if options.force or options.fresh else jr.find_by_fingerprint(fingerprint, scanned)
    record: JobRecord | None = existing
    if existing is None:
        check_output_columns(df, prepared, scanned[0])
        if batch_client is None:
            batch_client = _client(client)  # no key: the error says how to set one or use the simulator
        destination = Destination.of(batch_client)
        if not options.fresh:  # what the journal answered already is not sent again
            prepared = with_known_answers(prepared, jr, destination)
        if options.max_cost is not None:
            check_budget(prepared.estimate, options.max_cost)
        job_id = create_job(jr, prepared, fingerprint, simulated=batch_client.is_simulator, sent_to=destination)
    else:
        job_id = existing.job_id
        running = live_job(jr, job_id)
        if running is not None:
            # The same cell again while its job runs: hand back that job (it fills this df).
            frames.note_planned(jr, job_id, df)
            running.df = df
            if options.wait:
                running.wait()
            return running
        record = existing
        if record.ended:
            batch_client = None  # an ended job is read from the journal alone
        else:  # a failed job too: it resumes, on the server it was sent to
            batch_client = client_for_job(
                job_id, record.sent_to, batch_client if batch_client is not None else client
            )
    frames.note_planned(jr, job_id, df)  # its rows are the job's: a Polars frame merges by position
    job = BatchJob(
        jr, job_id, batch_client, df=df, settings=_settings(settings, batch_client), spec=prepared.spec,
        record=record,
    )
    if start:
        job.start()
    if options.wait:
        job.wait()
    return job


def check_output_columns(df: pd.DataFrame, prepared: Prepared, records: Iterable[JobRecord]) -> None:
    """Refuse, before anything is sent, to overwrite columns the user made.

    Columns an earlier job of this journal (``records``) wrote may be replaced
    (that is a re-run with other options); an input of the template or any other
    column of the user's may not.
    """
    out = prepared.out
    ours = set(job_columns(out).bookkeeping)
    ours.update(prepared.spec.column_names(out))
    previous: set[str] = set()
    for record in records:
        previous.update(record.columns)
    inputs = set(prepared.template.variables)
    existing = {str(c) for c in df.columns}
    clash = sorted(c for c in ours & existing if c in inputs or c not in previous)
    if clash:
        raise ConfigError(
            f"out={out!r} would overwrite the column(s) {', '.join(map(repr, clash))} of the "
            f"DataFrame{' (an input of the template)' if inputs & set(clash) else ''}. "
            "Choose another out name (--out NAME), or drop or rename those columns first."
        )


def check_budget(estimate: Estimate, max_cost: float) -> None:
    try:
        limit = float(max_cost)
    except (TypeError, ValueError):
        raise ConfigError(f"max_cost={max_cost!r} must be a number of US dollars.") from None
    if estimate.batch_cost_upper > limit:
        raise BudgetExceededError(
            f"Not sent: this job could cost up to ${estimate.batch_cost_upper:,.4f} "
            f"(${estimate.batch_cost:,.4f} expected; the upper bound assumes every answer uses "
            f"max_tokens) and max_cost is ${limit:,.4f}. Lower max_tokens, use fewer rows, "
            "or raise max_cost."
        )


@takes_job_options(run=False)
def dry_run(
    df: pd.DataFrame,
    template: str | Template,
    *,
    options: JobOptions,
    exact_tokens: bool = False,
    client: Any | None = None,
    journal: Journal | str | os.PathLike[str] | None = None,
) -> Prepared:
    """Plan a job and estimate its cost; nothing is created on the API.

    Takes the options of :func:`prepare`. What the real run would refuse before
    sending (an ``out`` whose columns would overwrite the DataFrame's own, given
    ``journal``'s earlier jobs) is among the warnings. The result displays itself (rows,
    requests, deduplication, skipped rows, batches, tokens and cost for batch
    and realtime, the first prompts). With ``exact_tokens=True`` input tokens
    are counted by the API's ``count_tokens`` (which creates nothing): every
    unique request up to 1,000, else a deterministic sample of 200 that
    calibrates the characters-per-token ratio.

    With a client (``client=``, or a key in the environment) the Models API says
    what the model accepts; without one, or when it cannot be reached, the
    snapshot bundled with the package does, and the dry run says so.
    """
    batch_client = _client_if_any(client)
    prepared = prepare(df, template, options=options, client=batch_client)
    if batch_client is not None and not options.fresh:  # what the journal answered already is not sent
        prepared = with_known_answers(prepared, Journal.of(journal), Destination.of(batch_client))
    try:
        check_output_columns(df, prepared, Journal.of(journal).records())
    except ConfigError as exc:
        prepared = replace(prepared, warnings=(*prepared.warnings, f"The real run would refuse: {exc}"))
    if exact_tokens:
        prepared = count_exact(prepared, client if batch_client is None else batch_client)
    return prepared


#: Params ``count_tokens`` accepts (the rest of a request is irrelevant to input tokens).
_COUNT_TOKENS_PARAMS = frozenset(
    {"messages", "model", "system", "tools", "tool_choice", "output_config", "thinking", "cache_control"}
)


def count_exact(
    prepared: Prepared,
    client: Any | None = None,
    *,
    max_all: int = 1000,
    sample: int = 200,
    seed: int = 0,
    concurrency: int = 8,
) -> Prepared:
    """``prepared`` with its input tokens counted by the API (see :func:`dry_run`)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from .errors import APIError
    from .plan import request_params

    batch_client = _client(client)
    plan = prepared.plan
    # count_tokens takes no uploaded file: with media, the text is counted and the files'
    # tokens are the estimate's (approximate, and said so).
    prompts = [media_text(p) for p in plan.prompts] if plan.media else plan.prompts
    n = plan.n_requests
    shared = {k: v for k, v in plan.options.shared_params().items() if k in _COUNT_TOKENS_PARAMS}
    if n <= max_all:
        chosen = list(range(n))
        method = "all"
    else:
        rng = np.random.default_rng(seed)
        chosen = sorted(int(k) for k in rng.choice(n, size=min(sample, n), replace=False))
        method = "sample"

    def count(k: int) -> int | None:
        try:
            return batch_client.count_tokens(request_params(shared, prompts[k] or "."))
        except Exception:
            return None

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(chosen)))) as pool:
        counts = list(pool.map(count, chosen))
    ok = [(k, c) for k, c in zip(chosen, counts) if c is not None]
    failed = len(chosen) - len(ok)
    if not ok:
        raise APIError(
            f"count_tokens failed for all {len(chosen)} requests tried; the quick estimate "
            "stands (call prepare() without exact_tokens to see it)."
        )
    # The same characters the quick estimate counts: prompt, system and schema per request.
    fixed = len(plan.options.system or "")
    schema = prepared.spec.json_schema()
    if schema is not None:
        fixed += len(orjson.dumps(schema))
    counted_tokens = sum(c for _, c in ok)
    counted_chars = sum(len(prompts[k]) + fixed for k, _ in ok)
    chars_per_token = counted_chars / max(1, counted_tokens)
    if method == "all" and not failed:
        per_request = np.zeros(n)
        per_request[[k for k, _ in ok]] = [c for _, c in ok]
    else:
        method = "sample"
        chars = np.fromiter(map(len, prompts), dtype=np.int64, count=n) + fixed
        per_request = chars / chars_per_token
    e = prepared.estimate
    if plan.media:
        per_request = per_request + media_tokens(e.model, plan.prompts, plan.media)
    # Requests the journal answered already are not sent: the estimate, as before, is of the rest.
    per_request = np.delete(per_request, prepared.known.numbers)
    total = round(float(per_request.sum()))
    estimate = pricing.estimate_cost(
        e.model,
        prompt_tokens=per_request,
        max_tokens=plan.options.max_tokens,
        expected_output_per_request=e.expected_output_tokens // max(1, len(per_request)),
        exact_input=method == "all" and not plan.media,
        cached_tokens_per_request=e.cached_tokens_per_request,
        media_tokens=e.media_tokens,
    )
    info = TokenCount(method, len(ok), n, counted_tokens, chars_per_token, int(total), failed)
    return replace(prepared, estimate=estimate, token_count=info)


def _settings(settings: JobSettings | None, client: BatchClient | None) -> JobSettings:
    """The settings given, else those of where the client sends (a local simulator or the API)."""
    if settings is not None:
        return settings
    return JobSettings.for_destination(local=client is not None and client.is_local)


def _job_fingerprint(prepared: Prepared) -> str:
    """The plan's fingerprint (its prompts, params and rows' labels) plus what shapes the
    merge (out name, output kind) and a Polars frame's keys: the same cell over another
    frame is another job (its prompts already answered are reused, not paid again)."""
    import hashlib

    from .plan import labels_digest

    extra = f"{prepared.out}\x00{prepared.spec.kind}\x00{prepared.chunk_size}".encode()
    keys = prepared.keys
    if keys is not None and keys.num_columns:  # a Polars frame's rows are known by their keys
        extra += b"\x00keys" + labels_digest(keys.to_pandas())
    return hashlib.sha256(prepared.plan.fingerprint.encode() + extra).hexdigest()


def create_job(
    jr: Journal, prepared: Prepared, fingerprint: str, *, simulated: bool, sent_to: Destination | None = None
) -> str:
    """Write a new job to the journal (plan data first, manifest last)."""
    plan = prepared.plan
    job_id = jr.new_job_id(fingerprint)
    jr.write_plan_data(job_id, plan.prompts, plan.row_requests, plan.index)
    if prepared.keys is not None:
        jr.write_keys(job_id, prepared.keys)
    if plan.media:
        jr.write_media(job_id, list(plan.media.values()))
    known = prepared.known
    if known.n:
        jr.write_file(jr.job_file(job_id, REUSED_FILE), known.to_parquet())
        new = np.ones(plan.n_requests, dtype=bool)
        new[known.numbers] = False
        to_send = np.flatnonzero(new)
        ranges = split_batches(
            [plan.prompts[k] for k in to_send], plan.options.shared_params(),
            prepared.chunk_size or 100_000, media=bool(plan.media),
        )
        batches = [
            BatchEntry(n=i, attempt=1, size=len(r), ids=[int(k) for k in to_send[r.start : r.stop]])
            for i, r in enumerate(ranges)
        ]
    else:
        batches = [
            BatchEntry(n=i, attempt=1, size=len(r), first=r.start, stop=r.stop) for i, r in enumerate(plan.batches)
        ]
    record = JobRecord(
        job_id=job_id,
        fingerprint=fingerprint,
        created_at=now_iso(),
        out=prepared.out,
        template=prepared.template.source,
        output=prepared.spec,
        options=plan.options,
        id_tag=new_id_tag(),
        chunk_size=prepared.chunk_size or 100_000,
        simulated=simulated,
        n_rows=plan.n_rows,
        n_requests=plan.n_requests,
        n_skipped=plan.n_skipped,
        n_deduplicated=plan.n_deduplicated,
        skip_reasons=dict(list(plan.skip_reasons.items())[:10_000]),
        estimate=prepared.estimate,
        batches=batches,
        sent_to=sent_to.record() if sent_to is not None else None,
        n_media=len(plan.media),
        n_not_sent=plan.n_not_sent,
        sample_seed=prepared.sample_seed,
        sample_stratify=prepared.sample_stratify,
        n_reused=known.n,
        saved_cost=prepared.saved_cost if known.n else None,
    )
    jr.write_record(record)
    return job_id


def attach(
    job_id: str,
    df: pd.DataFrame | None = None,
    *,
    client: Any | None = None,
    journal: Journal | str | os.PathLike[str] | None = None,
    settings: JobSettings | None = None,
    start: bool = True,
    trust_pickle: bool = False,
    by_position: bool = False,
) -> BatchJob:
    """Pick up a job from the journal (after a restart, or in another process).

    With ``df`` the results merge into it; without, ``wait()`` returns the new
    columns alone, indexed as the DataFrame was at submission.

    A job written by an older batch_magic stored the DataFrame's index as a
    pickle, which is never loaded unless you say you trust the journal
    (``trust_pickle=True``, or ``%batch trust JOB``): loading a pickle runs the
    code it holds, and a journal can come from anywhere. Until then (or for a
    job whose index could not be stored) its rows are not matched to ``df``'s by
    label, and the merge is refused unless ``by_position=True`` says that ``df``
    holds the job's rows in the same order: row i of the job goes into row i.
    """
    jr = Journal.of(journal)
    full_id = jr.resolve(job_id)
    if trust_pickle:
        jr.trust_pickled_index(full_id)
    running = live_job(jr, full_id)
    if running is not None:
        if df is not None:
            running.by_position = by_position
            running.df = df
        return running
    # An ended job merges from the journal alone; any other (a failed one too) goes on.
    record = jr.read_record(full_id)
    batch_client = None if record.ended else client_for_job(full_id, record.sent_to, client)
    job = BatchJob(jr, full_id, batch_client, df=df, settings=_settings(settings, batch_client), record=record)
    job.by_position = by_position
    if start:
        job.start()
    return job


def jobs(journal: Journal | str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The journal's jobs, newest last, one row each; ``next`` says what a job
    that has not ended waits for (a failed one resumes when attached). A job whose
    manifest cannot be read is listed too, ``unreadable``, with why in ``error``."""
    jr = Journal.of(journal)
    records, unreadable = jr.scan()
    rows: list[dict[str, Any]] = [
        {
            "job_id": u.job_id, "state": "unreadable", "out": "", "model": "", "simulated": None, "error": u.error,
            "next": f"fix or remove its folder {str(jr.jobs_dir / u.job_id)!r}",
        }
        for u in unreadable
    ]
    for r in records:
        rows.append(
            {
                "job_id": r.job_id,
                "state": r.state.value,
                "created_at": r.created_at,
                "out": r.out,
                "model": r.options.model,
                "rows": r.n_rows,
                "requests": r.n_requests,
                "batches": sum(1 for b in r.batches if b.state.value != "dropped"),
                "simulated": r.simulated,
                "estimated_cost": r.estimate.batch_cost if r.estimate is not None else None,
                "actual_cost": r.actual_cost,
                "error": r.error,
                "next": resume_hint(r),
            }
        )
    columns = [
        "job_id", "state", "created_at", "out", "model", "rows", "requests", "batches",
        "simulated", "estimated_cost", "actual_cost", "error", "next",
    ]
    return pd.DataFrame(rows, columns=columns).sort_values("job_id", ignore_index=True)


def resume_hint(record: JobRecord) -> str | None:
    """How to go on with a job that has not ended (None for an ended one)."""
    if record.ended:
        return None
    if record.state is JobState.FAILED:
        return f"resume: re-run its cell, or %batch attach {record.job_id} DF (attach() in Python)"
    if record.state is JobState.PLANNED:
        return f"not sent yet: %batch attach {record.job_id} DF sends it"
    return f"running or interrupted: %batch attach {record.job_id} DF follows it"


__all__ = [
    "PlanError", "Prepared", "TokenCount", "attach", "count_exact", "dry_run", "jobs", "prepare", "submit",
]
