"""``%batch simulator start`` run again while a job runs, in a real IPython shell.

Re-running a notebook's set-up cell is the most ordinary thing a learner does:
it must never strand a job. The same settings keep the running simulator; new
ones restart it on the same port with the same kept batches; if that port is
gone, the running jobs are pointed at the new one. Each test ends with the job
merged and no batch sent twice.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

from _shell import magic_instance

CELL = "%%batch df --out x\nWhat is this review about? {{ review }}"


def reviews() -> pd.DataFrame:
    return pd.DataFrame({"review": ["great", "awful", "fine"]})


def creates(sim: Any) -> int:
    return sum(1 for r in sim.requests if r.endpoint == "create")


def submit_and_let_it_reach_the_server(ip: Any) -> Any:
    """Send the cell (it returns at once) and wait until its batch exists on the server."""
    ip.user_ns["df"] = reviews()
    ip.run_cell(CELL)
    (job,) = magic_instance(ip)._session_jobs()
    deadline = time.monotonic() + 60
    while job.status.batches_submitted < 1:
        assert time.monotonic() < deadline, f"the batch was never created: {job.status}"
        time.sleep(0.02)
    return job


def assert_merged(ip: Any, job: Any) -> None:
    ip.run_cell(f"%batch wait {job.id} --timeout 120")
    assert job.done and job.status.state == "done", job.status
    assert (ip.user_ns["df"]["x_status"] == "succeeded").all()


def test_the_setup_cell_again_keeps_the_simulator_and_its_running_job(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = "%load_ext batch_magic\n%batch simulator start --processing-time 2"
    ip.run_cell(setup)
    magic = magic_instance(ip)
    sim = magic.simulator
    job = submit_and_let_it_reach_the_server(ip)
    capsys.readouterr()

    ip.run_cell(setup)  # the set-up cell, re-run
    out = capsys.readouterr().out.splitlines()
    assert f"Simulator already running at {sim.url}, 1 batch kept; jobs of this session go there." in out, out
    assert magic.simulator is sim and sim.running
    assert job.status.state != "done"  # it was still running when the cell was re-run

    assert_merged(ip, job)
    assert creates(sim) == 1


def test_new_settings_restart_it_on_the_same_port_and_the_job_follows(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("%batch simulator start --processing-time 2")
    magic = magic_instance(ip)
    old = magic.simulator
    old_url = old.url
    job = submit_and_let_it_reach_the_server(ip)
    capsys.readouterr()

    ip.run_cell("%batch simulator start --processing-time 2 --error-rate overloaded_error=0.1")
    out = capsys.readouterr().out
    new = magic.simulator
    assert new is not old and not old.running
    assert new.url == old_url
    assert f"Simulator restarted with the new settings at {new.url}, on the same port, 1 batch kept" in out
    assert "1 running job of this session follows it" in out
    assert new.options.error_rates == {"overloaded_error": 0.1}

    assert_merged(ip, job)  # the batch kept its own settings: no fault in it
    assert creates(new) == 0  # followed, never sent again


def test_when_the_port_is_taken_the_running_jobs_move_to_the_new_one(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("%batch simulator start --processing-time 2")
    magic = magic_instance(ip)
    old_url = magic.simulator.url
    job = submit_and_let_it_reach_the_server(ip)
    ip.run_cell("%batch simulator stop")
    assert "1 running job of this session waits for it" in capsys.readouterr().out

    # Someone else takes the port meanwhile.
    port = int(old_url.rsplit(":", 1)[1])
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the old one's TIME_WAIT
    try:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        ip.run_cell("%batch simulator start --processing-time 2")
        out = capsys.readouterr().out
        new = magic.simulator
        assert new.url != old_url
        assert "1 running job of this session follows it" in out
        assert_merged(ip, job)
        assert job.client.base_url == new.url  # the driver took the new address (a command)
        assert creates(new) == 0
    finally:
        squatter.close()


def test_another_state_folder_is_refused_while_a_job_runs_there(ip: Any, tmp_path: Any) -> None:
    ip.run_cell("%batch simulator start --processing-time 2")
    job = submit_and_let_it_reach_the_server(ip)
    with pytest.raises(UsageError, match=rf"1 job of this session \({job.id}\) still runs on the simulator"):
        ip.run_cell(f"%batch simulator start --state {tmp_path / 'elsewhere'}")
    assert magic_instance(ip).simulator.running  # untouched
    assert_merged(ip, job)


def test_an_unknown_model_is_refused_before_anything_is_sent(ip: Any) -> None:
    ip.run_cell("%batch simulator start --processing-time 0")
    sim = magic_instance(ip).simulator
    ip.user_ns["df"] = reviews()
    with pytest.raises(UsageError) as info:
        ip.run_cell(CELL.replace("--out x", "--out x --model claude-foo-9 --wait"))
    assert "claude-foo-9" in str(info.value) and "does not know this model" in str(info.value)
    assert creates(sim) == 0
    assert "x_status" not in ip.user_ns["df"].columns


def test_any_model_serves_an_unknown_id_when_asked(ip: Any) -> None:
    ip.run_cell("%batch simulator start --processing-time 0 --any-model")
    ip.user_ns["df"] = reviews()
    ip.run_cell(CELL.replace("--out x", "--out x --model claude-foo-9 --wait"))
    assert (ip.user_ns["df"]["x_status"] == "succeeded").all()


def test_json_answers_succeed_on_the_simulator(ip: Any) -> None:
    """--json asks for nothing on the wire: the prompt asks for JSON, and the simulator reads that."""
    ip.run_cell("%batch simulator start --processing-time 0")
    df = reviews()
    ip.user_ns["df"] = df
    ip.run_cell("%%batch df --out j --json --wait\nReturn a JSON object with keys topic and is_positive. {{ review }}")
    assert (df["j_status"] == "succeeded").all(), df["j_error"].tolist()
    assert df["j_is_positive"].isin([True, False]).all() and df["j_topic"].notna().all()
