"""Prices and cost: an estimate before anything is sent, the actual cost after.

Prices come from the ``genai-prices`` package: realtime and Message Batches
rates, 5-minute and 1-hour cache writes, cache reads, and long-context tiers
(Claude Haiku 5.5 bills every token of a request whose prompt is over 100,000
tokens at five times the base rate). A tier is chosen per request, by that
request's whole prompt (cached parts included), as the API bills it: a job of
short prompts with a few long ones pays the higher rate on those few only.

A user overrides the prices of some models with a JSON file named by
``$BATCH_MAGIC_PRICES`` (or ``load_prices(path)``); see ``OVERRIDE_FORMAT``.
An unknown model is priced like the dearest known one, so an estimate errs
high, and the estimate says the price is a guess.

The quick token estimate is local: characters per token depend on the model's
tokenizer (``tokenizer``); exact input counts come from the API's
``count_tokens`` when asked for.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

# -- tokenizers ----------------------------------------------------------------------------------
#: The tokenizer of Claude 3 to Opus 4.6, Sonnet 4.6 and Haiku 4.5.
OLDER_TOKENIZER = "older"
#: The tokenizer of Opus 4.7 and later, Sonnet 5 and 5.5, Haiku 5.5, Fable and Mythos,
#: which makes about 30% more tokens of the same text (platform.claude.com, "Token
#: counting"; ``count_tokens`` counts with the tokenizer of the model it is given).
NEWER_TOKENIZER = "newer"
#: Characters per token of English prose, for the quick local estimate.
CHARS_PER_TOKEN = {OLDER_TOKENIZER: 4.0, NEWER_TOKENIZER: 4.0 / 1.3}
#: Tokens the Messages API adds around each request (role markers and such).
REQUEST_OVERHEAD_TOKENS = 8

_LINE_VERSION = re.compile(r"^claude-(haiku|sonnet|opus|fable|mythos)-(\d+)(?:-(\d{1,2}))?(?!\d)")
#: The first version of each model line on the newer tokenizer.
_NEWER_TOKENIZER_SINCE = {"haiku": (5, 0), "sonnet": (5, 0), "opus": (4, 7), "fable": (0, 0), "mythos": (0, 0)}
_OLDER_STYLE_IDS = ("claude-3", "claude-2", "claude-instant", "claude-v")


def tokenizer(model: str) -> str:
    """The tokenizer family of a model id (dated ids and aliases alike).

    Not in the Models API, so it is read from the id. An id this function does
    not know is taken to use the newer tokenizer: more tokens, an estimate that
    errs high, and every model released since Opus 4.7 uses it.
    """
    m = _LINE_VERSION.match(model)
    if m is None:
        return OLDER_TOKENIZER if model.startswith(_OLDER_STYLE_IDS) else NEWER_TOKENIZER
    version = (int(m.group(2)), int(m.group(3) or 0))
    return NEWER_TOKENIZER if version >= _NEWER_TOKENIZER_SINCE[m.group(1)] else OLDER_TOKENIZER


def chars_per_token(model: str) -> float:
    return CHARS_PER_TOKEN[tokenizer(model)]


def estimate_tokens(model: str, chars: int) -> int:
    """Tokens of ``chars`` characters of text (a system prompt, say) for ``model``."""
    return math.ceil(chars / chars_per_token(model)) if chars > 0 else 0


def estimate_request_tokens(model: str, chars: np.ndarray | Sequence[int]) -> np.ndarray:
    """Prompt tokens of each request, from its characters (prompt, system and schema)."""
    return np.asarray(chars, dtype=np.float64) / chars_per_token(model) + REQUEST_OVERHEAD_TOKENS


# -- images and PDFs ----------------------------------------------------------------------------
#: How large an image is read (vision page, "Evaluate image size"): its long edge is scaled
#: down to this many pixels, and further until it is at most this many tokens, one token per
#: 750 pixels. Models since Claude Opus 4.7 read at higher resolution (3.75 MP) than the
#: earlier ones (1.15 MP). The Models API does not say which: the family is read from the id,
#: like the tokenizer, which changed with the same models.
IMAGE_READ_LIMITS = {OLDER_TOKENIZER: (1568, 1600), NEWER_TOKENIZER: (2576, 4784)}
PIXELS_PER_IMAGE_TOKEN = 750
#: PDF support page: each page is read as an image and as its extracted text. A page image
#: is taken at about the older limit (~1,600 tokens); its text at the tokenizer's rate.
PDF_PAGE_IMAGE_TOKENS = 1600


def image_tokens(model: str, width: int, height: int) -> int:
    """Approximate input tokens of one ``width`` x ``height`` image for ``model``."""
    if width <= 0 or height <= 0:
        return 0
    edge, cap = IMAGE_READ_LIMITS[tokenizer(model)]
    scale = min(1.0, edge / max(width, height))
    tokens = (width * scale) * (height * scale) / PIXELS_PER_IMAGE_TOKEN
    return min(cap, math.ceil(tokens))


def pdf_tokens(model: str, pages: int, text_chars: int) -> int:
    """Approximate input tokens of a PDF: an image per page plus its text."""
    return pages * PDF_PAGE_IMAGE_TOKENS + estimate_tokens(model, text_chars)


# -- prices --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rates:
    """USD per million tokens of one price tier."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    def scaled(self, factor: float) -> Rates:
        return Rates(**{f.name: getattr(self, f.name) * factor for f in fields(self)})


