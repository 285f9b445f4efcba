"""``retry_failed`` when there is nothing (left) to retry: it says so and hands back the job."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import batch_magic as bm
from _jobs import fast
from batch_magic.journal import Journal

FAST = fast(max_attempts=1)


def test_nothing_to_retry_says_so_sends_nothing_and_leaves_the_dataframe_alone(
    simulator: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal(tmp_path / "journal")
    client = simulator.client()
    simulator.configure(error_rates={"overloaded_error": 0.4})
    df = pd.DataFrame({"text": [f"row {i}" for i in range(40)]})
    first = bm.submit(df, "{{ text }}", client=client, journal=journal, settings=FAST, max_tokens=20)
    first.wait(30)
    assert (df["answer_status"] == "errored").any()
    simulator.configure(error_rates={})
    bm.retry_failed(first.id, df, client=client, journal=journal, settings=FAST).wait(30)
    assert (df["answer_status"] == "succeeded").all()
    before = df.copy()
    creates = sum(1 for r in simulator.requests if r.endpoint == "create")
    capsys.readouterr()

    again = bm.retry_failed(first.id, df, client=client, journal=journal, settings=FAST)
    out = capsys.readouterr().out
    assert f"Job {first.id}: no row errored, expired or was invalid; nothing to retry" in out
    assert again.id == first.id  # the ended job itself, not a new one
    assert sum(1 for r in simulator.requests if r.endpoint == "create") == creates
    columns = again.wait(30)  # works as for a retry; the job's own columns, apart from df
    assert columns is not df and (columns["answer_status"] == "errored").any()
    pd.testing.assert_frame_equal(df, before)  # the retried answers were not overwritten
