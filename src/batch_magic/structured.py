"""What shape an answer takes: free text, one label of a set, or JSON fields.

An ``OutputSpec`` gives the JSON schema sent in ``output_config.format`` (or as
a forced tool's input schema) and parses each answer back, per request, never
failing the job: an answer that does not fit is marked ``invalid`` with its raw
text kept.

Four kinds:

* ``text``: the answer as a string column.
* ``labels``: an enum schema ``{"label": enum}``; a Categorical column with
  exactly those categories.
* ``schema``: a JSON-schema dict or a pydantic v2 model class; one typed column
  per top-level field (``{out}_{field}``), the main ``{out}`` column keeps the
  raw JSON text, each answer is validated (by the pydantic model when there is
  one, else by ``jsonschema`` when installed, else by a small built-in
  validator for the common subset).
* ``json``: no schema is sent (nothing constrains the answer); the answer is
  parsed as a JSON object (```` ```json ```` fences stripped) and its top-level
  keys become columns, typed by what they hold.

The schema the user gives is kept as given (it is what rows are validated
against and what the journal records); what is sent to the API is a
normalised copy (:func:`api_schema`), made the way the ``anthropic`` SDK
prepares schemas for structured outputs: ``additionalProperties: false`` on
every object, ``oneOf`` as ``anyOf``, and keywords the API does not enforce
(``minimum``, ``maxLength``, ...) moved into the description so the model
still reads them.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .columns import BOOKKEEPING_SUFFIXES, job_columns
from .errors import ConfigError

TEXT, LABELS, SCHEMA, JSON = "text", "labels", "schema", "json"
KINDS = (TEXT, LABELS, SCHEMA, JSON)

#: Column suffixes the merge uses itself (``{out}_status`` ...); a field cannot take one.
RESERVED_SUFFIXES = frozenset(BOOKKEEPING_SUFFIXES)

#: String formats the API accepts in a schema (others go into the description).
_STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
_JSON_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\r?\n?(.*?)\r?\n?```\s*$", re.DOTALL)
_INT64_MAX = 2**63 - 1

#: Pydantic models by the canonical text of their schema, so that a job rebuilt
#: from the journal in the same process (which records only the schema) still
#: validates rows with the model. Weak: a model that is gone is not kept alive.
_MODELS: weakref.WeakValueDictionary[str, type] = weakref.WeakValueDictionary()


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


@dataclass(frozen=True)
class OutputSpec:
    kind: str = TEXT
    labels: tuple[str, ...] = ()
    #: The schema as the user gave it (a dict; a pydantic model's JSON schema).
    schema: dict[str, Any] | None = field(default=None)
    #: The pydantic model class, when the schema came from one (not journalled).
    model: Any = field(default=None, compare=False, repr=False)

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def text(cls) -> OutputSpec:
        return cls(TEXT)

    @classmethod
    def json(cls) -> OutputSpec:
        """Parse the answer as a JSON object; its top-level keys become columns."""
        return cls(JSON)

    @classmethod
    def from_labels(cls, labels: Sequence[Any] | str) -> OutputSpec:
        if isinstance(labels, str):
            items = [part.strip() for part in labels.split(",")]
        elif isinstance(labels, Mapping) or not hasattr(labels, "__iter__"):
            raise ConfigError(
                f"labels={_short(labels)} is a {type(labels).__name__}; give a list of labels "
                "or a comma-separated string, e.g. labels=['positive', 'negative', 'neutral']."
            )
        else:
            items = [str(part).strip() for part in labels]
        items = [i for i in items if i]
        if len(items) < 2:
            raise ConfigError(
                f"labels={labels!r} gives {len(items)} label(s); give at least two, "
                "e.g. labels='positive,negative,neutral'."
            )
        dupes = sorted({i for i in items if items.count(i) > 1})
        if dupes:
            raise ConfigError(f"labels={labels!r} repeats {', '.join(map(repr, dupes))}; list each once.")
        return cls(LABELS, labels=tuple(items))

    @classmethod
    def from_schema(cls, schema: Any) -> OutputSpec:
        """A spec from a JSON-schema dict or a pydantic v2 model class, checked up front."""
        model = None
        if isinstance(schema, OutputSpec):
            return schema
        if _is_pydantic_model_class(schema):
            model = schema
            try:
                schema = model.model_json_schema()
            except Exception as exc:  # pydantic's own errors name the bad field
                raise ConfigError(
                    f"The pydantic model {model.__name__} has no JSON schema ({exc}); "
                    "use field types that pydantic can describe (str, int, float, bool, "
                    "Literal[...], lists and nested models)."
                ) from None
        elif hasattr(schema, "model_json_schema") and not isinstance(schema, type):
            raise ConfigError(
                f"schema={_short(schema)} is a pydantic model instance; pass the class itself "
                f"(schema={type(schema).__name__})."
            )
        elif isinstance(schema, type) and hasattr(schema, "schema") and hasattr(schema, "parse_raw"):
            raise ConfigError(
                f"schema={schema.__name__} is a pydantic v1 model; batch_magic needs pydantic v2 "
                "(model_json_schema), or pass the JSON schema as a dict."
            )
        elif isinstance(schema, str):
            raise ConfigError(
                f"schema={_short(schema)} is a string; give the JSON schema as a dict (or a "
                "pydantic model class). For free-form JSON answers use json=True instead."
            )
        check_schema(schema)
        # A plain copy: the spec must not change if the caller edits their dict later.
        plain: dict[str, Any] = orjson.loads(orjson.dumps(schema))
        if model is not None:
            _MODELS[_schema_key(plain)] = model
        return cls(SCHEMA, schema=plain, model=model)

    # -- what is sent -----------------------------------------------------------------------
    def json_schema(self) -> dict[str, Any] | None:
        """The schema to constrain the answer with, or None for free text and JSON mode."""
        if self.kind == LABELS:
            return {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": list(self.labels)}},
                "required": ["label"],
                "additionalProperties": False,
            }
        if self.kind == SCHEMA:
            return api_schema(self.schema or {})
        return None

    def fields(self) -> list[Field]:
        """The top-level fields of a schema spec, in schema order."""
        if self.kind != SCHEMA or not self.schema:
            return []
        root = self.schema
        top = _resolve(root, root)
        return [Field(name, *_field_kind(sub, root)) for name, sub in (top.get("properties") or {}).items()]

    def column_names(self, out: str) -> list[str]:
        """The answer columns a job with this spec adds (besides status, error, tokens)."""
        columns = job_columns(out)
        return [columns.answer, *(columns.field(f.name) for f in self.fields())]

    # -- what comes back --------------------------------------------------------------------
    def parse(self, answers: np.ndarray, succeeded: np.ndarray) -> Parsed:
        """Parse answers of succeeded requests; others stay missing."""
        n = len(answers)
        invalid = np.zeros(n, dtype=bool)
        reasons = np.full(n, None, dtype=object)
        if self.kind == TEXT:
            return Parsed({"": answers}, {"": "string"}, invalid, reasons)
        if self.kind == LABELS:
            return self._parse_labels(answers, succeeded, invalid, reasons)
        if self.kind == SCHEMA:
            return self._parse_schema(answers, succeeded, invalid, reasons)
        if self.kind == JSON:
            return self._parse_json(answers, succeeded, invalid, reasons)
        raise ConfigError(f"Unknown output kind {self.kind!r}; expected one of {', '.join(KINDS)}.")

    def _parse_labels(
        self, answers: np.ndarray, succeeded: np.ndarray, invalid: np.ndarray, reasons: np.ndarray
    ) -> Parsed:
        allowed = set(self.labels)
        folded: dict[str, str | None] = {}
        for name in self.labels:
            key = name.casefold()
            folded[key] = None if key in folded else name  # ambiguous when two fold alike
        values = np.full(len(answers), None, dtype=object)
        for k in np.flatnonzero(succeeded):
            label = _label_of(answers[k])
            if label is not None and label not in allowed:
                label = folded.get(label.casefold())
            if label is not None and label in allowed:
                values[k] = label
            else:
                invalid[k] = True
                reasons[k] = f"answer is not one of the labels: {str(answers[k])[:200]!r}"
        dtype = pd.CategoricalDtype(categories=list(self.labels))
        return Parsed({"": values}, {"": dtype}, invalid, reasons)

    def _parse_schema(
        self, answers: np.ndarray, succeeded: np.ndarray, invalid: np.ndarray, reasons: np.ndarray
    ) -> Parsed:
        n = len(answers)
        fields = self.fields()
        model = self.model if self.model is not None else _MODELS.get(_schema_key(self.schema or {}))
        validate = _row_validator(self.schema or {}, model)
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
                    value, ok = _cell(data.get(f.name), f.kind, options)
                    if not ok:
                        problem = f"field {f.name!r}: {_short(data.get(f.name))} does not fit a {f.kind} column"
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

    def _parse_json(
        self, answers: np.ndarray, succeeded: np.ndarray, invalid: np.ndarray, reasons: np.ndarray
    ) -> Parsed:
        n = len(answers)
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
            kind, dtype = _infer_kind(values)
            if kind in ("int", "float"):
                values = np.array([_cell(v, kind)[0] for v in values], dtype=object)
            suffix = json_suffix(key)
            out_columns[suffix] = values
            dtypes[suffix] = dtype
        return Parsed(out_columns, dtypes, invalid, reasons)


def json_suffix(key: str) -> str:
    """The column suffix of a JSON-mode key (``field_<key>`` where it would clash)."""
    if key == "" or key in RESERVED_SUFFIXES:
        return f"field_{key}"
    return key


# -- schema: checking and normalising ----------------------------------------------------------
def _is_pydantic_model_class(obj: Any) -> bool:
    return (
        isinstance(obj, type)
        and callable(getattr(obj, "model_json_schema", None))
        and callable(getattr(obj, "model_validate_json", None))
    )


def check_schema(schema: Any) -> None:
    """Refuse, before anything is sent, a schema that cannot become typed columns."""
    example = "{'type': 'object', 'properties': {'name': {'type': 'string'}}, 'required': ['name']}"
    if not isinstance(schema, Mapping):
        raise ConfigError(
            f"schema={_short(schema)} is a {type(schema).__name__}; give a JSON-schema dict such "
            f"as {example}, or a pydantic model class."
        )
    try:
        orjson.dumps(schema)
    except TypeError as exc:
        raise ConfigError(f"schema={_short(schema)} is not plain JSON ({exc}); use dicts, lists, strings and numbers only.") from None
    top = _resolve(dict(schema), dict(schema))
    if top.get("type") != "object":
        raise ConfigError(
            f"The schema's top level has type {top.get('type')!r}; it must be an object whose "
            f"properties become columns, e.g. {example}."
        )
    props = top.get("properties")
    if not isinstance(props, Mapping) or not props:
        raise ConfigError(
            f"The schema has no properties ({_short(props)}); list the fields to extract, e.g. {example}."
        )
    for name, sub in props.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"The schema has a property named {name!r}; give every field a non-empty name.")
        if name in RESERVED_SUFFIXES:
            raise ConfigError(
                f"The schema's field {name!r} would become the column '<out>_{name}', which "
                f"batch_magic uses for the row {name.replace('_', ' ')}; rename the field "
                f"(e.g. {name + '_value'!r})."
            )
        if not isinstance(sub, Mapping):
            raise ConfigError(
                f"The schema's field {name!r} is {_short(sub)}; each property must be a schema "
                "dict such as {'type': 'string'}."
            )
    required = top.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ConfigError(f"The schema's 'required' is {_short(required)}; it must be a list of field names.")
    unknown = [r for r in required if r not in props]
    if unknown:
        raise ConfigError(
            f"The schema requires {', '.join(map(repr, unknown))}, which is not among its "
            f"properties ({', '.join(map(repr, props))}); add the property or drop it from 'required'."
        )
    _check_refs(schema, schema, "$")
    try:
        import jsonschema
    except ImportError:
        _check_types(schema, "$")
    else:
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.exceptions.SchemaError as exc:
            where = _json_path(exc.absolute_path)
            raise ConfigError(
                f"The schema is not valid JSON Schema at {where}: {exc.message}. Fix that part "
                f"(it reads {_short(exc.instance)})."
            ) from None
    api_schema(dict(schema))  # raises ConfigError for what the API cannot take


def _check_refs(node: Any, root: Mapping[str, Any], path: str) -> None:
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if ref is not None:
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ConfigError(
                    f"The schema at {path} refers to {ref!r}; only local references "
                    "('#/$defs/Name') can be sent. Inline that schema instead."
                )
            if _follow_pointer(root, ref) is None:
                raise ConfigError(f"The schema at {path} refers to {ref!r}, which is not in the schema.")
        for key, value in node.items():
            _check_refs(value, root, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_refs(value, root, f"{path}[{i}]")


def _check_types(node: Any, path: str) -> None:
    """The part of ``jsonschema``'s own check that matters here, when it is not installed."""
    if isinstance(node, Mapping):
        t = node.get("type")
        types = t if isinstance(t, list) else [t] if t is not None else []
        bad = [x for x in types if x not in _JSON_TYPES]
        if bad:
            raise ConfigError(
                f"The schema at {path} has type {t!r}; types are {', '.join(sorted(_JSON_TYPES))}."
            )
        if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
            raise ConfigError(f"The schema at {path} has enum {_short(node['enum'])}; it must be a non-empty list.")
        for key, value in node.items():
            if key not in ("enum", "const", "default", "examples"):
                _check_types(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_types(value, f"{path}[{i}]")


def api_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as the API takes it for structured outputs (see the module docstring)."""
    return _to_api(dict(schema), "$")


def _to_api(schema: Any, path: str) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        raise ConfigError(f"The schema at {path} is {_short(schema)}; it must be a schema dict.")
    rest = dict(schema)
    out: dict[str, Any] = {}
    for defs_key in ("$defs", "definitions"):
        defs = rest.pop(defs_key, None)
        if isinstance(defs, Mapping):
            out[defs_key] = {k: _to_api(v, f"{path}.{defs_key}.{k}") for k, v in defs.items()}
    rest.pop("$schema", None)
    rest.pop("$id", None)
    ref = rest.pop("$ref", None)
    if ref is not None:
        out["$ref"] = ref
        return out
    type_ = rest.pop("type", None)
    if isinstance(type_, list):
        types = [t for t in type_ if t != "null"]
        if not types:
            type_ = "null"
        elif len(type_) == 1:
            type_ = type_[0]
        else:  # ["integer", "null"] -> anyOf, which the API takes
            branches = [{**rest, "type": t} for t in types]
            if "null" in type_:
                branches.append({"type": "null"})
            return {**out, **_to_api({"anyOf": branches}, path)}
    any_of, one_of, all_of = rest.pop("anyOf", None), rest.pop("oneOf", None), rest.pop("allOf", None)
    enum = rest.get("enum")
    if isinstance(enum, list) and enum and all(_is_primitive(v) for v in enum):
        out["enum"] = list(rest.pop("enum"))
    if "const" in rest and _is_primitive(rest["const"]):
        out["const"] = rest.pop("const")
    literal = "enum" in out or "const" in out
    if literal:
        type_ = None
    if isinstance(any_of, list):
        out["anyOf"] = [_to_api(v, f"{path}.anyOf[{i}]") for i, v in enumerate(any_of)]
    elif isinstance(one_of, list):
        out["anyOf"] = [_to_api(v, f"{path}.oneOf[{i}]") for i, v in enumerate(one_of)]
    elif isinstance(all_of, list):
        out["allOf"] = [_to_api(v, f"{path}.allOf[{i}]") for i, v in enumerate(all_of)]
    elif not literal:
        if type_ is None:
            raise ConfigError(
                f"The schema at {path} ({_short(schema)}) says nothing about its value's type; "
                "give it a 'type' (e.g. {'type': 'string'}), an 'enum' or an 'anyOf'."
            )
        if type_ not in _JSON_TYPES:
            raise ConfigError(f"The schema at {path} has type {type_!r}; types are {', '.join(sorted(_JSON_TYPES))}.")
        out["type"] = type_
    for key in ("description", "title"):
        if key in rest:
            out[key] = rest.pop(key)
    if type_ == "object":
        props = rest.pop("properties", None) or {}
        extra = rest.pop("additionalProperties", None)
        if not props and extra not in (None, False):
            raise ConfigError(
                f"The schema at {path} is a free-form mapping (additionalProperties without "
                "properties), which structured outputs cannot produce; list its properties, "
                "or use an array of {'key': ..., 'value': ...} objects."
            )
        out["properties"] = {k: _to_api(v, f"{path}.properties.{k}") for k, v in props.items()}
        out["additionalProperties"] = False
        if "required" in rest:
            out["required"] = list(rest.pop("required"))
    elif type_ == "string":
        fmt = rest.pop("format", None)
        if fmt in _STRING_FORMATS:
            out["format"] = fmt
        elif fmt:
            rest["format"] = fmt
    elif type_ == "array":
        items = rest.pop("items", None)
        if isinstance(items, Mapping):
            out["items"] = _to_api(items, f"{path}.items")
        min_items = rest.pop("minItems", None)
        if min_items in (0, 1):
            out["minItems"] = min_items
        elif min_items is not None:
            rest["minItems"] = min_items
    rest.pop("default", None)
    if rest:  # constraints the API does not enforce: tell the model in words
        note = "{" + ", ".join(f"{k}: {orjson.dumps(v).decode()}" for k, v in rest.items()) + "}"
        out["description"] = f"{out['description']}\n\n{note}" if out.get("description") else note
    return out


def _is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _follow_pointer(root: Any, ref: str) -> Any:
    target = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return None
    return target


def _resolve(schema: Any, root: Mapping[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref``s (siblings of a ref win over the target)."""
    seen = 0
    while isinstance(schema, Mapping) and "$ref" in schema and seen < 32:
        target = _follow_pointer(root, str(schema["$ref"]))
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest} if isinstance(target, Mapping) else rest
        seen += 1
    return dict(schema) if isinstance(schema, Mapping) else {}