@dataclass(frozen=True)
class Tier:
    """Rates that apply to a request whose whole prompt is over ``above`` tokens."""

    above: int
    rates: Rates


@dataclass(frozen=True)
class ModelPrice:
    """A model's realtime and batch prices, each a list of tiers by prompt length."""

    model: str
    realtime: tuple[Tier, ...]  # ascending by ``above``; the first is above 0
    batch: tuple[Tier, ...]  # the same thresholds
    #: False when the model is in no price source (priced like the dearest known model).
    matched: bool
    #: Where the price came from, for display ("genai-prices 0.2.3", an override file).
    source: str

    def tiers(self, batch: bool) -> tuple[Tier, ...]:
        return self.batch if batch else self.realtime

    @property
    def long_context_above(self) -> int | None:
        """Prompt tokens over which a request is priced at a higher tier (None: flat)."""
        return self.realtime[1].above if len(self.realtime) > 1 else None

    def tier_index(self, prompt_tokens: np.ndarray) -> np.ndarray:
        """The tier of each request, by its whole prompt (input, cache writes and reads)."""
        starts = np.array([t.above for t in self.realtime[1:]], dtype=np.float64)
        return np.searchsorted(starts, np.asarray(prompt_tokens, dtype=np.float64), side="left")


@dataclass(frozen=True)
class TokensByTier:
    """Token counts summed per price tier (arrays as long as the model's tiers)."""

    plain: np.ndarray  # uncached input
    cache_write_5m: np.ndarray
    cache_write_1h: np.ndarray
    cache_read: np.ndarray
    output: np.ndarray  # thinking included: it is billed as output

    def dollars(self, tiers: Sequence[Tier]) -> float:
        total = 0.0
        for t, tier in enumerate(tiers):
            r = tier.rates
            total += (
                self.plain[t] * r.input
                + self.cache_write_5m[t] * r.cache_write_5m
                + self.cache_write_1h[t] * r.cache_write_1h
                + self.cache_read[t] * r.cache_read
                + self.output[t] * r.output
            )
        return float(total) / 1e6


def _by_tier(index: np.ndarray, n_tiers: int, **values: np.ndarray | float) -> TokensByTier:
    """Sum each per-request array (or a per-request constant) within each tier."""
    counts = np.bincount(index, minlength=n_tiers).astype(np.float64)
    sums: dict[str, np.ndarray] = {}
    for name, v in values.items():
        if isinstance(v, float):
            sums[name] = counts * v
        else:
            sums[name] = np.bincount(index, weights=np.asarray(v, dtype=np.float64), minlength=n_tiers)
    return TokensByTier(**sums)


#: Documented multipliers of the base input price, for an override that leaves them out.
CACHE_WRITE_5M_FACTOR = 1.25
CACHE_WRITE_1H_FACTOR = 2.0
CACHE_READ_FACTOR = 0.1
#: Batch prices are half the realtime ones (when genai-prices has no batch rates of its own).
BATCH_DISCOUNT = 0.5
#: What selects genai-prices' Message Batches rates.
BATCH_CONTEXT = {"processing": "batch"}

OVERRIDE_FORMAT = (
    '{"taken": "YYYY-MM-DD", "models": [{"match": "claude-...", "input": 1, "output": 5}]}, '
    "prices in USD per million tokens at the realtime rate; a model may add "
    '"cache_write_5m", "cache_write_1h", "cache_read" (default 1.25x, 2x and 0.1x input), '
    '"batch" (the batch multiplier, default 0.5) and "long_context": {"above": 100000, '
    '"input": ..., "output": ...}'
)
_RATE_KEYS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


@dataclass(frozen=True)
class Override:
    """A user's prices for the models whose id starts with ``match``."""

    match: str
    realtime: tuple[Tier, ...]
    batch_factor: float


