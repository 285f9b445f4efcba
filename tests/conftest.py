"""Shared fixtures.

Simulator fixtures: one local Message Batches API server for the whole
session (``simulator_server``), reset before each test that asks for
``simulator`` (zero processing time, real clock, no faults); ``fake_clock``
switches it to a clock the test moves by hand; ``sdk_client`` and
``async_sdk_client`` are official SDK clients pointed at it.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from batch_magic.simulator import FakeClock, RealClock, Simulator


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[Simulator]:
    """One simulator for the session, on 127.0.0.1 and a free port."""
    with Simulator(processing_time=0.0, cancel_delay=0.0) as sim:
        yield sim


@pytest.fixture
def simulator(simulator_server: Simulator) -> Simulator:
    """The session simulator, reset: no batches, log, faults or cache; constructor options."""
    simulator_server.reset()
    simulator_server.clock = RealClock()
    return simulator_server


@pytest.fixture
def fake_clock(simulator: Simulator) -> FakeClock:
    """Put the simulator on a FakeClock; ``fake_clock.advance(s)`` moves batches on."""
    return simulator.use_fake_clock()


@pytest.fixture
def sdk_client(simulator: Simulator) -> anthropic.Anthropic:
    """The official sync client pointed at the simulator."""
    return anthropic.Anthropic(api_key="sk-test", base_url=simulator.url, max_retries=2)


@pytest.fixture
def async_sdk_client(simulator: Simulator) -> anthropic.AsyncAnthropic:
    """The official async client pointed at the simulator."""
    return anthropic.AsyncAnthropic(api_key="sk-test", base_url=simulator.url, max_retries=2)
