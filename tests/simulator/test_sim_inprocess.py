"""The in-process API: start/stop, options, reset, registry, threads."""

from __future__ import annotations

import threading

import anthropic
import pytest
from sim_helpers import requests

from batch_magic.simulator import (
    FakeClock,
    RealClock,
    Simulator,
    is_simulator_url,
    running_simulators,
)


def test_port_zero_context_manager_and_registry() -> None:
    sim = Simulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.url
    with sim:
        assert sim.url.startswith("http://127.0.0.1:") and sim.port > 0
        assert sim.url in running_simulators()
        assert is_simulator_url(sim.url)
        assert is_simulator_url(sim.url + "/v1/messages")
        assert is_simulator_url(f"http://localhost:{sim.port}")
        assert not is_simulator_url("https://api.anthropic.com")
        assert not is_simulator_url(None)
        assert sim.env() == {"ANTHROPIC_BASE_URL": sim.url, "ANTHROPIC_API_KEY": "sk-sim-anything"}
        url = sim.url
        sim.client(max_retries=0).messages.batches.list()
    assert not is_simulator_url(url) and not sim.running
    assert [r.endpoint for r in sim.requests] == ["list"]  # the log outlives the server


def test_start_stop_start() -> None:
    sim = Simulator(processing_time=0).start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            sim.start()
        c = sim.client(max_retries=0)
        c.messages.batches.create(requests=requests(1))
        sim.stop()
        sim.stop()  # idempotent
        sim.start()
        assert len(sim.batch_ids()) == 1  # state is kept across stop/start in the same object
        assert sim.client(max_retries=0).messages.batches.list().data
    finally:
        sim.stop()


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="speed"):
        Simulator(speed=0)
    with pytest.raises(ValueError, match="processing_time"):
        Simulator(processing_time=-1)
    with pytest.raises(ValueError, match="add up to more than 1"):
        Simulator(error_rates={"api_error": 0.7, "overloaded_error": 0.7})
    sim = Simulator()
    with pytest.raises(TypeError, match="unknown option"):
        sim.configure(procesing_time=1)
    with pytest.raises(ValueError, match="expire_rate"):
        sim.expire_rate = 2


def test_settable_options_apply_to_new_batches(simulator: Simulator, fake_clock: FakeClock) -> None:
    c = simulator.client(max_retries=0)
    simulator.processing_time = 100
    slow = c.messages.batches.create(requests=requests(1)).id
    simulator.processing_time = 0
    fast = c.messages.batches.create(requests=requests(1)).id
    assert simulator.batch(slow)["processing_status"] == "in_progress"
    assert simulator.batch(fast)["processing_status"] == "ended"
    assert simulator.options.processing_time == 0


def test_reset_restores_constructor_options_and_clears_everything(simulator: Simulator) -> None:
    c = simulator.client(max_retries=0)
    simulator.configure(expire_rate=1.0)
    simulator.add_fault("list", 500)
    c.messages.batches.create(requests=requests(1))
    simulator.reset()
    assert simulator.batch_ids() == [] and simulator.requests == [] and simulator.faults == []
    assert simulator.options.expire_rate == 0.0
    simulator.configure(expire_rate=0.5)
    simulator.reset(keep_options=True)
    assert simulator.options.expire_rate == 0.5


def test_clock_can_be_swapped(simulator: Simulator) -> None:
    assert isinstance(simulator.clock, RealClock)
    fake = simulator.use_fake_clock(start=1_700_000_000)
    assert simulator.clock is fake
    batch = simulator.client().messages.batches.create(requests=requests(1))
    assert batch.created_at.timestamp() == 1_700_000_000


def test_expire_rate_is_deterministic_per_batch_but_not_across_batches(simulator: Simulator) -> None:
    simulator.configure(expire_rate=0.5, error_rates={"api_error": 0.2})
    c = simulator.client(max_retries=0)

    def kinds(batch_id: str) -> dict[str, str]:
        return {r.custom_id: r.result.type for r in c.messages.batches.results(batch_id)}

    # 200 requests: every outcome shows up in one batch (with 40, no errored one ~1.5% of runs).
    a = c.messages.batches.create(requests=requests(200)).id
    assert kinds(a) == kinds(a)
    b = c.messages.batches.create(requests=requests(200)).id
    assert kinds(a) != kinds(b), "a resubmitted request must get a new draw"
    assert {"expired", "errored", "succeeded"} <= set(kinds(a).values())


def test_parallel_creates_from_threads(simulator: Simulator) -> None:
    errors: list[BaseException] = []
    ids: list[str] = []

    def work(k: int) -> None:
        try:
            c = anthropic.Anthropic(api_key="k", base_url=simulator.url, max_retries=0)
            for _ in range(5):
                b = c.messages.batches.create(requests=requests(20, prefix=f"t{k}_"))
                c.messages.batches.retrieve(b.id)
                assert len(list(c.messages.batches.results(b.id))) == 20
                ids.append(b.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(simulator.batch_ids()) == sorted(ids) and len(ids) == 30


def test_quiet_unless_verbose(simulator: Simulator, capfd: pytest.CaptureFixture[str]) -> None:
    simulator.client(max_retries=0).messages.batches.list()
    assert capfd.readouterr().err == ""
    with Simulator(verbose=True) as loud:
        loud.client(max_retries=0).messages.batches.list()
        assert "GET /v1/messages/batches" in capfd.readouterr().err
