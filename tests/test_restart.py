"""A kernel restart in the middle of a job: what comes back, and what is said when something is missing.

The first session is a real IPython shell in another process, killed while its
batch runs (what a kernel restart does); the second is this test's shell,
started afresh in the same folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

from _shell import magic_instance
from batch_magic.journal import Journal
from batch_magic.record import JobState, SentTo

TESTS = Path(__file__).resolve().parent
CELL = "%%batch df --out x\nWhat is this review about? {{ review }}"

FIRST_SESSION = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {tests!r})
    import pandas as pd
    from _shell import TestingShell, magic_instance
    ip = TestingShell.make()
    ip.run_cell("%load_ext batch_magic")
    ip.run_cell("%batch simulator start --processing-time {processing}")
    ip.user_ns["df"] = pd.DataFrame({{"review": ["great", "awful", "fine"]}})
    ip.run_cell({cell!r})
    job = next(iter(magic_instance(ip)._session_jobs()))
    deadline = time.time() + 30
    while job.status.state != "in_progress" and time.time() < deadline:
        time.sleep(0.05)
    print("JOB", job.id, job.status.state, flush=True)
    os._exit(0)  # the kernel dies: no cleanup, the batch still running
    """
)


def reviews() -> pd.DataFrame:
    return pd.DataFrame({"review": ["great", "awful", "fine"]})


def first_session(folder: Path, processing: float = 1.0) -> str:
    """Run the first session in its own process, killed mid-job; return its job id."""
    script = FIRST_SESSION.format(tests=str(TESTS), processing=processing, cell=CELL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["BATCH_MAGIC_DIR"] = str(folder / ".batch_magic")
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    _, job_id, state = next(line for line in out.stdout.splitlines() if line.startswith("JOB ")).split()
    assert state == "in_progress"
    return job_id


def test_after_a_restart_the_simulator_finds_its_batches_again(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = first_session(tmp_path)
    sent_to = Journal().read_record(job_id).sent_to
    assert sent_to is not None and sent_to.simulator and sent_to.builtin
    assert sent_to.base_url.startswith("http://127.0.0.1:")

    ip.run_cell("%batch simulator start")
    assert "keeps its batches in" in capsys.readouterr().out
    df = reviews()
    ip.user_ns["df"] = df
    ip.run_cell("%batch attach last df --wait")
    assert (df["x_status"] == "succeeded").all()

    # The cell again: the same job, said in one line, nothing sent.
    capsys.readouterr()
    creates_before = sum(1 for r in magic_instance(ip).simulator.requests if r.endpoint == "create")
    ip.user_ns["df"] = reviews()
    ip.run_cell(CELL)
    out = capsys.readouterr().out
    assert f"Job {job_id} (done)" in out
    assert "nothing was sent again (--fresh sends every row again)" in out
    creates_after = sum(1 for r in magic_instance(ip).simulator.requests if r.endpoint == "create")
    assert creates_after == creates_before == 0


def test_without_the_simulator_attach_and_rerun_say_to_start_it(ip: Any, tmp_path: Path) -> None:
    job_id = first_session(tmp_path)
    ip.user_ns["df"] = reviews()
    for line in ("%batch attach last df --wait", CELL):
        with pytest.raises(UsageError) as info:
            ip.run_cell(line)
        message = str(info.value)
        assert f"Job {job_id} was sent to the built-in simulator at http://127.0.0.1:" in message
        assert "start the simulator again with `%batch simulator start`" in message
        assert "No Anthropic API key was found" not in message


def test_a_batch_the_server_forgot_is_never_done_with_every_row_pending(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = first_session(tmp_path)
    # A simulator that never saw the batch (another state folder).
    ip.run_cell(f"%batch simulator start --state {tmp_path / 'elsewhere'}")
    df = reviews()
    ip.user_ns["df"] = df
    with pytest.raises(UsageError) as info:
        ip.run_cell("%batch attach last df --wait")
    message = str(info.value)
    assert "is gone from the built-in simulator at http://127.0.0.1:" in message
    assert "--force" in message
    assert Journal().read_record(job_id).state is JobState.FAILED
    assert "x_status" not in df.columns  # nothing merged as if it had ended

    # Re-running the cell goes on from the journal (failed is not ended): the same clear failure.
    capsys.readouterr()
    with pytest.raises(UsageError, match="is gone from the built-in simulator"):
        ip.run_cell(CELL.replace("--out x", "--out x --wait"))
    out = capsys.readouterr().out
    assert f"Job {job_id} (failed): the same job as before" in out
    assert "pending" not in out and "done" not in out.replace("(done", "")
    assert Journal().read_record(job_id).state is JobState.FAILED

    # --force sends it again, to the simulator at hand.
    ip.run_cell(CELL.replace("--out x", "--out x --wait --force"))
    assert (ip.user_ns["df"]["x_status"] == "succeeded").all()


def test_a_job_sent_to_the_real_api_says_to_set_the_key(ip: Any, tmp_path: Path) -> None:
    job_id = first_session(tmp_path)
    # The same job, recorded as sent to the real API (as a job without the simulator is).
    jr = Journal()
    record = jr.read_record(job_id)
    record.sent_to = SentTo("https://api.anthropic.com", simulator=False, builtin=False)
    record.simulated = False
    jr.write_record(record)
    with pytest.raises(UsageError) as info:
        ip.run_cell("%batch attach last --wait")
    message = str(info.value)
    assert f"Job {job_id} was sent to the real API at https://api.anthropic.com" in message
    assert "ANTHROPIC_API_KEY" in message

    # With the simulator running, it is refused there too: that simulator never saw the batches.
    ip.run_cell("%batch simulator start")
    with pytest.raises(UsageError) as info:
        ip.run_cell("%batch attach last --wait")
    message = str(info.value)
    assert "but this session talks to the built-in simulator" in message
    assert "%batch simulator stop" in message and "--force" in message
    assert jr.read_record(job_id).state is JobState.RUNNING  # untouched


def test_no_journal_file_holds_a_key_and_the_folders_are_private(ip: Any) -> None:
    """The journal folder, the simulator's saved batches included (their folder is the
    owner's alone, like the journal's: they hold the prompts)."""
    from batch_magic.magics import SIM_API_KEY

    ip.run_cell("%batch simulator start --processing-time 0")
    ip.user_ns["df"] = reviews()
    ip.run_cell(CELL.replace("--out x", "--out x --wait"))
    root = Journal().root
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any("simulator" in p.parts for p in files) and any(p.name == "manifest.json" for p in files)
    for path in files:
        assert SIM_API_KEY.encode() not in path.read_bytes(), path
    for path in (root, root / "jobs", root / "simulator"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
    manifest = json.loads(next(root.rglob("manifest.json")).read_text())
    assert manifest["sent_to"]["builtin"] is True


def test_a_base_url_is_recorded_without_credentials() -> None:
    import anthropic

    from batch_magic.client import BatchClient
    from batch_magic.destination import Destination

    sdk = anthropic.Anthropic(api_key="sk-ant-x", base_url="https://me:sk-secret@proxy.example.com:8443/")
    sent_to = Destination.of(BatchClient(sdk))
    assert sent_to == Destination("https://proxy.example.com:8443", simulator=False, builtin=False)
    assert "secret" not in json.dumps(dataclasses.asdict(sent_to.record()))