@dataclass(frozen=True)
class PriceBook:
    """genai-prices, with a user's overrides on top."""

    overrides: tuple[Override, ...] = ()
    #: The override file and the date it says its prices were taken.
    path: str | None = None
    override_taken: str | None = None
    #: Realtime price over batch price, for showing what the same work costs realtime.
    batch_discount: float = BATCH_DISCOUNT

    @property
    def taken(self) -> str:
        """Where the prices come from, as shown after "prices taken"."""
        if self.path:
            return f"from {self._override_source}, otherwise {_genai_prices_source()}"
        return f"from {_genai_prices_source()}"

    @property
    def _override_source(self) -> str:
        return f"{self.path} ({self.override_taken or 'undated'})"

    def price(self, model: str) -> ModelPrice:
        # The longest matching prefix wins, so dated ids and aliases both find theirs.
        best = max((o for o in self.overrides if model.startswith(o.match)), key=lambda o: len(o.match), default=None)
        if best is not None:
            batch = tuple(Tier(t.above, t.rates.scaled(best.batch_factor)) for t in best.realtime)
            return ModelPrice(model, best.realtime, batch, True, self._override_source)
        return _genai_price(model)


def load_prices(path: str | os.PathLike[str] | None = None) -> PriceBook:
    """genai-prices, overridden by ``path`` or ``$BATCH_MAGIC_PRICES`` when given."""
    path = path or os.environ.get("BATCH_MAGIC_PRICES")
    return _load(str(path) if path else None)


@lru_cache(maxsize=8)
def _load(path: str | None) -> PriceBook:
    if path is None:
        return PriceBook()
    try:
        data: Any = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise ValueError('no "models" list')
        unknown = sorted(set(data) - {"taken", "models", "source"})
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}")
        overrides = tuple(_override(entry) for entry in data["models"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"The price file {path!r} (BATCH_MAGIC_PRICES) could not be read ({exc}); it needs "
            f"{OVERRIDE_FORMAT}."
        ) from None
    taken = data.get("taken")
    return PriceBook(overrides, path, str(taken) if taken else None)


def _override(entry: Any) -> Override:
    if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
        raise ValueError(f'a model entry needs "match" (the start of a model id): {entry!r}')
    unknown = sorted(set(entry) - {"match", "batch", "long_context", *_RATE_KEYS})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))} in {entry['match']!r}")
    tiers = [Tier(0, _rates(entry, entry["match"]))]
    long = entry.get("long_context")
    if long is not None:
        if not isinstance(long, dict) or not isinstance(long.get("above"), int) or long["above"] <= 0:
            raise ValueError(f'"long_context" of {entry["match"]!r} needs "above": a number of tokens')
        tiers.append(Tier(long["above"], _rates(long, entry["match"])))
    batch = float(entry.get("batch", BATCH_DISCOUNT))
    if not 0 < batch <= 1:
        raise ValueError(f'"batch" of {entry["match"]!r} must be a multiplier in (0, 1], got {batch!r}')
    return Override(entry["match"], tuple(tiers), batch)


def _rates(entry: dict[str, Any], match: str) -> Rates:
    values = {}
    for key in _RATE_KEYS:
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key!r} of {match!r} must be a non-negative number of USD per million tokens")
        values[key] = float(value)
    if "input" not in values or "output" not in values:
        raise ValueError(f'{match!r} needs "input" and "output" (USD per million tokens)')
    inp = values["input"]
    return Rates(
        input=inp,
        output=values["output"],
        cache_write_5m=values.get("cache_write_5m", inp * CACHE_WRITE_5M_FACTOR),
        cache_write_1h=values.get("cache_write_1h", inp * CACHE_WRITE_1H_FACTOR),
        cache_read=values.get("cache_read", inp * CACHE_READ_FACTOR),
    )


# -- genai-prices ----------------------------------------------------------------------------------
def _snapshot() -> Any:
    from genai_prices import data_snapshot

    return data_snapshot.get_snapshot()


def _genai_prices_source() -> str:
    """The price data in use: the bundled data of this genai-prices version, or an update."""
    import genai_prices

    snapshot = _snapshot()
    if snapshot.from_auto_update:
        return f"genai-prices data updated {snapshot.timestamp:%Y-%m-%d %H:%M}"
    return f"genai-prices {genai_prices.__version__}"


def _genai_price(model: str) -> ModelPrice:
    snapshot = _snapshot()
    return _genai_price_in(model, id(snapshot), snapshot.timestamp)


