"""Fixtures local to the simulator tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from batch_magic.simulator import Simulator


@pytest.fixture(scope="session")
def _http_session() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=30) as client:  # one client: building an SSL context per call is slow
        yield client


@pytest.fixture
def http(_http_session: httpx2.Client, simulator: Simulator) -> httpx2.Client:
    """A plain HTTP client (no SDK) with the simulator as base URL, a key and API version 2023-06-01 set."""
    _http_session.base_url = simulator.url
    _http_session.headers["x-api-key"] = "sk-raw"
    _http_session.headers["anthropic-version"] = "2023-06-01"
    return _http_session
