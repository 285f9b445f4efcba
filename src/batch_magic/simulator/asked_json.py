"""A JSON object asked for in words: whether a request asks for one, and the shape it names.

Without an output schema or a forced tool nothing constrains an answer; Claude
answers with JSON because the prompt asks for it ("Prompt engineering: Increase
output consistency", which asks for JSON in the prompt and shows the keys
wanted). The simulator reads that from the request alone:

- asked: the word ``JSON`` (any case) in the system prompt or the last user turn;
- keys: the quoted keys of an example object in that text (``{"name": "...",
  "age": 30}``: a key's type is its example value's), else the names listed
  after "keys", "fields" or "properties" (``with keys name, age and city``),
  else one key, ``answer``.

The result is a JSON schema the fake model fills in as it fills an output
schema, so the answer's values follow the prompt the same way; the sentences
that ask for JSON are left out of what it reads for the values (a key named
``is_urgent`` in the instruction says nothing about the ticket).
"""

from __future__ import annotations

import re
from typing import Any

_ASKED = re.compile(r"\bjson\b", re.IGNORECASE)
#: ``"key": value`` inside an example object; the value's first character gives its type.
_EXAMPLE_KEY = re.compile(r"""["']([A-Za-z_][\w -]{0,63})["']\s*:\s*(.)""")
#: "keys name, age and city" / "fields: `a`, `b`" up to the end of the sentence.
_LISTED = re.compile(r"\b(?:keys|fields|properties)\b(?:\s+(?:named|called))?\s*:?\s*([^.\n;]+)", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z_]\w{0,63}")
_LIST_WORDS = {"and", "or", "the", "a", "an", "with", "of"}
_NUMBER_NAMES = re.compile(r"(score|rating|count|age|amount|total|price|quantity|number_of|confidence)$")
_BOOLEAN_NAMES = re.compile(r"^(is|has|needs|should|was|contains)_")


def system_text(params: dict[str, Any]) -> str:
    """The system prompt's text, given as a string or as text blocks."""
    system = params.get("system")
    blocks = system if isinstance(system, list) else [{"text": system}]
    return "\n".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))


def asked_object(system: str, turn: str) -> dict[str, Any] | None:
    """The schema of the JSON object the request asks for in words, or None if it asks for none."""
    text = f"{system}\n{turn}"
    if not _ASKED.search(text):
        return None
    properties = _example_keys(text) or _listed_keys(text) or {"answer": {"type": "string"}}
    return {"type": "object", "properties": properties, "required": list(properties)}


def without_request(text: str) -> str:
    """The text without its sentences (or lines) that mention JSON."""
    parts = re.split(r"(?<=[.!?])\s+|\n", text)
    return "\n".join(part for part in parts if not _ASKED.search(part))


def _example_keys(text: str) -> dict[str, Any]:
    """Keys of an example object (between braces), typed by their example values."""
    found: dict[str, Any] = {}
    for body in re.findall(r"\{([^{}]*)\}", text):
        for name, first in _EXAMPLE_KEY.findall(body):
            found.setdefault(name, _typed_by_example(first))
    return found


def _typed_by_example(first: str) -> dict[str, Any]:
    if first.isdigit() or first == "-":
        return {"type": "number"}
    if first in "tf":
        return {"type": "boolean"}
    if first == "[":
        return {"type": "array", "items": {"type": "string"}}
    return {"type": "string"}


def _listed_keys(text: str) -> dict[str, Any]:
    """Names listed after "keys", "fields" or "properties", typed by how they are named."""
    match = _LISTED.search(text)
    if match is None:
        return {}
    names = [n for n in _NAME.findall(match.group(1)) if n.lower() not in _LIST_WORDS]
    return {name: _typed_by_name(name) for name in dict.fromkeys(names)}


def _typed_by_name(name: str) -> dict[str, Any]:
    lower = name.lower()
    if _BOOLEAN_NAMES.search(lower):
        return {"type": "boolean"}
    if _NUMBER_NAMES.search(lower):
        return {"type": "number"}
    return {"type": "string"}


__all__ = ["asked_object", "system_text", "without_request"]
