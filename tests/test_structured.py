"""Labels, schemas and JSON answers: what is sent, how answers become typed columns.

Unit tests of ``OutputSpec`` first, then whole jobs through the Python API
against the simulator (structured outputs, the forced-tool fallback, answers
that do not fit).
"""

from __future__ import annotations

import json
from typing import Literal

import anthropic
import numpy as np
import orjson
import pandas as pd
import pydantic
import pytest

import batch_magic as bm
from _gateway import gateway, model_info
from _jobs import FAST
from batch_magic.answers import load_json_object, strip_fences
from batch_magic.api import prepare
from batch_magic.errors import ConfigError
from batch_magic.merge import build_columns
from batch_magic.results import ResultTable
from batch_magic.schemas import api_schema
from batch_magic.simulator.schema import Cues, fake_value
from batch_magic.structured import OutputSpec

SENTIMENTS = ["positive", "negative", "neutral"]

TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "shipping", "technical", "account", "returns"]},
        "urgent": {"type": "boolean"},
        "order_number": {"type": ["string", "null"]},
        "items": {"type": "integer", "minimum": 0},
        "confidence": {"type": "number"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "customer": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
    "required": ["category", "urgent", "items"],
}


def table_of(answers: list[str | None]) -> ResultTable:
    """A result table where every non-None answer succeeded (as text)."""
    records = []
    for k, text in enumerate(answers):
        if text is None:
            result = {"type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": "x"}}}
        else:
            result = {
                "type": "succeeded",
                "message": {
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 5, "output_tokens": 5},
                },
            }
        records.append({"custom_id": f"r{k}", "result": result})
    t = ResultTable.empty(len(answers))
    t.ingest_lines(orjson.dumps(r) + b"\n" for r in records)
    return t


def columns_for(spec: OutputSpec, answers: list[str | None], out: str = "x") -> dict:
    rows = np.arange(len(answers))
    return build_columns(out, spec, table_of(answers), rows)


# -- labels ------------------------------------------------------------------------------------
def test_labels_from_a_list_or_a_string_are_the_same_enum_schema():
    a = OutputSpec.from_labels(["positive", "negative", "neutral"])
    b = OutputSpec.from_labels("positive, negative,neutral")
    assert a == b
    schema = a.json_schema()
    assert schema["properties"]["label"]["enum"] == SENTIMENTS
    assert schema["required"] == ["label"] and schema["additionalProperties"] is False
    assert OutputSpec.from_labels(pd.Series(["a", "b"])).labels == ("a", "b")


@pytest.mark.parametrize(
    "labels, fragment",
    [("positive", "at least two"), (["a", "a", "b"], "repeats 'a'"), ({"a": 1, "b": 2}, "list of labels"), (5, "list of labels")],
)
def test_bad_labels_are_refused_with_what_to_do(labels, fragment):
    with pytest.raises(ConfigError, match=fragment):
        OutputSpec.from_labels(labels)


def test_label_outside_the_set_is_missing_with_status_invalid_and_raw_kept():
    spec = OutputSpec.from_labels(SENTIMENTS)
    answers = ['{"label":"positive"}', '{"label":"furious"}', "neutral", '"Negative."', "I cannot tell", None]
    cols = columns_for(spec, answers)
    assert isinstance(cols["x"].dtype, pd.CategoricalDtype)
    assert list(cols["x"].categories) == SENTIMENTS
    assert [None if pd.isna(v) else v for v in cols["x"]] == [
        "positive", None, "neutral", "negative", None, None,
    ]
    assert list(cols["x_status"]) == ["succeeded", "invalid", "succeeded", "succeeded", "invalid", "errored"]
    assert cols["x_raw"][1] == '{"label":"furious"}' and cols["x_raw"][4] == "I cannot tell"
    assert pd.isna(cols["x_raw"][0])
    assert "not one of the labels" in cols["x_error"][1]


def test_labels_that_differ_only_in_case_are_not_guessed():
    spec = OutputSpec.from_labels(["Yes", "yes", "no"])
    cols = columns_for(spec, ["YES", "yes", "No"])
    assert list(cols["x_status"]) == ["invalid", "succeeded", "succeeded"]


