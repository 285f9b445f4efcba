"""The model table: every Claude model the simulator knows, and what each accepts.

One record per model (:class:`ModelSpec`) holds both what the Models API
reports (``GET /v1/models/{id}``: lifecycle, limits, ``capabilities``) and
the request rules that follow from it (sampling parameters, prefill, thinking
types and defaults, effort levels, forced tool choice, tokenizer, refusal
classifiers). The rules in ``rules.py`` read these fields and nothing else,
so a capability the Models API reports as unsupported is exactly a request
the simulator answers with a 400, as the SDK's ``ThinkingTypes`` docstring
promises of the real API.

Sources (platform.claude.com): ``/docs/en/about-claude/model-deprecations``,
each model's ``/docs/en/models/<model>/overview`` and what's-new page,
``/docs/en/build-with-claude/thinking-troubleshooting``,
``/docs/en/build-with-claude/effort``, the release notes. See
``docs/simulator.md`` for the table in prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: Every ``output_config.effort`` level, lowest first.
EFFORTS: tuple[str, ...] = ("low", "medium", "high", "xhigh", "max")
#: Every ``thinking.type`` value the API defines.
THINKING_TYPES: tuple[str, ...] = ("enabled", "adaptive", "disabled", "between_tools")
#: Created-at of a model the table does not know ("may be set to an epoch value
#: if the release date is unknown", ModelInfo.created_at).
EPOCH = "1970-01-01T00:00:00Z"

_CLAUDE_ID = re.compile(r"^claude-[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def looks_like_claude(model: object) -> bool:
    """Accept any id shaped like a Claude model: aliases, dated ids, ids newer than the table."""
    return isinstance(model, str) and bool(_CLAUDE_ID.match(model))


@dataclass(frozen=True)
class Features:
    """Capabilities the simulator reports but does not act on (tools, context editing, media)."""

    code_execution: bool = True  # programmatic tool calling
    server_tools: bool = True  # web search and code execution tools
    clear_tool_uses: bool = True  # context_management strategies
    clear_thinking: bool = True
    compact: bool = False
    citations: bool = True
    image_input: bool = True
    pdf_input: bool = True
    structured_outputs: bool = True


@dataclass(frozen=True)
class ModelSpec:
    """One model: its Models API record and the request rules that follow from it."""

    id: str
    display_name: str
    created_at: str
    line: str | None
    lifecycle: str  # active | deprecated | retired
    deprecated_at: str | None
    retires_at: str | None
    max_tokens: int
    max_input_tokens: int
    #: ``thinking.type`` values accepted; the others are a 400.
    thinking_types: frozenset[str]
    #: ``output_config.effort`` levels accepted; empty: the parameter itself is a 400.
    efforts: tuple[str, ...]
    #: What happens when ``thinking`` is omitted: "off", "on" (adaptive) or "always" (cannot be turned off).
    thinking_default: str
    #: The effort used when the request names none (None: the model has no effort parameter).
    effort_default: str | None
    #: Effort levels allowed with thinking turned off ("disabled"/"between_tools"); None: any.
    thinking_off_efforts: tuple[str, ...] | None
    #: Sampling parameters under 2023-06-01: "free", "one_of" (temperature and top_p not
    #: together) or "defaults_only" (a non-default temperature/top_p/top_k is a 400).
    sampling: str
    #: Whether a conversation may end with an assistant turn (prefill).
    prefill: bool
    #: Whether ``tool_choice`` ``any``/``tool`` is accepted.
    forced_tool_choice: bool
    #: "classic" (about 4 characters a token) or "new" (about 30% more tokens for the same text).
    tokenizer: str
    #: Whether the model has the safety classifiers whose refusals name a category.
    refusal_classifiers: bool
    #: ``thinking.display`` when the request does not say: "summarized" or "omitted".
    display_default: str
    #: Max output in a batch with the ``output-300k-2026-03-24`` beta (None: no such beta).
    batch_max_tokens: int | None = None
    #: Image resolution: "standard" (long edge 1568 px, about 1,600 tokens at most) or "high"
    #: (Claude 4.7 and later: long edge 2576 px, 4,784 tokens at most).
    vision: str = "standard"
    aliases: tuple[str, ...] = ()
    features: Features = field(default_factory=Features)
    #: The docs page this record comes from.
    source: str = ""

    @property
    def retired(self) -> bool:
        return self.lifecycle == "retired"

    @property
    def thinks(self) -> bool:
        return bool(self.thinking_types - {"disabled"})

    def info(self) -> dict[str, Any]:
        """The ``ModelInfo`` object of the Models API (SDK ``types/model_info.py``)."""
        return {
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": self.created_at,
            "line": self.line,
            "lifecycle": self.lifecycle,
            "deprecated_at": self.deprecated_at,
            "retires_at": self.retires_at,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_tokens,
            "capabilities": self.capabilities(),
        }

    def capabilities(self) -> dict[str, Any]:
        """``ModelCapabilities``: every key present, each ``{"supported": bool}``."""
        f = self.features

        def s(flag: bool) -> dict[str, bool]:
            return {"supported": bool(flag)}

        types = {t: s(t in self.thinking_types) for t in ("adaptive", "between_tools", "disabled", "enabled")}
        if not self.thinks:
            types["disabled"] = s(True)  # "True on a model that does not support thinking."
        return {
            "batch": s(True),
            "citations": s(f.citations),
            "code_execution": s(f.code_execution),
            "context_management": {
                "supported": f.clear_tool_uses or f.clear_thinking or f.compact,
                "clear_thinking_20251015": s(f.clear_thinking),
                "clear_tool_uses_20250919": s(f.clear_tool_uses),
                "compact_20260112": s(f.compact),
            },
            "effort": {"supported": bool(self.efforts), **{e: s(e in self.efforts) for e in EFFORTS}},
            "image_input": s(f.image_input),
            "pdf_input": s(f.pdf_input),
            "server_tools": {
                "supported": f.server_tools,
                "code_execution": s(f.server_tools),
                "web_search": s(f.server_tools),
            },
            "structured_outputs": s(f.structured_outputs),
            "thinking": {"supported": self.thinks, "types": types},
        }


def _day(date: str) -> str:
    return f"{date}T00:00:00Z"


# -- generations: the rules shared by the models of one family -----------------------------
_CLAUDE_3: dict[str, Any] = dict(
    line=None, max_tokens=8192, max_input_tokens=200_000, thinking_types=frozenset({"disabled"}), efforts=(),
    thinking_default="off", effort_default=None, thinking_off_efforts=None, sampling="free", prefill=True,
    forced_tool_choice=True, tokenizer="classic", refusal_classifiers=False, display_default="summarized",
    features=Features(code_execution=False, clear_tool_uses=False, clear_thinking=False, structured_outputs=False),
)
_CLAUDE_4: dict[str, Any] = dict(  # Sonnet 4, Opus 4, Opus 4.1: extended thinking only
    _CLAUDE_3, max_tokens=64_000, thinking_types=frozenset({"enabled", "disabled"}),
    features=Features(code_execution=False, clear_thinking=False, structured_outputs=False),
)
_CLAUDE_4_5: dict[str, Any] = dict(  # Haiku 4.5, Sonnet 4.5, Opus 4.5: temperature or top_p, not both
    _CLAUDE_4, line=None, sampling="one_of", features=Features(),
)
_CLAUDE_4_6: dict[str, Any] = dict(  # adaptive thinking arrives, extended thinking deprecated, prefill removed
    _CLAUDE_4_5, max_tokens=128_000, max_input_tokens=1_000_000,
    thinking_types=frozenset({"enabled", "adaptive", "disabled"}), efforts=("low", "medium", "high", "max"),
    effort_default="high", prefill=False, features=Features(compact=True),
)
_CLAUDE_4_7: dict[str, Any] = dict(  # adaptive only, sampling parameters fixed, newer tokenizer
    _CLAUDE_4_6, thinking_types=frozenset({"adaptive", "disabled"}), efforts=EFFORTS, sampling="defaults_only",
    tokenizer="new", display_default="omitted", batch_max_tokens=300_000, vision="high",
)
_ADAPTIVE_ON: dict[str, Any] = dict(_CLAUDE_4_7, thinking_default="on")  # Sonnet 5, Opus 5, Haiku 5.5
_ALWAYS_ON: dict[str, Any] = dict(  # Fable, Mythos, Opus 5.5: thinking cannot be turned off
    _CLAUDE_4_7, thinking_types=frozenset({"adaptive"}), thinking_default="always",
)
_NOT_BEFORE_HIGH = ("low", "medium", "high")

_DEPRECATIONS = "/docs/en/about-claude/model-deprecations"


def _spec(id: str, name: str, released: str, base: dict[str, Any], **over: Any) -> ModelSpec:
    fields_ = {**base, **over}
    for key in ("deprecated_at", "retires_at"):
        if fields_.get(key):
            fields_[key] = _day(fields_[key])
    fields_.setdefault("lifecycle", "active")
    fields_.setdefault("deprecated_at", None)
    fields_.setdefault("retires_at", None)
    return ModelSpec(id=id, display_name=name, created_at=_day(released), **fields_)


MODELS: tuple[ModelSpec, ...] = (
    # -- retired (requests are 404 not_found_error naming the model) -------------------------
    _spec("claude-3-5-sonnet-20240620", "Claude Sonnet 3.5", "2024-06-20", _CLAUDE_3, line="sonnet",
          lifecycle="retired", deprecated_at="2025-08-13", retires_at="2025-10-22", source=_DEPRECATIONS),
    _spec("claude-3-5-sonnet-20241022", "Claude Sonnet 3.5 (New)", "2024-10-22", _CLAUDE_3, line="sonnet",
          lifecycle="retired", deprecated_at="2025-08-13", retires_at="2025-10-22",
          aliases=("claude-3-5-sonnet-latest",), source=_DEPRECATIONS),
    _spec("claude-3-haiku-20240307", "Claude Haiku 3", "2024-03-07", _CLAUDE_3, line="haiku", max_tokens=4096,
          features=Features(code_execution=False, clear_tool_uses=False, clear_thinking=False,
                            structured_outputs=False, pdf_input=False),  # PDFs: Claude 3.5 and later
          lifecycle="retired", deprecated_at="2026-02-19", retires_at="2026-04-20", source=_DEPRECATIONS),
    _spec("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22", _CLAUDE_3, line="haiku",
          lifecycle="retired", deprecated_at="2025-12-19", retires_at="2026-02-19",
          aliases=("claude-3-5-haiku-latest",), source=_DEPRECATIONS),
    _spec("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24", _CLAUDE_4, line="sonnet",
          lifecycle="retired", deprecated_at="2025-10-28", retires_at="2026-02-19",
          aliases=("claude-3-7-sonnet-latest",), source=_DEPRECATIONS),
    _spec("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22", _CLAUDE_4, line="sonnet",
          lifecycle="retired", deprecated_at="2026-04-14", retires_at="2026-06-15",
          aliases=("claude-sonnet-4-0", "claude-4-sonnet-20250514"), source=_DEPRECATIONS),
    _spec("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22", _CLAUDE_4, line="opus", max_tokens=32_000,
          lifecycle="retired", deprecated_at="2026-04-14", retires_at="2026-06-15",
          aliases=("claude-opus-4-0", "claude-4-opus-20250514"), source=_DEPRECATIONS),
    _spec("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05", _CLAUDE_4, line="opus", max_tokens=32_000,
          sampling="one_of", lifecycle="retired", deprecated_at="2026-06-05", retires_at="2026-08-05",
          aliases=("claude-opus-4-1",), features=Features(clear_thinking=False), source=_DEPRECATIONS),
    # -- Claude 4.5 ---------------------------------------------------------------------------
    _spec("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29", _CLAUDE_4_5, line="sonnet",
          aliases=("claude-sonnet-4-5",), source="/docs/en/about-claude/models/overview"),
    _spec("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15", _CLAUDE_4_5, line="haiku",
          aliases=("claude-haiku-4-5",), features=Features(code_execution=False),
          source="/docs/en/models/haiku-4-5/migration-guide"),
    _spec("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24", _CLAUDE_4_5, line="opus",
          efforts=("low", "medium", "high"), effort_default="high", aliases=("claude-opus-4-5",),
          source="/docs/en/build-with-claude/effort"),
    # -- Claude 4.6 to 4.8 --------------------------------------------------------------------
    _spec("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05", _CLAUDE_4_6, line="opus",
          source="/docs/en/build-with-claude/adaptive-thinking"),
    _spec("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17", _CLAUDE_4_6, line="sonnet", max_tokens=64_000,
          source="/docs/en/build-with-claude/adaptive-thinking"),
    _spec("claude-mythos-preview", "Claude Mythos Preview", "2026-04-07", _CLAUDE_4_7, line="mythos",
          thinking_types=frozenset({"enabled", "adaptive"}), thinking_default="on",
          source="/docs/en/build-with-claude/thinking-troubleshooting"),
    _spec("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16", _CLAUDE_4_7, line="opus",
          source="/docs/en/about-claude/models/whats-new-claude-4-7"),
    _spec("claude-opus-4-8", "Claude Opus 4.8", "2026-05-28", _CLAUDE_4_7, line="opus",
          source="/docs/en/models/opus-4-8/overview"),
    # -- Claude 5 -----------------------------------------------------------------------------
    _spec("claude-fable-5", "Claude Fable 5", "2026-06-09", _ALWAYS_ON, line="fable", refusal_classifiers=True,
          source="/docs/en/models/fable-5/introducing-claude-fable-5-and-claude-mythos-5"),
    _spec("claude-mythos-5", "Claude Mythos 5", "2026-06-09", _ALWAYS_ON, line="mythos",
          source="/docs/en/models/fable-5/introducing-claude-fable-5-and-claude-mythos-5"),
    _spec("claude-sonnet-5", "Claude Sonnet 5", "2026-06-30", _ADAPTIVE_ON, line="sonnet",
          source="/docs/en/models/sonnet-5/overview"),
    _spec("claude-opus-5", "Claude Opus 5", "2026-07-24", _ADAPTIVE_ON, line="opus",
          thinking_off_efforts=_NOT_BEFORE_HIGH, refusal_classifiers=True,
          source="/docs/en/models/opus-5/overview"),
    _spec("claude-fable-5-1", "Claude Fable 5.1", "2026-09-01", _ALWAYS_ON, line="fable", refusal_classifiers=True,
          forced_tool_choice=False, source="/docs/en/models/fable-5-1/whats-new-fable-5-1"),
    _spec("claude-mythos-5-1", "Claude Mythos 5.1", "2026-09-01", _ALWAYS_ON, line="mythos",
          forced_tool_choice=False, source="/docs/en/release-notes/overview"),
    _spec("claude-opus-5-5", "Claude Opus 5.5", "2026-09-22", _ALWAYS_ON, line="opus", effort_default="medium",
          refusal_classifiers=True, forced_tool_choice=False, source="/docs/en/models/opus-5-5/overview"),
    _spec("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-28", _ADAPTIVE_ON, line="sonnet",
          thinking_types=frozenset({"adaptive", "between_tools"}), thinking_off_efforts=_NOT_BEFORE_HIGH,
          refusal_classifiers=True, forced_tool_choice=False,
          source="/docs/en/models/sonnet-5-5/whats-new-sonnet-5-5"),
    _spec("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-07", _ADAPTIVE_ON, line="haiku", effort_default="medium",
          thinking_off_efforts=_NOT_BEFORE_HIGH, refusal_classifiers=True,
          source="/docs/en/models/haiku-5-5/whats-new-haiku-5-5"),
    _spec("claude-fable-5-2", "Claude Fable 5.2", "2026-11-09", _ALWAYS_ON, line="fable", refusal_classifiers=True,
          forced_tool_choice=False, source="/docs/en/release-notes/overview"),
    _spec("claude-mythos-5-2", "Claude Mythos 5.2", "2026-11-09", _ALWAYS_ON, line="mythos",
          forced_tool_choice=False, source="/docs/en/release-notes/overview"),
)

#: The rules an id the table does not know is served with: those of a current model.
CURRENT: dict[str, Any] = dict(_ADAPTIVE_ON, thinking_off_efforts=_NOT_BEFORE_HIGH)

_BY_ID: dict[str, ModelSpec] = {}
for _m in MODELS:
    for _name in (_m.id, *_m.aliases):
        _BY_ID[_name] = _m


def known(model_id: str) -> ModelSpec | None:
    """The table's record for an id or alias, or None."""
    return _BY_ID.get(model_id)