def _field_kind(sub: Any, root: Mapping[str, Any]) -> tuple[str, Any]:
    """The column kind and dtype of one top-level field."""
    s = _resolve(sub, root)
    branches = s.get("anyOf") or s.get("oneOf")
    if isinstance(branches, list) and branches:
        resolved = [_resolve(b, root) for b in branches]
        non_null = [b for b in resolved if b.get("type") != "null"]
        if len(non_null) != 1:
            return "object", None
        s = {**{k: v for k, v in s.items() if k not in ("anyOf", "oneOf")}, **non_null[0]}
    enum = s.get("enum")
    if "const" in s and enum is None:
        enum = [s["const"]]
    if isinstance(enum, list):
        cats = [v for v in enum if v is not None]
        if cats and all(_is_primitive(v) for v in cats) and len({(type(v), v) for v in cats}) == len(cats):
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


def _cell(value: Any, kind: str, options: tuple[Any, ...] = ()) -> tuple[Any, bool]:
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


def _infer_kind(values: np.ndarray) -> tuple[str, Any]:
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


# -- answers -----------------------------------------------------------------------------------
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


def _label_of(answer: Any) -> str | None:
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


# -- row validation ----------------------------------------------------------------------------
RowValidator = Callable[[dict[str, Any], Any], tuple[dict[str, Any], str | None]]
#: (value, path, problems) -> None; appends what is wrong.
Check = Callable[[Any, str, list[str]], None]

