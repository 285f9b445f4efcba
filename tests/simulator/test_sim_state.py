"""Batches survive a restart of the simulator when it has a state directory."""

from __future__ import annotations

from pathlib import Path

import anthropic
import pytest
from sim_helpers import params, requests

from batch_magic.simulator import FakeClock, Simulator


def client(sim: Simulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-test", base_url=sim.url, max_retries=0)


def test_batches_and_results_survive_a_restart(tmp_path: Path) -> None:
    system = [{"type": "text", "text": "shared context " * 30, "cache_control": {"type": "ephemeral"}}]
    with Simulator(state_dir=tmp_path, processing_time=0) as sim:
        c = client(sim)
        ended = c.messages.batches.create(requests=[
            *requests(5), {"custom_id": "bad", "params": {**params(), "model": "gpt-4o"}},
            {"custom_id": "cached0", "params": params("a", system=system)},
            {"custom_id": "cached1", "params": params("b", system=system)},
        ])
        before = [r.to_json() for r in c.messages.batches.results(ended.id)]
        older = c.messages.batches.create(requests=requests(1)).id
    with Simulator(state_dir=tmp_path, processing_time=0) as sim2:
        c = client(sim2)
        assert sim2.batch_ids() == [ended.id, older]
        assert [b.id for b in c.messages.batches.list()] == [older, ended.id]
        b = c.messages.batches.retrieve(ended.id)
        assert b.processing_status == "ended" and (b.request_counts.succeeded, b.request_counts.errored) == (7, 1)
        assert b.results_url == f"{sim2.url}/v1/messages/batches/{ended.id}/results"
        after = [r.to_json() for r in c.messages.batches.results(ended.id)]
        assert after == before
        # The cached prefix stays cached: a new request reads it.
        msg = c.messages.create(**params("c", system=system))
        assert msg.usage.cache_read_input_tokens > 0


def test_in_progress_cancel_and_delete_are_persisted(tmp_path: Path) -> None:
    clock = FakeClock()
    with Simulator(state_dir=tmp_path, processing_time=100, cancel_delay=10, clock=clock) as sim:
        c = client(sim)
        running = c.messages.batches.create(requests=requests(10)).id
        canceled = c.messages.batches.create(requests=requests(10)).id
        sim.configure(processing_time=0)
        gone = c.messages.batches.create(requests=requests(1)).id
        clock.advance(50)
        c.messages.batches.cancel(canceled)
        clock.advance(10)
        c.messages.batches.delete(gone)
    with Simulator(state_dir=tmp_path, clock=clock) as sim2:
        c = client(sim2)
        assert sim2.batch_ids() == [running, canceled]
        assert c.messages.batches.retrieve(running).processing_status == "in_progress"
        b = c.messages.batches.retrieve(canceled)
        assert b.processing_status == "ended" and b.cancel_initiated_at is not None
        assert (b.request_counts.succeeded, b.request_counts.canceled) == (6, 4)
        with pytest.raises(anthropic.NotFoundError):
            c.messages.batches.retrieve(gone)
        clock.advance(40)
        assert c.messages.batches.retrieve(running).request_counts.succeeded == 10
        # Options of a batch were fixed at its creation, not by the restarted server.
        assert sim2.options.processing_time == 3.0


def test_reset_also_clears_the_state_dir(tmp_path: Path) -> None:
    with Simulator(state_dir=tmp_path, processing_time=0) as sim:
        client(sim).messages.batches.create(requests=requests(1))
        assert list((tmp_path / "batches").iterdir())
        sim.reset()
        assert list((tmp_path / "batches").iterdir()) == []


def test_half_written_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "batches").mkdir(parents=True)
    (tmp_path / "batches" / "msgbatch_01broken.json").write_text("{not json")
    (tmp_path / "batches" / "msgbatch_01orphan.json").write_text('{"id": "msgbatch_01orphan"}')
    with Simulator(state_dir=tmp_path) as sim:
        assert sim.batch_ids() == []
