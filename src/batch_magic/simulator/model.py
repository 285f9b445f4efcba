"""The fake Claude: deterministic answers shaped exactly like Messages API output.

It validates one request's params the way the API does (bad model, bad
``max_tokens``, missing messages), counts tokens (about four characters per
token), and answers in one of three modes: plain text, structured output
(``output_config.format`` of type ``json_schema``, or the older top-level
``output_format``) and forced tool use. A user-supplied responder can replace
the answer. Everything is a pure function of the params and a seed, so results
can be regenerated after a restart instead of being stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .protocol import hashed_base62
from .schema import Cues, fake_value, stem

#: A user responder: params dict -> answer text, or a full Message dict.
Responder = Callable[[dict[str, Any]], str | dict[str, Any]]

CLAUDE_MODEL_RE = re.compile(r"^claude-[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
CHARS_PER_TOKEN = 4
#: A rough token cost for an image or a document block (the API uses their size).
MEDIA_TOKENS = 1500


def looks_like_claude(model: object) -> bool:
    """Accept any id shaped like a Claude model: aliases, dated ids, ids newer than any list."""
    return isinstance(model, str) and bool(CLAUDE_MODEL_RE.match(model))


def tokens_of_chars(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN)) if chars > 0 else 0


def _block_chars(block: Any) -> int:
    """Characters of one content block, counting media at a flat rate."""
    if isinstance(block, str):
        return len(block)
    if not isinstance(block, dict):
        return 0
    t = block.get("type")
    if t == "text":
        text = block.get("text")
        return len(text) if isinstance(text, str) else 0
    if t in ("image", "document"):
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
            return len(source["data"])
        return MEDIA_TOKENS * CHARS_PER_TOKEN
    if t == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return sum(_block_chars(b) for b in content)
        return len(content) if isinstance(content, str) else 0
    if t == "tool_use":
        return len(str(block.get("name", ""))) + len(json.dumps(block.get("input", {})))
    if t in ("thinking", "redacted_thinking"):
        return 0  # previous thinking is not billed as input
    return len(json.dumps(block))


def _content_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return content
    return []


def _segments(params: dict[str, Any]) -> Iterable[tuple[int, Any, Any]]:
    """(chars, identity, cache_control) for each piece of the prompt, in cache order.

    The API caches a prefix in the order tools -> system -> messages.
    """
    tools = params.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict):
                yield len(json.dumps(tool, sort_keys=True)), tool, tool.get("cache_control")
    system = params.get("system")
    for block in _content_blocks(system):
        cc = block.get("cache_control") if isinstance(block, dict) else None
        yield _block_chars(block), block, cc
    messages = params.get("messages")
    if isinstance(messages, list):
        for msg in messages:
            if not isinstance(msg, dict):
                continue
            for block in _content_blocks(msg.get("content")):
                cc = block.get("cache_control") if isinstance(block, dict) else None
                yield _block_chars(block), [msg.get("role"), block], cc


def count_input_tokens(params: dict[str, Any]) -> int:
    """Input tokens of a request: about chars/4 of tools, system and messages."""
    return tokens_of_chars(sum(chars for chars, _, _ in _segments(params)))


@dataclass(frozen=True)
class CachePrefix:
    """The cacheable prefix of a prompt: its identity key, size and TTL."""

    key: str
    tokens: int
    ttl: str  # "5m" or "1h"


def cache_prefix(params: dict[str, Any]) -> CachePrefix | None:
    """The prefix up to the last ``cache_control`` breakpoint, or None.

    A top-level ``cache_control`` (automatic caching) puts the breakpoint on
    the last block of the prompt.
    """
    segs = list(_segments(params))
    top = params.get("cache_control")
    last = -1
    ttl = "5m"
    for i, (_, _, cc) in enumerate(segs):
        if isinstance(cc, dict):
            last = i
            ttl = "1h" if cc.get("ttl") == "1h" else "5m"
    if isinstance(top, dict) and segs:
        last = len(segs) - 1
        ttl = "1h" if top.get("ttl") == "1h" else "5m"
    if last < 0:
        return None
    chars = sum(c for c, _, _ in segs[: last + 1])
    ident = json.dumps([params.get("model"), [s[1] for s in segs[: last + 1]]], sort_keys=True, default=str)
    key = hashed_base62(22, ident)
    return CachePrefix(key=key, tokens=tokens_of_chars(chars), ttl=ttl)


def last_user_text(params: dict[str, Any]) -> str:
    """The text of the last user turn: where a row's data sits in a batch prompt."""
    messages = params.get("messages")
    if not isinstance(messages, list):
        return ""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            parts: list[str] = []
            for block in _content_blocks(msg.get("content")):
                if isinstance(block, str):
                    parts.append(block)
                elif isinstance(block, dict):
                    if block.get("type") == "text" and isinstance(block.get("text"), str):
                        parts.append(block["text"])
                    elif block.get("type") == "tool_result":
                        inner = block.get("content")
                        if isinstance(inner, str):
                            parts.append(inner)
                        elif isinstance(inner, list):
                            parts.extend(b["text"] for b in inner if isinstance(b, dict) and isinstance(b.get("text"), str))
            return "\n".join(parts)
    return ""