def current(model_id: str) -> ModelSpec:
    """A record for a Claude-like id the table does not know: a current model of no known line."""
    words = [w for w in model_id.split("-")[1:] if not (w.isdigit() and len(w) == 8)]
    name = " ".join(w.capitalize() for w in words if not w.isdigit())
    version = ".".join(w for w in words if w.isdigit())
    display = f"Claude {name} {version}".strip()
    fields_ = {**CURRENT, "line": None}
    return ModelSpec(id=model_id, display_name=display, created_at=EPOCH, lifecycle="active", deprecated_at=None,
                     retires_at=None, **fields_)


def resolve(model_id: str, strict: bool | list[str] | None) -> ModelSpec | None:
    """The record a request naming ``model_id`` is served with, or None for a 404.

    ``strict``: None serves any Claude-like id (unknown ones as a current model);
    True only the table's ids; a list only those ids (an alias and its dated id
    being one model).
    """
    spec = _BY_ID.get(model_id)
    if spec is None and not looks_like_claude(model_id):
        return None
    if isinstance(strict, list):
        names = {model_id} if spec is None else {spec.id, *spec.aliases}
        if not names & set(strict):
            return None
    if spec is None and strict is True:
        return None
    return spec if spec is not None else current(model_id)


def listed(strict: bool | list[str] | None, lifecycles: set[str]) -> list[ModelSpec]:
    """What ``GET /v1/models`` lists, newest first."""
    if isinstance(strict, list):
        specs = [s for s in (resolve(m, strict) for m in strict) if s is not None]
        specs = list({s.id: s for s in specs}.values())
    else:
        specs = list(MODELS)
    specs = [s for s in specs if s.lifecycle in lifecycles]
    return sorted(specs, key=lambda s: (s.created_at, s.id), reverse=True)
