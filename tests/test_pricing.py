"""Prices (genai-prices, overrides), the estimate before a job and the actual cost after.

Expected figures are Anthropic's published prices (USD per million tokens), written
out here, so a wrong reading of the price data fails these tests.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from genai_prices import Usage, calc_price

from batch_magic import pricing
from batch_magic.api import prepare
from batch_magic.errors import ConfigError

HAIKU_5_5 = "claude-haiku-5-5"
HAIKU_4_5 = "claude-haiku-4-5"


def cost(model: str, batch: bool = True, **usage: int) -> float:
    return pricing.actual_cost(model, usage, batch=batch)


# -- rates -----------------------------------------------------------------------------------------
def test_haiku_5_5_short_prompts_cost_a_tenth_of_haiku_4_5_per_token():
    usage = {"input_tokens": 50_000, "output_tokens": 2_000}
    # Batch: Haiku 5.5 $0.05 in / $0.25 out; Haiku 4.5 $0.50 / $2.50.
    assert cost(HAIKU_5_5, **usage) == pytest.approx((50_000 * 0.05 + 2_000 * 0.25) / 1e6)
    assert cost(HAIKU_4_5, **usage) == pytest.approx((50_000 * 0.5 + 2_000 * 2.5) / 1e6)
    assert cost(HAIKU_5_5, **usage) == pytest.approx(cost(HAIKU_4_5, **usage) / 10)
    # The same per-token comparison in an estimate (same token counts on both).
    def estimate(model):
        return pricing.estimate_cost(
            model, prompt_tokens=np.full(1_000, 400.0), max_tokens=64, expected_output_per_request=10,
        )
    new, old = estimate(HAIKU_5_5), estimate(HAIKU_4_5)
    assert new.batch_cost == pytest.approx(old.batch_cost / 10)
    assert new.batch_cost_upper == pytest.approx(old.batch_cost_upper / 10)
    assert new.batch_cost == pytest.approx(1_000 * (400 * 0.05 + 10 * 0.25) / 1e6)
    assert new.realtime_cost == pytest.approx(2 * new.batch_cost)


def test_a_prompt_over_100k_tokens_is_priced_whole_at_five_times_the_rate():
    at_limit = cost(HAIKU_5_5, input_tokens=100_000, output_tokens=1_000)
    over = cost(HAIKU_5_5, input_tokens=100_001, output_tokens=1_000)
    assert at_limit == pytest.approx((100_000 * 0.05 + 1_000 * 0.25) / 1e6)
    assert over == pytest.approx((100_001 * 0.25 + 1_000 * 1.25) / 1e6)  # every token, output too
    # The prompt is the whole input: cached reads count toward the threshold.
    cached = cost(HAIKU_5_5, input_tokens=60_000, cache_read_input_tokens=50_000, output_tokens=0)
    assert cached == pytest.approx((60_000 * 0.25 + 50_000 * 0.025) / 1e6)


def test_the_tier_is_chosen_per_request_not_for_the_job():
    inputs = np.array([1_000] * 99 + [150_000])
    together = pricing.actual_cost(HAIKU_5_5, {"input_tokens": inputs, "output_tokens": np.full(100, 100)})
    by_hand = (99 * (1_000 * 0.05 + 100 * 0.25) + (150_000 * 0.25 + 100 * 1.25)) / 1e6
    assert together == pytest.approx(by_hand)
    # The same job as one summed usage would wrongly be priced all at the higher tier.
    assert together < cost(HAIKU_5_5, input_tokens=int(inputs.sum()), output_tokens=10_000)

    e = pricing.estimate_cost(HAIKU_5_5, prompt_tokens=inputs, max_tokens=100, expected_output_per_request=100,
                              exact_input=True)
    assert e.long_context_requests == 1
    assert e.batch_cost == pytest.approx(by_hand)
    assert e.batch_cost_upper == pytest.approx(by_hand)  # every answer at max_tokens=100 here


def test_near_the_threshold_the_upper_bound_takes_the_dearer_tier_unless_counted_exactly():
    prompt = [90_000.0]  # a quick estimate this close to 100k may really be over it
    quick = pricing.estimate_cost(HAIKU_5_5, prompt_tokens=prompt, max_tokens=10, expected_output_per_request=10)
    assert quick.batch_cost == pytest.approx((90_000 * 0.05 + 10 * 0.25) / 1e6)
    assert quick.batch_cost_upper == pytest.approx((90_000 * 0.25 + 10 * 1.25) / 1e6)
    exact = pricing.estimate_cost(HAIKU_5_5, prompt_tokens=prompt, max_tokens=10, expected_output_per_request=10,
                                  exact_input=True)
    assert exact.batch_cost_upper == pytest.approx(quick.batch_cost)


def test_cache_writes_5m_and_1h_and_reads_at_the_published_rates():
    # Haiku 5.5 realtime: write 5m $0.125, 1h $0.20, read $0.01; batch halves them.
    one_hour = cost(HAIKU_5_5, batch=False, cache_creation_input_tokens=1_000_000)
    five_min = cost(HAIKU_5_5, batch=False, cache_creation_input_tokens=1_000_000, ephemeral_5m_input_tokens=1_000_000)
    read = cost(HAIKU_5_5, batch=False, cache_read_input_tokens=1_000_000)
    assert (one_hour, five_min, read) == pytest.approx((0.20 * 5, 0.125 * 5, 0.01 * 5))  # 1M tokens: long tier
    small = {"cache_creation_input_tokens": 10_000, "cache_read_input_tokens": 20_000, "input_tokens": 500}
    assert cost(HAIKU_5_5, batch=False, **small) == pytest.approx((10_000 * 0.20 + 20_000 * 0.01 + 500 * 0.1) / 1e6)
    assert cost(HAIKU_5_5, **small) == pytest.approx(cost(HAIKU_5_5, batch=False, **small) / 2)


def test_actual_cost_agrees_with_genai_prices_own_reckoning_request_by_request():
    """An independent reading: genai-prices' calc_price, one request at a time."""
    rng = np.random.default_rng(7)
    n = 40
    usage = {
        "input_tokens": rng.integers(0, 180_000, n),
        "output_tokens": rng.integers(0, 5_000, n),
        "cache_creation_input_tokens": rng.integers(0, 3_000, n),
        "cache_read_input_tokens": rng.integers(0, 60_000, n),
    }
    ours = pricing.actual_cost(HAIKU_5_5, usage)
    theirs = 0.0
    for i in range(n):
        inp, out, write, read = (int(usage[k][i]) for k in usage)
        price = calc_price(
            Usage(input_tokens=inp + write + read, output_tokens=out, cache_write_tokens=write,
                  cache_write_1h_tokens=write, cache_read_tokens=read),
            model_ref=HAIKU_5_5, provider_id="anthropic", price_context={"processing": "batch"},
        )
        theirs += float(price.total_price)
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_thinking_is_inside_output_tokens_and_bounded_by_max_tokens():
    # output_tokens already holds the thinking: reporting it apart adds nothing.
    plain = cost(HAIKU_5_5, input_tokens=1_000, output_tokens=800)
    assert cost(HAIKU_5_5, input_tokens=1_000, output_tokens=800, thinking_tokens=600) == pytest.approx(plain)
    # The upper bound is every request at the caller's max_tokens, whatever thinks inside it.
    e = pricing.estimate_cost(HAIKU_5_5, prompt_tokens=np.full(10, 500.0), max_tokens=4_000,
                              expected_output_per_request=50)
    assert e.max_output_tokens == 40_000
    assert e.batch_cost_upper == pytest.approx((5_000 * 0.05 + 40_000 * 0.25) / 1e6)


