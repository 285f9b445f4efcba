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