# -- schemas: checking and normalising --------------------------------------------------------
def test_schema_is_normalised_for_the_api_and_the_original_kept():
    original = json.loads(json.dumps(TICKET_SCHEMA))
    spec = OutputSpec.from_schema(TICKET_SCHEMA)
    assert original == TICKET_SCHEMA  # the caller's dict is not touched
    assert spec.schema == original  # the journal records what the user gave
    sent = spec.json_schema()
    assert sent["additionalProperties"] is False
    assert sent["properties"]["customer"]["additionalProperties"] is False
    assert sent["required"] == ["category", "urgent", "items"]
    # A type list becomes anyOf; constraints the API does not enforce go into words.
    assert sent["properties"]["order_number"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert sent["properties"]["items"]["type"] == "integer"
    assert "minimum" not in sent["properties"]["items"]
    assert "minimum: 0" in sent["properties"]["items"]["description"]


def test_api_schema_keeps_defs_and_refs_and_turns_one_of_into_any_of():
    schema = {
        "type": "object",
        "$defs": {"P": {"type": "object", "properties": {"x": {"type": "string", "maxLength": 5}}}},
        "properties": {
            "p": {"$ref": "#/$defs/P"},
            "v": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "email"}]},
            "w": {"type": "string", "format": "color"},
        },
    }
    sent = api_schema(schema)
    assert sent["$defs"]["P"]["additionalProperties"] is False
    assert sent["$defs"]["P"]["properties"]["x"]["description"] == "{maxLength: 5}"
    assert sent["properties"]["p"] == {"$ref": "#/$defs/P"}
    assert sent["properties"]["v"] == {"anyOf": [{"type": "integer"}, {"type": "string", "format": "email"}]}
    assert sent["properties"]["w"] == {"type": "string", "description": '{format: "color"}'}


@pytest.mark.parametrize(
    "schema, fragment",
    [
        ("{'type': 'object'}", "is a string"),
        ([{"type": "string"}], "give a JSON-schema dict"),
        ({"type": "array", "items": {"type": "string"}}, "top level has type 'array'"),
        ({"type": "object", "properties": {}}, "no properties"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "requires 'b'"),
        ({"type": "object", "properties": {"status": {"type": "string"}}}, "row status; rename the field"),
        ({"type": "object", "properties": {"a": "string"}}, "each property must be a schema"),
        ({"type": "object", "properties": {"a": {"type": "str"}}}, r"at \$\.properties\.a\.type"),
        ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}, "only local references"),
        ({"type": "object", "properties": {"a": {"type": "object", "additionalProperties": {"type": "integer"}}}}, "free-form mapping"),
        ({"type": "object", "properties": {"a": {"description": "anything"}}}, "says nothing about its value's type"),
    ],
)
def test_bad_schemas_are_refused_up_front_quoting_the_bad_part(schema, fragment):
    with pytest.raises(ConfigError, match=fragment):
        OutputSpec.from_schema(schema)


def test_every_keyword_is_checked_with_the_path_and_reason():
    spec = OutputSpec.from_schema({
        "type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
    })
    cols = columns_for(spec, ['{"tags": ["a", "b"]}', '{"tags": ["a", "a"]}'])
    assert list(cols["x_status"]) == ["succeeded", "invalid"]
    assert cols["x_error"][1] == "$.tags: ['a', 'a'] has non-unique elements"


# -- schemas: parsing --------------------------------------------------------------------------
def test_schema_answers_become_one_typed_column_per_field():
    spec = OutputSpec.from_schema(TICKET_SCHEMA)
    good = {
        "category": "shipping", "urgent": False, "order_number": "NW-1", "items": 2,
        "confidence": 0.75, "keywords": ["late", "parcel"], "customer": {"name": "Ada"},
    }
    answers = [
        json.dumps(good),
        "```json\n" + json.dumps({**good, "order_number": None, "items": 3.0}) + "\n```",
        json.dumps({**good, "items": "two"}),
        "Sorry, I can't help with that.",
        json.dumps([good]),
        None,
    ]
    cols = columns_for(spec, answers, out="t")
    assert str(cols["t_category"].dtype) == "category"
    assert list(cols["t_category"].categories) == ["billing", "shipping", "technical", "account", "returns"]
    assert str(cols["t_urgent"].dtype) == "boolean"
    assert str(cols["t_order_number"].dtype) == "string"
    assert str(cols["t_items"].dtype) == "Int64"
    assert str(cols["t_confidence"].dtype) == "Float64"
    assert cols["t_keywords"].dtype == object and cols["t_customer"].dtype == object
    assert list(cols["t_status"]) == ["succeeded", "succeeded", "invalid", "invalid", "invalid", "errored"]
    assert cols["t_items"][0] == 2 and cols["t_items"][1] == 3
    assert cols["t_order_number"][0] == "NW-1" and pd.isna(cols["t_order_number"][1])
    assert cols["t_keywords"][0] == ["late", "parcel"] and cols["t_customer"][0] == {"name": "Ada"}
    # Invalid rows: fields missing, the reason given, the raw JSON kept in {out}.
    assert pd.isna(cols["t_items"][2]) and pd.isna(cols["t_category"][2])
    assert "items" in cols["t_error"][2]
    assert "not valid JSON" in cols["t_error"][3]
    assert "not an object" in cols["t_error"][4]
    assert cols["t"][2] == answers[2] and cols["t"][0] == answers[0]
    assert str(cols["t"].dtype) == "string"