#: Keywords the built-in validator enforces exactly as JSON Schema does (or, for
#: annotations, ignores as it does). A schema using only these is checked by it,
#: which is several times faster than ``jsonschema`` at a million rows.
SUBSET_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "properties", "required", "additionalProperties", "items",
        "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems",
        "maxItems", "title", "description", "default", "examples", "format", "$schema", "$id",
        "$comment", "deprecated", "readOnly", "writeOnly",
    }
)


def _row_validator(schema: dict[str, Any], model: Any) -> RowValidator:
    """A function (data, raw answer) -> (data to take the fields from, problem or None)."""
    if model is not None:

        def by_model(data: dict[str, Any], answer: Any) -> tuple[dict[str, Any], str | None]:
            try:
                instance = model.model_validate_json(strip_fences(str(answer)))
            except Exception as exc:
                return data, _pydantic_reason(exc)
            dumped: dict[str, Any] = instance.model_dump(mode="json", by_alias=True)
            return dumped, None

        return by_model
    jsonschema: Any = None
    if not _within_subset(schema):
        import importlib

        try:
            jsonschema = importlib.import_module("jsonschema")
        except ImportError:  # best effort: the keywords the built-in validator knows
            jsonschema = None
    if jsonschema is None:
        check = compile_checker(schema)

        def by_subset(data: dict[str, Any], answer: Any) -> tuple[dict[str, Any], str | None]:
            problems: list[str] = []
            check(data, "$", problems)
            return data, ("; ".join(problems[:3])[:300] if problems else None)

        return by_subset
    validator = jsonschema.validators.validator_for(schema)(schema)

    def by_jsonschema(data: dict[str, Any], answer: Any) -> tuple[dict[str, Any], str | None]:
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
        if error is None:
            return data, None
        return data, f"{_json_path(error.absolute_path)}: {error.message}"[:300]

    return by_jsonschema


