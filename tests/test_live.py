"""Against the real Message Batches API. Off unless asked for:

    BATCH_MAGIC_LIVE=1 ANTHROPIC_API_KEY=sk-ant-... pytest -m live

Costs a fraction of a cent (three short requests to the cheapest model, at the
batch price) and can take minutes: batches may queue.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest

import batch_magic as bm

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (os.environ.get("BATCH_MAGIC_LIVE") == "1" and os.environ.get("ANTHROPIC_API_KEY")),
        reason="live API tests need BATCH_MAGIC_LIVE=1 and ANTHROPIC_API_KEY",
    ),
    pytest.mark.timeout(3600),
]

MODEL = os.environ.get("BATCH_MAGIC_LIVE_MODEL", "claude-haiku-5-5")


def test_labels_round_trip_through_the_real_api(tmp_path):
    df = pd.DataFrame(
        {"review": ["I love this, works perfectly", "Broken on arrival, terrible", None]}
    )
    job = bm.submit(
        df, "Sentiment of this review: {{ review }}", out="s",
        labels=["positive", "negative", "neutral"], model=MODEL, max_tokens=20,
        journal=tmp_path, max_cost=0.05,
    )
    assert not job.status.simulated
    job.wait(timeout=3500)
    assert df["s_status"].tolist() == ["succeeded", "succeeded", "skipped"]
    assert df["s"].tolist()[:2] == ["positive", "negative"]
    assert job.status.actual_cost is not None and job.status.actual_cost < 0.01


def test_pilot_through_the_real_messages_api():
    from batch_magic.pilot import run_pilot

    df = pd.DataFrame({"text": ["The sky is blue.", "Grass is green."]})
    result = run_pilot(df, "Name the colour in one word: {{ text }}", n=2, model=MODEL, max_tokens=10)
    assert len(result.frame) == 2
