"""Shared fixtures.

Simulator fixtures: one local Message Batches API server for the whole
session (``simulator_server``), reset before each test that asks for
``simulator`` (or ``sim``, the same; zero processing time, real clock, no
faults); ``fake_clock`` switches it to a clock the test moves by hand;
``sdk_client`` and ``async_sdk_client`` are official SDK clients pointed at it.
Fast engine settings and a ``submit`` to the simulator are in tests/_jobs.py.

Hypothesis runs derandomized by default (profile "ci"); see below.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import pytest
from hypothesis import settings

# Both Jupyter kernels (ipykernel 7 and 6) for the end-to-end tests.
from _kernels import kernel_name, kernel_specs  # noqa: F401
from batch_magic.journal import Journal
from batch_magic.simulator import FakeClock, RealClock, Simulator

# Hypothesis: the same examples on every run, so a failure in CI is the code's and
# shows again on a rerun ("ci", the default); HYPOTHESIS_PROFILE=explore (or
# --hypothesis-profile=explore) draws new ones, more of them, to look for bugs.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _fresh_model_answers() -> Iterator[None]:
    """Each test asks the Models API anew: the answers are cached per session in the
    library, and tests change what the simulator reports between them."""
    from batch_magic.models import forget_models

    forget_models()
    yield
    forget_models()


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[Simulator]:
    """One simulator for the session, on 127.0.0.1 and a free port."""
    with Simulator(processing_time=0.0, cancel_delay=0.0) as sim:
        yield sim


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    """A fresh journal folder for the test."""
    return Journal(tmp_path / "journal")


@pytest.fixture
def simulator(simulator_server: Simulator) -> Simulator:
    """The session simulator, reset: no batches, log, faults or cache; constructor options."""
    simulator_server.reset()
    simulator_server.clock = RealClock()
    return simulator_server


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    """``simulator`` by the short name the job tests use."""
    return simulator


@pytest.fixture
def fake_clock(simulator: Simulator) -> FakeClock:
    """Put the simulator on a FakeClock; ``fake_clock.advance(s)`` moves batches on."""
    return simulator.use_fake_clock()


@pytest.fixture(scope="session")
def _sdk_http() -> Iterator[httpx2.Client]:
    """One connection pool for every sdk_client (building a client's SSL context costs ~50 ms)."""
    with httpx2.Client(timeout=60) as client:
        yield client


@pytest.fixture
def sdk_client(simulator: Simulator, _sdk_http: httpx2.Client) -> anthropic.Anthropic:
    """The official sync client pointed at the simulator."""
    return anthropic.Anthropic(api_key="sk-test", base_url=simulator.url, max_retries=2, http_client=_sdk_http)


@pytest.fixture
def async_sdk_client(simulator: Simulator) -> anthropic.AsyncAnthropic:
    """The official async client pointed at the simulator."""
    return anthropic.AsyncAnthropic(api_key="sk-test", base_url=simulator.url, max_retries=2)


# -- the magic: a real IPython shell with the extension loaded ------------------------
@pytest.fixture
def ip(tmp_path, monkeypatch):
    """A TestingShell (``run_cell`` raises) with ``%load_ext batch_magic``.

    It runs in an empty folder (the journal and pyproject.toml are looked for
    there), with no API key and no base URL in the environment, and text status
    lines instead of widgets (there is no Jupyter front end).
    """
    from _shell import TestingShell

    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BATCH_MAGIC_DIR", str(tmp_path / ".batch_magic"))
    shell = TestingShell.make()
    shell.reset_namespace()
    shell.config.pop("BatchMagic", None)  # %config of an earlier test
    shell.run_cell("%load_ext batch_magic")
    yield shell
    from batch_magic.job import session_jobs

    for job in session_jobs():
        if not job.done:
            try:
                job.cancel()
            except Exception:
                pass
    shell.run_cell("%unload_ext batch_magic")
    shell.config.pop("BatchMagic", None)
    shell.reset_namespace()


@pytest.fixture
def ip_sim(ip, simulator, monkeypatch):
    """``ip`` with the environment pointing the SDK at the test simulator, polling fast."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", simulator.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    ip.run_cell("%config BatchMagic.poll_interval_min = 0.05")
    ip.run_cell("%config BatchMagic.poll_interval_max = 0.2")
    return ip


SDK0_VENV = Path(__file__).resolve().parent.parent / ".venv-sdk0"


@pytest.fixture(scope="session")
def sdk0_python() -> Path:
    """A venv with the anthropic SDK 0.x, made once and reused (``.venv-sdk0/``).

    Made under a file lock: with pytest-xdist, two workers may ask for it at once."""
    py = SDK0_VENV / "bin" / "python"
    probe = [str(py), "-c", "import anthropic, sys; sys.exit(0 if anthropic.__version__.startswith('0.') else 1)"]
    SDK0_VENV.mkdir(exist_ok=True)
    with open(SDK0_VENV / ".made-by-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
            return py
        subprocess.run([sys.executable, "-m", "venv", str(SDK0_VENV)], check=True, capture_output=True)
        pip = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "anthropic<1"], capture_output=True, text=True, timeout=600
        )
    if pip.returncode != 0:
        pytest.skip(f"pip could not install anthropic<1: {pip.stderr.strip()[-300:]}")
    return py


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that starts real Jupyter kernels ``kernel``: the full run
    (scripts/test.sh) runs them, and the browser tests, in one process of their own,
    and the rest on two workers."""
    for item in items:
        if {"kernel_specs", "kernel_name"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kernel)
