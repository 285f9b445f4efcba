"""What a model accepts: its lifecycle and capabilities, from the Models API.

``GET /v1/models/{id}`` tells, for each model, whether it is active, deprecated
or retired, its token limits, and its capabilities: Message Batches,
structured outputs, effort levels, thinking types (each "false exactly when a
request that sends it gets a 400 from this model"). batch_magic asks it once
per model and session, before anything is spent, and decides from the answer
what each request carries: ``output_config.format`` or a forced tool, which
effort levels exist, whether thinking can be turned off for a one-word label.
No model name is ever matched against a pattern.

Without a client (a dry run with no key and no simulator) the snapshot bundled
with the package (``data/models.json``, transcribed from the platform docs by
``scripts/make_models_snapshot.py``, with its date) answers instead, and the
dry run says so.

Two rules the Models API does not report live here, each with its source:

* Thinking cannot be turned off at effort ``xhigh`` or ``max`` (Haiku 5.5 and
  Opus 5 accept ``thinking: disabled`` only at ``high`` or lower, Sonnet 5.5 its
  ``between_tools`` likewise; thinking-troubleshooting page).
* ``temperature``, ``top_p`` and ``top_k`` are never sent: API version
  2026-10-21 removed them, and under 2023-06-01 every Claude 4.7-or-later model
  refuses them (model-deprecations page). See :func:`sampling_refusal`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

from .client import FailureKind, classify
from .errors import APIError, ConfigError, ModelNotUsableError

if TYPE_CHECKING:
    from .client import BatchClient

EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
THINKING_TYPES = ("adaptive", "between_tools", "disabled", "enabled")
#: The model suggested when the one asked for cannot run (the current default).
RECOMMENDED_MODEL = "claude-haiku-5-5"
#: Efforts at which thinking may be turned off; above them it must stay on.
THINKING_OFF_EFFORTS = ("low", "medium", "high")
#: Sampling parameters batch_magic refuses to send (see :func:`sampling_refusal`).
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
#: The first ``anthropic-version`` without sampling parameters.
NO_SAMPLING_VERSION = "2026-10-21"


class ModelDeprecationWarning(UserWarning):
    """The model still runs but is deprecated: it retires on a date the warning gives."""


class AnswerRoomWarning(UserWarning):
    """The ``max_tokens`` given leaves little room for thinking: answers may come back empty."""


@dataclass(frozen=True)
class ModelCard:
    """One model's lifecycle, limits and capabilities, as the Models API reports them."""

    id: str
    display_name: str = ""
    #: "active", "deprecated" or "retired".
    lifecycle: str = "active"
    deprecated_at: str | None = None
    #: When a deprecated model stops answering (ISO date-time), if scheduled.
    retires_at: str | None = None
    #: The largest ``max_tokens`` the model takes.
    max_tokens: int | None = None
    max_input_tokens: int | None = None
    batch: bool = True
    structured_outputs: bool = True
    image_input: bool = True
    pdf_input: bool = True
    #: Whether the model takes ``output_config.effort`` at all.
    effort: bool = False
    #: The effort levels it accepts (empty when ``effort`` is False).
    effort_levels: tuple[str, ...] = ()
    #: Whether the model can think, and the ``thinking.type`` values it accepts.
    thinking: bool = False
    thinking_types: frozenset[str] = field(default_factory=frozenset)
    #: Where the facts came from: "api", "snapshot", or "assumed" (nothing knew the model).
    source: str = "api"
    #: One sentence for displays when the facts are not the API's own answer.
    provenance: str | None = None

    # -- reading the Models API ----------------------------------------------------------------
    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, source: str = "api") -> ModelCard:
        """A card from a ``ModelInfo`` JSON object (the SDK's shape, or the snapshot's)."""
        caps = data.get("capabilities")
        card = cls(
            id=str(data["id"]),
            display_name=str(data.get("display_name") or data["id"]),
            lifecycle=str(data.get("lifecycle") or "active"),
            deprecated_at=_date_text(data.get("deprecated_at")),
            retires_at=_date_text(data.get("retires_at")),
            max_tokens=_int_or_none(data.get("max_tokens")),
            max_input_tokens=_int_or_none(data.get("max_input_tokens")),
            source=source,
        )
        if not isinstance(caps, Mapping):
            return card
        effort = _mapping(caps.get("effort"))
        thinking = _mapping(caps.get("thinking"))
        types = _mapping(thinking.get("types"))
        return replace(
            card,
            batch=_supported(caps.get("batch")),
            structured_outputs=_supported(caps.get("structured_outputs")),
            image_input=_supported(caps.get("image_input")),
            pdf_input=_supported(caps.get("pdf_input")),
            effort=bool(effort.get("supported")),
            effort_levels=tuple(
                lvl for lvl in EFFORT_LEVELS if effort.get("supported") and _supported(effort.get(lvl))
            ),
            thinking=bool(thinking.get("supported")),
            thinking_types=frozenset(t for t in THINKING_TYPES if _supported(types.get(t))),
        )

    @classmethod
    def assumed(cls, model: str, why: str) -> ModelCard:
        """A model nothing knows (offline, newer than the snapshot): assume a current model
        whose thinking cannot be turned off, so the cost bound leaves room for thinking."""
        return cls(
            id=model, display_name=model, effort=True, effort_levels=EFFORT_LEVELS,
            thinking=True, thinking_types=frozenset({"adaptive"}), source="assumed", provenance=why,
        )

    # -- what follows from it ------------------------------------------------------------------
    @property
    def thinks_unasked(self) -> bool:
        """May the model think when a request says nothing of thinking?

        Adaptive thinking is the default on the newest models and not on some
        earlier ones; the Models API does not say which, so any model offering
        adaptive thinking, or unable to turn thinking off, counts as thinking.
        """
        return self.thinking and ("adaptive" in self.thinking_types or not self.thinking_off_types)

    @property
    def thinking_off_types(self) -> tuple[str, ...]:
        """The ``thinking.type`` values that turn thinking off on this model."""
        return tuple(t for t in ("disabled", "between_tools") if t in self.thinking_types)

    def thinking_off(self, effort: str | None) -> dict[str, str] | None:
        """The ``thinking`` param that turns thinking off at this effort, or None if none can."""
        if effort is not None and effort not in THINKING_OFF_EFFORTS:
            return None
        kinds = self.thinking_off_types
        return {"type": kinds[0]} if kinds else None

    @property
    def told_by(self) -> str:
        """Who reported these facts, for messages."""
        return {"api": "the Models API", "snapshot": "the bundled model snapshot"}.get(
            self.source, "nothing (assumed)"
        )

    @property
    def retires_on(self) -> str | None:
        return self.retires_at[:10] if self.retires_at else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _supported(value: Any) -> bool:
    return bool(value.get("supported")) if isinstance(value, Mapping) else bool(value)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _date_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()