def test_an_unknown_model_is_priced_like_the_dearest_and_flagged():
    e = pricing.estimate_cost("claude-nova-9", prompt_tokens=[1_000.0], max_tokens=10, expected_output_per_request=10)
    assert not e.price_known
    known = [pricing.load_prices().price(m) for m in (HAIKU_5_5, "claude-opus-5-5", "claude-fable-5-1")]
    guess = pricing.load_prices().price("claude-nova-9")
    assert all(guess.realtime[0].rates.output >= p.realtime[0].rates.output for p in known)
    assert all(p.matched for p in known)


def test_prices_say_where_they_came_from():
    e = prepare(pd.DataFrame({"t": ["a"]}), "{{ t }}", model=HAIKU_5_5).estimate
    import genai_prices

    assert e.prices_taken == f"from genai-prices {genai_prices.__version__}"
    assert pricing.load_prices().taken == e.prices_taken


# -- tokenizers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model, family",
    [
        ("claude-haiku-4-5", "older"), ("claude-haiku-4-5-20251001", "older"), ("claude-sonnet-4-6", "older"),
        ("claude-opus-4-6", "older"), ("claude-3-5-haiku-20241022", "older"), ("claude-opus-4-20250514", "older"),
        ("claude-opus-4-7", "newer"), ("claude-opus-4-8", "newer"), ("claude-sonnet-5", "newer"),
        ("claude-sonnet-5-5", "newer"), ("claude-haiku-5-5", "newer"), ("claude-haiku-5-5-20261015", "newer"),
        ("claude-fable-5-2", "newer"), ("claude-mythos-5-2", "newer"), ("claude-nova-9", "newer"),
    ],
)
def test_the_tokenizer_family_is_read_from_the_model_id(model, family):
    assert pricing.tokenizer(model) == family


