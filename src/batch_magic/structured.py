"""What shape an answer takes: free text, one label of a set, or JSON fields.

An ``OutputSpec`` gives the JSON schema sent in ``output_config.format`` (or as
a forced tool's input schema) and parses each answer back, per request, never
failing the job: an answer that does not fit is marked ``invalid`` with its raw
text kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .errors import ConfigError

TEXT, LABELS, SCHEMA = "text", "labels", "schema"


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
class OutputSpec:
    kind: str = TEXT
    labels: tuple[str, ...] = ()
    schema: dict[str, Any] | None = field(default=None)

    @classmethod
    def text(cls) -> OutputSpec:
        return cls(TEXT)

    @classmethod
    def from_labels(cls, labels: Sequence[Any] | str) -> OutputSpec:
        if isinstance(labels, str):
            items = [part.strip() for part in labels.split(",")]
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

    def json_schema(self) -> dict[str, Any] | None:
        """The schema to constrain the answer with, or None for free text."""
        if self.kind == LABELS:
            return {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": list(self.labels)}},
                "required": ["label"],
                "additionalProperties": False,
            }
        if self.kind == SCHEMA:
            return self.schema
        return None

    def parse(self, answers: np.ndarray, succeeded: np.ndarray) -> Parsed:
        """Parse answers of succeeded requests; others stay missing."""
        n = len(answers)
        invalid = np.zeros(n, dtype=bool)
        reasons = np.full(n, None, dtype=object)
        if self.kind == TEXT:
            return Parsed({"": answers}, {"": "string"}, invalid, reasons)
        if self.kind == LABELS:
            allowed = set(self.labels)
            values = np.full(n, None, dtype=object)
            for k in np.flatnonzero(succeeded):
                label = _label_of(answers[k])
                if label in allowed:
                    values[k] = label
                else:
                    invalid[k] = True
                    reasons[k] = f"answer is not one of the labels: {str(answers[k])[:200]!r}"
            dtype = pd.CategoricalDtype(categories=list(self.labels))
            return Parsed({"": values}, {"": dtype}, invalid, reasons)
        raise ConfigError(f"Unknown output kind {self.kind!r}.")


def _label_of(answer: Any) -> str | None:
    """A label from a structured answer ``{"label": ...}`` or from bare text."""
    if answer is None:
        return None
    text = str(answer).strip()
    if text.startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if isinstance(data, dict) and isinstance(data.get("label"), str):
            return str(data["label"]).strip()
        return None
    return text.strip().strip('"').strip()
