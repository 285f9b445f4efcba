"""A JSON schema the user gives: checked before anything is sent, read, and
normalised into what the API takes.

The schema is kept as given (it is what rows are validated against and what
the journal records); what is sent is a normalised copy (:func:`api_schema`),
made the way the ``anthropic`` SDK prepares schemas for structured outputs:
``additionalProperties: false`` on every object, ``oneOf`` as ``anyOf``, and
keywords the API does not enforce (``minimum``, ``maxLength``, ...) moved into
the description so the model still reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from .columns import BOOKKEEPING_SUFFIXES
from .errors import ConfigError, quote

if TYPE_CHECKING:
    # jsonschema is imported when a schema is first checked or an answer validated: a job
    # without a schema never loads it (with JupyterLab installed its import alone, which
    # compiles the grammars of its format checkers, takes seconds).
    import jsonschema
    import referencing
    import referencing.exceptions

#: String formats the API accepts in a schema (others go into the description).
_STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)

_JSON_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})

#: The keywords that point at another schema.
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def _retrieve_nothing(uri: str) -> referencing.Resource[Any]:
    import referencing.exceptions

    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]  # (attrs)


@cache
def local_only() -> referencing.Registry[Any]:
    """Where ``$ref``s resolve: inside the schema itself, never a file or a URL. A schema
    can come back from a journal made elsewhere, so jsonschema's default (fetching what a
    reference names) would read this machine's files or the network when a job merges."""
    import referencing

    return referencing.Registry(retrieve=_retrieve_nothing)  # type: ignore[call-arg]


def local_validator(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    """A validator of ``schema`` whose references resolve inside it alone (a reference
    that leaves it is refused here, naming it). It checks no ``format`` (no format
    checker): an answer is judged by the schema's structure, as the API constrains it."""
    import jsonschema

    _check_refs(schema, schema, "$")
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=local_only(), format_checker=None)


def unresolvable(exc: referencing.exceptions.Unresolvable) -> ConfigError:
    """The error for a reference that could not be resolved inside its schema."""
    return ConfigError(
        f"The schema refers to {exc.ref!r}, which is not inside it; only references within the "
        "schema ('#/$defs/Name') are followed, nothing is fetched. Inline that schema instead."
    )



def check_schema(schema: Any) -> None:
    """Refuse, before anything is sent, a schema that cannot become typed columns: its
    shape (``check_schema_shape``), then JSON Schema's own check of it (jsonschema)."""
    check_schema_shape(schema)
    import jsonschema

    cls = type(local_validator(schema))
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = json_path(exc.absolute_path)
        raise ConfigError(
            f"The schema is not valid JSON Schema at {where}: {exc.message}. Fix that part "
            f"(it reads {quote(exc.instance)})."
        ) from None
    api_schema(dict(schema))  # raises ConfigError for what the API cannot take


def check_schema_shape(schema: Any) -> None:
    """What a schema must be for typed columns, without jsonschema (cheap): plain JSON, an
    object with named properties, no reference that leaves it. A manifest's schema is
    checked so when the journal is read; the full check comes when the schema is used."""
    example = "{'type': 'object', 'properties': {'name': {'type': 'string'}}, 'required': ['name']}"
    if not isinstance(schema, Mapping):
        raise ConfigError(
            f"schema={quote(schema)} is a {type(schema).__name__}; give a JSON-schema dict such "
            f"as {example}, or a pydantic model class."
        )
    try:
        orjson.dumps(schema)
    except TypeError as exc:
        raise ConfigError(f"schema={quote(schema)} is not plain JSON ({exc}); use dicts, lists, strings and numbers only.") from None
    _check_refs(schema, schema, "$")  # first: nothing below follows a reference that leaves it
    top = resolve(dict(schema), dict(schema))
    if top.get("type") != "object":
        raise ConfigError(
            f"The schema's top level has type {top.get('type')!r}; it must be an object whose "
            f"properties become columns, e.g. {example}."
        )
    props = top.get("properties")
    if not isinstance(props, Mapping) or not props:
        raise ConfigError(
            f"The schema has no properties ({quote(props)}); list the fields to extract, e.g. {example}."
        )
    for name, sub in props.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"The schema has a property named {name!r}; give every field a non-empty name.")
        if name in BOOKKEEPING_SUFFIXES:
            raise ConfigError(
                f"The schema's field {name!r} would become the column '<out>_{name}', which "
                f"batch_magic uses for the row {name.replace('_', ' ')}; rename the field "
                f"(e.g. {name + '_value'!r})."
            )
        if not isinstance(sub, Mapping):
            raise ConfigError(
                f"The schema's field {name!r} is {quote(sub)}; each property must be a schema "
                "dict such as {'type': 'string'}."
            )
    required = top.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ConfigError(f"The schema's 'required' is {quote(required)}; it must be a list of field names.")
    unknown = [r for r in required if r not in props]
    if unknown:
        raise ConfigError(
            f"The schema requires {', '.join(map(repr, unknown))}, which is not among its "
            f"properties ({', '.join(map(repr, props))}); add the property or drop it from 'required'."
        )


def _check_refs(node: Any, root: Mapping[str, Any], path: str) -> None:
    if isinstance(node, Mapping):
        for keyword in _REF_KEYWORDS[1:]:
            if keyword in node:
                raise ConfigError(
                    f"The schema at {path} uses {keyword} ({quote(node[keyword])}); only '$ref' within "
                    "the schema ('#/$defs/Name') is followed. Inline that schema instead."
                )
        ref = node.get("$ref")
        if ref is not None:
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ConfigError(
                    f"The schema at {path} refers to {ref!r}; only local references "
                    "('#/$defs/Name') can be sent. Inline that schema instead."
                )
            if follow_pointer(root, ref) is None:
                raise ConfigError(f"The schema at {path} refers to {ref!r}, which is not in the schema.")
        for key, value in node.items():
            _check_refs(value, root, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_refs(value, root, f"{path}[{i}]")


def api_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as the API takes it for structured outputs (see the module docstring)."""
    return _to_api(dict(schema), "$")


def _to_api(schema: Any, path: str) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        raise ConfigError(f"The schema at {path} is {quote(schema)}; it must be a schema dict.")
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
    if isinstance(enum, list) and enum and all(is_primitive(v) for v in enum):
        out["enum"] = list(rest.pop("enum"))
    if "const" in rest and is_primitive(rest["const"]):
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
                f"The schema at {path} ({quote(schema)}) says nothing about its value's type; "
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


def is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def follow_pointer(root: Any, ref: str) -> Any:
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


def resolve(schema: Any, root: Mapping[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref``s (siblings of a ref win over the target)."""
    seen = 0
    while isinstance(schema, Mapping) and "$ref" in schema and seen < 32:
        target = follow_pointer(root, str(schema["$ref"]))
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest} if isinstance(target, Mapping) else rest
        seen += 1
    return dict(schema) if isinstance(schema, Mapping) else {}


def json_path(parts: Any) -> str:
    """A JSON path as messages show it: ``$.items[2].name``."""
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out

