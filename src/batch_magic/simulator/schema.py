"""Values that fit a JSON Schema, drawn from the words of the prompt.

The fake model uses this for structured output (``output_config.format``)
and forced tool use. Values must validate against the schema, be stable for
the same prompt, and look sensible in a classification demo: an enum value is
chosen by word overlap with the input (shared 4-letter prefixes, so "billed"
matches "billing") plus a tiny cue lexicon for sentiment- and urgency-like
label sets; ties are broken by a stable hash.

Constraints are honoured wherever they are written: as JSON Schema keywords,
or in a brace note at the end of a ``description``. Clients move keywords
the API does not accept out of the schema and into the description so the
model still reads them, e.g. ``"Rating\n\n{minimum: 1, maximum: 5}"``: keys
bare, values JSON, separated by ``", "``, the note alone or after a blank
line. Such a note is read as if its keywords were in the schema (keywords
actually present win).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import re
from collections import Counter
from fractions import Fraction
from functools import cached_property
from typing import Any

from .media import field_key

_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")

_STOPWORDS_TEXT = """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not now of off on once only or other our out over own same she should so some such than
    that the their them then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours please following
    classify categorize categorise label answer return respond reply text review message ticket
    given based one output json only"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

#: option stem -> cue stems that vote for it (the tiny built-in lexicon)
_POSITIVE = ("love", "great", "excellent", "happy", "amazing", "wonderful", "good", "fantastic",
             "perfect", "best", "recommend", "awesome", "pleased", "delighted", "thank", "nice",
             "enjoy", "helpful", "beautiful", "superb", "brilliant", "satisfied", "glad")
_NEGATIVE = ("broken", "terrible", "refund", "angry", "late", "bad", "awful", "worst", "hate",
             "poor", "disappointed", "useless", "slow", "damaged", "missing", "wrong", "rude",
             "complaint", "never", "problem", "fail", "horrible", "waste", "error", "crash",
             "defective", "unhappy", "annoyed", "frustrated", "cancel")
_NEUTRAL = ("okay", "fine", "average", "ordinary", "decent", "question", "wondering",
            "information", "neither", "mixed", "alright", "normal", "standard", "expected")
_HIGH = ("urgent", "asap", "immediately", "emergency", "critical", "outage", "down",
         "severe", "blocking")
_LOW = ("whenever", "minor", "someday", "suggestion", "curious", "eventually", "trivial", "small")


def stem(word: str) -> str:
    """The matching key of a word: its first four letters, lower-cased."""
    w = word.lower()
    return w[:4] if len(w) >= 4 else w


