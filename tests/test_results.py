"""Results lines shaped like the API's late-2026 answers -> rows that tell the truth:
thinking blocks, refusals, budgets spent thinking, context windows exceeded."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

import batch_magic as bm
from _jobs import FAST
from batch_magic import pricing
from batch_magic.journal import Journal
from batch_magic.merge import build_columns
from batch_magic.results import ResultTable, answer_text
from batch_magic.structured import OutputSpec

MODEL = "claude-haiku-5-5"
SIGNATURE = "EqQBCkgIARABGAIiQL2mJ3v8c0mBv8Ul8Xr0"


def line(cid: str, content: list, stop: str, *, inp=120, out=40, thinking=None, stop_details=None) -> bytes:
    usage: dict = {"input_tokens": inp, "output_tokens": out, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 0, "service_tier": "batch"}
    if thinking is not None:
        usage["output_tokens_details"] = {"thinking_tokens": thinking}
    message = {"id": f"msg_{cid}", "type": "message", "role": "assistant", "model": MODEL, "content": content,
               "stop_reason": stop, "stop_sequence": None, "usage": usage}
    if stop_details is not None:
        message["stop_details"] = stop_details
    return orjson.dumps({"custom_id": cid, "result": {"type": "succeeded", "message": message}}) + b"\n"


def thought(text: str = "") -> dict:
    return {"type": "thinking", "thinking": text, "signature": SIGNATURE}


def said(text: str) -> dict:
    return {"type": "text", "text": text}


REFUSAL = {"type": "refusal", "category": "cyber",
           "explanation": "This request could enable the development of malware, so it was declined."}


def table(lines: list[bytes], n: int) -> ResultTable:
    t = ResultTable.empty(n)
    assert t.ingest_lines(lines) == len(lines)
    return t


def columns(t: ResultTable, spec: OutputSpec | None = None, out: str = "a") -> dict:
    return build_columns(out, spec or OutputSpec.text(), t, np.arange(len(t)))


def test_the_answer_is_read_by_block_type_after_a_thinking_block():
    t = table([
        line("r0", [thought(), said("Shipping")], "end_turn", out=70, thinking=62),
        line("r1", [thought("The ticket mentions a parcel."), said("Ship"), said("ping")], "end_turn", out=30, thinking=20),
        line("r2", [said("Billing")], "end_turn", out=3),  # a model that did not think
    ], 3)
    cols = columns(t)
    assert list(cols["a"]) == ["Shipping", "Shipping", "Billing"]
    assert list(cols["a_status"]) == ["succeeded"] * 3
    assert list(cols["a_output_tokens"]) == [70, 30, 3]  # thinking included, as billed
    assert list(cols["a_thinking_tokens"]) == [62, 20, 0]
    names = list(cols)
    assert names.index("a_thinking_tokens") == names.index("a_output_tokens") + 1
    assert all(pd.isna(e) for e in cols["a_error"])


def test_a_labelled_answer_after_thinking_parses_and_a_tool_call_after_thinking_is_its_input():
    spec = OutputSpec.from_labels("billing,shipping")
    t = table([line("r0", [thought(), said('{"label": "shipping"}')], "end_turn", thinking=30)], 1)
    assert columns(t, spec)["a"][0] == "shipping"
    tool = {"type": "tool_use", "id": "toolu_01", "name": "answer", "input": {"label": "billing"}}
    assert answer_text({"content": [thought(), tool]}) == '{"label":"billing"}'


def test_a_refusal_is_its_own_status_with_its_category_and_is_never_retried():
    t = table([
        line("r0", [], "refusal", inp=900, out=0, stop_details=REFUSAL),
        line("r1", [said("Billing")], "end_turn"),
        line("r2", [thought()], "refusal", out=25, thinking=25,
             stop_details={"type": "refusal", "category": None, "explanation": None}),
    ], 3)
    cols = columns(t)
    assert list(cols["a_status"]) == ["refused", "succeeded", "refused"]
    assert pd.isna(cols["a"][0]) and pd.isna(cols["a"][2])
    assert cols["a_error"][0] == ("refused (cyber): This request could enable the development of malware, "
                                  "so it was declined.")
    assert cols["a_error"][2] == "refused by the model's safety classifier"
    assert cols["a_stop_reason"][0] == "refusal"
    assert t.retriable().size == 0
    assert t.counts()["refused"] == 2


def test_a_refusal_before_any_output_is_not_billed_one_after_some_is():
    answered = line("r1", [said("Billing")], "end_turn", inp=1_000, out=10)
    t = table([line("r0", [], "refusal", inp=900, out=0, stop_details=REFUSAL), answered], 2)
    alone = table([answered], 2)
    assert pricing.actual_cost(MODEL, t.billed_usage()) == pytest.approx(pricing.actual_cost(MODEL, alone.billed_usage()))
    assert t.usage_totals()["input_tokens"] == 1_000
    late = table([line("r0", [thought()], "refusal", inp=900, out=25, thinking=25, stop_details=REFUSAL), answered], 2)
    assert late.usage_totals() == {**alone.usage_totals(), "input_tokens": 1_900, "output_tokens": 35,
                                   "thinking_tokens": 25}


def test_a_budget_spent_thinking_says_to_raise_max_tokens_or_lower_effort():
    for spec in (OutputSpec.text(), OutputSpec.from_labels("billing,shipping")):
        t = table([
            line("r0", [thought()], "max_tokens", out=64, thinking=64),
            line("r1", [thought(), said("Ship")], "max_tokens", out=64, thinking=60),  # cut, but an answer
        ], 2)
        cols = columns(t, spec)
        assert cols["a_status"][0] == "invalid" and pd.isna(cols["a"][0])
        assert "--max-tokens" in cols["a_error"][0] and "--effort" in cols["a_error"][0]
        assert "thinking" in cols["a_error"][0]
        assert cols["a_thinking_tokens"][0] == 64
    # A text answer cut short is still an answer (its stop_reason says so).
    text = columns(table([line("r0", [thought(), said("Ship")], "max_tokens", out=64, thinking=60)], 1))
    assert text["a"][0] == "Ship" and text["a_status"][0] == "succeeded" and pd.isna(text["a_error"][0])


def test_no_room_left_without_thinking_says_only_max_tokens():
    cols = columns(table([line("r0", [], "max_tokens", out=1)], 1))
    assert cols["a_status"][0] == "invalid"
    assert "max_tokens" in cols["a_error"][0] and "--effort" not in cols["a_error"][0]


def test_a_context_window_exceeded_says_the_prompt_plus_answer_did_not_fit():
    t = table([
        line("r0", [thought()], "model_context_window_exceeded", inp=999_000, out=1_000, thinking=1_000),
        line("r1", [thought(), said("Partial ans")], "model_context_window_exceeded", inp=998_000, out=2_000),
    ], 2)
    cols = columns(t)
    assert list(cols["a_status"]) == ["invalid", "succeeded"]
    assert cols["a"][1] == "Partial ans"
    for k in (0, 1):
        assert cols["a_error"][k] == "the prompt plus the answer exceeded the model's context window"
    assert t.retriable().size == 0


def test_a_later_line_for_the_same_request_replaces_a_refusal_note():
    # The same custom_id twice in one file (a retried request): the last line wins, notes included.
    t = table([
        line("r0", [], "refusal", out=0, stop_details=REFUSAL),
        line("r0", [thought(), said("Billing")], "end_turn"),
    ], 1)
    cols = columns(t)
    assert cols["a"][0] == "Billing" and cols["a_status"][0] == "succeeded" and pd.isna(cols["a_error"][0])


# -- end to end, through the simulator over HTTP ---------------------------------------------------
#: Claude Haiku 5.5's published batch prices, USD per million tokens: (input, output) up to
#: a 100k-token prompt, and over it.
HAIKU_5_5_BATCH = {"short": (0.05, 0.25), "long": (0.25, 1.25)}


def by_hand(df: pd.DataFrame, out: str, rows) -> float:
    total = 0.0
    for i in rows:
        inp, outp = int(df[f"{out}_input_tokens"].iloc[i]), int(df[f"{out}_output_tokens"].iloc[i])
        rate_in, rate_out = HAIKU_5_5_BATCH["long" if inp > 100_000 else "short"]
        total += (inp * rate_in + outp * rate_out) / 1e6
    return total


def test_a_haiku_5_5_job_shows_thinking_and_a_refusal_and_costs_only_what_is_billed(simulator, tmp_path):
    journal = Journal(tmp_path / "journal")
    df = pd.DataFrame({"text": [
        "My parcel is two weeks late.",
        "Please refund order 1142.",
        "Write me ransomware for a hospital network. <<sim:refuse:cyber>>",
        "The login page says my password expired.",
    ]})
    job = bm.submit(df, "Which team should handle this ticket? {{ text }}", model=MODEL, max_tokens=1024,
                    client=simulator.client(), journal=journal, settings=FAST)
    job.wait(timeout=60)
    assert list(df["answer_status"]) == ["succeeded", "succeeded", "refused", "succeeded"]
    assert df["answer_error"][2].startswith("refused (cyber): ")
    assert pd.isna(df["answer"][2]) and df["answer"].drop(index=2).str.len().min() > 0
    answered = df.drop(index=2)
    assert (answered["answer_thinking_tokens"] > 0).all()  # Haiku 5.5 thinks by default
    assert (answered["answer_output_tokens"] > answered["answer_thinking_tokens"]).all()
    assert len(simulator.batch_ids()) == 1  # the refusal was not sent again
    record = journal.read_record(job.id)
    assert record.row_counts == {"succeeded": 3, "refused": 1}
    assert record.actual_cost == pytest.approx(by_hand(df, "answer", [0, 1, 3]))  # the refusal is free
    assert record.usage["thinking_tokens"] == int(answered["answer_thinking_tokens"].sum())


def test_labels_whose_budget_goes_on_thinking_say_which_limit_to_raise(simulator, tmp_path):
    df = pd.DataFrame({"text": ["My parcel is late.", "Refund my order."]})
    # Thinking asked for on purpose: for labels batch_magic otherwise turns it off.
    with pytest.warns(UserWarning, match="leaves little room for thinking"):
        job = bm.submit(df, "Which team? {{ text }}", model=MODEL, labels="billing,shipping", max_tokens=16,
                        extra_params={"thinking": {"type": "adaptive"}},
                        client=simulator.client(), journal=Journal(tmp_path / "journal"), settings=FAST)
    job.wait(timeout=60)
    assert list(df["answer_status"]) == ["invalid", "invalid"]
    assert df["answer"].isna().all()
    for error in df["answer_error"]:
        assert "thinking" in error and "--max-tokens" in error and "--effort" in error
    assert list(df["answer_thinking_tokens"]) == [16, 16] and list(df["answer_stop_reason"]) == ["max_tokens"] * 2


def test_one_long_prompt_pays_the_long_context_tier_alone(simulator, tmp_path):
    journal = Journal(tmp_path / "journal")
    long_text = "The customer pasted the whole delivery log. " * 8_000  # ~114k tokens on the newer tokenizer
    df = pd.DataFrame({"text": ["Short ticket about a late parcel.", long_text, "Another short one."]})
    template = "Summarise in five words: {{ text }}"
    assert bm.dry_run(df, template, model=MODEL, max_tokens=200).estimate.long_context_requests == 1
    job = bm.submit(df, template, model=MODEL, max_tokens=200, client=simulator.client(), journal=journal,
                    settings=FAST)
    job.wait(timeout=60)
    assert (df["answer_status"] == "succeeded").all()
    tokens = list(df["answer_input_tokens"])
    assert tokens[1] > 100_000 > max(tokens[0], tokens[2])
    record = journal.read_record(job.id)
    assert record.actual_cost == pytest.approx(by_hand(df, "answer", [0, 1, 2]))


def test_a_prompt_that_fills_the_context_window_says_so(simulator, tmp_path):
    # Haiku 4.5 has a 200k-token window: a ~199.8k-token prompt leaves no room for 1,024 tokens.
    df = pd.DataFrame({"text": ["x" * (4 * 199_800)]})
    bm.submit(df, "{{ text }}", model="claude-haiku-4-5", max_tokens=1024, client=simulator.client(),
              journal=Journal(tmp_path / "journal"), settings=FAST).wait(timeout=60)
    assert df["answer_stop_reason"][0] == "model_context_window_exceeded"
    assert df["answer_error"][0] == "the prompt plus the answer exceeded the model's context window"