def validate_params(
    params: Any, *, in_batch: bool, strict_models: Iterable[str] | None = None
) -> tuple[str, str] | None:
    """The (error type, message) the API would answer for these params, or None if fine."""
    if not isinstance(params, dict):
        return "invalid_request_error", "params: Input should be a valid dictionary"
    model = params.get("model")
    if model is None:
        return "invalid_request_error", "model: Field required"
    if not isinstance(model, str) or not looks_like_claude(model):
        return "not_found_error", f"model: {model}"
    if strict_models is not None and model not in set(strict_models):
        return "not_found_error", f"model: {model}"
    mt = params.get("max_tokens")
    if mt is None:
        return "invalid_request_error", "max_tokens: Field required"
    if not isinstance(mt, int) or isinstance(mt, bool):
        return "invalid_request_error", "max_tokens: Input should be a valid integer"
    if mt < 1:
        return "invalid_request_error", "max_tokens: Input should be greater than or equal to 1"
    messages = params.get("messages")
    if messages is None:
        return "invalid_request_error", "messages: Field required"
    if not isinstance(messages, list):
        return "invalid_request_error", "messages: Input should be a valid list"
    if not messages:
        return "invalid_request_error", "messages: at least one message is required"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            return "invalid_request_error", f"messages.{i}: Input should be a valid dictionary"
        if msg.get("role") not in ("user", "assistant"):
            return "invalid_request_error", f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = msg.get("content")
        if not isinstance(content, (str, list)):
            return "invalid_request_error", f"messages.{i}.content: Field required"
        if isinstance(content, list) and not content and i < len(messages) - 1:
            return "invalid_request_error", f"messages.{i}: all messages must have non-empty content"
    if in_batch and params.get("stream"):
        return "invalid_request_error", "stream: streaming is not supported in a message batch"
    fmt = output_schema(params)
    if fmt is False:
        return "invalid_request_error", "output_config.format: expected {'type': 'json_schema', 'schema': {...}}"
    tool = forced_tool(params)
    if tool is False:
        return "invalid_request_error", "tool_choice: the named tool is not among the `tools` given"
    return None


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
    """Answers validated params; see the module docstring for the three modes."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder

    def answer(
        self,
        params: dict[str, Any],
        *,
        message_id: str,
        seed: str,
        service_tier: str,
        cache: tuple[CachePrefix, bool] | None = None,
    ) -> dict[str, Any]:
        """A Message dict for ``params`` (already validated).

        ``cache`` is the prompt's cache prefix and whether this call wrote it
        (True) or read it (False). Exceptions of the responder propagate.
        """
        model = params["model"]
        max_tokens: int = params["max_tokens"]
        total_in = count_input_tokens(params)
        if self.responder is not None:
            out = self.responder(dict(params))
            if isinstance(out, dict):
                return self._complete(out, params, message_id, service_tier, total_in, cache)
            if not isinstance(out, str):
                raise TypeError(f"a responder must return str or dict, not {type(out).__name__}")
            content, stop_reason, stop_seq, out_tokens = self._text(out, params, max_tokens)
        else:
            content, stop_reason, stop_seq, out_tokens = self._generate(params, max_tokens, seed, message_id)
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_seq,
            "usage": usage(total_in, out_tokens, service_tier, cache),
        }

    # -- modes -------------------------------------------------------------------------------
    def _generate(
        self, params: dict[str, Any], max_tokens: int, seed: str, message_id: str
    ) -> tuple[list[dict[str, Any]], str, str | None, int]:
        text = last_user_text(params)
        cues = Cues(text, seed)
        tool = forced_tool(params)
        if isinstance(tool, dict) and isinstance(tool.get("input_schema"), dict):
            value = fake_value(tool["input_schema"], cues)
            if not isinstance(value, dict):
                value = {}
            needed = tokens_of_chars(len(tool["name"]) + len(json.dumps(value))) + 10
            block = {"type": "tool_use", "id": "toolu_01" + hashed_base62(22, message_id, "tool"),
                     "name": tool["name"], "input": value}
            if needed > max_tokens:
                block["input"] = {}
                return [block], "max_tokens", None, max_tokens
            return [block], "tool_use", None, needed
        schema = output_schema(params)
        if isinstance(schema, dict):
            value = fake_value(schema, cues)
            return self._text(json.dumps(value, ensure_ascii=False, separators=(",", ":")), params, max_tokens)
        return self._text(plain_answer(cues), params, max_tokens)

    @staticmethod
    def _text(
        text: str, params: dict[str, Any], max_tokens: int
    ) -> tuple[list[dict[str, Any]], str, str | None, int]:
        """Wrap text in a text block, honouring stop_sequences, max_tokens and thinking."""
        stop_reason, stop_seq = "end_turn", None
        stops = params.get("stop_sequences")
        if isinstance(stops, list):
            hits = [(text.find(s), s) for s in stops if isinstance(s, str) and s and s in text]
            if hits:
                pos, stop_seq = min(hits)
                text, stop_reason = text[:pos], "stop_sequence"
        content: list[dict[str, Any]] = []
        budget = max_tokens
        thinking = params.get("thinking")
        out_tokens = 0
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            thought = "Let me consider the request and answer briefly."
            t_tokens = min(budget, tokens_of_chars(len(thought)))
            content.append({"type": "thinking", "thinking": thought[: t_tokens * CHARS_PER_TOKEN],
                            "signature": "sim" + hashed_base62(40, thought)})
            budget -= t_tokens
            out_tokens += t_tokens
        tokens = max(1, tokens_of_chars(len(text)))
        if tokens > budget:
            text = text[: max(0, budget) * CHARS_PER_TOKEN]
            tokens, stop_reason, stop_seq = max(0, budget), "max_tokens", None
        if budget > 0 or not content:
            content.append({"type": "text", "text": text})
        return content, stop_reason, stop_seq, max(1, out_tokens + tokens)

    @staticmethod
    def _complete(
        msg: dict[str, Any],
        params: dict[str, Any],
        message_id: str,
        service_tier: str,
        total_in: int,
        cache: tuple[CachePrefix, bool] | None,
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
        if "usage" not in msg:
            chars = sum(len(json.dumps(b)) for b in msg["content"])
            msg["usage"] = usage(total_in, tokens_of_chars(chars) or 1, service_tier, cache)
        return msg


def usage(total_in: int, out_tokens: int, service_tier: str, cache: tuple[CachePrefix, bool] | None) -> dict[str, Any]:
    """The ``usage`` object: the cached part of the input is moved out of input_tokens."""
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
        "service_tier": service_tier,
    }


def plain_answer(cues: Cues) -> str:
    """A short answer that visibly reflects the prompt.

    Long prompts are echoed by their start and their end, since a row's data
    usually sits before or after the template's fixed instruction.
    """
    words = cues.text.split()
    if not words:
        return "Simulated answer: (empty prompt)"
    if len(words) <= 16:
        return f"Simulated answer: {' '.join(words)}"
    return f"Simulated answer: {' '.join(words[:6])} ... {' '.join(words[-10:])}"
