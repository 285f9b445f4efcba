"""Token counts of a request: input tokens, the cacheable prefix, the row's text.

Text counts about four characters a token on the classic tokenizer and about
30% more on the newer one (Opus 4.7 and later, Sonnet 5 and 5.5, Haiku 5.5,
Fable, Mythos; platform.claude.com ``/docs/en/build-with-claude/token-counting``
and ``/docs/en/models/haiku-5-5/whats-new-haiku-5-5``). Which tokenizer a model
uses is in the model table (``catalog.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .catalog import resolve
from .protocol import hashed_base62

CHARS_PER_TOKEN = 4
#: The newer tokenizer: 1.3 tokens for every classic one (13/10).
NEW_TOKENIZER_NUM, NEW_TOKENIZER_DEN = 13, 10
#: A rough token cost for an image or a document block (the API uses their size).
MEDIA_TOKENS = 1500


def tokens_of_chars(chars: int, tokenizer: str = "classic") -> int:
    """Tokens of ``chars`` characters: about 4 a token, about 30% more on the newer tokenizer."""
    if chars <= 0:
        return 0
    if tokenizer == "new":
        return max(1, -(-chars * NEW_TOKENIZER_NUM // (CHARS_PER_TOKEN * NEW_TOKENIZER_DEN)))
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def tokenizer_of(params: dict[str, Any]) -> str:
    """The tokenizer of the request's model ("classic" when the model is unknown or invalid)."""
    model = params.get("model")
    spec = resolve(model, None) if isinstance(model, str) else None
    return spec.tokenizer if spec is not None else "classic"


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


def content_blocks(content: Any) -> list[Any]:
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
    for block in content_blocks(system):
        cc = block.get("cache_control") if isinstance(block, dict) else None
        yield _block_chars(block), block, cc
    messages = params.get("messages")
    if isinstance(messages, list):
        for msg in messages:
            if not isinstance(msg, dict):
                continue
            for block in content_blocks(msg.get("content")):
                cc = block.get("cache_control") if isinstance(block, dict) else None
                yield _block_chars(block), [msg.get("role"), block], cc


def count_input_tokens(params: dict[str, Any], tokenizer: str | None = None) -> int:
    """Input tokens of a request (tools, system, messages) with its model's tokenizer.

    ``count_tokens`` and ``usage.input_tokens`` both come from here, so they agree.
    """
    return tokens_of_chars(sum(chars for chars, _, _ in _segments(params)), tokenizer or tokenizer_of(params))


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
    return CachePrefix(key=key, tokens=tokens_of_chars(chars, tokenizer_of(params)), ttl=ttl)


def last_user_text(params: dict[str, Any]) -> str:
    """The text of the last user turn: where a row's data sits in a batch prompt."""
    messages = params.get("messages")
    if not isinstance(messages, list):
        return ""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            parts: list[str] = []
            for block in content_blocks(msg.get("content")):
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