def _stems(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(stem(w) for w in words)


_LEXICON: dict[str, frozenset[str]] = {}
for _names, _cues in (
    (("positive", "pos", "happy", "satisfied", "good", "praise", "favorable", "favourable"), _POSITIVE),
    (("negative", "neg", "unhappy", "dissatisfied", "bad", "complaint", "unfavorable"), _NEGATIVE),
    (("neutral", "mixed", "neither"), _NEUTRAL),
    (("high", "urgent", "critical", "severe"), _HIGH),
    (("low", "minor", "trivial"), _LOW),
):
    for _n in _names:
        _LEXICON[stem(_n)] = _stems(_cues)
_SENTIMENT_STEMS = _stems(_POSITIVE) | _stems(_NEGATIVE)


class Cues:
    """What the fake model reads from the prompt; computed lazily (cheap when unused).

    ``text`` is everything it reads (the prompt, its documents' text, notes on its
    images); ``prompt`` the user's own words; ``notes`` one line per image or
    document it saw; ``colours`` the dominant colours of its images, in order;
    ``fields`` the values its documents label (``Total: 12.50``), by :func:`field_key`.
    """

    def __init__(
        self,
        text: str,
        seed: str = "",
        *,
        prompt: str | None = None,
        notes: tuple[str, ...] = (),
        colours: tuple[str, ...] = (),
        fields: dict[str, str] | None = None,
    ) -> None:
        self.text = text
        self.seed = seed
        self.prompt = text if prompt is None else prompt
        self.notes = notes
        self.colours = colours
        self.fields = fields or {}

    @cached_property
    def words(self) -> list[str]:
        return _WORD.findall(self.text)

    @cached_property
    def stems(self) -> Counter[str]:
        return Counter(stem(w) for w in self.words if w.lower() not in STOPWORDS)

    @cached_property
    def keywords(self) -> list[str]:
        """Distinct content words, in order of first appearance."""
        seen: dict[str, None] = {}
        for w in self.words:
            lw = w.lower()
            if len(lw) > 2 and lw not in STOPWORDS:
                seen.setdefault(lw, None)
        return list(seen)

    @cached_property
    def capitalised(self) -> list[str]:
        """Capitalised words that are not just the start of a sentence."""
        out: list[str] = []
        for m in re.finditer(r"(?<![.!?:]\s)(?<!^)\b([A-Z][a-z]{1,})\b", self.text):
            w = m.group(1)
            if w.lower() not in STOPWORDS and w not in out:
                out.append(w)
        return out

    @cached_property
    def numbers(self) -> list[float]:
        return [float(n) for n in _NUMBER.findall(self.text)]

    @cached_property
    def sentiment(self) -> int:
        """+n for positive cues, -n for negative ones."""
        pos = sum(self.stems[s] for s in _stems(_POSITIVE))
        neg = sum(self.stems[s] for s in _stems(_NEGATIVE))
        return pos - neg

    def snippet(self, max_words: int = 12) -> str:
        words = self.text.split()
        s = " ".join(words[:max_words])
        return s + ("..." if len(words) > max_words else "")

    def hash(self, *parts: str) -> int:
        """A stable number from the seed, the prompt and ``parts`` (rows differ, reruns agree)."""
        h = hashlib.blake2b(digest_size=8)
        h.update(self.seed.encode())
        h.update(self.text.encode("utf-8", "surrogatepass"))
        for p in parts:
            h.update(b"\x1f" + p.encode())
        return int.from_bytes(h.digest(), "big")


#: Other spellings of the colour names the fake model uses (``media.COLOURS``).
_COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "gray": ("gray", "grey"), "purple": ("purple", "violet"), "pink": ("pink", "magenta"),
    "cyan": ("cyan", "turquoise", "teal"),
}


def colour_option(options: list[Any], colours: tuple[str, ...]) -> Any:
    """The first option naming one of ``colours`` (the first image's colour first), or None."""
    for colour in colours:
        words = _COLOUR_WORDS.get(colour, (colour,))
        for opt in options:
            if isinstance(opt, str) and any(w.lower() in words for w in _WORD.findall(opt.replace("_", " "))):
                return opt
    return None


def choose_option(options: list[Any], cues: Cues, path: str = "") -> Any:
    """The enum value that best matches the prompt; stable on ties. An option naming the dominant
    colour of an image in the prompt wins outright."""
    if not options:
        return None
    if cues.colours:
        named = colour_option(options, cues.colours)
        if named is not None:
            return named
    has_sentiment = any(s in cues.stems for s in _SENTIMENT_STEMS)

    def score(opt: Any) -> float:
        if not isinstance(opt, str):
            return 0.0
        total = 0.0
        opt_words = _WORD.findall(opt) or [opt]
        for w in opt_words:
            total += cues.stems.get(stem(w), 0)
            lex = _LEXICON.get(stem(w))
            if lex:
                total += 2 * sum(cues.stems.get(c, 0) for c in lex)
                if lex is _LEXICON["neut"] and not has_sentiment:
                    total += 1.5
        return total

    best = max(options, key=lambda o: (score(o), -cues.hash(path, json.dumps(o, sort_keys=True))))
    return best


_NOTE_KEY = re.compile(r"\s*([A-Za-z_$][A-Za-z0-9_$]*)\s*:\s*")
_DECODER = json.JSONDecoder()


def description_note(description: object) -> dict[str, Any]:
    """The keywords of a brace note ending ``description`` (``{}`` when there is none).

    The note is ``{key: json, key: json}``, alone or after a blank line; a
    description that merely ends in a brace is not a note unless all of it parses.
    """
    if not isinstance(description, str):
        return {}
    text = description.rstrip()
    if not text.endswith("}"):
        return {}
    starts = [i for i, ch in enumerate(text) if ch == "{" and (i == 0 or text[:i].endswith("\n\n"))]
    for start in reversed(starts):
        note = _parse_note(text[start:])
        if note is not None:
            return note
    return {}