# -- the bundled snapshot ------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    taken: str
    #: Cards by id and by alias.
    cards: dict[str, ModelCard]

    def get(self, model: str) -> ModelCard | None:
        return self.cards.get(model)


@lru_cache(maxsize=1)
def load_snapshot() -> Snapshot:
    """The model facts bundled with the package (``data/models.json``)."""
    ref = resources.files("batch_magic") / "data" / "models.json"
    data = orjson.loads(ref.read_bytes())
    taken = str(data.get("taken", "unknown date"))
    cards: dict[str, ModelCard] = {}
    for info in data["models"]:
        card = ModelCard.from_api(info, source="snapshot")
        for name in (info["id"], *info.get("aliases", ())):
            cards[name] = card
    return Snapshot(taken, cards)


def snapshot_card(model: str, why: str) -> ModelCard:
    """The snapshot's card for ``model`` (``why`` says why the API was not asked)."""
    snap = load_snapshot()
    card = snap.get(model)
    if card is None:
        return ModelCard.assumed(
            model,
            f"{model!r} is not in the model snapshot of {snap.taken} and {why}: its capabilities "
            "are assumed (structured outputs; thinking that cannot be turned off)",
        )
    return replace(card, provenance=f"model capabilities from the snapshot of {snap.taken} ({why})")


# -- asking the API, once per model and session ---------------------------------------------------
_CACHE: dict[tuple[str, str], ModelCard] = {}
_LOCK = threading.Lock()


def forget_models() -> None:
    """Drop the cached answers of the Models API (the next job asks again)."""
    with _LOCK:
        _CACHE.clear()


