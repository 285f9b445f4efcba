"""A script killed with SIGKILL at the worst moments loses nothing and pays nothing twice.

The simulator runs as its own process with ``--state`` (so it can die and come
back too); the script is the plain Python API, run again after each kill.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anthropic
import pytest

pytestmark = pytest.mark.slow

SIMULATOR = textwrap.dedent(
    """
    import sys, time
    from batch_magic.simulator import Simulator
    port, state, processing, results_delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    sim = Simulator(port=port, state_dir=state, processing_time=processing)
    if results_delay:
        sim.add_fault("results", None, delay=results_delay)
    sim.start()
    print(sim.url, flush=True)
    while True:
        time.sleep(3600)
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    import batch_magic as bm
    n = 10_000
    texts = [None if i % 101 == 0 else f"ticket {i % 7000}" for i in range(n)]
    df = pd.DataFrame({"text": texts}, index=[i % 50 for i in range(n)])
    job = bm.submit(df, "Route this: {{ text }}", out="route", max_tokens=30)
    job.wait(timeout=300)
    # The fake model echoes the prompt's words: each answer must name its own row's ticket.
    ok = [t is None or (isinstance(a, str) and t.split()[-1] in a) for t, a in zip(texts, df["route"].astype(object))]
    print(json.dumps({
        "job": job.id,
        "statuses": {k: v for k, v in df["route_status"].value_counts().items() if v},
        "answers_match_rows": all(ok),
    }))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Rig:
    def __init__(self, tmp: Path, processing: float, results_delay: float = 0.0) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.state = tmp / "sim-state"
        self.journal = tmp / "journal"
        self.processing = processing
        self.results_delay = results_delay
        (tmp / "sim.py").write_text(SIMULATOR)
        (tmp / "job.py").write_text(SCRIPT)
        self.sim: subprocess.Popen[str] | None = None
        self.start_simulator()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_simulator(self) -> None:
        self.sim = subprocess.Popen(
            [sys.executable, str(self.tmp / "sim.py"), str(self.port), str(self.state),
             str(self.processing), str(self.results_delay)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.sim.stdout is not None
        assert self.sim.stdout.readline().strip() == self.url

    def kill_simulator(self) -> None:
        assert self.sim is not None
        self.sim.send_signal(signal.SIGKILL)
        self.sim.wait()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "sk-sim-test",
            "BATCH_MAGIC_DIR": str(self.journal),
        }

    def start_script(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(self.tmp / "job.py")], env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def manifest(self) -> dict | None:
        jobs = self.journal / "jobs"
        if not jobs.is_dir():
            return None
        for d in jobs.iterdir():
            path = d / "manifest.json"
            if path.exists():
                return json.loads(path.read_text())
        return None

    def wait_for(self, condition, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.manifest()
            if m is not None and condition(m):
                return m
            time.sleep(0.02)
        raise AssertionError("condition not reached")

    def server_batches(self) -> list[str]:
        client = anthropic.Anthropic(api_key="sk-sim-test", base_url=self.url)
        return [b.id for b in client.messages.batches.list(limit=100)]

    def run_to_end(self) -> dict:
        proc = self.start_script()
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    def close(self) -> None:
        if self.sim is not None and self.sim.poll() is None:
            self.sim.kill()
            self.sim.wait()


@pytest.fixture
def rig_factory(tmp_path):
    rigs: list[Rig] = []

    def make(**kwargs) -> Rig:
        rig = Rig(tmp_path, **kwargs)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def recorded(m: dict) -> bool:
    return any(b.get("batch_id") for b in m["batches"])


def check_finished(result: dict, rig: Rig, batches_before: list[str]) -> None:
    assert rig.server_batches() == batches_before, "a new batch was created after the restart"
    assert result["answers_match_rows"]
    statuses = result["statuses"]
    assert set(statuses) <= {"succeeded", "skipped"}, statuses
    assert statuses["skipped"] == 100 and statuses["succeeded"] == 9_900


def test_killed_right_after_submitting(rig_factory):
    rig = rig_factory(processing=2.0)
    proc = rig.start_script()
    rig.wait_for(recorded)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    batches = rig.server_batches()
    assert len(batches) == 1
    check_finished(rig.run_to_end(), rig, batches)


def test_killed_while_polling_and_simulator_restarted(rig_factory):
    rig = rig_factory(processing=4.0)
    proc = rig.start_script()
    rig.wait_for(recorded)
    time.sleep(1.0)  # polling now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    m = rig.manifest()
    assert m is not None and m["batches"][0]["state"] == "in_progress"
    # The machine "comes back": the server restarts from its state folder too.
    rig.kill_simulator()
    rig.start_simulator()
    batches = rig.server_batches()
    assert len(batches) == 1
    check_finished(rig.run_to_end(), rig, batches)


def test_killed_during_results_download(rig_factory):
    rig = rig_factory(processing=0.5, results_delay=3.0)
    proc = rig.start_script()
    m = rig.wait_for(recorded)
    created = time.monotonic()
    time.sleep(2.0)  # ended after 0.5 s; the results call is now held for 3 s
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    m = rig.manifest()
    assert m is not None and m["batches"][0]["state"] != "ended", time.monotonic() - created
    batches = rig.server_batches()
    check_finished(rig.run_to_end(), rig, batches)