def test_pydantic_model_gives_the_schema_and_judges_each_row():
    class Address(pydantic.BaseModel):
        city: str

    class Ticket(pydantic.BaseModel):
        category: Literal["billing", "shipping"]
        items: int = pydantic.Field(ge=0)
        refund: bool
        amount: float | None = None
        address: Address

    spec = OutputSpec.from_schema(Ticket)
    assert [f.name for f in spec.fields()] == ["category", "items", "refund", "amount", "address"]
    assert spec.json_schema()["$defs"]["Address"]["additionalProperties"] is False
    cols = columns_for(spec, [
        '{"category":"billing","items":1,"refund":true,"address":{"city":"Oslo"}}',
        '{"category":"billing","items":-1,"refund":true,"address":{"city":"Oslo"}}',
        '{"category":"billing","items":1,"refund":true,"address":{}}',
    ])
    assert list(cols["x_status"]) == ["succeeded", "invalid", "invalid"]
    assert "items" in cols["x_error"][1] and "greater than or equal to 0" in cols["x_error"][1]
    assert "address.city" in cols["x_error"][2]
    assert cols["x_address"][0] == {"city": "Oslo"} and pd.isna(cols["x_amount"][0])
    # The model, not the dict schema, judges rows even for a spec rebuilt from the
    # journal's record in this process (what a BatchJob does).
    rebuilt = OutputSpec(kind="schema", schema=spec.schema)
    again = columns_for(rebuilt, ['{"category":"billing","items":-1,"refund":true,"address":{"city":"Oslo"}}'])
    assert "greater than or equal to 0" in again["x_error"][0]


def test_pydantic_instance_or_v1_style_objects_are_refused():
    class M(pydantic.BaseModel):
        a: int

    with pytest.raises(ConfigError, match="pass the class itself"):
        OutputSpec.from_schema(M(a=1))


def test_json_mode_takes_the_union_of_keys_and_types_them():
    spec = OutputSpec.json()
    assert spec.json_schema() is None  # nothing constrains a JSON-mode answer
    answers = [
        '{"name":"Ada","age":36,"vip":true,"score":1}',
        '```json\n{"name":"Bob","age":41,"score":2.5,"tags":["x"],"status":"gold"}\n```',
        "not json",
        '{"name": null}',
    ]
    cols = columns_for(spec, answers, out="j")
    assert str(cols["j_name"].dtype) == "string"
    assert str(cols["j_age"].dtype) == "Int64"
    assert str(cols["j_vip"].dtype) == "boolean"
    assert str(cols["j_score"].dtype) == "Float64"
    assert cols["j_tags"][1] == ["x"]
    assert cols["j_field_status"][1] == "gold"  # would clash with j_status
    assert list(cols["j_status"]) == ["succeeded", "succeeded", "invalid", "succeeded"]
    assert cols["j_age"][1] == 41 and pd.isna(cols["j_age"][0]) is False


