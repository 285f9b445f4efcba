"""The Models API: some batch clients check a model id before they create a batch."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import anthropic
import pytest
from anthropic.types import Model, ModelInfo

from batch_magic.simulator.catalog import known


def test_models_list_and_pages(sdk_client: anthropic.Anthropic) -> None:
    ids = [m.id for m in sdk_client.models.list()]
    assert "claude-haiku-4-5-20251001" in ids and "claude-haiku-5-5" in ids and len(ids) == len(set(ids))
    assert "claude-sonnet-4-20250514" not in ids  # retired models are listed only when asked for
    first = sdk_client.models.list(limit=1)
    assert len(first.data) == 1 and first.has_more
    assert [m.id for m in sdk_client.models.list(limit=2)] == ids  # auto-pagination walks every page


def test_any_claude_like_id_is_known_and_others_are_404(sdk_client: anthropic.Anthropic) -> None:
    info = sdk_client.models.retrieve("claude-sonnet-4-20250514")
    assert info.type == "model" and info.display_name == "Claude Sonnet 4" and info.lifecycle == "retired"
    future = sdk_client.models.retrieve("claude-nova-9")
    assert future.id == "claude-nova-9" and future.lifecycle == "active" and future.line is None
    with pytest.raises(anthropic.NotFoundError) as err:
        sdk_client.models.retrieve("gpt-4o")
    assert err.value.body["error"]["message"] == "model: gpt-4o"


def test_strict_models_restrict_the_list(simulator, sdk_client: anthropic.Anthropic) -> None:
    simulator.configure(strict_models=["claude-haiku-4-5"])
    assert [m.id for m in sdk_client.models.list()] == ["claude-haiku-4-5-20251001"]
    with pytest.raises(anthropic.NotFoundError):
        sdk_client.models.retrieve("claude-opus-4-5")


def test_every_model_id_the_sdk_names_is_in_the_table(sdk_client: anthropic.Anthropic) -> None:
    sdk_ids = [a for a in typing.get_args(typing.get_args(Model)[0])]
    assert len(sdk_ids) >= 20
    for model_id in sdk_ids:
        assert known(model_id) is not None, model_id
        info = sdk_client.models.retrieve(model_id)
        assert model_id in (info.id, *known(model_id).aliases)  # type: ignore[union-attr]
        assert info.lifecycle == "active", model_id  # every id the SDK names can still be called


def test_retrieve_parses_every_field_through_sdk_2(sdk_client: anthropic.Anthropic) -> None:
    info = sdk_client.models.retrieve("claude-haiku-5-5")
    assert isinstance(info, ModelInfo) and not info.model_extra  # every field the simulator sends is one the SDK knows
    assert (info.id, info.display_name, info.line, info.lifecycle) == (
        "claude-haiku-5-5", "Claude Haiku 5.5", "haiku", "active")
    assert info.created_at == datetime(2026, 10, 7, tzinfo=UTC)
    assert info.deprecated_at is None and info.retires_at is None
    assert (info.max_input_tokens, info.max_tokens) == (1_000_000, 128_000)
    caps = info.capabilities
    assert caps is not None and not caps.model_extra
    assert caps.thinking.supported and caps.thinking.types.adaptive.supported
    assert not caps.thinking.types.enabled.supported and caps.thinking.types.disabled.supported
    assert caps.effort.supported and caps.effort.xhigh is not None and caps.effort.xhigh.supported
    assert caps.structured_outputs.supported and caps.batch.supported
    old = sdk_client.models.retrieve("claude-haiku-4-5")
    assert old.id == "claude-haiku-4-5-20251001" and old.max_tokens == 64_000
    assert old.capabilities is not None and not old.capabilities.effort.supported
    assert old.capabilities.thinking.types.enabled.supported and not old.capabilities.thinking.types.adaptive.supported
    retired = sdk_client.models.retrieve("claude-sonnet-4-20250514")
    assert retired.lifecycle == "retired"
    assert retired.deprecated_at == datetime(2026, 4, 14, tzinfo=UTC)
    assert retired.retires_at == datetime(2026, 6, 15, tzinfo=UTC)


def test_list_with_a_lifecycle_filter_through_sdk_2(sdk_client: anthropic.Anthropic) -> None:
    retired = [m.id for m in sdk_client.models.list(lifecycle=["retired"])]
    assert "claude-3-5-haiku-20241022" in retired and "claude-haiku-5-5" not in retired
    every = list(sdk_client.models.list(lifecycle=["active", "deprecated", "retired"], limit=5))
    assert len(every) == len({m.id for m in every}) > 25


def test_strict_models_true_serves_only_the_table(simulator, sdk_client: anthropic.Anthropic) -> None:
    simulator.configure(strict_models=True)
    assert sdk_client.models.retrieve("claude-haiku-5-5").id == "claude-haiku-5-5"
    with pytest.raises(anthropic.NotFoundError, match="claude-nova-9"):
        sdk_client.models.retrieve("claude-nova-9")
    with pytest.raises(anthropic.NotFoundError, match="model: claude-nova-9"):
        sdk_client.messages.create(model="claude-nova-9", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    simulator.configure(strict_models=None)
    assert sdk_client.models.retrieve("claude-nova-9").id == "claude-nova-9"
