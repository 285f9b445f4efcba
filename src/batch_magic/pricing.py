"""Prices and cost: an estimate before anything is sent, the actual cost after.

Prices live in one data file (``data/prices.json``, with the date they were
taken); a user overrides it with ``BATCH_MAGIC_PRICES=/path/to/prices.json`` or
``load_prices(path)``. A model id matches the longest ``match`` prefix, so
dated ids (``claude-sonnet-4-5-20250929``) and aliases both find their price.
The quick token estimate is local (about four characters a token); exact input
counts come from the API's ``count_tokens`` when asked for.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError

CHARS_PER_TOKEN = 4.0
#: Tokens the Messages API adds around each request (role markers and such).
REQUEST_OVERHEAD_TOKENS = 8


@dataclass(frozen=True)
class ModelPrice:
    model: str
    input: float  # USD per million input tokens, standard price
    output: float
    matched: bool  # False when the model was not in the table (a fallback price)


@dataclass(frozen=True)
class PriceTable:
    taken: str
    batch_discount: float
    cache_write_1h: float
    cache_read: float
    models: tuple[tuple[str, float, float], ...]
    path: str

    def price(self, model: str) -> ModelPrice:
        best = None
        for match, inp, outp in self.models:
            if model.startswith(match) and (best is None or len(match) > len(best[0])):
                best = (match, inp, outp)
        if best is None:
            # Unknown (e.g. newer) model: price it like the dearest known one, so an
            # estimate errs high rather than low, and say so.
            inp, outp = max((m[1], m[2]) for m in self.models)
            return ModelPrice(model, inp, outp, matched=False)
        return ModelPrice(model, best[1], best[2], matched=True)


def load_prices(path: str | os.PathLike[str] | None = None) -> PriceTable:
    """The price table from ``path``, ``$BATCH_MAGIC_PRICES`` or the bundled file."""
    path = path or os.environ.get("BATCH_MAGIC_PRICES")
    return _load(str(path) if path else None)


@lru_cache(maxsize=8)
def _load(path: str | None) -> PriceTable:
    try:
        if path:
            text = Path(path).read_text()
            where = path
        else:
            ref = resources.files("batch_magic") / "data" / "prices.json"
            text = ref.read_text()
            where = str(ref)
        data: dict[str, Any] = json.loads(text)
        models = tuple(
            (str(m["match"]), float(m["input"]), float(m["output"])) for m in data["models"]
        )
        return PriceTable(
            taken=str(data.get("taken", "unknown date")),
            batch_discount=float(data.get("batch_discount", 0.5)),
            cache_write_1h=float(data.get("cache_write_1h", 2.0)),
            cache_read=float(data.get("cache_read", 0.1)),
            models=models,
            path=where,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"The price file {path!r} could not be read ({exc}); it needs "
            '{"taken": "YYYY-MM-DD", "models": [{"match": "claude-...", "input": 3, "output": 15}]}.'
        ) from None


def estimate_tokens(text_chars: int, n_requests: int) -> int:
    return int(text_chars / CHARS_PER_TOKEN) + REQUEST_OVERHEAD_TOKENS * n_requests


@dataclass(frozen=True)
class Estimate:
    """Cost before sending: input is estimated, output bounded by max_tokens."""

    model: str
    n_requests: int
    input_tokens: int
    expected_output_tokens: int
    max_output_tokens: int
    batch_cost: float  # expected, at the batch price
    batch_cost_upper: float  # every answer at max_tokens
    realtime_cost: float  # the same work through the realtime API
    exact_input: bool
    price_known: bool
    prices_taken: str
    #: Input tokens per request marked for caching (a long system prompt), or 0.
    cached_tokens_per_request: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def estimate_cost(
    model: str,
    *,
    input_tokens: int,
    n_requests: int,
    max_tokens: int,
    expected_output_per_request: int,
    exact_input: bool = False,
    cached_tokens_per_request: int = 0,
    prices: PriceTable | None = None,
) -> Estimate:
    """Expected and upper-bound cost. Cached input is expected to be written once
    and read by every later request; the upper bound assumes no read ever hits
    (caching in batches is best effort) and every request pays the cache write."""
    table = prices or load_prices()
    price = table.price(model)
    expected_out = n_requests * min(max_tokens, expected_output_per_request)
    upper_out = n_requests * max_tokens
    cached = min(cached_tokens_per_request * n_requests, input_tokens)
    plain_in = input_tokens - cached
    per_cached = cached_tokens_per_request
    expected_in = plain_in + (
        per_cached * (table.cache_write_1h + (n_requests - 1) * table.cache_read) if cached else 0
    )
    upper_in = plain_in + cached * table.cache_write_1h

    def cost(inp: float, out: int) -> float:
        return (inp * price.input + out * price.output) / 1e6

    realtime = cost(expected_in, expected_out)
    return Estimate(
        model=model,
        n_requests=n_requests,
        input_tokens=input_tokens,
        expected_output_tokens=expected_out,
        max_output_tokens=upper_out,
        batch_cost=realtime * table.batch_discount,
        batch_cost_upper=cost(upper_in, upper_out) * table.batch_discount,
        realtime_cost=realtime,
        exact_input=exact_input,
        price_known=price.matched,
        prices_taken=table.taken,
        cached_tokens_per_request=per_cached,
    )


def actual_cost(model: str, usage: dict[str, int], *, batch: bool = True, prices: PriceTable | None = None) -> float:
    """USD for the usage summed over succeeded requests (cache writes at the 1-hour rate)."""
    table = prices or load_prices()
    price = table.price(model)
    dollars = (
        usage.get("input_tokens", 0) * price.input
        + usage.get("output_tokens", 0) * price.output
        + usage.get("cache_creation_input_tokens", 0) * price.input * table.cache_write_1h
        + usage.get("cache_read_input_tokens", 0) * price.input * table.cache_read
    ) / 1e6
    return dollars * (table.batch_discount if batch else 1.0)