@lru_cache(maxsize=64)
def _genai_price_in(model: str, _snapshot_id: int, _snapshot_time: datetime) -> ModelPrice:
    """``model``'s prices in the current snapshot (the cache key changes with it)."""
    snapshot = _snapshot()
    source = _genai_prices_source()
    provider = snapshot.find_provider(None, "anthropic", None)
    try:
        _, info = snapshot.find_provider_model(model, provider, None, None)
    except LookupError:
        # Unknown (e.g. newer) model: price it like the dearest known one, so an
        # estimate errs high rather than low, and say so.
        dearest = max(
            (_model_price(m.id, m, source) for m in provider.models),
            key=lambda p: (p.realtime[0].rates.input, p.realtime[0].rates.output),
        )
        return ModelPrice(model, dearest.realtime, dearest.batch, False, source)
    return _model_price(model, info, source)


def _model_price(model: str, info: Any, source: str) -> ModelPrice:
    """Our tiers from a genai-prices ``ModelInfo``: realtime, and batch rates of its
    own when it has them (else half the realtime ones)."""
    now = datetime.now(tz=UTC)
    realtime = info.get_prices(now)
    has_batch = any(
        v.when == BATCH_CONTEXT and (v.constraint is None or v.constraint.active(now))
        for v in info.price_variants or ()
    )
    batch = info.get_prices(now, BATCH_CONTEXT) if has_batch else None
    starts = sorted({0, *_tier_starts(realtime), *(_tier_starts(batch) if batch else ())})
    realtime_tiers = tuple(Tier(s, _rates_at(realtime, s)) for s in starts)
    if batch is None:
        batch_tiers = tuple(Tier(t.above, t.rates.scaled(BATCH_DISCOUNT)) for t in realtime_tiers)
    else:
        batch_tiers = tuple(Tier(s, _rates_at(batch, s)) for s in starts)
    return ModelPrice(model, realtime_tiers, batch_tiers, True, source)


_GENAI_KEYS = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_write_5m": "cache_write_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
    "cache_read": "cache_read_mtok",
}


def _tier_starts(price: Any) -> set[int]:
    from genai_prices.types import TieredPrices

    starts: set[int] = set()
    for key in _GENAI_KEYS.values():
        value = getattr(price, key, None)
        if isinstance(value, TieredPrices):
            starts.update(t.start for t in value.tiers)
    return starts


def _rates_at(price: Any, above: int) -> Rates:
    """The rates for a prompt just over ``above`` tokens (the cliff applies to all of it)."""
    from genai_prices.types import TieredPrices

    def rate(key: str) -> float | None:
        value = getattr(price, key, None)
        if value is None:
            return None
        if isinstance(value, TieredPrices):
            chosen = value.base
            for t in value.tiers:
                if above >= t.start and above > 0:
                    chosen = t.price
            return float(chosen)
        return float(value)

    inp = rate("input_mtok") or 0.0
    write_5m = rate("cache_write_mtok")
    write_1h = rate("cache_write_1h_mtok")
    read = rate("cache_read_mtok")
    return Rates(
        input=inp,
        output=rate("output_mtok") or 0.0,
        cache_write_5m=inp * CACHE_WRITE_5M_FACTOR if write_5m is None else write_5m,
        cache_write_1h=inp * CACHE_WRITE_1H_FACTOR if write_1h is None else write_1h,
        cache_read=inp * CACHE_READ_FACTOR if read is None else read,
    )


# -- the estimate ----------------------------------------------------------------------------------
#: The quick estimate can be some way off; at a long-context threshold that error
#: multiplies a whole request's price, so the upper bound takes the dearer tier for
#: any request estimated above this share of the threshold (not when counted exactly).
LONG_CONTEXT_MARGIN = 0.8


@dataclass(frozen=True)
class Estimate:
    """Cost before sending: input is estimated, output bounded by max_tokens."""

    model: str
    n_requests: int
    input_tokens: int
    expected_output_tokens: int
    max_output_tokens: int
    batch_cost: float  # expected, at the batch price
    batch_cost_upper: float  # every answer at max_tokens (thinking included), every cache write paid
    realtime_cost: float  # the same work through the realtime API
    exact_input: bool
    price_known: bool
    #: Where the prices came from, as shown after "prices taken".
    prices_taken: str
    #: Input tokens per request marked for caching (a long system prompt), or 0.
    cached_tokens_per_request: int = 0
    realtime_cost_upper: float = 0.0
    #: Requests whose prompt is over the model's long-context threshold (priced higher).
    long_context_requests: int = 0
    #: The characters per token the quick estimate used (the model's tokenizer).
    chars_per_token: float = CHARS_PER_TOKEN[OLDER_TOKENIZER]
    #: Input tokens of images and PDFs, included in ``input_tokens``: approximate (from
    #: pixel sizes and page counts, by the documented rules), even when the text is counted.
    media_tokens: int = 0


