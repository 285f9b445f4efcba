"""Answers become typed values, per request: what each kind of output makes of
the text the model gave, and why an answer that does not fit is ``invalid``.

Nothing here fails a job: an answer that does not fit is marked invalid, with
the reason (a path and what is wrong) and its raw text kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .columns import BOOKKEEPING_SUFFIXES
from .errors import quote
from .schemas import is_primitive, resolve

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\r?\n?(.*?)\r?\n?```\s*$", re.DOTALL)

_INT64_MAX = 2**63 - 1


#: (the answer's JSON object, the answer's text) -> (the object to take the fields
#: from, why it does not fit or None): a row's validation (validation.py).
RowValidator = Callable[[dict[str, Any], Any], tuple[dict[str, Any], str | None]]


@dataclass(frozen=True)
class Parsed:
    """Columns parsed from the answers, per unique request."""

    #: Column suffix ("" for the main ``{out}`` column) -> values per request.
    columns: dict[str, np.ndarray]
    #: The pandas dtype to give each column (None: infer).
    dtypes: dict[str, Any]
    #: True where the answer did not fit the spec.
    invalid: np.ndarray
    #: Why, where invalid.
    reasons: np.ndarray


@dataclass(frozen=True)
class Field:
    """One top-level field of a schema and the column it becomes."""

    name: str
    #: "int", "float", "bool", "str", "enum" or "object".
    kind: str
    dtype: Any

    @property
    def options(self) -> tuple[Any, ...]:
        """The categories of an enum field, as plain Python values."""
        return tuple(self.dtype.categories.tolist()) if self.kind == "enum" else ()


def field_of(name: str, schema: Any, root: Mapping[str, Any]) -> Field:
    """The column a top-level field of a schema becomes."""
    return Field(name, *field_kind(schema, root))


def parse_text(answers: np.ndarray) -> Parsed:
    """The answer as it is, a string column."""
    invalid, reasons = _nothing_wrong(len(answers))
    return Parsed({"": answers}, {"": "string"}, invalid, reasons)


def _nothing_wrong(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n, dtype=bool), np.full(n, None, dtype=object)


def parse_labels(labels: tuple[str, ...], answers: np.ndarray, succeeded: np.ndarray) -> Parsed:
    """One label of the set per answer (``{"label": ...}`` or bare text); a label that
    differs only in case is taken when no other label folds alike."""
    invalid, reasons = _nothing_wrong(len(answers))
    allowed = set(labels)
    folded: dict[str, str | None] = {}
    for name in labels:
        key = name.casefold()
        folded[key] = None if key in folded else name  # ambiguous when two fold alike
    values = np.full(len(answers), None, dtype=object)
    for k in np.flatnonzero(succeeded):
        label = label_of(answers[k])
        if label is not None and label not in allowed:
            label = folded.get(label.casefold())
        if label is not None and label in allowed:
            values[k] = label
        else:
            invalid[k] = True
            reasons[k] = f"answer is not one of the labels: {str(answers[k])[:200]!r}"
    dtype = pd.CategoricalDtype(categories=list(labels))
    return Parsed({"": values}, {"": dtype}, invalid, reasons)

def parse_schema(
    fields: list[Field], validate: RowValidator, answers: np.ndarray, succeeded: np.ndarray
) -> Parsed:
    """A JSON object per answer, checked by ``validate``, one typed column per field; the
    answer's text is kept in the main column."""
    n = len(answers)
    invalid, reasons = _nothing_wrong(n)
    raw = np.full(n, None, dtype=object)
    columns = {f.name: np.full(n, None, dtype=object) for f in fields}
    field_options = [f.options for f in fields]
    for k in np.flatnonzero(succeeded):
        raw[k] = answers[k]
        data, problem = load_json_object(answers[k])
        if problem is None:
            data, problem = validate(data, answers[k])
        if problem is None:
            row: dict[str, Any] = {}
            for f, options in zip(fields, field_options):
                value, ok = cell(data.get(f.name), f.kind, options)
                if not ok:
                    problem = f"field {f.name!r}: {quote(data.get(f.name))} does not fit a {f.kind} column"
                    break
                row[f.name] = value
            if problem is None:
                for name, value in row.items():
                    columns[name][k] = value
                continue
        invalid[k] = True
        reasons[k] = problem
    out_columns: dict[str, np.ndarray] = {"": raw}
    dtypes: dict[str, Any] = {"": "string"}
    for f in fields:
        out_columns[f.name] = columns[f.name]
        dtypes[f.name] = f.dtype
    return Parsed(out_columns, dtypes, invalid, reasons)