def test_fences_and_json_loading():
    assert strip_fences('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_fences("```\n[1]\n```") == "[1]"
    assert strip_fences('  {"a": 1} ') == '{"a": 1}'
    assert load_json_object('{"a": 1}') == ({"a": 1}, None)
    assert load_json_object("")[1] == "the answer is empty"


def test_the_capabilities_choose_structured_outputs_or_a_forced_tool(simulator):
    df = pd.DataFrame({"t": ["good", "bad"]})
    new = prepare(df, "{{ t }}", labels=SENTIMENTS, model="claude-haiku-4-5", client=simulator.client())
    params = new.plan.options.shared_params()
    assert params["output_config"]["format"]["schema"]["properties"]["label"]["enum"] == SENTIMENTS
    assert "tools" not in params
    # The same id, reported by the Models API without structured outputs: a forced tool call.
    older = {"claude-haiku-4-5": model_info("claude-haiku-4-5", structured_outputs=False)}
    with gateway(simulator.url, older) as url:
        client = anthropic.Anthropic(api_key="sk-sim", base_url=url, max_retries=0)
        old = prepare(df, "{{ t }}", schema=TICKET_SCHEMA, model="claude-haiku-4-5", client=client)
        text = prepare(df, "{{ t }}", model="claude-haiku-4-5", client=client)
    params = old.plan.options.shared_params()
    assert "output_config" not in params and params["tool_choice"] == {"type": "tool", "name": "answer"}
    assert params["tools"][0]["input_schema"]["properties"]["category"]["enum"][0] == "billing"
    assert "forced tool call" in repr(old)
    free = text.plan.options.shared_params()
    assert "tools" not in free and "output_config" not in free  # free text needs neither


def test_prepare_takes_one_output_shape_only():
    df = pd.DataFrame({"t": ["a"]})
    with pytest.raises(ConfigError, match="only one of labels, schema and json"):
        prepare(df, "{{ t }}", labels=SENTIMENTS, json=True)
    with pytest.raises(ConfigError, match="only one of"):
        prepare(df, "{{ t }}", labels=SENTIMENTS, schema=TICKET_SCHEMA)
    assert prepare(df, "{{ t }}", json=True).spec.kind == "json"
    assert prepare(df, "{{ t }}", schema=OutputSpec.json()).spec.kind == "json"


# -- whole jobs against the simulator ----------------------------------------------------------
def run(df, template, simulator, journal, **kwargs):
    kwargs.setdefault("max_tokens", 200)
    job = bm.submit(df, template, client=simulator.client(max_retries=0), journal=journal, settings=FAST, **kwargs)
    job.wait(timeout=120)
    return job


def thousand_reviews() -> pd.DataFrame:
    words = ["I love it, excellent", "terrible, broken and late", "it is okay I guess", "great value", "awful support"]
    texts = [f"Review {i}: {words[i % len(words)]}." for i in range(1000)]
    texts[10] = None  # skipped
    texts[20] = texts[21]  # deduplicated
    return pd.DataFrame({"review": pd.array(texts, dtype="string")}, index=[f"id{i % 400}" for i in range(1000)])


def test_labels_job_over_1000_rows_gives_only_the_labels_or_missing_with_status(simulator, journal):
    df = thousand_reviews()

    def responder(params):
        text = params["messages"][-1]["content"]
        if "Review 7" in text:  # Review 7, 70-79, 700-799: the model goes off script
            return "It's hard to say; probably mixed."
        schema = params["output_config"]["format"]["schema"]
        return json.dumps(fake_value(schema, Cues(text)))

    simulator.configure(responder=responder)
    job = run(df, "Classify the sentiment of this review: {{ review }}", simulator, journal,
              out="sentiment", labels=SENTIMENTS)
    assert job.status.state == "done"
    col = df["sentiment"]
    assert isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == SENTIMENTS
    assert set(col.dropna().unique()) <= set(SENTIMENTS)
    assert set(col.dropna().unique()) == set(SENTIMENTS)  # the fake model uses all three here
    status = df["sentiment_status"]
    assert set(status.unique()) == {"succeeded", "invalid", "skipped"}
    # Missing exactly where the status says why.
    assert (col.isna() == status.isin(["invalid", "skipped"])).all()
    off_script = df["review"].str.contains("Review 7", na=False)
    assert (status[off_script] == "invalid").all() and off_script.sum() == 111
    assert (df.loc[off_script, "sentiment_raw"] == "It's hard to say; probably mixed.").all()
    assert df["sentiment_error"][status == "invalid"].str.contains("not one of the labels").all()
    assert status.iloc[10] == "skipped"


def test_labels_job_with_the_plain_fake_model_answers_every_row_with_a_label(simulator, journal):
    df = bm.load_tickets()
    run(df, "Sentiment of: {{ text }}", simulator, journal, out="s", labels=list(bm.datasets.SENTIMENTS))
    sent = df["text"].notna()
    assert (df.loc[sent, "s_status"] == "succeeded").all()
    assert df.loc[sent, "s"].notna().all()
    assert list(df["s"].cat.categories) == list(bm.datasets.SENTIMENTS)


def test_schema_job_yields_one_typed_column_per_field(simulator, journal):
    df = bm.load_tickets().head(40).copy()
    job = run(df, "Extract from this support ticket: {{ text }}", simulator, journal, out="t", schema=TICKET_SCHEMA)
    assert job.status.state == "done"
    dtypes = {c: str(df[c].dtype) for c in df.columns if c.startswith("t_")}
    assert dtypes["t_category"] == "category"
    assert dtypes["t_urgent"] == "boolean"
    assert dtypes["t_order_number"] == "string"
    assert dtypes["t_items"] == "Int64"
    assert dtypes["t_confidence"] == "Float64"
    assert dtypes["t_keywords"] == "object" and dtypes["t_customer"] == "object"
    sent = df["text"].notna()
    assert (df.loc[sent, "t_status"] == "succeeded").all()
    assert df.loc[sent, "t_category"].notna().all() and df.loc[sent, "t_urgent"].notna().all()
    assert all(isinstance(v, list) for v in df.loc[sent, "t_keywords"])
    # The main column keeps the answer's JSON text.
    first = df.loc[sent, "t"].iloc[0]
    assert json.loads(first)["category"] == df.loc[sent, "t_category"].iloc[0]


def test_schema_job_through_a_forced_tool_on_a_model_without_structured_outputs(simulator, journal):
    df = bm.load_tickets().head(15).copy()
    older = {"claude-haiku-4-5": model_info("claude-haiku-4-5", structured_outputs=False)}
    with gateway(simulator.url, older) as url:
        client = anthropic.Anthropic(api_key="sk-sim", base_url=url, max_retries=0)
        job = bm.submit(df, "Ticket: {{ text }}", out="t", schema=TICKET_SCHEMA, model="claude-haiku-4-5",
                        max_tokens=200, client=client, journal=journal, settings=FAST)
        job.wait(timeout=120)
    params = journal.read_record(job.id).options.shared_params()
    assert params["tool_choice"] == {"type": "tool", "name": "answer"} and "output_config" not in params
    sent = df["text"].notna()
    assert (df.loc[sent, "t_status"] == "succeeded").all()
    assert (df.loc[sent, "t_stop_reason"] == "tool_use").all()
    assert str(df["t_items"].dtype) == "Int64" and df.loc[sent, "t_items"].notna().all()


def test_pydantic_schema_job_and_rows_the_model_rejects(simulator, journal):
    class Refund(pydantic.BaseModel):
        wants_refund: bool
        amount: float = pydantic.Field(ge=0)

    def responder(params):
        text = params["messages"][-1]["content"]
        if "refund" in text.lower():
            return '{"wants_refund": true, "amount": -5}'  # breaks ge=0
        return '{"wants_refund": false, "amount": 0}'

    simulator.configure(responder=responder)
    df = pd.DataFrame({"text": ["I want a refund now", "Thanks, all good", "where is my parcel"]})
    job = run(df, "{{ text }}", simulator, journal, out="r", schema=Refund)
    assert job.status.state == "done"  # invalid rows never fail the job
    assert list(df["r_status"]) == ["invalid", "succeeded", "succeeded"]
    assert "amount" in df["r_error"][0]
    assert str(df["r_wants_refund"].dtype) == "boolean" and str(df["r_amount"].dtype) == "Float64"
    assert pd.isna(df["r_amount"][0]) and df["r_amount"][1] == 0.0


def test_json_mode_job_parses_fenced_free_json(simulator, journal):
    def responder(params):
        assert "output_config" not in params and "tools" not in params
        text = params["messages"][-1]["content"]
        n = len(text)
        if "broken" in text:
            return "Here you go: {oops"
        return f'```json\n{{"length": {n}, "shouty": {str(text.isupper()).lower()}}}\n```'

    simulator.configure(responder=responder)
    df = pd.DataFrame({"text": ["HELLO", "quiet words", "broken one"]})
    job = run(df, "{{ text }}", simulator, journal, out="j", schema=OutputSpec.json())
    assert job.status.state == "done"
    assert list(df["j_status"]) == ["succeeded", "succeeded", "invalid"]
    assert str(df["j_length"].dtype) == "Int64" and list(df["j_length"][:2]) == [5, 11]
    assert str(df["j_shouty"].dtype) == "boolean" and df["j_shouty"][0]


def test_journalled_schema_is_the_users_and_the_fields_survive_reattach(simulator, journal):
    df = pd.DataFrame({"text": ["late parcel, urgent", "billing question"]})
    job = run(df, "{{ text }}", simulator, journal, out="t", schema=TICKET_SCHEMA)
    record = journal.read_record(job.id)
    assert record.output.schema == TICKET_SCHEMA
    again = bm.attach(job.id, journal=journal)
    cols = again.wait(timeout=30)
    assert str(cols["t_items"].dtype) == "Int64" and str(cols["t_category"].dtype) == "category"
    assert list(cols["t_status"]) == ["succeeded", "succeeded"]
