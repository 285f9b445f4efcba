"""The fake Claude: deterministic answers shaped exactly like Messages API output.

It answers a validated request (``rules.py`` decides what is valid) in one of
three modes: plain text, structured output (``output_config.format`` of type
``json_schema``, or the older top-level ``output_format``) and forced tool
use; before that it may think (``thinking.py``) or refuse. A JSON object asked
for in words, without a schema, is answered as one (``asked_json.py``). A user-supplied
responder can replace the answer. Everything is a pure function of the
params, a seed and a draw key, so results can be regenerated after a restart
instead of being stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from . import thinking
from .asked_json import asked_object, system_text, without_request
from .catalog import ModelSpec, current, resolve
from .faults import draw
from .media import ImageInfo, MediaInfo, PdfInfo, TextInfo, labelled_fields
from .protocol import hashed_base62
from .reading import FileLookup, last_turn_media
from .schema import Cues, break_value, fake_value, stem
from .tokens import (
    CHARS_PER_TOKEN,
    CachePrefix,
    count_input_tokens,
    last_user_text,
    tokens_of_chars,
)

#: A user responder: params dict -> answer text, or a full Message dict.
Responder = Callable[[dict[str, Any]], str | dict[str, Any]]

#: Put this in a prompt (system or last user turn) to have the model refuse it;
#: ``<<sim:refuse:cyber>>`` names the category (see ``REFUSAL_CATEGORIES``).
REFUSAL_MARKER = re.compile(r"<<sim:refuse(?::([a-z_]+))?>>")
#: The categories of ``RefusalStopDetails`` (SDK ``types/refusal_stop_details.py``).
REFUSAL_CATEGORIES = ("cyber", "bio", "frontier_llm", "reasoning_extraction", "general_harms")

Blocks = list[dict[str, Any]]


def output_schema(params: dict[str, Any]) -> dict[str, Any] | bool | None:
    """The JSON schema asked for, None if none, False if malformed."""
    fmt: Any = None
    oc = params.get("output_config")
    if isinstance(oc, dict) and oc.get("format") is not None:
        fmt = oc["format"]
    elif params.get("output_format") is not None:  # the beta spelling
        fmt = params["output_format"]
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        return False
    schema: dict[str, Any] = fmt["schema"]
    return schema


def forced_tool(params: dict[str, Any]) -> dict[str, Any] | bool | None:
    """The tool the model must call, None if not forced, False if the choice names no tool."""
    choice = params.get("tool_choice")
    tools = params.get("tools")
    if not isinstance(choice, dict) or choice.get("type") not in ("tool", "any"):
        return None
    usable = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)] if isinstance(tools, list) else []
    if choice["type"] == "tool":
        for t in usable:
            if t["name"] == choice.get("name"):
                return t
        return False
    if not usable:
        return False
    cues = Cues(last_user_text(params))

    def overlap(tool: dict[str, Any]) -> int:
        words = re.findall(r"[A-Za-z]+", f"{tool['name']} {tool.get('description', '')}")
        return sum(cues.stems.get(stem(w), 0) for w in words)

    return max(usable, key=lambda t: (overlap(t), -usable.index(t)))


class FakeModel:
    """Answers validated params; see the module docstring for the modes.

    ``refusal_rate`` and ``invalid_rate`` are the chances that a request is
    refused, or that a structured answer (schema or tool input) breaks its
    schema; each is drawn from the seed and the request's draw key.
    """

    def __init__(self, responder: Responder | None = None, *, refusal_rate: float = 0.0,
                 invalid_rate: float = 0.0) -> None:
        self.responder = responder
        self.refusal_rate = refusal_rate
        self.invalid_rate = invalid_rate

    def answer(
        self,
        params: dict[str, Any],
        *,
        message_id: str,
        seed: str,
        service_tier: str,
        cache: tuple[CachePrefix, bool] | None = None,
        draw_key: str | None = None,
        files: FileLookup | None = None,
    ) -> dict[str, Any]:
        """A Message dict for ``params`` (already validated).

        ``cache`` is the prompt's cache prefix and whether this call wrote it
        (True) or read it (False). ``draw_key`` identifies the request for the
        refusal and invalid draws (default: the params themselves, so the same
        realtime request always draws the same). ``files`` looks up the
        uploads that media blocks name. Exceptions of the responder propagate.
        """
        model = params["model"]
        spec = resolve(model, None) or current(model)
        key = draw_key if draw_key is not None else orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode()
        total_in = count_input_tokens(params, spec.tokenizer, files)
        text = last_user_text(params)
        refusal = self._refusal(params, spec, text, seed, key)
        if refusal is not None:
            return self._message(params, message_id, [], "refusal", None, usage(total_in, 0, 0, service_tier, cache),
                                 stop_details=refusal)
        reply: str | None = None
        if self.responder is not None:
            out = self.responder(dict(params))
            if isinstance(out, dict):
                return self._complete(out, params, message_id, service_tier, total_in, cache, spec.tokenizer)
            if not isinstance(out, str):
                raise TypeError(f"a responder must return str or dict, not {type(out).__name__}")
            reply = out
        # The output may stop at max_tokens, or earlier where the context window ends.
        room = max(0, spec.max_input_tokens - total_in)
        limit, cut = (params["max_tokens"], "max_tokens") if params["max_tokens"] <= room else (
            room, "model_context_window_exceeded")
        plan = thinking.plan(params, spec)
        thought = thinking.thinking_tokens(plan, total_in, text, seed)
        content: Blocks = []
        if plan.active:
            spent = min(thought, limit)
            content.append(thinking.block(plan, text, seed, spent))
            if thought >= limit:  # ran out while thinking: no text at all
                return self._message(params, message_id, content, cut, None,
                                     usage(total_in, limit, limit, service_tier, cache))
        body_budget = limit - thought
        if reply is not None:
            blocks, stop, stop_seq, tokens = _text(reply, params, body_budget, cut, spec.tokenizer)
        else:
            cues = reading_cues(text, last_turn_media(params, files), seed)
            blocks, stop, stop_seq, tokens = self._generate(params, cues, body_budget, cut, message_id, key, spec)
        content.extend(blocks)
        return self._message(params, message_id, content, stop, stop_seq,
                             usage(total_in, thought + tokens, thought, service_tier, cache))

    # -- parts --------------------------------------------------------------------------------
    def _refusal(
        self, params: dict[str, Any], spec: ModelSpec, text: str, seed: str, key: str
    ) -> dict[str, Any] | None:
        """The ``stop_details`` of a refusal, or None to answer.

        Models with the safety classifiers name a category and explain it;
        older ones refuse without detail (``category`` and ``explanation`` null).
        """
        match = REFUSAL_MARKER.search(text) or REFUSAL_MARKER.search(system_text(params))
        if match is None and not (self.refusal_rate and draw(0, "refusal", seed, key) < self.refusal_rate):
            return None
        if not spec.refusal_classifiers:
            return {"type": "refusal", "category": None, "explanation": None}
        category = match.group(1) if match and match.group(1) in REFUSAL_CATEGORIES else "general_harms"
        topic = category.replace("_", " ")
        return {"type": "refusal", "category": category,
                "explanation": f"This request triggered restrictions on {topic} content and was blocked "
                               "under Anthropic's Usage Policy."}

    def _generate(
        self, params: dict[str, Any], cues: Cues, budget: int, cut: str, message_id: str, key: str,
        spec: ModelSpec,
    ) -> tuple[Blocks, str, str | None, int]:
        seed = cues.seed
        broken = bool(self.invalid_rate) and draw(0, "invalid", seed, key) < self.invalid_rate
        tool = forced_tool(params)
        if isinstance(tool, dict) and isinstance(tool.get("input_schema"), dict):
            value = fake_value(tool["input_schema"], cues)
            if broken:
                value = break_value(tool["input_schema"], value)
            if not isinstance(value, dict):
                value = {}
            needed = tokens_of_chars(len(tool["name"]) + len(json.dumps(value)), spec.tokenizer) + 10
            block = {"type": "tool_use", "id": "toolu_01" + hashed_base62(22, message_id, "tool"),
                     "name": tool["name"], "input": value}
            if needed > budget:
                block["input"] = {}
                return [block], cut, None, max(0, budget)
            return [block], "tool_use", None, needed
        schema = output_schema(params)
        if isinstance(schema, dict):
            value = fake_value(schema, cues)
            if broken:
                value = break_value(schema, value)
            answer = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            return _text(answer, params, budget, cut, spec.tokenizer)
        asked = asked_object(system_text(params), cues.prompt)
        if asked is not None:  # a JSON object asked for in words (asked_json.py)
            read = Cues(without_request(cues.text), cues.seed, prompt=without_request(cues.prompt), notes=cues.notes,
                        colours=cues.colours, fields=cues.fields)
            return _text(json.dumps(fake_value(asked, read), ensure_ascii=False), params, budget, cut, spec.tokenizer)
        return _text(plain_answer(cues), params, budget, cut, spec.tokenizer)

    @staticmethod
    def _message(
        params: dict[str, Any], message_id: str, content: Blocks, stop_reason: str, stop_sequence: str | None,
        usage_: dict[str, Any], stop_details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": params["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "stop_details": stop_details,
            "usage": usage_,
        }

    @staticmethod
    def _complete(
        msg: dict[str, Any],
        params: dict[str, Any],
        message_id: str,
        service_tier: str,
        total_in: int,
        cache: tuple[CachePrefix, bool] | None,
        tokenizer: str,
    ) -> dict[str, Any]:
        """Fill whatever a responder's Message dict left out."""
        msg = dict(msg)
        msg.setdefault("id", message_id)
        msg.setdefault("type", "message")
        msg.setdefault("role", "assistant")
        msg.setdefault("model", params["model"])
        msg.setdefault("content", [])
        msg.setdefault("stop_reason", "end_turn")
        msg.setdefault("stop_sequence", None)
        msg.setdefault("stop_details", None)
        if "usage" not in msg:
            chars = sum(len(json.dumps(b)) for b in msg["content"])
            msg["usage"] = usage(total_in, tokens_of_chars(chars, tokenizer) or 1, 0, service_tier, cache)
        return msg


