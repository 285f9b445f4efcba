"""The Models API: some batch clients check a model id before they create a batch."""

from __future__ import annotations

import anthropic
import pytest


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