def estimate_cost(
    model: str,
    *,
    max_tokens: int,
    expected_output_per_request: int,
    prompt_tokens: np.ndarray | Sequence[float] | None = None,
    input_tokens: int | None = None,
    n_requests: int | None = None,
    exact_input: bool = False,
    cached_tokens_per_request: int = 0,
    prices: PriceBook | None = None,
    media_tokens: int = 0,
) -> Estimate:
    """Expected and upper-bound cost of a job.

    ``prompt_tokens`` gives each request's whole prompt (the long-context tier is
    chosen per request); or ``input_tokens`` in all, spread evenly over
    ``n_requests``. Output is billed whole, thinking included: the upper bound is
    every request at ``max_tokens``. Cached input is expected to be written once
    and read by every later request; the upper bound assumes no read ever hits
    (caching in batches is best effort) and every request pays the 1-hour write.
    """
    if prompt_tokens is None:
        if input_tokens is None or n_requests is None:
            raise TypeError("estimate_cost needs prompt_tokens, or input_tokens and n_requests")
        prompt = np.full(n_requests, input_tokens / max(1, n_requests), dtype=np.float64)
    else:
        prompt = np.asarray(prompt_tokens, dtype=np.float64)
    n = len(prompt)
    price = (prices or load_prices()).price(model)
    n_tiers = len(price.realtime)
    out_expected = min(max_tokens, expected_output_per_request)
    cached = np.minimum(prompt, float(cached_tokens_per_request)) if cached_tokens_per_request else 0.0
    plain = prompt - cached

    index = price.tier_index(prompt)
    first_write = np.zeros(n)
    if cached_tokens_per_request and n:
        first_write[0] = cached[0]  # type: ignore[index]
    expected = _by_tier(
        index, n_tiers, plain=plain, cache_write_5m=0.0, cache_write_1h=first_write,
        cache_read=cached - first_write, output=float(out_expected),
    )
    upper_index = index if exact_input else price.tier_index(prompt / LONG_CONTEXT_MARGIN)
    upper = _by_tier(
        upper_index, n_tiers, plain=plain, cache_write_5m=0.0, cache_write_1h=cached,
        cache_read=0.0, output=float(max_tokens),
    )
    return Estimate(
        model=model,
        n_requests=n,
        input_tokens=round(float(prompt.sum())),
        expected_output_tokens=n * out_expected,
        max_output_tokens=n * max_tokens,
        batch_cost=expected.dollars(price.batch),
        batch_cost_upper=upper.dollars(price.batch),
        realtime_cost=expected.dollars(price.realtime),
        exact_input=exact_input,
        price_known=price.matched,
        prices_taken=f"from {price.source}",
        cached_tokens_per_request=int(cached_tokens_per_request),
        realtime_cost_upper=upper.dollars(price.realtime),
        long_context_requests=int(np.count_nonzero(index)),
        chars_per_token=chars_per_token(model),
        media_tokens=int(media_tokens),
    )


# -- the actual cost -------------------------------------------------------------------------------
#: Usage keys ``actual_cost`` reads, as the API names them (the 5-minute part of the
#: cache writes is ``usage.cache_creation.ephemeral_5m_input_tokens``; the rest is 1-hour).
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "ephemeral_5m_input_tokens",
)


def actual_cost(
    model: str,
    usage: Mapping[str, int | np.ndarray],
    *,
    batch: bool = True,
    prices: PriceBook | None = None,
) -> float:
    """USD for the usage of one request (ints) or of many (one array per key).

    Each request is priced at the tier of its own prompt (input plus cache writes
    and reads). ``output_tokens`` already holds the thinking tokens: they are
    billed as output and not added again. Cache writes not reported as 5-minute
    are priced at the 1-hour rate (the TTL this package asks for).
    """
    price = (prices or load_prices()).price(model)

    plain, out, writes, read, write_5m = np.broadcast_arrays(
        *(np.clip(np.atleast_1d(np.asarray(usage.get(key, 0), dtype=np.float64)), 0, None) for key in USAGE_KEYS)
    )
    write_5m = np.minimum(write_5m, writes)
    index = price.tier_index(plain + writes + read)
    tokens = _by_tier(
        index, len(price.realtime), plain=plain, cache_write_5m=write_5m,
        cache_write_1h=writes - write_5m, cache_read=read, output=out,
    )
    return tokens.dollars(price.tiers(batch))
