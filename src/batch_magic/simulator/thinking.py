"""Whether the fake model thinks on a request, how much, and what its thinking block says.

Thinking is on when the request asks for it (``enabled``, ``adaptive``) or
when the model thinks by default and the request does not turn it off
(``catalog.ModelSpec.thinking_default``). The number of thinking tokens is a
pure function of the effort, the prompt and the seed, strictly increasing
with effort (low < medium < high < xhigh < max), so results regenerated
after a restart are the same. Thinking tokens are output tokens: they count
toward ``max_tokens`` and are reported in
``usage.output_tokens_details.thinking_tokens``
(platform.claude.com ``/docs/en/build-with-claude/thinking``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import ModelSpec
from .faults import draw
from .protocol import hashed_base62

#: Thinking tokens per effort for a short prompt; longer prompts think up to 3x more.
BASE_TOKENS: dict[str, int] = {"low": 24, "medium": 64, "high": 160, "xhigh": 320, "max": 640}
#: Input tokens at which a prompt's thinking stops growing.
LONG_PROMPT = 4000


@dataclass(frozen=True)
class ThinkingPlan:
    """How a request thinks."""

    active: bool
    effort: str | None  # the effort in force (the request's, else the model's default)
    display: str  # "summarized" | "omitted"
    budget: int | None = None  # budget_tokens of thinking.type "enabled"


_OFF = ThinkingPlan(active=False, effort=None, display="omitted")


def effort_of(params: dict[str, Any], spec: ModelSpec) -> str | None:
    """The effort in force: ``output_config.effort`` if given, else the model's default."""
    oc = params.get("output_config")
    if isinstance(oc, dict) and isinstance(oc.get("effort"), str):
        return str(oc["effort"])
    return spec.effort_default


def forces_tool(params: dict[str, Any]) -> bool:
    choice = params.get("tool_choice")
    return isinstance(choice, dict) and choice.get("type") in ("any", "tool")


def plan(params: dict[str, Any], spec: ModelSpec) -> ThinkingPlan:
    """The thinking of a (validated) request."""
    thinking = params.get("thinking")
    if thinking is None and spec.thinking_default == "off":
        return _OFF
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    effort = effort_of(params, spec)
    display = spec.display_default
    if isinstance(thinking, dict) and thinking.get("display") in ("summarized", "omitted"):
        display = str(thinking["display"])
    if kind is None:
        active = spec.thinking_default in ("on", "always")
    else:
        active = kind in ("enabled", "adaptive")
    if forces_tool(params):
        active = False  # a forced tool call is made straight away
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) and kind == "enabled" else None
    return ThinkingPlan(active=active, effort=effort, display=display,
                        budget=budget if isinstance(budget, int) else None)


def thinking_tokens(p: ThinkingPlan, input_tokens: int, text: str, seed: str) -> int:
    """How many tokens the model thinks (0 when it does not): effort x prompt length x a stable jitter."""
    if not p.active:
        return 0
    base = BASE_TOKENS.get(p.effort or "high", BASE_TOKENS["high"])
    growth = min(max(input_tokens, 0), LONG_PROMPT) / (LONG_PROMPT / 2)
    jitter = draw(0, "thinking", seed, text)  # the same for every effort
    tokens = round(base * (1 + growth + 0.25 * jitter))
    if p.budget is not None:
        tokens = min(tokens, p.budget)
    return max(1, tokens)


def block(p: ThinkingPlan, text: str, seed: str, effort_tokens: int) -> dict[str, Any]:
    """The ``thinking`` content block: text only when display is "summarized"."""
    thought = ""
    if p.display == "summarized":
        words = text.split()
        gist = " ".join(words[:8]) + (" ..." if len(words) > 8 else "")
        thought = f"The request asks: {gist or '(nothing)'}. A short, direct answer fits."
    signature = "Er" + hashed_base62(64, "thinking", seed, text, p.effort or "", str(effort_tokens))
    return {"type": "thinking", "thinking": thought, "signature": signature}
