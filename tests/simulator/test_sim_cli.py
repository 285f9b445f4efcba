"""The simulator as a command, driven by clients that know nothing of batch_magic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from sim_helpers import Cli

SCRIPT = Path(__file__).with_name("sdk_only_script.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli() -> Iterator[Cli]:
    c = Cli("--processing-time", "2")
    yield c
    if c.proc.poll() is None:
        c.stop()


def run_script(python: str | Path, url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="sk-sim-anything")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, cwd=SCRIPT.parent
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_run(report: dict) -> None:
    assert report["ok"] and report["ids"] == ["row-0", "row-1", "row-2"]
    polls = report["polls"]
    assert polls[-1] == ["ended", 0, 3]
    assert len(polls) >= 2, "the batch should have been seen in progress at least once"
    assert all(p == ["in_progress", 3, 0] for p in polls[:-1])


def test_banner_names_the_url_and_the_env_vars(cli: Cli) -> None:
    text = "".join(cli.banner)
    assert f"ANTHROPIC_BASE_URL={cli.url}" in text
    assert "ANTHROPIC_API_KEY=sk-sim-anything" in text


def test_a_client_that_imports_only_anthropic(cli: Cli) -> None:
    check_run(run_script(sys.executable, cli.url))


def test_sigterm_and_ctrl_c_exit_cleanly() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        c = Cli()
        code, out, err = c.stop(sig)
        assert code == 0 and "stopped" in out
        assert "Traceback" not in err


def test_binds_loopback_only(cli: Cli) -> None:
    assert cli.url.startswith("http://127.0.0.1:")


def test_bad_options_exit_with_a_message() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batch_magic.simulator", "--port", "0", "--error-rate", "nonsense=0.5"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2 and "unknown error category 'nonsense'" in done.stderr


def test_cli_options_reach_the_server() -> None:
    c = Cli("--processing-time", "0", "--error-rate", "overloaded_error=1", "--fault", "create:429:1", "--seed", "7")
    try:
        client = anthropic.Anthropic(api_key="k", base_url=c.url, max_retries=1)
        batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": {
            "model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}}])
        [r] = list(client.messages.batches.results(batch.id))
        assert r.result.type == "errored" and r.result.error.error.type == "overloaded_error"
    finally:
        c.stop()


def test_state_survives_a_killed_simulator(tmp_path: Path) -> None:
    c = Cli("--state", str(tmp_path), "--processing-time", "0")
    client = anthropic.Anthropic(api_key="k", base_url=c.url, max_retries=0)
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}}])
    before = [r.to_json() for r in client.messages.batches.results(batch.id)]
    c.stop(signal.SIGKILL)  # dies without any chance to save
    c2 = Cli("--state", str(tmp_path))
    try:
        client2 = anthropic.Anthropic(api_key="k", base_url=c2.url, max_retries=0)
        assert client2.messages.batches.retrieve(batch.id).processing_status == "ended"
        assert [r.to_json() for r in client2.messages.batches.results(batch.id)] == before
    finally:
        c2.stop()


@pytest.mark.slow
def test_an_anthropic_0x_client(cli: Cli, sdk0_python: Path) -> None:
    report = run_script(sdk0_python, cli.url)
    assert report["sdk"].startswith("0.")
    check_run(report)


def test_model_policy_and_rate_flags_reach_the_server() -> None:
    c = Cli("--processing-time", "0", "--strict-models", "--refusal-rate", "1", "--invalid-rate", "1")
    try:
        client = anthropic.Anthropic(api_key="k", base_url=c.url, max_retries=0)
        with pytest.raises(anthropic.NotFoundError, match="model: claude-nova-9"):
            client.messages.create(model="claude-nova-9", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        msg = client.messages.create(model="claude-haiku-5-5", max_tokens=500, messages=[{"role": "user", "content": "x"}])
        assert msg.stop_reason == "refusal" and msg.stop_details is not None
    finally:
        c.stop()
    c = Cli("--strict-models", "claude-haiku-4-5,claude-opus-5", "--invalid-rate", "1")
    try:
        client = anthropic.Anthropic(api_key="k", base_url=c.url, max_retries=0)
        assert [m.id for m in client.models.list()] == ["claude-opus-5", "claude-haiku-4-5-20251001"]
        schema = {"type": "object", "properties": {"label": {"enum": ["a", "b"]}}, "required": ["label"],
                  "additionalProperties": False}
        msg = client.messages.create(model="claude-haiku-4-5", max_tokens=100,
                                     messages=[{"role": "user", "content": "x"}],
                                     output_config={"format": {"type": "json_schema", "schema": schema}})
        assert "label" not in json.loads(msg.content[0].text)  # the invalid rate broke it
    finally:
        c.stop()


@pytest.mark.slow
def test_the_2023_rules_through_an_anthropic_0x_client(cli: Cli, sdk0_python: Path) -> None:
    site = subprocess.run(
        [str(sdk0_python), "-c", "import anthropic, os; print(os.path.dirname(os.path.dirname(anthropic.__file__)))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=cli.url, ANTHROPIC_API_KEY="sk-sim-anything", PYTHONPATH=site)
    done = subprocess.run([str(sdk0_python), str(SCRIPT.with_name("sdk0_rules_script.py"))], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["sdk"].startswith("0.")
    assert report["temperature_haiku_4_5"] is None  # 2023-06-01 still has sampling parameters
    assert report["temperature_opus_4_7"] == "`temperature` is deprecated for this model."
    assert report["temperature_default_opus_4_7"] is None
    assert report["both_haiku_4_5"].startswith("`temperature` and `top_p` cannot both be specified")
    assert report["prefill_sonnet_4_6"].startswith("This model does not support assistant message prefill")
    assert report["prefill_haiku_4_5"] is None
    assert report["thinking_blocks"] == ["thinking", "text"] and report["thinking_text"]
    assert report["batch"] == {"old": ["succeeded", None],
                               "new": ["errored", "`temperature` is deprecated for this model."]}


@pytest.mark.slow
def test_the_files_api_through_an_anthropic_0x_client(cli: Cli, sdk0_python: Path) -> None:
    site = subprocess.run(
        [str(sdk0_python), "-c", "import anthropic, os; print(os.path.dirname(os.path.dirname(anthropic.__file__)))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=cli.url, ANTHROPIC_API_KEY="sk-sim-anything", PYTHONPATH=site)
    done = subprocess.run([str(sdk0_python), str(SCRIPT.with_name("sdk0_files_script.py"))], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["sdk"].startswith("0.")
    assert report["uploaded"] == ["red.png", "image/png", True, False]
    assert report["listed"] is True and report["retrieved"] == "n0.txt"
    assert report["download"] == "File is not downloadable"
    assert report["answer"] == "Simulated answer: a red image, 40x30 pixels. What is it?"
    assert report["deleted"] == [True, "file_deleted"]