def _text(
    text: str, params: dict[str, Any], budget: int, cut: str, tokenizer: str
) -> tuple[Blocks, str, str | None, int]:
    """Wrap text in a text block, honouring stop_sequences and the token budget left."""
    stop_reason, stop_seq = "end_turn", None
    stops = params.get("stop_sequences")
    if isinstance(stops, list):
        hits = [(text.find(s), s) for s in stops if isinstance(s, str) and s and s in text]
        if hits:
            pos, stop_seq = min(hits)
            text, stop_reason = text[:pos], "stop_sequence"
    tokens = max(1, tokens_of_chars(len(text), tokenizer))
    if tokens > budget:
        per_token = CHARS_PER_TOKEN if tokenizer == "classic" else CHARS_PER_TOKEN * 10 // 13
        text = text[: max(0, budget) * per_token]
        tokens, stop_reason, stop_seq = max(0, budget), cut, None
    return [{"type": "text", "text": text}], stop_reason, stop_seq, max(1, tokens)


def usage(
    total_in: int, out_tokens: int, thinking_tokens: int, service_tier: str, cache: tuple[CachePrefix, bool] | None
) -> dict[str, Any]:
    """The ``usage`` object: the cached part of the input is moved out of input_tokens;
    ``output_tokens`` includes thinking, which ``output_tokens_details`` breaks out."""
    created = read = 0
    eph = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    if cache is not None:
        prefix, wrote = cache
        cached = min(prefix.tokens, total_in)
        if wrote:
            created = cached
            eph[f"ephemeral_{prefix.ttl}_input_tokens"] = cached
        else:
            read = cached
    return {
        "input_tokens": total_in - created - read,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": read,
        "cache_creation": eph,
        "output_tokens": out_tokens,
        "output_tokens_details": {"thinking_tokens": thinking_tokens},
        "service_tier": service_tier,
    }


