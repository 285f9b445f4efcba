"""What shape an answer takes: free text, one label of a set, or JSON fields.

An ``OutputSpec`` says what is asked (the JSON schema sent in
``output_config.format``, or as a forced tool's input schema) and what each
answer becomes; the work is done by one module each:

* ``schemas.py``: a user's schema, checked before anything is sent and
  normalised into what the API takes;
* ``answers.py``: answers parsed into typed values per request, never failing
  the job (an answer that does not fit is ``invalid``, its raw text kept);
* ``validation.py``: whether an answer fits its schema (the user's pydantic
  model, else ``jsonschema``);
* ``columns.py``: the names of the columns they go into.

Four kinds:

* ``text``: the answer as a string column.
* ``labels``: an enum schema ``{"label": enum}``; a Categorical column with
  exactly those categories.
* ``schema``: a JSON-schema dict or a pydantic v2 model class; one typed column
  per top-level field (``{out}_{field}``), the main ``{out}`` column keeps the
  raw JSON text, each answer is validated.
* ``json``: no schema is sent (nothing constrains the answer); the answer is
  parsed as a JSON object (```` ```json ```` fences stripped) and its top-level
  keys become columns, typed by what they hold.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .answers import Field, Parsed, field_of, parse_json, parse_labels, parse_schema, parse_text
from .columns import job_columns
from .errors import ConfigError, quote
from .schemas import api_schema, check_schema, resolve
from .validation import row_validator

TEXT, LABELS, SCHEMA, JSON = "text", "labels", "schema", "json"

KINDS = (TEXT, LABELS, SCHEMA, JSON)


#: Pydantic models by the canonical text of their schema, so that a job rebuilt
#: from the journal in the same process (which records only the schema) still
#: validates rows with the model. Weak: a model that is gone is not kept alive.
_MODELS: weakref.WeakValueDictionary[str, type] = weakref.WeakValueDictionary()



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
                f"labels={quote(labels)} is a {type(labels).__name__}; give a list of labels "
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
                f"schema={quote(schema)} is a pydantic model instance; pass the class itself "
                f"(schema={type(schema).__name__})."
            )
        elif isinstance(schema, type) and hasattr(schema, "schema") and hasattr(schema, "parse_raw"):
            raise ConfigError(
                f"schema={schema.__name__} is a pydantic v1 model; batch_magic needs pydantic v2 "
                "(model_json_schema), or pass the JSON schema as a dict."
            )
        elif isinstance(schema, str):
            raise ConfigError(
                f"schema={quote(schema)} is a string; give the JSON schema as a dict (or a "
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
        top = resolve(root, root)
        return [field_of(name, sub, root) for name, sub in (top.get("properties") or {}).items()]

    def column_names(self, out: str) -> list[str]:
        """The answer columns a job with this spec adds (besides status, error, tokens)."""
        columns = job_columns(out)
        return [columns.answer, *(columns.field(f.name) for f in self.fields())]

    # -- what comes back --------------------------------------------------------------------
    def parse(self, answers: np.ndarray, succeeded: np.ndarray) -> Parsed:
        """Parse answers of succeeded requests; others stay missing."""
        if self.kind == TEXT:
            return parse_text(answers)
        if self.kind == LABELS:
            return parse_labels(self.labels, answers, succeeded)
        if self.kind == SCHEMA:
            model = self.model if self.model is not None else _MODELS.get(_schema_key(self.schema or {}))
            return parse_schema(self.fields(), row_validator(self.schema or {}, model), answers, succeeded)
        if self.kind == JSON:
            return parse_json(answers, succeeded)
        raise ConfigError(f"Unknown output kind {self.kind!r}; expected one of {', '.join(KINDS)}.")


def _is_pydantic_model_class(obj: Any) -> bool:
    return (
        isinstance(obj, type)
        and callable(getattr(obj, "model_json_schema", None))
        and callable(getattr(obj, "model_validate_json", None))
    )


def _schema_key(schema: Mapping[str, Any]) -> str:
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode()


__all__ = ["JSON", "KINDS", "LABELS", "SCHEMA", "TEXT", "Field", "OutputSpec", "Parsed"]
