"""What a model accepts, asked of the Models API before anything is spent.

Through the Python API and the magic, against the simulator over real HTTP:
the Models API asked once per model and session; unknown, retired and
batchless models refused before any request; a deprecated one warned of;
sampling parameters refused with the reason for the API version the SDK
sends; effort checked; thinking turned off for labels where the model allows
it, else room left for it in ``max_tokens`` (and in the cost bound); the
bundled snapshot for a dry run without a client, which says so.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import anthropic
import orjson
import pandas as pd
import pytest
from IPython.core.error import UsageError

import batch_magic as bm
from _gateway import gateway, model_info
from _jobs import submit as submit_job
from batch_magic import models
from batch_magic.client import BatchClient
from batch_magic.errors import APIError, ConfigError, ModelNotUsableError
from batch_magic.models import AnswerRoomWarning, ModelCard, ModelDeprecationWarning

SENTIMENTS = ["positive", "negative", "neutral"]
ROOT = Path(__file__).resolve().parent.parent


def reviews(n: int = 12) -> pd.DataFrame:
    words = ["I love it", "broken on arrival", "it is fine", "great, thank you", "awful, refund please"]
    return pd.DataFrame({"review": [f"{words[i % len(words)]} (order {i})" for i in range(n)]})


def endpoints(simulator) -> list[str]:
    return [r.endpoint for r in simulator.requests]


def submit(simulator, journal, df=None, **options):
    return submit_job(reviews() if df is None else df, "Sentiment of: {{ review }}", simulator, journal, **options)


# -- the Models API, asked once, before anything else --------------------------------------------
def test_a_job_asks_the_models_api_first_and_once_per_model(simulator, journal):
    job = submit(simulator, journal, labels=SENTIMENTS, out="s")
    job.wait(timeout=60)
    assert endpoints(simulator)[0] == "model"  # before the batch is created
    submit(simulator, journal, labels=SENTIMENTS, out="t").wait(timeout=60)
    assert endpoints(simulator).count("model") == 1  # the second job used the session's answer
    submit(simulator, journal, labels=SENTIMENTS, out="u", model="claude-haiku-4-5").wait(timeout=60)
    assert endpoints(simulator).count("model") == 2  # another model: asked once more


def test_an_unknown_model_is_refused_before_anything_is_sent(simulator, journal):
    simulator.configure(strict_models=["claude-haiku-5-5"])
    with pytest.raises(ModelNotUsableError) as info:
        submit(simulator, journal, model="claude-haiku-9-9")
    message = str(info.value)
    assert "claude-haiku-9-9" in message and "404" in message and "'claude-haiku-5-5'" in message
    assert endpoints(simulator) == ["model"] and simulator.batch_ids() == []
    assert list(journal.records()) == []


def test_an_unknown_model_in_the_magic_is_a_usage_error(ip_sim, simulator):
    simulator.configure(strict_models=["claude-haiku-5-5"])
    ip_sim.user_ns["df"] = reviews()
    with pytest.raises(UsageError, match=r"claude-nova-1.*does not know this model"):
        ip_sim.run_cell("%%batch df --out x --model claude-nova-1\n{{ review }}")
    with pytest.raises(UsageError, match="claude-nova-1"):
        ip_sim.run_cell("%%batch df --out x --model claude-nova-1 --pilot 2\n{{ review }}")
    assert "create" not in endpoints(simulator) and "messages" not in endpoints(simulator)


def test_a_retired_model_is_refused_with_its_date_even_offline(monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ModelNotUsableError) as info:
        bm.dry_run(reviews(), "{{ review }}", model="claude-sonnet-4-0")
    message = str(info.value)
    assert "retired on 2026-06-15" in message and "claude-sonnet-4-0" in message
    assert "'claude-haiku-5-5'" in message


def test_a_retired_model_named_by_the_api_is_refused_before_anything_is_sent(simulator, journal):
    with pytest.raises(ModelNotUsableError, match=r"claude-sonnet-4-0 \(claude-sonnet-4-20250514\) was retired on 2026-06-15"):
        submit(simulator, journal, model="claude-sonnet-4-0")
    assert endpoints(simulator) == ["model"] and list(journal.records()) == []


def test_a_model_without_batches_is_refused(simulator, journal):
    no_batch = {"claude-haiku-4-5": model_info("claude-haiku-4-5", batch=False)}
    with gateway(simulator.url, no_batch) as url:
        client = anthropic.Anthropic(api_key="sk-sim", base_url=url, max_retries=0)
        with pytest.raises(ModelNotUsableError, match=r"does not take Message Batches.*'claude-haiku-5-5'"):
            submit(simulator, journal, model="claude-haiku-4-5", client=client)
    assert "create" not in endpoints(simulator)


def test_a_deprecated_model_runs_with_a_warning_giving_its_retirement_date(simulator, journal, ip_sim, capsys):
    deprecated = {"claude-haiku-4-5": model_info("claude-haiku-4-5", lifecycle="deprecated",
                                                 retires_at="2027-02-01T00:00:00Z")}
    with gateway(simulator.url, deprecated) as url:
        client = anthropic.Anthropic(api_key="sk-sim", base_url=url, max_retries=0)
        with pytest.warns(ModelDeprecationWarning, match=r"claude-haiku-4-5 is deprecated and retires on 2027-02-01"):
            job = submit(simulator, journal, model="claude-haiku-4-5", labels=SENTIMENTS, out="s", client=client)
        df = job.wait(timeout=60)
        assert (df["s_status"] == "succeeded").all()
        # The magic's dry run shows it too.
        ip_sim.user_ns["df"] = reviews()
        ip_sim.run_cell(f"%env ANTHROPIC_BASE_URL={url}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ModelDeprecationWarning)
            ip_sim.run_cell("%%batch df --out s --model claude-haiku-4-5 --dry-run\n{{ review }}")
    shown = capsys.readouterr().out
    assert "warning:   claude-haiku-4-5 is deprecated and retires on 2027-02-01" in shown
    assert "Move to 'claude-haiku-5-5'" in shown


# -- parameters refused before sending ------------------------------------------------------------
@pytest.mark.parametrize("name", ["temperature", "top_p", "top_k"])
def test_sampling_parameters_are_refused_before_anything_is_sent(simulator, journal, name):
    with pytest.raises(ConfigError) as as_option:
        submit(simulator, journal, **{name: 0.2})
    assert f"{name} is not sent" in str(as_option.value) and "effort" in str(as_option.value)
    with pytest.raises(ConfigError) as as_extra:
        submit(simulator, journal, extra_params={name: 0.2})
    message = str(as_extra.value)
    # The version this SDK sends, named with the reason and what to do instead.
    assert "API version 2026-10-21" in message and "errored" in message and "effort='low'" in message
    assert "create" not in endpoints(simulator) and simulator.batch_ids() == []
    assert list(journal.records()) == []


def test_the_reason_follows_the_api_version_the_client_sends(simulator, journal):
    old = anthropic.Anthropic(api_key="sk-sim", base_url=simulator.url, max_retries=0,
                              default_headers={"anthropic-version": "2023-06-01"})
    assert BatchClient(old).api_version == "2023-06-01"
    assert BatchClient(simulator.client()).api_version == "2026-10-21"
    with pytest.raises(ConfigError) as info:
        submit(simulator, journal, client=old, extra_params={"temperature": 0.0})
    message = str(info.value)
    assert "under API version 2023-06-01" in message and "Claude 4.7-or-later" in message
    assert "create" not in endpoints(simulator)


def test_the_magic_refuses_temperature_flags_and_has_no_such_default(ip_sim, simulator):
    ip_sim.user_ns["df"] = reviews()
    for flag in ("--temperature 0.2", "-t 0", "--top-p 0.9", "--temperature=0.5"):
        with pytest.raises(UsageError, match=r"is not sent by batch_magic: .*--effort low"):
            ip_sim.run_cell(f"%%batch df --out x {flag}\n{{{{ review }}}}")
    assert "temperature" not in ip_sim.magics_manager.registry["BatchMagic"].trait_names()
    assert simulator.requests == []


def test_config_temperature_is_ignored_with_the_reason(ip):
    with pytest.warns(UserWarning, match=r"BatchMagic.temperature is ignored: temperature was removed.*effort"):
        ip.run_cell("%config BatchMagic.temperature = 0.2")
    assert "temperature" not in ip.magics_manager.registry["BatchMagic"].trait_names()


def test_a_temperature_in_pyproject_is_ignored_with_the_reason(ip, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.batch_magic]\ntemperature = 0.3\neffort = "low"\n')
    ip.run_cell("%unload_ext batch_magic")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ip.run_cell("%load_ext batch_magic")
    messages = [str(w.message) for w in caught]
    assert any("temperature" in m and "was removed" in m and "effort" in m for m in messages), messages
    assert ip.magics_manager.registry["BatchMagic"].effort == "low"


def test_effort_is_checked_against_the_models_levels(simulator, journal):
    with pytest.raises(ConfigError, match=r"effort='extreme' is not an effort level; use one of low, medium, high, xhigh, max"):
        submit(simulator, journal, effort="extreme")
    with pytest.raises(ConfigError, match=r"effort='low': claude-haiku-4-5 takes no effort setting") as info:
        submit(simulator, journal, effort="low", model="claude-haiku-4-5")
    assert "'claude-haiku-5-5'" in str(info.value)
    with pytest.raises(ConfigError, match=r"claude-opus-4-5 accepts the effort levels low, medium, high\b"):
        submit(simulator, journal, effort="max", model="claude-opus-4-5")
    assert "create" not in endpoints(simulator)


def test_effort_goes_in_output_config_beside_the_schema(simulator, journal):
    job = submit(simulator, journal, labels=SENTIMENTS, out="s", effort="low")
    job.wait(timeout=60)
    params = journal.read_record(job.id).options.shared_params()
    assert params["output_config"]["effort"] == "low"
    assert params["output_config"]["format"]["schema"]["properties"]["label"]["enum"] == SENTIMENTS
    assert job.status.state == "done"


def test_the_magic_takes_effort_from_the_line_and_from_config(ip_sim):
    ip_sim.user_ns["df"] = reviews()
    ip_sim.run_cell("%%batch df --out a --labels positive,negative,neutral --effort low --wait\n{{ review }}")
    ip_sim.run_cell("%config BatchMagic.effort = 'high'")
    ip_sim.run_cell("%%batch df --out b --labels positive,negative,neutral --wait\n{{ review }}")
    magic = ip_sim.magics_manager.registry["BatchMagic"]
    efforts = {j.record.out: j.record.options.effort for j in magic._session_jobs()}
    assert efforts == {"a": "low", "b": "high"}
    with pytest.raises(UsageError, match="effort='extreme' is not an effort level"):
        ip_sim.run_cell("%%batch df --out c --effort extreme\n{{ review }}")


def test_thinking_and_tool_choice_the_model_refuses_are_refused_before_sending(simulator, journal):
    with pytest.raises(ConfigError, match=r"thinking.type='enabled': claude-haiku-5-5 refuses it .*effort instead"):
        submit(simulator, journal, extra_params={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    with pytest.raises(ConfigError, match=r"thinking.type='disabled' with effort='max'"):
        submit(simulator, journal, effort="max", extra_params={"thinking": {"type": "disabled"}})
    # Opus 5.5 always thinks, and a forced tool call cannot go with thinking.
    with pytest.raises(ConfigError, match=r"use_tool: a forced tool call cannot go with thinking"):
        submit(simulator, journal, labels=SENTIMENTS, use_tool=True, model="claude-opus-5-5")
    with pytest.raises(ConfigError, match=r"output_config.format is set by batch_magic"):
        submit(simulator, journal, extra_params={"output_config": {"format": {"type": "json_schema"}}})
    assert "create" not in endpoints(simulator)


# -- room for the answer --------------------------------------------------------------------------
def test_labels_on_the_default_model_turn_thinking_off_and_keep_a_small_budget(simulator, journal):
    df = reviews()
    job = submit(simulator, journal, df, labels=SENTIMENTS, out="s")
    job.wait(timeout=60)
    params = journal.read_record(job.id).options.shared_params()
    assert params["model"] == "claude-haiku-5-5"
    assert params["thinking"] == {"type": "disabled"} and params["max_tokens"] == 64
    assert (df["s_status"] == "succeeded").all() and set(df["s"]) <= set(SENTIMENTS)
    assert (df["s_stop_reason"] == "end_turn").all()


def test_labels_at_xhigh_keep_thinking_on_with_room_for_it_and_answer_every_row(simulator, journal):
    df = reviews()
    prepared = bm.prepare(df, "Sentiment of: {{ review }}", labels=SENTIMENTS, effort="xhigh",
                          client=simulator.client())
    assert prepared.plan.options.thinking is None and prepared.plan.options.max_tokens == 64 + 8192
    assert any("to leave room for thinking" in n for n in prepared.notes)
    # The cost bound counts every request at that max_tokens, thinking included.
    assert prepared.estimate.max_output_tokens == len(df) * (64 + 8192)
    job = submit(simulator, journal, df, labels=SENTIMENTS, out="s", effort="xhigh")
    job.wait(timeout=60)
    assert (df["s_status"] == "succeeded").all() and set(df["s"]) <= set(SENTIMENTS)
    assert (df["s_stop_reason"] != "max_tokens").all()
    # The model did think: every answer starts with a thinking block and bills thinking tokens.
    lines = [orjson.loads(line) for b in journal.read_record(job.id).batches
             for line in journal.results_path(job.id, b.batch_id).read_bytes().splitlines()]
    messages = [line["result"]["message"] for line in lines]
    assert all(m["content"][0]["type"] == "thinking" for m in messages)
    assert all(m["usage"]["output_tokens_details"]["thinking_tokens"] > 0 for m in messages)


def test_a_model_that_always_thinks_gets_room_instead(simulator):
    p = bm.prepare(reviews(), "{{ review }}", labels=SENTIMENTS, model="claude-opus-5-5", client=simulator.client())
    assert p.plan.options.thinking is None and p.plan.options.max_tokens == 64 + 4096
    assert any("it always thinks" in n for n in p.notes)


def test_sonnet_5_5_turns_thinking_off_with_between_tools(simulator):
    p = bm.prepare(reviews(), "{{ review }}", labels=SENTIMENTS, model="claude-sonnet-5-5", client=simulator.client())
    assert p.plan.options.thinking == {"type": "between_tools"} and p.plan.options.max_tokens == 64


def test_free_text_on_a_thinking_model_leaves_room_unless_a_short_answer_is_asked(simulator):
    p = bm.prepare(reviews(), "{{ review }}", effort="medium", client=simulator.client())
    assert p.plan.options.max_tokens == 1024 + 2048 and p.plan.options.thinking is None
    # A given budget below thinking's room asks for a short answer: thinking is turned off.
    short = bm.prepare(reviews(), "{{ review }}", max_tokens=100, client=simulator.client())
    assert short.plan.options.max_tokens == 100 and short.plan.options.thinking == {"type": "disabled"}
    assert any("less than thinking is expected to use" in n for n in short.notes)
    # Where thinking cannot be turned off, the budget is kept and a warning says what may happen.
    with pytest.warns(AnswerRoomWarning, match=r"max_tokens=100 leaves little room for thinking on claude-opus-5-5"):
        kept = bm.prepare(reviews(), "{{ review }}", max_tokens=100, model="claude-opus-5-5",
                          client=simulator.client())
    assert kept.plan.options.max_tokens == 100 and kept.warnings
    old = bm.prepare(reviews(), "{{ review }}", model="claude-haiku-4-5", client=simulator.client())
    assert old.plan.options.max_tokens == 1024 and "thinking" not in old.plan.options.shared_params()


def test_max_tokens_above_the_models_limit_is_refused(simulator, journal):
    with pytest.raises(ConfigError, match=r"max_tokens=200,000 is more than claude-haiku-4-5 allows \(64,000\)"):
        submit(simulator, journal, model="claude-haiku-4-5", max_tokens=200_000)


# -- the snapshot, offline ------------------------------------------------------------------------
def test_an_offline_dry_run_uses_the_snapshot_and_says_so(ip, capsys):
    ip.user_ns["df"] = reviews()
    ip.run_cell("%%batch df --out s --labels positive,negative,neutral --dry-run\n{{ review }}")
    shown = capsys.readouterr().out
    taken = models.load_snapshot().taken
    assert f"model capabilities from the snapshot of {taken} (no client to ask the Models API)" in shown
    assert "thinking off for labels" in shown


def test_a_dry_run_whose_api_cannot_be_reached_falls_back_to_the_snapshot(tmp_path):
    unreachable = anthropic.Anthropic(api_key="sk-x", base_url="http://127.0.0.1:9", max_retries=0)
    p = bm.dry_run(reviews(), "{{ review }}", labels=SENTIMENTS, client=unreachable)
    assert p.model is not None and p.model.source == "snapshot"
    assert any("the Models API could not be asked" in n for n in p.notes)
    with pytest.raises(APIError, match="Could not ask the Models API"):
        bm.submit(reviews(), "{{ review }}", client=unreachable, journal=tmp_path / "j")


def test_the_snapshot_is_dated_and_matches_its_script():
    snap = models.load_snapshot()
    assert snap.taken[:4] == "2026" and snap.get(bm.api.DEFAULT_MODEL) is not None
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_models_snapshot.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_a_card_reads_the_sdk_model_info_shape():
    from anthropic.types import ModelInfo

    info = ModelInfo.model_validate({
        "id": "claude-x-1", "type": "model", "display_name": "X", "created_at": "2026-01-01T00:00:00Z",
        "lifecycle": "deprecated", "retires_at": "2027-03-01T00:00:00Z", "max_tokens": 1000,
        "capabilities": {
            "batch": {"supported": True}, "citations": {"supported": False},
            "code_execution": {"supported": False},
            "context_management": {"supported": False, "clear_thinking_20251015": None,
                                   "clear_tool_uses_20250919": None, "compact_20260112": None},
            "effort": {"supported": True, "low": {"supported": True}, "medium": {"supported": True},
                       "high": {"supported": False}, "max": {"supported": False}},
            "image_input": {"supported": True}, "pdf_input": {"supported": False},
            "server_tools": {"supported": False, "code_execution": {"supported": False},
                             "web_search": {"supported": False}},
            "structured_outputs": {"supported": False},
            "thinking": {"supported": True, "types": {"adaptive": {"supported": True},
                         "between_tools": {"supported": False}, "disabled": {"supported": False},
                         "enabled": {"supported": False}}},
        },
    })
    card = ModelCard.from_api(info.model_dump(mode="json"))
    assert (card.lifecycle, card.retires_on, card.max_tokens) == ("deprecated", "2027-03-01", 1000)
    assert card.effort_levels == ("low", "medium") and not card.structured_outputs
    assert card.thinks_unasked and card.thinking_off("low") is None
    with pytest.warns(ModelDeprecationWarning, match=r"claude-x-1 is deprecated and retires on 2027-03-01"):
        notice = models.check_usable(card, "claude-x-1")
    assert notice is not None and "claude-haiku-5-5" in notice
