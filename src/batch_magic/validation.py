"""Does a row's answer fit the schema? A pydantic model judges it when the user
gave one; ``jsonschema`` (the validator Jupyter itself installs) otherwise.

A validator takes the answer's JSON object and its text, and returns the object
to take the fields from (a model's dump, with its conversions) and why the
answer does not fit, or None: a path and a reason, e.g.
``$.items: -1 is less than the minimum of 0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .answers import RowValidator, strip_fences
from .errors import ConfigError
from .schemas import json_path, local_validator, unresolvable

#: Characters of a row's reason kept in ``{out}_error``.
REASON_CHARS = 300


def row_validator(schema: Mapping[str, Any], model: Any = None) -> RowValidator:
    """The validator of a schema (compiled once per job), or of its pydantic model."""
    if model is not None:
        return _by_model(model)
    import jsonschema  # a schema job's alone (see schemas.py)
    import referencing.exceptions

    validator = local_validator(schema)  # references resolve inside the schema alone

    def by_jsonschema(data: dict[str, Any], answer: Any) -> tuple[dict[str, Any], str | None]:
        try:
            if validator.is_valid(data):  # the common case, without building errors
                return data, None
            errors = list(validator.iter_errors(data))
        except referencing.exceptions.Unresolvable as exc:
            raise unresolvable(exc) from None
        except RecursionError:  # a schema whose references lead back to themselves forever
            raise ConfigError(
                "The schema's references lead back to themselves without end; it cannot judge an answer."
            ) from None
        best = jsonschema.exceptions.best_match(errors)
        assert best is not None  # not valid, so at least one error
        reason = f"{json_path(best.absolute_path)}: {best.message}"
        if len(errors) > 1:
            reason += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        return data, reason[:REASON_CHARS]

    return by_jsonschema


def _by_model(model: Any) -> RowValidator:
    def by_model(data: dict[str, Any], answer: Any) -> tuple[dict[str, Any], str | None]:
        try:
            instance = model.model_validate_json(strip_fences(str(answer)))
        except Exception as exc:
            return data, pydantic_reason(exc)
        dumped: dict[str, Any] = instance.model_dump(mode="json", by_alias=True)
        return dumped, None

    return by_model


def pydantic_reason(exc: Exception) -> str:
    """A pydantic ValidationError as paths and reasons (the first three)."""
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
            return "; ".join(parts)[:REASON_CHARS]
    return str(exc)[:REASON_CHARS]


__all__ = ["REASON_CHARS", "pydantic_reason", "row_validator"]