def test_the_quick_estimate_counts_about_30_percent_more_tokens_on_the_newer_tokenizer():
    df = pd.DataFrame({"t": [f"Customer {i} writes that the parcel arrived late and damaged. " * 5 for i in range(20)]})
    old = prepare(df, "{{ t }}", model=HAIKU_4_5).estimate
    new = prepare(df, "{{ t }}", model=HAIKU_5_5).estimate
    overhead = pricing.REQUEST_OVERHEAD_TOKENS * 20
    assert (new.input_tokens - overhead) == pytest.approx(1.3 * (old.input_tokens - overhead), rel=0.01)
    assert "about 3.1 characters a token" in repr(prepare(df, "{{ t }}", model=HAIKU_5_5))


# -- overrides -------------------------------------------------------------------------------------
def write(tmp_path, data, name="prices.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_an_override_file_replaces_some_models_prices(tmp_path, monkeypatch):
    path = write(tmp_path, {"taken": "2026-12-01", "models": [
        {"match": "claude-haiku-5-5", "input": 0.2, "output": 1.0,
         "long_context": {"above": 50_000, "input": 2.0, "output": 10.0}},
        {"match": "claude-haiku-5-5-2026", "input": 0.3, "output": 1.5, "cache_read": 0.0, "batch": 0.4},
    ]})
    monkeypatch.setenv("BATCH_MAGIC_PRICES", str(path))
    # Batch at half by default; cache writes and reads at 2x and 0.1x input unless given.
    assert cost(HAIKU_5_5, input_tokens=10_000) == pytest.approx(10_000 * 0.1 / 1e6)
    assert cost(HAIKU_5_5, input_tokens=60_000, output_tokens=0) == pytest.approx(60_000 * 1.0 / 1e6)
    assert cost(HAIKU_5_5, batch=False, cache_creation_input_tokens=10_000) == pytest.approx(10_000 * 0.4 / 1e6)
    # The longest match wins, with its own batch multiplier.
    assert cost("claude-haiku-5-5-20261015", input_tokens=1_000, cache_read_input_tokens=1_000) == pytest.approx(
        1_000 * 0.3 * 0.4 / 1e6
    )
    # Other models keep genai-prices' prices; the estimate names the file and its date.
    assert cost(HAIKU_4_5, input_tokens=1_000_000) == pytest.approx(0.5)
    e = prepare(pd.DataFrame({"t": ["a"]}), "{{ t }}", model=HAIKU_5_5).estimate
    assert e.prices_taken == f"from {path} (2026-12-01)"
    assert pricing.load_prices().taken.startswith(f"from {path} (2026-12-01), otherwise genai-prices")


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"models": [{"match": "claude-x", "input": 1}]}, 'needs "input" and "output"'),
        ({"models": [{"match": "claude-x", "input": 1, "output": 5, "outptu": 5}]}, "unknown key(s) 'outptu'"),
        ({"models": [{"match": "claude-x", "input": "1", "output": 5}]}, "'input' of 'claude-x' must be"),
        ({"taken": "2026-12-01"}, 'no "models" list'),
        ({"models": [{"match": "claude-x", "input": 1, "output": 5, "long_context": {"input": 2}}]}, '"above"'),
    ],
)
def test_a_bad_override_file_says_what_is_wrong_and_what_it_needs(tmp_path, data, problem):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        pricing.load_prices(path)
    message = str(info.value)
    assert str(path) in message and problem in message and '"match": "claude-...", "input": 1' in message
