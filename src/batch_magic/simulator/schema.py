"""Values that fit a JSON Schema, drawn from the words of the prompt.

The fake model uses this for structured output (``output_config.format``)
and forced tool use. Values must validate against the schema, be stable for
the same prompt, and look sensible in a classification demo: an enum value is
chosen by word overlap with the input (shared 4-letter prefixes, so "billed"
matches "billing") plus a tiny cue lexicon for sentiment- and urgency-like
label sets; ties are broken by a stable hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from functools import cached_property
from typing import Any

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
    """What the fake model reads from the prompt; computed lazily (cheap when unused)."""

    def __init__(self, text: str, seed: str = "") -> None:
        self.text = text
        self.seed = seed

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


def choose_option(options: list[Any], cues: Cues, path: str = "") -> Any:
    """The enum value that best matches the prompt; stable on ties."""
    if not options:
        return None
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
        return schema

    # -- values -----------------------------------------------------------------------------
    def value(self, schema: Any, name: str, path: str, depth: int) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
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
        lo = schema.get("minimum")
        hi = schema.get("maximum")
        xlo = schema.get("exclusiveMinimum")
        xhi = schema.get("exclusiveMaximum")
        step = 1 if integer else 0.01
        if isinstance(xlo, (int, float)) and not isinstance(xlo, bool):
            lo = xlo + step if lo is None else max(lo, xlo + step)
        if isinstance(xhi, (int, float)) and not isinstance(xhi, bool):
            hi = xhi - step if hi is None else min(hi, xhi - step)
        lname = name.lower()
        value: float | None = None
        if lo is not None and hi is not None and any(k in lname for k in ("score", "rating", "stars", "sentiment")):
            s = self.cues.sentiment
            value = hi if s > 0 else lo if s < 0 else (lo + hi) / 2
        elif any(k in lname for k in ("confidence", "probability", "certainty")):
            value = 0.6 + (self.cues.hash("conf", name) % 36) / 100
            if integer:
                value = 1
        else:
            for n in self.cues.numbers:
                if (lo is None or n >= lo) and (hi is None or n <= hi) and (not integer or n == int(n)):
                    value = n
                    break
        if value is None:
            base = lo if lo is not None else 0
            top = hi if hi is not None else base + 10
            span = max(0.0, float(top) - float(base))
            value = base + (self.cues.hash("num", name) % 1000) / 1000 * span
        if lo is not None:
            value = max(value, lo)
        if hi is not None:
            value = min(value, hi)
        mult = schema.get("multipleOf")
        if integer:
            iv = round(value)
            if lo is not None and iv < lo:
                iv += 1
            if hi is not None and iv > hi:
                iv -= 1
            if isinstance(mult, int) and mult > 0:
                iv = (iv // mult) * mult
                if lo is not None and iv < lo:
                    iv += mult
            return iv
        if isinstance(mult, (int, float)) and mult > 0:
            return float(round(value / mult) * mult)
        rounded = round(float(value), 2)
        if (lo is not None and rounded < lo) or (hi is not None and rounded > hi):
            return float(value)
        return rounded

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
        lo = schema.get("minLength")
        hi = schema.get("maxLength")
        if isinstance(lo, int) and len(s) < lo:
            s += "x" * (lo - len(s))
        if isinstance(hi, int) and len(s) > hi:
            s = s[:hi]
        return s


def fake_value(schema: dict[str, Any], cues: Cues) -> Any:
    """A value valid against ``schema`` (a JSON Schema object), derived from ``cues``."""
    return SchemaFaker(schema, cues).make()
