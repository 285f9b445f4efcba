"""Prompt caching: a long system prompt goes with cache_control (1-hour TTL), and
cache writes and reads are counted in the actual cost."""

from __future__ import annotations

import pandas as pd
import pytest

import batch_magic as bm
from _jobs import FAST
from batch_magic import pricing
from batch_magic.api import CACHE_MIN_CHARS, prepare
from batch_magic.journal import Journal
from batch_magic.pilot import run_pilot

LONG_SYSTEM = (
    "You are a support analyst at Northwind Gadgets. Read the ticket and answer briefly. "
    + "Policy: refunds within 30 days, repairs within two years, shipping in 3 to 5 days. " * 60
)
MODEL = "claude-haiku-4-5"


def frame(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"Ticket {i}: the parcel is late" for i in range(n)]})


def test_a_long_system_prompt_is_marked_for_the_one_hour_cache():
    assert len(LONG_SYSTEM) >= CACHE_MIN_CHARS
    params = prepare(frame(), "{{ text }}", system=LONG_SYSTEM).plan.options.shared_params()
    assert params["system"] == [
        {"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]


def test_a_short_system_prompt_is_sent_as_plain_text_unless_asked():
    short = "Answer in one word."
    assert prepare(frame(), "{{ text }}", system=short).plan.options.shared_params()["system"] == short
    forced = prepare(frame(), "{{ text }}", system=short, cache_system=True).plan.options.shared_params()
    assert forced["system"][0]["cache_control"]["ttl"] == "1h"
    off = prepare(frame(), "{{ text }}", system=LONG_SYSTEM, cache_system=False).plan.options.shared_params()
    assert off["system"] == LONG_SYSTEM


def test_actual_cost_prices_cache_writes_at_2x_and_reads_at_a_tenth():
    usage = {
        "input_tokens": 1_000_000, "output_tokens": 1_000_000,
        "cache_creation_input_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000,
    }
    # Haiku 4.5: $1 in, $5 out per million; 1-hour write 2 x $1, read 0.1 x $1.
    assert pricing.actual_cost(MODEL, usage, batch=False) == pytest.approx(1 + 5 + 2 + 0.1)
    assert pricing.actual_cost(MODEL, usage) == pytest.approx((1 + 5 + 2 + 0.1) / 2)
    # A 5-minute write (reported in usage.cache_creation) is 1.25 x input instead.
    five = {**usage, "ephemeral_5m_input_tokens": 1_000_000}
    assert pricing.actual_cost(MODEL, five, batch=False) == pytest.approx(1 + 5 + 1.25 + 0.1)


#: Claude Haiku 4.5's published realtime prices, USD per million tokens.
HAIKU_4_5 = {"input": 1.0, "output": 5.0, "cache_write_1h": 2.0, "cache_read": 0.1}


def by_hand(usage: dict, batch: bool) -> float:
    p = HAIKU_4_5
    dollars = (
        usage["input_tokens"] * p["input"]
        + usage["output_tokens"] * p["output"]
        + usage["cache_creation_input_tokens"] * p["cache_write_1h"]
        + usage["cache_read_input_tokens"] * p["cache_read"]
    ) / 1e6
    return dollars * (0.5 if batch else 1.0)


def test_a_batch_with_a_cached_system_prompt_writes_once_reads_after_and_costs_that(simulator, tmp_path):
    journal = Journal(tmp_path / "journal")
    df = frame(30)
    job = bm.submit(df, "{{ text }}", system=LONG_SYSTEM, model=MODEL, max_tokens=50,
                    client=simulator.client(), journal=journal, settings=FAST)
    job.wait(timeout=60)
    assert (df["answer_status"] == "succeeded").all()
    record = journal.read_record(job.id)
    usage = record.usage
    written, read = usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]
    system_tokens = len(LONG_SYSTEM) // 4
    assert written == pytest.approx(system_tokens, rel=0.05)  # the prefix, written once
    assert read == pytest.approx(29 * written)  # and read by every other request
    assert usage["input_tokens"] < written  # only the short per-row part is plain input
    assert record.actual_cost == pytest.approx(by_hand(usage, batch=True))
    # Caching made it cheaper than sending the system prompt 30 times as plain input.
    uncached = {**usage, "input_tokens": usage["input_tokens"] + written + read,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    assert record.actual_cost < by_hand(uncached, batch=True)
    assert job.status.actual_cost == pytest.approx(record.actual_cost)


def test_a_pilot_shows_cache_tokens_per_row_and_counts_them_at_the_realtime_price(simulator, sdk_client):
    result = run_pilot(frame(10), "{{ text }}", n=3, concurrency=1, system=LONG_SYSTEM, model=MODEL,
                       client=sdk_client)
    frame_ = result.frame
    writes = frame_["cache_creation_input_tokens"].tolist()
    reads = frame_["cache_read_input_tokens"].tolist()
    assert writes[0] > 0 and reads[0] == 0  # the first call writes the prefix
    assert writes[1:] == [0, 0] and all(r == writes[0] for r in reads[1:])  # the rest read it
    assert result.usage["cache_creation_input_tokens"] == writes[0]
    assert result.total_cost == pytest.approx(by_hand(result.usage, batch=False))


def test_the_dry_run_says_when_the_system_prompt_is_cached():
    text = repr(bm.dry_run(frame(), "{{ text }}", system=LONG_SYSTEM))
    assert f"the system prompt ({len(LONG_SYSTEM):,} characters) is cached (1-hour TTL)" in text
    assert "cached" not in repr(bm.dry_run(frame(), "{{ text }}", system="Be brief."))
