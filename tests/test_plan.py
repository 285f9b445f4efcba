"""Planning: skipped rows, deduplication, custom_ids, batch limits, fingerprints."""

from __future__ import annotations

import re

import numpy as np
import orjson
import pandas as pd
import pytest

from batch_magic import plan as plan_mod
from batch_magic.client import create_body_columns
from batch_magic.errors import PlanError
from batch_magic.plan import (
    SKIPPED,
    RequestOptions,
    build_plan,
    custom_ids,
    new_id_tag,
    request_number,
)
from batch_magic.template import Template

OPTS = RequestOptions(model="claude-haiku-4-5", max_tokens=16)


def test_missing_rows_are_skipped_and_duplicates_sent_once():
    df = pd.DataFrame(
        {"text": ["a", None, "b", "a", "  ", pd.NA, "b"]},
        index=["x", "x", "y", "z", "z", "z", "q"],  # duplicate labels on purpose
    )
    p = build_plan(df, Template.compile("Q: {{ text }}"), OPTS)
    assert p.prompts == ["Q: a", "Q: b"]
    assert p.row_requests.tolist() == [0, SKIPPED, 1, 0, SKIPPED, SKIPPED, 1]
    assert (p.n_skipped, p.n_deduplicated) == (3, 2)
    assert p.skip_reasons[1] == "text is missing"


def test_custom_ids_are_valid_for_any_index():
    idx = pd.MultiIndex.from_tuples([(pd.Timestamp("2024-01-01"), "a b/c")] * 3)
    df = pd.DataFrame({"t": ["1", "2", "3"]}, index=idx)
    p = build_plan(df, Template.compile("{{ t }}"), OPTS)
    tag = new_id_tag()
    body = orjson.loads(
        create_body_columns(OPTS.shared_params(), custom_ids(range(len(p.prompts)), tag), p.prompts)
    )
    ids = [r["custom_id"] for r in body["requests"]]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids)
    assert len(set(ids)) == 3
    assert [request_number(i) for i in ids] == [0, 1, 2]
    assert request_number("r7") == 7  # journals written before tags existed


def test_batches_split_by_count_and_by_bytes(monkeypatch):
    df = pd.DataFrame({"t": [f"row {i} " + "x" * 200 for i in range(1000)]})
    p = build_plan(df, Template.compile("{{ t }}"), OPTS, chunk_size=300)
    assert [len(b) for b in p.batches] == [300, 300, 300, 100]
    # Shrink the byte limit: each batch must still serialise under it.
    monkeypatch.setattr(plan_mod, "MAX_BATCH_BYTES", 60_000)
    monkeypatch.setattr(plan_mod, "BATCH_BYTES_MARGIN", 0)
    p = build_plan(df, Template.compile("{{ t }}"), OPTS)
    shared = OPTS.shared_params()
    assert len(p.batches) > 1
    covered = []
    for b in p.batches:
        body = create_body_columns(shared, custom_ids(b, new_id_tag()), [p.prompts[k] for k in b])
        assert len(body) <= 60_000
        covered.extend(b)
    assert covered == list(range(1000))


def test_request_bytes_is_exact():
    prompts = ['plain', 'quotes " and \\ and é and \n', "🙂" * 3]
    sizes = plan_mod.request_bytes(OPTS.shared_params(), prompts)
    tag = new_id_tag()
    body = create_body_columns(OPTS.shared_params(), custom_ids(range(len(prompts)), tag), prompts)
    # envelope: {"requests":[ ... ]} minus the last comma
    assert int(sizes.sum()) - 1 + len(b'{"requests":[]}') == len(body)


def test_fingerprint_changes_with_any_parameter_or_prompt():
    df = pd.DataFrame({"t": ["a", "b"]})
    t = Template.compile("{{ t }}")
    base = build_plan(df, t, OPTS).fingerprint
    assert build_plan(df, t, OPTS).fingerprint == base
    assert build_plan(df, t, RequestOptions("claude-haiku-4-5", 17)).fingerprint != base
    assert build_plan(df, Template.compile("{{ t }}!"), OPTS).fingerprint != base
    assert build_plan(df.iloc[::-1], t, OPTS).fingerprint != base


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, "max_tokens=0"),
        ({"model": ""}, "model=''"),
    ],
)
def test_bad_options_fail_with_the_value(kwargs, message):
    opts = RequestOptions(**{"model": "claude-haiku-4-5", "max_tokens": 5, **kwargs})
    with pytest.raises(PlanError, match=re.escape(message)):
        build_plan(pd.DataFrame({"t": ["a"]}), Template.compile("{{ t }}"), opts)


def test_all_rows_missing_is_an_error_before_sending():
    with pytest.raises(PlanError, match="All 2 rows were skipped"):
        build_plan(pd.DataFrame({"t": [None, ""]}), Template.compile("{{ t }}"), OPTS)


def test_row_requests_are_compact():
    df = pd.DataFrame({"t": [str(i % 7) for i in range(1000)]})
    p = build_plan(df, Template.compile("{{ t }}"), OPTS)
    assert p.n_requests == 7 and p.row_requests.dtype == np.int64


def test_templates_read_named_index_levels_and_a_column_wins_over_a_level():
    df = pd.DataFrame(
        {"text": ["a", "b", "c"]},
        index=pd.MultiIndex.from_tuples([("p1", "eu"), ("p2", "us"), (None, "us")], names=["product", "region"]),
    )
    p = build_plan(df, Template.compile("{{ product }}/{{ region }}: {{ text }}"), OPTS)
    assert p.prompts == ["p1/eu: a", "p2/us: b"]
    assert p.skip_reasons == {2: "product is missing"}  # a missing level value skips the row like a column's
    # row['...'] and whole-row templates see the levels too.
    p = build_plan(df, Template.compile("{{ row['region'] }} {{ text }}"), OPTS)
    assert p.prompts[0] == "eu a"
    p = build_plan(df, Template.compile("{% for k in ['product', 'text'] %}{{ row[k] }}{% endfor %}"), OPTS)
    assert p.prompts[:2] == ["p1a", "p2b"]
    # A column of the same name as a level wins.
    df["region"] = ["north", "south", "west"]
    p = build_plan(df, Template.compile("{{ region }}"), OPTS)
    assert p.prompts == ["north", "south", "west"]


def test_an_unknown_name_lists_columns_and_index_levels():
    from batch_magic.errors import TemplateError

    df = pd.DataFrame({"text": ["a"]}, index=pd.Index(["p1"], name="product"))
    with pytest.raises(TemplateError, match=r"Columns: 'text'\. Index levels: 'product'\."):
        build_plan(df, Template.compile("{{ sku }}"), OPTS)
    with pytest.raises(TemplateError, match=r"df.index.name = 'sku' \(or df = df.rename_axis\('sku'\)\)"):
        build_plan(df.reset_index(drop=True), Template.compile("{{ sku }}"), OPTS)
