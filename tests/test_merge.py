"""Results -> columns: joined on custom_id, typed, fanned out, aligned to rows."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from batch_magic.errors import MergeError
from batch_magic.merge import build_columns, merge_into
from batch_magic.plan import SKIPPED
from batch_magic.results import ResultTable
from batch_magic.structured import OutputSpec


def ok(cid, text, inp=10, out=3):
    return {
        "custom_id": cid,
        "result": {
            "type": "succeeded",
            "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": inp, "output_tokens": out},
            },
        },
    }


def errored(cid, kind="overloaded_error"):
    return {
        "custom_id": cid,
        "result": {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": "busy"}}},
    }


def table_from(records, n):
    t = ResultTable.empty(n)
    t.ingest_lines(orjson.dumps(r) + b"\n" for r in records)
    return t


def test_results_join_on_custom_id_not_order_and_fan_out():
    # Results arrive in any order; r1 is shared by rows 1 and 3; row 2 skipped.
    t = table_from([ok("r1", "B"), errored("r2", "invalid_request_error"), ok("r0", "A")], 3)
    rows = np.array([0, 1, SKIPPED, 1, 2])
    cols = build_columns("ans", OutputSpec.text(), t, rows, {2: "text is missing"})
    assert list(cols["ans"]) == ["A", "B", pd.NA, "B", pd.NA]
    assert list(cols["ans_status"]) == ["succeeded", "succeeded", "skipped", "succeeded", "errored"]
    assert cols["ans_error"][4] == "invalid_request_error: busy"
    assert cols["ans_error"][2] == "text is missing"
    assert str(cols["ans_input_tokens"].dtype) == "Int64"
    assert cols["ans_input_tokens"][4] is pd.NA


def test_later_attempt_replaces_earlier_and_retriable_is_by_category():
    t = table_from([errored("r0"), errored("r1", "invalid_request_error"), {"custom_id": "r2", "result": {"type": "expired"}}], 3)
    assert sorted(t.retriable().tolist()) == [0, 2]
    t.ingest_lines([orjson.dumps(ok("r0", "fixed")) + b"\n"])
    assert t.counts()["succeeded"] == 1 and t.answer[0] == "fixed"


def test_labels_become_categorical_and_outsiders_invalid():
    spec = OutputSpec.from_labels("positive,negative,neutral")
    t = table_from([ok("r0", '{"label": "positive"}'), ok("r1", '{"label": "maybe"}')], 2)
    cols = build_columns("s", spec, t, np.array([0, 1]))
    assert list(cols["s"].categories) == ["positive", "negative", "neutral"]
    assert cols["s"][0] == "positive" and pd.isna(cols["s"][1])
    assert cols["s_status"][1] == "invalid"
    assert "maybe" in cols["s_raw"][1]


def test_merge_into_same_object_and_realigned_by_labels():
    df = pd.DataFrame({"t": ["a", "b", "c"]}, index=[10, 20, 30])
    t = table_from([ok("r0", "A"), ok("r1", "B"), ok("r2", "C")], 3)
    cols = build_columns("x", OutputSpec.text(), t, np.array([0, 1, 2]))
    plan_index = df.index.copy()
    shuffled = df.iloc[[2, 0]].copy()  # reordered, one row dropped
    summary = merge_into(shuffled, cols, plan_index, out="x")
    assert summary.aligned_by == "index labels"
    assert shuffled["x"].tolist() == ["C", "A"]
    same = df
    merge_into(same, cols, plan_index, out="x")
    assert same is df and df["x"].tolist() == ["A", "B", "C"]


def test_merge_refuses_when_rows_changed_and_labels_repeat():
    plan_index = pd.Index([1, 1, 2])
    t = table_from([ok("r0", "A")], 1)
    cols = build_columns("x", OutputSpec.text(), t, np.array([0, 0, 0]))
    with pytest.raises(MergeError, match="duplicate labels"):
        merge_into(pd.DataFrame({"t": [1, 2]}, index=[1, 2]), cols, plan_index, out="x")