def model_card(model: str, client: BatchClient | None, *, offline_ok: bool = False) -> ModelCard:
    """What ``model`` accepts: asked of the Models API through ``client`` (once per
    model, server and session), or read from the snapshot when there is no client.

    An unknown model is a :class:`ModelNotUsableError` naming it. With
    ``offline_ok`` (a dry run), an API that cannot be reached falls back to the
    snapshot, saying so; a job never does.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"model={model!r} is not a model name; use e.g. {RECOMMENDED_MODEL!r}.")
    if client is None:
        return snapshot_card(model, "no client to ask the Models API")
    key = (client.base_url, model)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        data = client.retrieve_model(model)
    except Exception as exc:
        failure = classify(exc)
        if failure.kind is FailureKind.NOT_FOUND:
            raise ModelNotUsableError(
                f"model={model!r}: the Models API does not know this model (404 from "
                f"GET /v1/models/{model}), so every request would fail. Check the spelling, or use "
                f"{RECOMMENDED_MODEL!r} (the default, for classification and extraction)."
            ) from None
        if offline_ok:
            return snapshot_card(model, f"the Models API could not be asked: {failure.detail}")
        raise APIError(
            f"Could not ask the Models API what {model!r} accepts ({failure.detail}); nothing "
            "was sent. Check the key and the network, then run the cell again."
        ) from None
    card = ModelCard.from_api(data)
    if not isinstance(data.get("capabilities"), Mapping):
        # The API answered without capabilities: take the snapshot's, if it knows the model.
        fallback = snapshot_card(card.id if load_snapshot().get(card.id) else model,
                                 "the Models API reported no capabilities")
        card = replace(
            fallback, id=card.id, display_name=card.display_name, lifecycle=card.lifecycle,
            deprecated_at=card.deprecated_at, retires_at=card.retires_at,
            max_tokens=card.max_tokens or fallback.max_tokens,
            max_input_tokens=card.max_input_tokens or fallback.max_input_tokens,
        )
    with _LOCK:
        _CACHE[key] = card
    return card


def check_usable(card: ModelCard, model: str) -> str | None:
    """Refuse a model no batch can run on; warn of a deprecated one.

    Returns the deprecation notice (also issued as a :class:`ModelDeprecationWarning`),
    or None for an active model.
    """
    named = model if model == card.id else f"{model} ({card.id})"
    if card.lifecycle == "retired":
        when = f" on {card.retires_on}" if card.retires_on else ""
        raise ModelNotUsableError(
            f"model={model!r}: {named} was retired{when} and answers no requests any more. "
            f"Use {RECOMMENDED_MODEL!r} (the default) or another current model."
        )
    if not card.batch:
        raise ModelNotUsableError(
            f"model={model!r}: {named} does not take Message Batches (the Models API reports no "
            f"batch support), so a batch naming it would fail. Use {RECOMMENDED_MODEL!r} (the "
            "default) or another model with batch support."
        )
    if card.lifecycle == "deprecated":
        when = f"retires on {card.retires_on}" if card.retires_on else "will be retired (no date set yet)"
        notice = (
            f"{named} is deprecated and {when}; it runs until then. "
            f"Move to {RECOMMENDED_MODEL!r} (the default) before that date."
        )
        warnings.warn(notice, ModelDeprecationWarning, stacklevel=3)
        return notice
    return None


# -- parameters a request may carry ------------------------------------------------------------
def sampling_refusal(name: str, *, api_version: str | None = None, flag: bool = False) -> str:
    """Why ``name`` (temperature, top_p or top_k) is refused, and what to use instead."""
    what = f"--{name.replace('_', '-')}" if flag else name
    if api_version is not None and api_version >= NO_SAMPLING_VERSION:
        why = (
            f"API version {api_version}, which this anthropic SDK sends, removed temperature, "
            "top_p and top_k: every request carrying one would come back errored once the "
            "whole batch had ended."
        )
    elif api_version is not None:
        why = (
            f"under API version {api_version} every Claude 4.7-or-later model (the default "
            f"{RECOMMENDED_MODEL} among them) refuses it, and API version {NO_SAMPLING_VERSION} "
            "(anthropic SDK 2.x) removed it altogether: a request carrying it would come back "
            "errored once the whole batch had ended."
        )
    else:
        why = (
            f"API version {NO_SAMPLING_VERSION} (anthropic SDK 2.x) removed temperature, top_p and "
            "top_k, and every Claude 4.7-or-later model refuses them under the older version too."
        )
    instead = (
        "--effort low|medium|high|xhigh|max" if flag else "effort='low' (or medium, high, xhigh, max)"
    )
    return (
        f"{what} is not sent by batch_magic: {why} Remove it. To trade answer quality for speed "
        f"and cost, set {instead}; for consistent classifications, --labels already holds every "
        "answer to the list."
    )


def check_effort_name(effort: Any) -> None:
    if effort is not None and effort not in EFFORT_LEVELS:
        raise ConfigError(f"effort={effort!r} is not an effort level; use one of {', '.join(EFFORT_LEVELS)}.")


def check_request(
    params: Mapping[str, Any], card: ModelCard, *, api_version: str, model: str | None = None
) -> None:
    """Refuse, before anything is sent, a parameter the API version or the model rejects.

    ``params`` are the shared params of every request (everything but ``messages``);
    ``model`` is the name the user gave (the card may carry the dated id it resolves to).
    """
    model = model or card.id
    for name in SAMPLING_PARAMS:
        if name in params:
            raise ConfigError(sampling_refusal(name, api_version=api_version))
    max_tokens = params.get("max_tokens")
    if card.max_tokens is not None and isinstance(max_tokens, int) and max_tokens > card.max_tokens:
        raise ConfigError(
            f"max_tokens={max_tokens:,} is more than {model} allows ({card.max_tokens:,}); "
            f"give --max-tokens {card.max_tokens} or less."
        )
    output_config = params.get("output_config") or {}
    effort = output_config.get("effort") if isinstance(output_config, Mapping) else None
    if effort is not None:
        check_effort_name(effort)
        if card.source != "assumed":
            if not card.effort:
                raise ConfigError(
                    f"effort={effort!r}: {model} takes no effort setting (so says {card.told_by}). "
                    f"Drop --effort, or use a model that has one, such as {RECOMMENDED_MODEL!r}."
                )
            if effort not in card.effort_levels:
                raise ConfigError(
                    f"effort={effort!r}: {model} accepts the effort levels "
                    f"{', '.join(card.effort_levels)} (so says {card.told_by}); choose one of those."
                )
    if isinstance(output_config, Mapping) and output_config.get("format") is not None and not card.structured_outputs:
        raise ConfigError(
            f"{model} has no structured outputs, so output_config.format would be refused; "
            "leave the schema to --labels/--schema, which send it as a forced tool call on such models."
        )
    thinking = params.get("thinking")
    if isinstance(thinking, Mapping) and card.source != "assumed":
        kind = thinking.get("type")
        if kind not in card.thinking_types:
            accepted = ", ".join(sorted(card.thinking_types)) or "none"
            hint = " Control thinking with effort instead." if kind == "enabled" and card.effort else ""
            raise ConfigError(
                f"thinking.type={kind!r}: {model} refuses it (the types it accepts: {accepted}).{hint}"
            )
        if kind in ("disabled", "between_tools") and effort is not None and effort not in THINKING_OFF_EFFORTS:
            raise ConfigError(
                f"thinking.type={kind!r} with effort={effort!r}: thinking can be turned off only at "
                f"effort {', '.join(THINKING_OFF_EFFORTS)}. Lower the effort, or leave thinking on."
            )
    choice = params.get("tool_choice")
    forced = isinstance(choice, Mapping) and choice.get("type") in ("any", "tool")
    thinking_on = (
        thinking.get("type") in ("adaptive", "enabled") if isinstance(thinking, Mapping) else card.thinks_unasked
    )
    if forced and thinking_on:
        raise ConfigError(
            f"use_tool: a forced tool call cannot go with thinking, and {model} keeps thinking on "
            "here. Drop use_tool (the schema then goes as a structured output), or lower the effort."
        )


__all__ = [
    "EFFORT_LEVELS",
    "RECOMMENDED_MODEL",
    "AnswerBudget",
    "AnswerRoomWarning",
    "ModelCard",
    "ModelDeprecationWarning",
    "answer_budget",
    "check_request",
    "check_usable",
    "forget_models",
    "load_snapshot",
    "model_card",
    "sampling_refusal",
]


# -- room for the answer -----------------------------------------------------------------------
#: ``max_tokens`` a free-text answer gets when none is given.
TEXT_ANSWER_TOKENS = 1024
#: A label is a few tokens of JSON: a small cap keeps the cost bound honest.
LABEL_ANSWER_TOKENS = 64
#: ``max_tokens`` added for thinking when it stays on, by effort. Thinking tokens count
#: toward ``max_tokens``; an answer whose thinking fills it ends at ``max_tokens`` with no
#: text. Effort not set is sized as ``high``, the highest default effort of any model.
THINKING_ROOM = {"low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 16384}
#: Share of that room a request is expected to think, for the expected (not the upper) cost.
EXPECTED_THINKING_SHARE = 0.25


@dataclass(frozen=True)
class AnswerBudget:
    """How a request leaves room for its answer: ``max_tokens`` and the ``thinking`` param."""

    max_tokens: int
    #: ``{"type": "disabled"}`` (or ``between_tools``) when thinking is turned off; None
    #: when nothing is sent about thinking.
    thinking: dict[str, str] | None = None
    #: Tokens per request expected to go to thinking (part of the expected cost).
    expected_thinking: int = 0
    #: What was chosen, for the dry run ("thinking off for labels", ...); None if nothing.
    note: str | None = None
    #: A choice of the user's that may leave answers empty (shown and warned).
    warning: str | None = None


def answer_budget(
    card: ModelCard,
    *,
    kind: str,
    effort: str | None,
    max_tokens: int | None,
    thinking: Mapping[str, Any] | None = None,
) -> AnswerBudget:
    """``max_tokens`` and thinking for an answer of ``kind`` (text, labels, schema, json).

    A label or a schema answer needs no thinking: it is turned off where the model
    allows it at this effort; so is it for any answer whose given ``max_tokens`` is
    below what thinking is expected to use (a short answer was asked for). Where thinking stays on
    (a model that always thinks, effort xhigh/max, free text), ``max_tokens`` grows
    by :data:`THINKING_ROOM` so thinking cannot eat the answer, and the cost bound
    counts it. ``max_tokens`` given by the user is kept as given (with a warning
    when thinking must stay on and it leaves too little room). ``thinking`` is a
    param the user passed themselves (extra_params), which is kept too.
    """
    answer = LABEL_ANSWER_TOKENS if kind == "labels" else TEXT_ANSWER_TOKENS
    if thinking is not None:
        thinking_on = thinking.get("type") in ("adaptive", "enabled")
    else:
        thinking_on = card.thinks_unasked
    if not thinking_on:
        return AnswerBudget(max_tokens or answer)
    level = effort or "high"
    room = THINKING_ROOM[level]
    off = card.thinking_off(effort) if thinking is None else None
    if off is not None and kind in ("labels", "schema"):
        return AnswerBudget(max_tokens or answer, off, note=f"thinking off for {kind} (thinking: {off['type']})")
    expected = int(room * EXPECTED_THINKING_SHARE)
    if off is not None and max_tokens is not None and max_tokens < expected:
        # A budget below what thinking is expected to use asks for a short answer: thinking
        # would eat it whole, and the answer would come back empty.
        return AnswerBudget(max_tokens, off, note=(
            f"thinking off (thinking: {off['type']}): max_tokens={max_tokens:,} is less than thinking "
            f"is expected to use at effort {level} ({expected:,}); leave max_tokens unset to keep thinking on"
        ))
    why = "its capabilities are unknown" if card.source == "assumed" else (
        "it always thinks" if not card.thinking_off_types else (
        f"thinking cannot be turned off at effort {level}" if kind in ("labels", "schema") and thinking is None
        else "it thinks before answering"
    ))
    if max_tokens is not None:
        warning = None
        if max_tokens < answer + room:
            warning = (
                f"max_tokens={max_tokens:,} leaves little room for thinking on {card.id} ({why}; "
                "thinking tokens count toward max_tokens): answers may stop at max_tokens with no "
                f"text. Leave max_tokens unset to get {answer + room:,}."
            )
        return AnswerBudget(max_tokens, None, expected, None, warning)
    total = answer + room
    if card.max_tokens is not None:
        total = min(total, card.max_tokens)
    sized = "" if effort else " (effort not set: sized for high, the highest default)"
    note = (
        f"max_tokens {total:,} to leave room for thinking ({why}): {answer:,} for the answer "
        f"+ {room:,} for thinking at effort {level}{sized}"
    )
    return AnswerBudget(total, None, expected, note)
