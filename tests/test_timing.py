"""A sense of time while a batch runs: how long this journal's earlier batches like it took."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

import batch_magic as bm
from _jobs import FAST
from batch_magic.journal import Journal
from batch_magic.panel import NO_HISTORY_HINT, format_duration_hint, format_status
from batch_magic.plan import RequestOptions
from batch_magic.record import BatchEntry, BatchState, JobRecord
from batch_magic.structured import OutputSpec
from batch_magic.timing import typical_batch_duration


def record(job_id: str, *batches: tuple[int, float], model: str = "m", simulated: bool = False,
           canceled: bool = False) -> JobRecord:
    """A job record whose batches of (size, seconds) ended; created one minute apart."""
    entries = []
    for i, (size, seconds) in enumerate(batches):
        created = 1_800_000_000 + 60 * i
        entries.append(BatchEntry(
            n=i, attempt=1, size=size, state=BatchState.ENDED,
            created_at=pd.Timestamp(created, unit="s", tz="UTC").isoformat(),
            ended_at=pd.Timestamp(created + seconds, unit="s", tz="UTC").isoformat(),
        ))
    size = sum(b.size for b in entries)
    return JobRecord(
        job_id=job_id, fingerprint=job_id, created_at="2027-01-15T08:00:00Z", out="x", template="{{ t }}",
        output=OutputSpec.text(), options=RequestOptions(model=model, max_tokens=16), id_tag="0000abcd",
        chunk_size=100_000, n_rows=size, n_requests=size, n_skipped=0, n_deduplicated=0, batches=entries,
        simulated=simulated, cancel_requested_at="2027-01-15T08:00:01Z" if canceled else None,
    )


def test_only_similar_ended_batches_count() -> None:
    history = [
        record("a", (100, 120), (100, 180), (150, 240)),
        record("b", (1000, 3000)),                     # ten times the size
        record("c", (100, 5), model="other"),           # another model
        record("d", (100, 3), simulated=True),          # a simulator's
        record("e", (100, 1), canceled=True),           # canceled: ended early on purpose
        record("me", (100, 9999)),                      # the job itself
    ]
    hint = typical_batch_duration(history, job_id="me", model="m", size=100, simulated=False)
    assert hint is not None
    assert (hint.median, hint.low, hint.high, hint.samples) == (180, 120, 240, 3)
    assert typical_batch_duration(history, job_id="me", model="new", size=100, simulated=False) is None


def test_with_many_batches_the_spread_leaves_out_the_extremes() -> None:
    batches = [(10, 60.0)] * 18 + [(10, 1.0), (10, 7200.0)]
    hint = typical_batch_duration([record("a", *batches)], job_id="x", model="m", size=10, simulated=False)
    assert hint is not None and hint.samples == 20
    assert hint.median == 60 and hint.low > 1 and hint.high < 7200


def test_a_running_job_shows_how_long_the_last_one_took(simulator: Any, tmp_path: Any) -> None:
    journal = Journal(tmp_path / "journal")
    client = simulator.client()
    simulator.configure(processing_time=0.5)
    df = pd.DataFrame({"text": ["a", "b", "c"]})
    first = bm.submit(df, "{{ text }}", client=client, journal=journal, settings=FAST, max_tokens=10)
    while first.status.state != "in_progress" and not first.done:
        time.sleep(0.05)
    # No history in this journal yet: the API's own rule of thumb, labelled as such.
    assert first.status.typical_duration is None
    assert format_duration_hint(first.status) == NO_HISTORY_HINT
    first.wait(30)

    simulator.configure(processing_time=30)
    second = bm.submit(df, "Again: {{ text }}", client=client, journal=journal, settings=FAST, max_tokens=10)
    while second.status.state != "in_progress" and not second.done:
        time.sleep(0.05)
    hint = second.status.typical_duration
    assert hint is not None and hint.samples == 1 and 0.3 <= hint.median <= 5
    assert "estimate ~0:00 a batch (1 earlier batch like it)" in format_status(second.status)
    second.cancel()
    second.wait(30)
