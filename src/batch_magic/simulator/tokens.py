"""Token counts of a request: input tokens, the cacheable prefix, the row's text.

Text counts about four characters a token on the classic tokenizer and about
30% more on the newer one (Opus 4.7 and later, Sonnet 5 and 5.5, Haiku 5.5,
Fable, Mythos; platform.claude.com ``/docs/en/build-with-claude/token-counting``
and ``/docs/en/models/haiku-5-5/whats-new-haiku-5-5``). Which tokenizer a model
uses is in the model table (``catalog.py``).

An image counts ``width × height / 750`` tokens after it is scaled down to the
model's resolution (``/docs/en/build-with-claude/vision``); a PDF counts its
extracted text plus one page image per page (``/docs/en/build-with-claude/pdf-support``).
Media tokens do not depend on the text tokenizer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .catalog import resolve
from .media import ImageInfo, PdfInfo, TextInfo
from .protocol import hashed_base62
from .reading import FileLookup, MediaBlock, MediaProblem
from .reading import resolve as resolve_media

CHARS_PER_TOKEN = 4
#: The newer tokenizer: 1.3 tokens for every classic one (13/10).
NEW_TOKENIZER_NUM, NEW_TOKENIZER_DEN = 13, 10
#: A media block the simulator cannot measure (a URL it does not fetch): a flat cost.
MEDIA_TOKENS = 1500
PIXELS_PER_TOKEN = 750
#: Per resolution: the longest edge in pixels and the most tokens an image costs after scaling.
VISION_LIMITS: dict[str, tuple[int, int]] = {"standard": (1568, 1600), "high": (2576, 4784)}
#: One PDF page's image: a page rendered at the standard resolution (US Letter or A4: the
#: 1,600-token cap), whatever the model's own resolution.
PAGE_IMAGE_TOKENS = 1600


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


def vision_of(params: dict[str, Any]) -> str:
    """The image resolution of the request's model ("standard" when unknown)."""
    model = params.get("model")
    spec = resolve(model, None) if isinstance(model, str) else None
    return spec.vision if spec is not None else "standard"


def image_tokens(width: int, height: int, vision: str = "standard") -> int:
    """Tokens of an image: scaled down (aspect kept) to the long edge and token cap of the
    resolution, then ``width × height / 750``, rounded up."""
    edge, cap = VISION_LIMITS.get(vision, VISION_LIMITS["standard"])
    w, h = max(1, width), max(1, height)
    scale = min(1.0, edge / max(w, h), math.sqrt(cap * PIXELS_PER_TOKEN / (w * h)))
    sw, sh = max(1, int(w * scale)), max(1, int(h * scale))
    return min(cap, max(1, math.ceil(sw * sh / PIXELS_PER_TOKEN)))


class _Measure:
    """How media is measured for one request: where uploads are looked up, the model's resolution
    (found only when the request has media)."""

    def __init__(self, params: dict[str, Any], files: FileLookup | None) -> None:
        self.params = params
        self.files = files

    @cached_property
    def vision(self) -> str:
        return vision_of(self.params)


def _media_size(block: dict[str, Any], path: str, measure: _Measure) -> tuple[int, int]:
    """(text characters, media tokens) of an image or document block."""
    try:
        info = resolve_media(MediaBlock(path, str(block.get("type")), block, "user"), measure.files)
    except MediaProblem:
        return 0, MEDIA_TOKENS  # invalid blocks are refused before anyone counts them
    if isinstance(info, ImageInfo):
        return 0, image_tokens(info.width, info.height, measure.vision)
    if isinstance(info, PdfInfo):
        return len(info.text), PAGE_IMAGE_TOKENS * info.pages
    if isinstance(info, TextInfo):
        return len(info.text), 0
    return 0, MEDIA_TOKENS


def _block_size(block: Any, path: str, measure: _Measure) -> tuple[int, int]:
    """(text characters, media tokens) of one content block."""
    if isinstance(block, str):
        return len(block), 0
    if not isinstance(block, dict):
        return 0, 0
    t = block.get("type")
    if t == "text":
        text = block.get("text")
        return (len(text) if isinstance(text, str) else 0), 0
    if t in ("image", "document"):
        return _media_size(block, path, measure)
    if t == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            sizes = [_block_size(b, f"{path}.content.{k}", measure) for k, b in enumerate(content)]
            return sum(c for c, _ in sizes), sum(m for _, m in sizes)
        return (len(content) if isinstance(content, str) else 0), 0
    if t == "tool_use":
        return len(str(block.get("name", ""))) + len(json.dumps(block.get("input", {}))), 0
    if t in ("thinking", "redacted_thinking"):
        return 0, 0  # previous thinking is not billed as input
    return len(json.dumps(block)), 0


def content_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return content
    return []


def _segments(params: dict[str, Any], files: FileLookup | None) -> Iterable[tuple[int, int, Any, Any]]:
    """(text chars, media tokens, identity, cache_control) for each piece of the prompt, in cache order.

    The API caches a prefix in the order tools -> system -> messages.
    """
    measure = _Measure(params, files)
    tools = params.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict):
                yield len(json.dumps(tool, sort_keys=True)), 0, tool, tool.get("cache_control")
    system = params.get("system")
    for k, block in enumerate(content_blocks(system)):
        cc = block.get("cache_control") if isinstance(block, dict) else None
        yield (*_block_size(block, f"system.{k}", measure), block, cc)
    messages = params.get("messages")
    if isinstance(messages, list):
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                continue
            for j, block in enumerate(content_blocks(msg.get("content"))):
                cc = block.get("cache_control") if isinstance(block, dict) else None
                yield (*_block_size(block, f"messages.{i}.content.{j}", measure), [msg.get("role"), block], cc)


def count_input_tokens(params: dict[str, Any], tokenizer: str | None = None, files: FileLookup | None = None) -> int:
    """Input tokens of a request (tools, system, messages) with its model's tokenizer;
    ``files`` looks up the uploads its media blocks name.

    ``count_tokens`` and ``usage.input_tokens`` both come from here, so they agree.
    """
    chars = media = 0
    for c, m, _, _ in _segments(params, files):
        chars += c
        media += m
    return tokens_of_chars(chars, tokenizer or tokenizer_of(params)) + media


@dataclass(frozen=True)
class CachePrefix:
    """The cacheable prefix of a prompt: its identity key, size and TTL."""

    key: str
    tokens: int
    ttl: str  # "5m" or "1h"


def cache_prefix(params: dict[str, Any], files: FileLookup | None = None) -> CachePrefix | None:
    """The prefix up to the last ``cache_control`` breakpoint, or None.

    A top-level ``cache_control`` (automatic caching) puts the breakpoint on
    the last block of the prompt.
    """
    segs = list(_segments(params, files))
    top = params.get("cache_control")
    last = -1
    ttl = "5m"
    for i, (_, _, _, cc) in enumerate(segs):
        if isinstance(cc, dict):
            last = i
            ttl = "1h" if cc.get("ttl") == "1h" else "5m"
    if isinstance(top, dict) and segs:
        last = len(segs) - 1
        ttl = "1h" if top.get("ttl") == "1h" else "5m"
    if last < 0:
        return None
    chars = sum(s[0] for s in segs[: last + 1])
    media = sum(s[1] for s in segs[: last + 1])
    ident = json.dumps([params.get("model"), [s[2] for s in segs[: last + 1]]], sort_keys=True, default=str)
    key = hashed_base62(22, ident)
    return CachePrefix(key=key, tokens=tokens_of_chars(chars, tokenizer_of(params)) + media, ttl=ttl)


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
