"""``retry_failed``: nothing (left) to retry, and retries of retry jobs."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

import batch_magic as bm
from _jobs import fast
from batch_magic.errors import JournalError
from batch_magic.journal import Journal
from batch_magic.retry import ORIGIN_FILE, read_origin

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


def test_a_retry_of_a_retry_over_the_whole_frame_retries_the_first_jobs_rows(
    simulator: Any, tmp_path: Any
) -> None:
    """Over a MultiIndex with repeated labels: the retry job's folder names its origin and
    the rows it took there; retrying it over the whole frame goes back to that origin."""
    journal = Journal(tmp_path / "journal")
    client = simulator.client()
    simulator.configure(error_rates={"overloaded_error": 0.5})
    index = pd.MultiIndex.from_arrays([["x", "y"] * 15, [1] * 30], names=["shop", "day"])
    df = pd.DataFrame({"text": [f"row {i}" for i in range(30)]}, index=index)
    first = bm.submit(df, "{{ text }}", client=client, journal=journal, settings=FAST, max_tokens=20)
    first.wait(30)
    failed = (df["answer_status"] == "errored").to_numpy()
    assert 0 < failed.sum() < len(df)

    simulator.configure(error_rates={"overloaded_error": 1.0})
    second = bm.retry_failed(first.id, df, client=client, journal=journal, settings=FAST)
    second.wait(30)
    origin = read_origin(journal, second.id)
    assert origin is not None and origin.job_id == first.id
    assert origin.rows.tolist() == np.flatnonzero(failed).tolist()
    assert read_origin(journal, first.id) is None

    simulator.configure(error_rates={})
    third = bm.retry_failed(second.id, df, client=client, journal=journal, settings=FAST)
    third.wait(30)
    origin = read_origin(journal, third.id)
    assert origin is not None and origin.job_id == first.id  # not the retry job's 'rows'
    assert third.status.n_rows == failed.sum()
    assert (df["answer_status"] == "succeeded").all()


def test_an_altered_retry_origin_is_refused_with_its_file(simulator: Any, tmp_path: Any) -> None:
    journal = Journal(tmp_path / "journal")
    client = simulator.client()
    simulator.configure(error_rates={"overloaded_error": 1.0})
    df = pd.DataFrame({"text": [f"row {i}" for i in range(6)]}, index=[0, 0, 1, 1, 2, 2])
    first = bm.submit(df, "{{ text }}", client=client, journal=journal, settings=FAST, max_tokens=20)
    first.wait(30)
    retry = bm.retry_failed(first.id, df, client=client, journal=journal, settings=FAST)
    retry.wait(30)
    path = journal.job_file(retry.id, ORIGIN_FILE)
    path.write_bytes(orjson.dumps({"job": retry.id, "rows": [0]}))
    with pytest.raises(JournalError, match=r"retry origin of job .*retry_of\.json.*this journal was altered"):
        bm.retry_failed(retry.id, df, client=client, journal=journal, settings=FAST)
    path.write_bytes(b"{not json")
    with pytest.raises(JournalError, match=r"retry origin of job .*unreadable"):
        bm.retry_failed(retry.id, df, client=client, journal=journal, settings=FAST)


def test_the_same_retry_again_is_the_job_made_for_it_unless_that_one_left_rows_to_retry(
    simulator: Any, tmp_path: Any
) -> None:
    """A notebook run twice in one folder: its retry cell finds the first run's retry job
    (same rows, same prompts) and makes no new job; a retry whose job failed again is new."""
    journal = Journal(tmp_path / "journal")
    client = simulator.client()

    def frame() -> pd.DataFrame:  # the same data, read again
        return pd.DataFrame({"text": [f"row {i}" for i in range(30)]}, index=[i % 7 for i in range(30)])

    def creates() -> int:
        return sum(1 for r in simulator.requests if r.endpoint == "create")

    simulator.configure(error_rates={"overloaded_error": 0.5})
    df = frame()
    first = bm.submit(df, "{{ text }}", client=client, journal=journal, settings=FAST, max_tokens=20, wait=True)
    assert (df["answer_status"] == "errored").any()
    simulator.configure(error_rates={"overloaded_error": 1.0})
    failing = bm.retry_failed(first.id, df, client=client, journal=journal, settings=FAST)
    failing.wait(30)
    simulator.configure(error_rates={})
    retried = bm.retry_failed(first.id, df, client=client, journal=journal, settings=FAST)
    retried.wait(30)
    assert retried.id != failing.id  # the earlier retry of those rows left them failing
    assert (df["answer_status"] == "succeeded").all()

    again = frame()  # the second run: the first job found again, then its retry
    assert bm.submit(again, "{{ text }}", client=client, journal=journal, settings=FAST, max_tokens=20, wait=True).id == first.id
    assert (again["answer_status"] == "errored").any()
    jobs_before, sent_before = bm.jobs(journal)["job_id"].tolist(), creates()
    found = bm.retry_failed(first.id, again, client=client, journal=journal, settings=FAST)
    found.wait(30)
    assert found.id == retried.id
    assert bm.jobs(journal)["job_id"].tolist() == jobs_before and creates() == sent_before
    assert (again["answer_status"] == "succeeded").all()
    pd.testing.assert_series_equal(again["answer"], df["answer"])