def _parse_note(text: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    i = 1
    if text[i:].strip() == "}":
        return out
    while True:
        m = _NOTE_KEY.match(text, i)
        if m is None:
            return None
        try:
            value, i = _DECODER.raw_decode(text, m.end())
        except json.JSONDecodeError:
            return None
        out[m.group(1)] = value
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        return out if text[i:] == "}" else None


class SchemaFaker:
    """Make one value valid against ``root`` (handles local ``$ref``s)."""

    MAX_DEPTH = 12

    def __init__(self, root: dict[str, Any], cues: Cues) -> None:
        self.root = root
        self.cues = cues

    def make(self) -> Any:
        return self.value(self.root, "", "$", 0)

    # -- resolution -------------------------------------------------------------------------
    def resolve(self, schema: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 32:
            ref = schema["$ref"]
            target: Any = self.root
            if isinstance(ref, str) and ref.startswith("#"):
                for part in [p for p in ref[1:].split("/") if p]:
                    part = part.replace("~1", "/").replace("~0", "~")
                    target = target.get(part, {}) if isinstance(target, dict) else {}
            else:
                target = {}
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, dict) else rest
            seen += 1
        if not isinstance(schema, dict):
            return {}
        if "allOf" in schema and isinstance(schema["allOf"], list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in schema["allOf"]:
                sub = self.resolve(sub)
                for k, v in sub.items():
                    if k == "properties" and isinstance(v, dict):
                        merged["properties"] = {**merged.get("properties", {}), **v}
                    elif k == "required" and isinstance(v, list):
                        merged["required"] = list(dict.fromkeys([*merged.get("required", []), *v]))
                    else:
                        merged.setdefault(k, v)
            schema = merged
        note = description_note(schema.get("description"))
        if note:
            schema = {**note, **schema}
        return schema

    # -- values -----------------------------------------------------------------------------
    def value(self, schema: Any, name: str, path: str, depth: int) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if name and self.cues.fields:
            labelled = self.cues.fields.get(field_key(name))
            if labelled is not None:
                found = self.from_label(schema, labelled)
                if found is not None:
                    return found
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return choose_option(schema["enum"], self.cues, path)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                resolved = [self.resolve(b) for b in branches]
                non_null = [b for b in resolved if b.get("type") != "null"]
                if depth >= self.MAX_DEPTH and len(non_null) < len(resolved):
                    return None
                base = {k: v for k, v in schema.items() if k != key}
                return self.value({**base, **(non_null or resolved)[0]}, name, path, depth)
        kind = self.kind(schema)
        if kind == "null":
            return None
        if kind == "object":
            return self.obj(schema, path, depth)
        if kind == "array":
            return self.array(schema, name, path, depth)
        if kind == "integer":
            return self.number(schema, name, integer=True)
        if kind == "number":
            return self.number(schema, name, integer=False)
        if kind == "boolean":
            return self.boolean(name)
        return self.string(schema, name, path)

    def from_label(self, schema: dict[str, Any], label: str) -> Any:
        """A document's labelled value made to fit the field's schema, or None when it does not fit."""
        options = schema.get("enum")
        if isinstance(options, list):
            return next((o for o in options if isinstance(o, str) and o.strip().lower() == label.strip().lower()), None)
        branches = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(branches, list):
            for branch in branches:
                resolved = self.resolve(branch)
                if resolved.get("type") != "null":
                    found = self.from_label(resolved, label)
                    if found is not None:
                        return found
            return None
        kind = self.kind(schema)
        if kind in ("number", "integer"):
            m = re.search(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+", label.replace("\u00a0", ""))
            if m is None:
                return None
            number = float(m.group(0).replace(",", ""))
            if kind == "integer":
                if number != int(number):
                    return None
                number = int(number)
            lo, hi, lo_open, hi_open = _bounds(schema)
            mult = schema.get("multipleOf")
            if not _inside(number, lo, hi, lo_open, hi_open) or (
                    isinstance(mult, (int, float)) and mult > 0 and not _is_multiple(number, mult)):
                return None
            return number
        if kind == "boolean":
            word = label.strip().lower()
            return True if word in ("yes", "true", "y", "1") else False if word in ("no", "false", "n", "0") else None
        if kind != "string":
            return None
        fmt = schema.get("format")
        if fmt == "date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", label):
            return None
        if fmt in ("email",) and not _EMAIL.fullmatch(label):
            return None
        fitted = fit_string(label, schema)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if not re.search(pattern, fitted):
                    return None
            except re.error:
                return None
        return fitted

    @staticmethod
    def kind(schema: dict[str, Any]) -> str:
        t = schema.get("type")
        if isinstance(t, list):
            non_null = [x for x in t if x != "null"]
            t = non_null[0] if non_null else "null"
        if isinstance(t, str):
            return t
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def obj(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        raw_props = schema.get("properties")
        props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
        required = [r for r in schema.get("required", []) if isinstance(r, str)]
        out: dict[str, Any] = {}
        names = list(props) + [r for r in required if r not in props]
        for key in names:
            if depth >= self.MAX_DEPTH and key not in required:
                continue
            out[key] = self.value(props.get(key, {}), key, f"{path}.{key}", depth + 1)
        return out

    def array(self, schema: dict[str, Any], name: str, path: str, depth: int) -> list[Any]:
        min_items, max_items, raw_prefix = schema.get("minItems"), schema.get("maxItems"), schema.get("prefixItems")
        lo: int = min_items if isinstance(min_items, int) else 0
        hi: int | None = max_items if isinstance(max_items, int) else None
        prefix: list[Any] = raw_prefix if isinstance(raw_prefix, list) else []
        n: int = lo if depth >= self.MAX_DEPTH else max(lo, 1 + self.cues.hash("len", path) % 3, len(prefix))
        if hi is not None:
            n = min(n, hi)
        raw_items = schema.get("items", {})
        items: dict[str, Any] = self.resolve(raw_items) if isinstance(raw_items, dict) else {}
        unique = bool(schema.get("uniqueItems"))
        if prefix:
            return [
                self.value(prefix[i] if i < len(prefix) else items, name, f"{path}[{i}]", depth + 1)
                for i in range(n)
            ]
        if isinstance(items.get("enum"), list) and items["enum"]:
            # Several labels: the best match first, then the others in a stable order.
            ranked = self._ranked(items["enum"], path)
            if unique:
                return ranked[: max(lo, min(n, len(ranked)))]
            return [ranked[i % len(ranked)] for i in range(n)]
        if self.kind(items) == "string" and not ({"const", "format", "anyOf", "oneOf"} & items.keys()):
            words = self.cues.keywords or ["simulated", "answer", "item", "value"]
            k = self.cues.hash("start", path) % len(words)
            out = [self._fit_string(words[(k + i) % len(words)], items) for i in range(n)]
            if unique:
                out = list(dict.fromkeys(out))
                i = 0
                while len(out) < n:
                    candidate = self._fit_string(f"item{i}", items)
                    if candidate not in out:
                        out.append(candidate)
                    i += 1
            return out
        out_any: list[Any] = []
        tries = 0
        while len(out_any) < n and tries < n + 20:
            v = self.value(items, name, f"{path}[{tries}]", depth + 1)
            tries += 1
            if unique and v in out_any:
                continue
            out_any.append(v)
        return out_any

    def _ranked(self, options: list[Any], path: str) -> list[Any]:
        first = choose_option(options, self.cues, path)
        rest = [o for o in options if o != first]
        rest.sort(key=lambda o: self.cues.hash(path, json.dumps(o, sort_keys=True)))
        return [first, *rest]

    def number(self, schema: dict[str, Any], name: str, *, integer: bool) -> int | float:
        """A number inside every bound (inclusive or exclusive) and a multiple of ``multipleOf``."""
        lo, hi, lo_open, hi_open = _bounds(schema)
        if integer:
            lo_i = None if lo is None else (math.floor(lo) + 1 if lo_open and lo == math.floor(lo) else math.ceil(lo))
            hi_i = None if hi is None else (math.ceil(hi) - 1 if hi_open and hi == math.ceil(hi) else math.floor(hi))
            lo, hi, lo_open, hi_open = lo_i, hi_i, False, False
        target = self._preferred_number(lo, hi, lo_open, hi_open, name, integer)
        mult = schema.get("multipleOf")
        if isinstance(mult, (int, float)) and not isinstance(mult, bool) and mult > 0:
            fitted = _nearest_multiple(target, mult, lo, hi, lo_open, hi_open, integer)
            if fitted is not None:
                return fitted
        if integer:
            iv = round(target)
            if lo is not None and iv < lo:
                iv = int(lo)
            if hi is not None and iv > hi:
                iv = int(hi)
            return int(iv)
        value = float(target)
        rounded = round(value, 2)
        return rounded if _inside(rounded, lo, hi, lo_open, hi_open) else value

    def _preferred_number(
        self, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool, name: str, integer: bool
    ) -> float:
        """What the prompt suggests (a sentiment-following score, a confidence, a number it mentions),
        pulled inside the bounds."""
        lname = name.lower()
        value: float | None = None
        if lo is not None and hi is not None and any(k in lname for k in ("score", "rating", "stars", "sentiment")):
            s = self.cues.sentiment
            value = hi if s > 0 else lo if s < 0 else (lo + hi) / 2
        elif any(k in lname for k in ("confidence", "probability", "certainty")):
            value = 1 if integer else 0.6 + (self.cues.hash("conf", name) % 36) / 100
        else:
            for n in self.cues.numbers:
                if _inside(n, lo, hi, lo_open, hi_open) and (not integer or n == int(n)):
                    value = n
                    break
        if value is None:
            base = lo if lo is not None else (hi - 10 if hi is not None else 0)
            top = hi if hi is not None else base + 10
            span = max(0.0, float(top) - float(base))
            value = base + (self.cues.hash("num", name) % 1000) / 1000 * span
        # Pull inside: an open bound is stepped away from by a hundredth of the span (or 0.01).
        span = (hi - lo) if lo is not None and hi is not None else 1.0
        step = 1.0 if integer else max(min(0.01, span / 100), 1e-9)
        if lo is not None and (value < lo or (lo_open and value <= lo)):
            value = lo + (step if lo_open else 0)
        if hi is not None and (value > hi or (hi_open and value >= hi)):
            value = hi - (step if hi_open else 0)
        return float(value)

    def boolean(self, name: str) -> bool:
        base = re.sub(r"^(is|has|contains|needs|requires|should|was|mentions)_?", "", name.lower())
        words = [w for w in re.split(r"[^a-z]+", base) if w]
        if not words:
            return False
        if any(w in ("positive", "happy", "satisfied") for w in words):
            return self.cues.sentiment > 0
        if any(w in ("negative", "complaint", "unhappy") for w in words):
            return self.cues.sentiment < 0
        if any(w in ("urgent", "urgency", "critical") for w in words):
            return any(self.cues.stems.get(stem(c), 0) for c in _HIGH)
        return any(self.cues.stems.get(stem(w), 0) for w in words if len(w) > 2)

    def string(self, schema: dict[str, Any], name: str, path: str) -> str:
        fmt = schema.get("format")
        lname = name.lower()
        cues = self.cues
        if fmt == "email" or "email" in lname:
            found = _EMAIL.findall(cues.text)
            s = found[0] if found else "user@example.com"
        elif fmt == "date-time":
            m = _DATE.search(cues.text)
            s = f"{m.group(0)}T00:00:00Z" if m else "2025-01-15T12:00:00Z"
        elif fmt == "date" or lname.endswith("date") or lname.startswith("date"):
            m = _DATE.search(cues.text)
            s = m.group(0) if m else f"2025-01-{1 + cues.hash('date', path) % 28:02d}"
        elif fmt == "time":
            s = "12:00:00"
        elif fmt in ("uri", "url") or lname in ("url", "link", "website"):
            s = "https://example.com/" + (cues.keywords[0] if cues.keywords else "item")
        elif fmt == "uuid":
            h = f"{cues.hash('uuid', path):016x}{cues.hash('uuid2', path):016x}"
            s = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
        elif any(k in lname for k in ("number", "code", "reference", "ref", "sku")) or lname.endswith("id"):
            # Identifiers look like "NW-48213" or "#1234": take one from the text when it has one.
            m = re.search(r"\b[A-Z]{1,5}-?\d{3,}\b|#\d{3,}", cues.text)
            s = m.group(0) if m else ""
        elif any(k in lname for k in ("city", "location", "place", "country", "town", "region")):
            m = re.search(r"\b(?:in|from|to|at|near)\s+([A-Z][a-z]+)", cues.text)
            s = m.group(1) if m else (cues.capitalised[-1] if cues.capitalised else "Springfield")
        elif any(k in lname for k in ("name", "person", "customer", "author", "who", "user")):
            s = cues.capitalised[0] if cues.capitalised else "Alex"
        elif "language" in lname:
            s = "English"
        elif "phone" in lname:
            m = re.search(r"\+?\d[\d ()-]{6,}\d", cues.text)
            s = m.group(0) if m else "555-0100"
        elif any(k in lname for k in ("summary", "description", "reason", "explanation", "rationale",
                                       "justification", "comment", "answer", "response", "text",
                                       "analysis", "note", "quote", "evidence")):
            s = f"Simulated {name.replace('_', ' ')}: {cues.snippet()}" if cues.text.strip() else f"Simulated {name}"
        elif any(k in lname for k in ("title", "topic", "subject", "category", "keyword", "tag", "label",
                                       "product", "item", "theme", "issue")):
            kw = cues.keywords
            s = kw[cues.hash("kw", path) % len(kw)] if kw else "general"
        else:
            kw = cues.keywords
            s = kw[cues.hash("kw", path) % len(kw)] if kw else "simulated"
        return self._fit_string(s, schema)

    @staticmethod
    def _fit_string(s: str, schema: dict[str, Any]) -> str:
        return fit_string(s, schema)


def _num(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _bounds(schema: dict[str, Any]) -> tuple[float | None, float | None, bool, bool]:
    """(low, high, low is exclusive, high is exclusive), the tighter of the inclusive and exclusive forms."""
    lo, hi = _num(schema.get("minimum")), _num(schema.get("maximum"))
    xlo, xhi = _num(schema.get("exclusiveMinimum")), _num(schema.get("exclusiveMaximum"))
    lo_open = hi_open = False
    if xlo is not None and (lo is None or xlo >= lo):
        lo, lo_open = xlo, True
    if xhi is not None and (hi is None or xhi <= hi):
        hi, hi_open = xhi, True
    return lo, hi, lo_open, hi_open


def _inside(v: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and (v < lo or (lo_open and v <= lo)):
        return False
    return not (hi is not None and (v > hi or (hi_open and v >= hi)))


def _is_multiple(v: float, mult: float) -> bool:
    """The check JSON Schema validators make (``jsonschema``: the quotient is a whole number)."""
    if isinstance(mult, int) and float(v).is_integer():
        return int(v) % mult == 0
    q = v / mult
    return math.isfinite(q) and q == int(q)


def _nearest_multiple(
    target: float, mult: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool, integer: bool
) -> int | float | None:
    """The multiple of ``mult`` nearest ``target`` that lies inside the bounds and passes
    :func:`_is_multiple` in floating point; None if none is near."""
    step = Fraction(str(mult))
    if integer and step.denominator != 1:
        step = Fraction(step.numerator)  # lcm(1, p/q) = p: the smallest integer multiple
    k0 = round(Fraction(str(target)) / step)
    for d in range(0, 400):
        for k in ((k0 + d, k0 - d) if d else (k0,)):
            exact = step * k
            v: int | float = int(exact) if integer else float(exact)
            if _inside(float(v), lo, hi, lo_open, hi_open) and _is_multiple(v, mult):
                return v
    return None


def fit_string(s: str, schema: dict[str, Any]) -> str:
    """``s`` made to fit ``minLength``/``maxLength`` and ``pattern`` (when the pattern can be followed)."""
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    lo = lo if isinstance(lo, int) and not isinstance(lo, bool) else 0
    hi = hi if isinstance(hi, int) and not isinstance(hi, bool) else None

    def sized(t: str) -> str:
        if len(t) < lo:
            t += "x" * (lo - len(t))
        if hi is not None and len(t) > hi:
            t = t[:hi]
        return t

    pattern = schema.get("pattern")
    fitted = sized(s)
    if not isinstance(pattern, str):
        return fitted
    try:
        regex = re.compile(pattern)
    except re.error:
        return fitted
    if regex.search(fitted):
        return fitted
    for candidate in (example_of(pattern, lo), example_of(pattern, lo, longest=True)):
        if candidate is not None and regex.search(candidate) and lo <= len(candidate) and (hi is None or len(candidate) <= hi):
            return candidate
    return fitted


_PRINTABLE = "a0A _-.x"
_CATEGORY_RE = {
    "CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W", "CATEGORY_SPACE": r"\s", "CATEGORY_NOT_SPACE": r"\S",
}


def example_of(pattern: str, min_length: int = 0, *, longest: bool = False) -> str | None:
    """A string the regular expression matches, built from its parse tree (None if it cannot say).

    Repeats take their minimum (or up to ``min_length`` more when ``longest``), a
    branch its first arm, a class its first member.
    """
    try:
        parser: Any = importlib.import_module("re._parser")
    except ImportError:  # Python < 3.11
        parser = importlib.import_module("sre_parse")
    try:
        tree = parser.parse(pattern)
        out = _emit(list(tree), parser, min_length if longest else 0)
    except Exception:  # an exotic construct: no example
        return None
    return out


def _emit(items: list[Any], parser: Any, extra: int) -> str:
    c = parser  # constants live on the parser module (re._constants re-exported)
    out: list[str] = []
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(av))
        elif name == "NOT_LITERAL":
            out.append(next(ch for ch in _PRINTABLE if ord(ch) != av))
        elif name == "ANY":
            out.append("x")
        elif name == "IN":
            out.append(_class_member(av))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = av
            times = low
            if extra and high != low:
                top = high if high != c.MAXREPEAT else low + extra
                times = min(top, max(low, extra))
            out.append(_emit(list(sub), parser, 0) * times)
        elif name == "SUBPATTERN":
            out.append(_emit(list(av[-1]), parser, extra))
        elif name == "ATOMIC_GROUP":
            out.append(_emit(list(av), parser, extra))
        elif name == "BRANCH":
            out.append(_emit(list(av[1][0]), parser, extra))
        elif name == "AT":
            continue
        elif name == "CATEGORY":
            out.append(_category_member(str(av)))
        else:
            raise ValueError(f"no example for {name}")
    return "".join(out)


def _category_member(category: str) -> str:
    regex = _CATEGORY_RE.get(category)
    if regex is None:
        raise ValueError(category)
    return next(ch for ch in _PRINTABLE if re.fullmatch(regex, ch))


def _class_member(members: list[Any]) -> str:
    negate = bool(members) and str(members[0][0]) == "NEGATE"

    def hit(ch: str) -> bool:
        for op, av in members:
            name = str(op)
            if name == "LITERAL" and ord(ch) == av:
                return True
            if name == "RANGE" and av[0] <= ord(ch) <= av[1]:
                return True
            if name == "CATEGORY" and re.fullmatch(_CATEGORY_RE.get(str(av), "(?!)"), ch):
                return True
        return False

    if not negate:
        op, av = members[0]
        name = str(op)
        if name == "LITERAL":
            return chr(av)
        if name == "RANGE":
            return chr(av[0])
        if name == "CATEGORY":
            return _category_member(str(av))
        raise ValueError(name)
    return next(ch for ch in _PRINTABLE + "bcdefghijklmnopqrstuvwyz123456789" if not hit(ch))


def fake_value(schema: dict[str, Any], cues: Cues) -> Any:
    """A value valid against ``schema`` (a JSON Schema object), derived from ``cues``."""
    return SchemaFaker(schema, cues).make()


def break_value(schema: dict[str, Any], value: Any) -> Any:
    """A value that fails ``schema`` (for the simulator's invalid-answer rate): an object loses
    a required field (or gains one it forbids), anything else gets the wrong JSON type."""
    root = SchemaFaker(schema, Cues("")).resolve(schema)
    if isinstance(value, dict):
        required = [r for r in root.get("required", []) if isinstance(r, str) and r in value]
        if required:
            return {k: v for k, v in value.items() if k != required[0]}
        if root.get("additionalProperties") is False:
            return {**value, "unexpected_field": True}
        return [value]
    return 12345 if isinstance(value, str) else "not a valid value"