def plain_answer(cues: Cues) -> str:
    """A short answer that visibly reflects the prompt: what its images and documents show, then
    its words.

    Long prompts are echoed by their start and their end, since a row's data
    usually sits before or after the template's fixed instruction.
    """
    words = cues.prompt.split()
    if len(words) <= 16:
        echo = " ".join(words)
    else:
        echo = f"{' '.join(words[:6])} ... {' '.join(words[-10:])}"
    seen = "; ".join(cues.notes)
    if seen:
        return f"Simulated answer: {seen}." + (f" {echo}" if echo else "")
    return f"Simulated answer: {echo}" if echo else "Simulated answer: (empty prompt)"


def reading_cues(prompt: str, media: list[MediaInfo], seed: str) -> Cues:
    """What the model reads: the prompt's words, the text of its documents, what its images show.

    Fields for structured answers come from what the media say of themselves:
    ``Name: value`` lines of a document (the first one of a name wins), then a
    PDF's title, author and page count, an image's colour and size.
    """
    if not media:
        return Cues(prompt, seed)
    texts = [prompt]
    notes: list[str] = []
    colours: list[str] = []
    fields: dict[str, str] = {}
    for info in media:
        if isinstance(info, ImageInfo):
            notes.append(info.describe())
            texts.append(f"[{info.describe()}]")
            if info.colour:
                colours.append(info.colour)
                for name in ("colour", "color", "dominant_colour", "dominant_color"):
                    fields.setdefault(name, info.colour)
            fields.setdefault("width", str(info.width))
            fields.setdefault("height", str(info.height))
            fields.setdefault("size", f"{info.width}x{info.height}")
        elif isinstance(info, (PdfInfo, TextInfo)):
            snippet = " ".join(info.text.split()[:12])
            more = "..." if len(info.text.split()) > 12 else ""
            notes.append(f'{info.describe()}, reading "{snippet}{more}"' if snippet else info.describe())
            texts.append(info.text)
            for name, labelled in labelled_fields(info.text).items():
                fields.setdefault(name, labelled)
            if isinstance(info, PdfInfo):
                for names, meta in ((("title",), info.title), (("author",), info.author),
                                    (("pages", "page_count", "num_pages"), str(info.pages))):
                    for name in names:
                        if meta:
                            fields.setdefault(name, meta)
        else:
            notes.append(info.describe())
    return Cues("\n".join(t for t in texts if t), seed, prompt=prompt, notes=tuple(notes), colours=tuple(colours),
                fields=fields)
