"""The same calls through ``anthropic.AsyncAnthropic``."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import anthropic
import httpx2
import pytest
from sim_helpers import requests

from batch_magic.simulator import FakeClock, Simulator


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def client(sim: Simulator, **kw: object) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-test", base_url=sim.url, **kw)  # type: ignore[arg-type]


def test_async_lifecycle(simulator: Simulator, fake_clock: FakeClock) -> None:
    simulator.configure(processing_time=30)

    async def main() -> None:
        async with client(simulator) as c:
            batch = await c.messages.batches.create(requests=requests(6))
            b = await c.messages.batches.retrieve(batch.id)
            assert b.processing_status == "in_progress" and b.request_counts.processing == 6
            fake_clock.advance(30)
            b = await c.messages.batches.retrieve(batch.id)
            assert b.processing_status == "ended" and b.request_counts.succeeded == 6
            assert b.results_url == f"{simulator.url}/v1/messages/batches/{batch.id}/results"
            ids = [r.custom_id async for r in await c.messages.batches.results(batch.id)]
            assert sorted(ids) == sorted(f"r{i}" for i in range(6))
            listed = [x.id async for x in c.messages.batches.list(limit=1)]
            assert listed == [batch.id]
            deleted = await c.messages.batches.delete(batch.id)
            assert deleted.type == "message_batch_deleted"
            with pytest.raises(anthropic.NotFoundError):
                await c.messages.batches.retrieve(batch.id)

    run(main())


def test_async_cancel_and_results_types(simulator: Simulator, fake_clock: FakeClock) -> None:
    simulator.configure(processing_time=10, cancel_delay=1)

    async def main() -> None:
        async with client(simulator) as c:
            batch = await c.messages.batches.create(requests=requests(10))
            fake_clock.advance(5)
            b = await c.messages.batches.cancel(batch.id)
            assert b.processing_status == "canceling"
            fake_clock.advance(1)
            kinds = sorted([r.result.type async for r in await c.messages.batches.results(batch.id)])
            assert kinds == ["canceled"] * 4 + ["succeeded"] * 6

    run(main())


def test_async_errors_and_retries(simulator: Simulator) -> None:
    async def main() -> None:
        async with client(simulator, max_retries=2) as c:
            simulator.add_fault("create", 429, times=2)
            await c.messages.batches.create(requests=requests(1))
            assert [r.status for r in simulator.requests] == [429, 429, 200]
        async with client(simulator, max_retries=0) as c:
            simulator.add_fault("retrieve", 529, times=1)
            with pytest.raises(anthropic.OverloadedError):
                await c.messages.batches.retrieve("msgbatch_01x")
            simulator.add_fault("list", 500, times=1)
            with pytest.raises(anthropic.InternalServerError):
                await c.messages.batches.list()
            with pytest.raises(anthropic.BadRequestError):
                await c.messages.batches.create(requests=[])
            with pytest.raises(anthropic.NotFoundError):
                await c.messages.batches.cancel("msgbatch_01x")

    run(main())


def test_async_dropped_stream_raises(simulator: Simulator) -> None:
    async def main() -> None:
        async with client(simulator, max_retries=0) as c:
            batch = await c.messages.batches.create(requests=requests(20))
            simulator.add_fault("results", drop_after_lines=5, times=1)
            got = []
            with pytest.raises((httpx2.HTTPError, anthropic.APIError)):
                async for r in await c.messages.batches.results(batch.id):
                    got.append(r.custom_id)
            assert len(got) in (4, 5)

    run(main())


def test_async_realtime(simulator: Simulator) -> None:
    async def main() -> None:
        async with client(simulator) as c:
            msg = await c.messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi there"}]
            )
            assert msg.content[0].type == "text" and "hi there" in msg.content[0].text
            n = await c.messages.count_tokens(model="claude-haiku-4-5", messages=[{"role": "user", "content": "abcd"}])
            assert n.input_tokens == 1

    run(main())


def test_parallel_clients_are_served_concurrently(simulator: Simulator) -> None:
    """A connection that stalls halfway through its request holds one server thread; the
    others are answered meanwhile (a server that took one request at a time would wait on
    the stalled one, and these calls would time out)."""
    parts = urlsplit(simulator.url)
    with socket.create_connection((parts.hostname, parts.port)) as stalled:
        stalled.sendall(b"GET /v1/messages/batches HTTP/1.1\r\nHost: localhost\r\n")  # headers never end

        async def main() -> tuple[str, list[str]]:
            async with client(simulator, timeout=30, max_retries=0) as c:
                batch = await c.messages.batches.create(requests=requests(1))
                seen = await asyncio.gather(*(c.messages.batches.retrieve(batch.id) for _ in range(8)))
                return batch.id, [b.id for b in seen]

        batch_id, seen = run(main())
    assert seen == [batch_id] * 8


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (404, anthropic.NotFoundError),
        (413, anthropic.ContentTooLargeError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (504, anthropic.GatewayTimeoutError),
        (529, anthropic.OverloadedError),
    ],
)
def test_async_status_codes_map_to_sdk_exceptions(simulator: Simulator, status: int, exc: type[Exception]) -> None:
    simulator.add_fault("retrieve", status)

    async def main() -> None:
        async with client(simulator, max_retries=0) as c:
            with pytest.raises(exc) as err:
                await c.messages.batches.retrieve("msgbatch_01x")
            assert isinstance(err.value, anthropic.APIStatusError) and err.value.status_code == status

    run(main())