def parse_json(answers: np.ndarray, succeeded: np.ndarray) -> Parsed:
    """A JSON object per answer, whatever it holds: a column per key any answer has,
    typed by the values it holds."""
    n = len(answers)
    invalid, reasons = _nothing_wrong(n)
    raw = np.full(n, None, dtype=object)
    rows: dict[int, dict[str, Any]] = {}
    keys: dict[str, None] = {}
    for k in np.flatnonzero(succeeded):
        raw[k] = answers[k]
        data, problem = load_json_object(answers[k])
        if problem is not None:
            invalid[k] = True
            reasons[k] = problem
            continue
        rows[int(k)] = data
        for key in data:
            keys.setdefault(key, None)
    out_columns: dict[str, np.ndarray] = {"": raw}
    dtypes: dict[str, Any] = {"": "string"}
    for key in keys:
        values = np.full(n, None, dtype=object)
        for pos, data in rows.items():
            values[pos] = data.get(key)
        kind, dtype = infer_kind(values)
        if kind in ("int", "float"):
            values = np.array([cell(v, kind)[0] for v in values], dtype=object)
        suffix = json_suffix(key)
        out_columns[suffix] = values
        dtypes[suffix] = dtype
    return Parsed(out_columns, dtypes, invalid, reasons)


def json_suffix(key: str) -> str:
    """The column suffix of a JSON-mode key (``field_<key>`` where it would clash)."""
    if key == "" or key in BOOKKEEPING_SUFFIXES:
        return f"field_{key}"
    return key


def field_kind(sub: Any, root: Mapping[str, Any]) -> tuple[str, Any]:
    """The column kind and dtype of one top-level field."""
    s = resolve(sub, root)
    branches = s.get("anyOf") or s.get("oneOf")
    if isinstance(branches, list) and branches:
        resolved = [resolve(b, root) for b in branches]
        non_null = [b for b in resolved if b.get("type") != "null"]
        if len(non_null) != 1:
            return "object", None
        s = {**{k: v for k, v in s.items() if k not in ("anyOf", "oneOf")}, **non_null[0]}
    enum = s.get("enum")
    if "const" in s and enum is None:
        enum = [s["const"]]
    if isinstance(enum, list):
        cats = [v for v in enum if v is not None]
        if cats and all(is_primitive(v) for v in cats) and len({(type(v), v) for v in cats}) == len(cats):
            return "enum", pd.CategoricalDtype(categories=cats)
        return "object", None
    t = s.get("type")
    if isinstance(t, list):
        non_null_types = [x for x in t if x != "null"]
        t = non_null_types[0] if len(non_null_types) == 1 else None
    return {
        "integer": ("int", "Int64"),
        "number": ("float", "Float64"),
        "boolean": ("bool", "boolean"),
        "string": ("str", "string"),
    }.get(t if isinstance(t, str) else "", ("object", None))


def cell(value: Any, kind: str, options: tuple[Any, ...] = ()) -> tuple[Any, bool]:
    """The value as its column holds it, and whether it fits (None always fits)."""
    if value is None:
        return None, True
    if kind == "int":
        if isinstance(value, bool):
            return None, False
        if isinstance(value, float):
            if not value.is_integer():
                return None, False
            value = int(value)
        if isinstance(value, int):
            return (value, True) if -_INT64_MAX - 1 <= value <= _INT64_MAX else (None, False)
        return None, False
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), True
        return None, False
    if kind == "bool":
        return (value, True) if isinstance(value, bool) else (None, False)
    if kind == "str":
        return (value, True) if isinstance(value, str) else (None, False)
    if kind == "enum":
        for c in options:
            if c == value and isinstance(c, bool) == isinstance(value, bool):
                return c, True
        return None, False
    return value, True


def infer_kind(values: np.ndarray) -> tuple[str, Any]:
    """JSON mode: a column's kind from the values it holds."""
    present = [v for v in values if v is not None]
    if not present:
        return "object", None
    if all(isinstance(v, bool) for v in present):
        return "bool", "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if all(-_INT64_MAX - 1 <= v <= _INT64_MAX for v in present):
            return "int", "Int64"
        return "object", None
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float", "Float64"
    if all(isinstance(v, str) for v in present):
        return "str", "string"
    return "object", None


def strip_fences(text: str) -> str:
    """The body of a ```` ```json ... ``` ```` block, or the text as it is."""
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text.strip()


def load_json_object(answer: Any) -> tuple[dict[str, Any], str | None]:
    """The answer as a JSON object, or ({}, why not)."""
    if answer is None:
        return {}, "the answer is empty"
    text = strip_fences(str(answer))
    if not text:
        return {}, "the answer is empty"
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return {}, f"the answer is not valid JSON ({exc}); it reads {text[:120]!r}"
    if not isinstance(data, dict):
        return {}, f"the answer is JSON but not an object: {text[:120]!r}"
    return data, None


def label_of(answer: Any) -> str | None:
    """A label from a structured answer ``{"label": ...}`` or from bare text."""
    if answer is None:
        return None
    text = strip_fences(str(answer))
    if text.startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if isinstance(data, dict) and isinstance(data.get("label"), str):
            return str(data["label"]).strip()
        return None
    return text.strip().strip("\"'`").strip().rstrip(".").strip()