def _within_subset(node: Any) -> bool:
    """True if every keyword of the schema is one the built-in validator enforces."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key not in SUBSET_KEYWORDS:
                return False
            if key in ("properties", "$defs", "definitions"):
                if not isinstance(value, Mapping) or not all(_within_subset(v) for v in value.values()):
                    return False
            elif key in ("anyOf", "oneOf", "allOf"):
                if not isinstance(value, list) or not all(_within_subset(v) for v in value):
                    return False
            elif key in ("items", "additionalProperties") and not (
                isinstance(value, bool | Mapping) and _within_subset(value)
            ):
                return False
        return True
    return isinstance(node, bool)


def _pydantic_reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            items = errors()
        except Exception:
            items = []
        parts = []
        for e in items[:3]:
            loc = ".".join(str(p) for p in e.get("loc", ())) or "answer"
            parts.append(f"{loc}: {e.get('msg')}")
        if parts:
            return "; ".join(parts)[:300]
    return str(exc)[:300]


def _json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def compile_checker(root: Mapping[str, Any]) -> Check:
    """A validator for the keywords in :data:`SUBSET_KEYWORDS`, compiled once per schema."""
    refs: dict[str, Check] = {}

    def ref_check(ref: str) -> Check:
        def run(value: Any, path: str, out: list[str]) -> None:
            check = refs.get(ref)
            if check is None:  # compiled on first use: recursive schemas are fine
                target = _follow_pointer(root, ref)
                check = refs[ref] = build(target if isinstance(target, Mapping) else {})
            check(value, path, out)

        return run

    def build(schema: Any) -> Check:
        if schema is False:
            return lambda value, path, out: out.append(f"{path}: no value is allowed here")
        if not isinstance(schema, Mapping):  # True, or not a schema: anything goes
            return lambda value, path, out: None
        checks: list[Check] = []
        s = schema
        if isinstance(s.get("$ref"), str):
            checks.append(ref_check(s["$ref"]))
        t = s.get("type")
        if t is not None:
            names = tuple(t) if isinstance(t, list) else (t,)
            tests = [_TYPE_CHECKS[n] for n in names if n in _TYPE_CHECKS]
            expected = " or ".join(map(str, names))

            only = tests[0] if len(tests) == 1 else None

            def type_check(value: Any, path: str, out: list[str]) -> None:
                fits = only(value) if only is not None else any(test(value) for test in tests)
                if not fits:
                    out.append(f"{path}: expected {expected}, got {_short(value)}")

            checks.append(type_check)
        if isinstance(s.get("enum"), list):
            options = list(s["enum"])

            def enum_check(value: Any, path: str, out: list[str]) -> None:
                if not any(_same(value, o) for o in options):
                    out.append(f"{path}: {_short(value)} is not one of {_short(options)}")

            checks.append(enum_check)
        if "const" in s:
            const = s["const"]

            def const_check(value: Any, path: str, out: list[str]) -> None:
                if not _same(value, const):
                    out.append(f"{path}: {_short(value)} is not {_short(const)}")

            checks.append(const_check)
        for key in ("anyOf", "oneOf"):
            if isinstance(s.get(key), list) and s[key]:
                branches = [build(b) for b in s[key]]
                exactly_one = key == "oneOf"

                def union_check(
                    value: Any, path: str, out: list[str], branches: list[Check] = branches,
                    key: str = key, exactly_one: bool = exactly_one,
                ) -> None:
                    fits = 0
                    for branch in branches:
                        sub: list[str] = []
                        branch(value, path, sub)
                        fits += not sub
                    if fits == 0 or (exactly_one and fits > 1):
                        out.append(f"{path}: {_short(value)} does not match {key}")

                checks.append(union_check)
        if isinstance(s.get("allOf"), list):
            checks.extend(build(b) for b in s["allOf"])
        props = s.get("properties")
        required = [r for r in s.get("required") or [] if isinstance(r, str)]
        extra = s.get("additionalProperties")
        if isinstance(props, Mapping) or required or extra is not None:
            compiled = {name: build(sub) for name, sub in (props or {}).items()}
            extra_check = build(extra) if isinstance(extra, Mapping) else None

            def object_check(value: Any, path: str, out: list[str]) -> None:
                if not isinstance(value, dict):
                    return
                for name in required:
                    if name not in value:
                        out.append(f"{path}: missing required field {name!r}")
                for name, v in value.items():
                    check = compiled.get(name)
                    if check is not None:
                        check(v, f"{path}.{name}", out)
                    elif extra is False:
                        out.append(f"{path}: unexpected field {name!r}")
                    elif extra_check is not None:
                        extra_check(v, f"{path}.{name}", out)

            checks.append(object_check)
        items = s.get("items")
        lo_items, hi_items = s.get("minItems"), s.get("maxItems")
        if isinstance(items, Mapping) or isinstance(lo_items, int) or isinstance(hi_items, int):
            item_check = build(items) if isinstance(items, Mapping) else None

            def array_check(value: Any, path: str, out: list[str]) -> None:
                if not isinstance(value, list):
                    return
                if item_check is not None:
                    for i, v in enumerate(value):
                        item_check(v, f"{path}[{i}]", out)
                if isinstance(lo_items, int) and len(value) < lo_items:
                    out.append(f"{path}: fewer than {lo_items} items")
                if isinstance(hi_items, int) and len(value) > hi_items:
                    out.append(f"{path}: more than {hi_items} items")

            checks.append(array_check)
        lo_len, hi_len = s.get("minLength"), s.get("maxLength")
        pattern = re.compile(s["pattern"]) if isinstance(s.get("pattern"), str) else None
        if isinstance(lo_len, int) or isinstance(hi_len, int) or pattern is not None:

            def string_check(value: Any, path: str, out: list[str]) -> None:
                if not isinstance(value, str):
                    return
                if isinstance(lo_len, int) and len(value) < lo_len:
                    out.append(f"{path}: shorter than {lo_len} characters")
                if isinstance(hi_len, int) and len(value) > hi_len:
                    out.append(f"{path}: longer than {hi_len} characters")
                if pattern is not None and not pattern.search(value):
                    out.append(f"{path}: does not match {pattern.pattern!r}")

            checks.append(string_check)
        bounds = [
            (key, s[key]) for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
            if isinstance(s.get(key), int | float) and not isinstance(s.get(key), bool)
        ]
        if bounds:
            breaks = {
                "minimum": lambda v, b: v < b, "maximum": lambda v, b: v > b,
                "exclusiveMinimum": lambda v, b: v <= b, "exclusiveMaximum": lambda v, b: v >= b,
            }

            def number_check(value: Any, path: str, out: list[str]) -> None:
                if not isinstance(value, int | float) or isinstance(value, bool):
                    return
                for key, bound in bounds:
                    if breaks[key](value, bound):
                        out.append(f"{path}: {value} breaks {key} {bound}")

            checks.append(number_check)
        if len(checks) == 1:
            return checks[0]

        def all_checks(value: Any, path: str, out: list[str]) -> None:
            for check in checks:
                check(value, path, out)

        return all_checks

    return build(root)


def _schema_key(schema: Mapping[str, Any]) -> str:
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode()


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
