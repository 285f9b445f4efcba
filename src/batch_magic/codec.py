"""One typed codec for the records the journal keeps: a dataclass to JSON values and
back, driven by the types its fields declare.

Each record type has one ``Codec`` (``record.py`` makes them). Decoding is reading
untrusted input: every value is checked against its field's type before the record
is made, and a value of another type is refused with its place in the file (never
coerced: ``"3"`` is not an ``int``, ``true`` is not a count). A key the record does
not declare is ignored; a missing key takes the field's default.

Types understood: ``str``, ``int`` (not ``bool``), ``float`` (an ``int`` too),
``bool``, ``Any`` (any JSON value, kept as it is), a ``StrEnum`` (by its value),
another dataclass with a codec, ``X | None``, ``list[X]``, ``tuple[X, ...]`` and
``dict[str | int, X]`` (JSON keys are text: an ``int`` key is written as its digits).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: A field's metadata key: the JSON value that stands for None in the file (a record
#: without an estimate stores ``{}``).
NONE_AS = "codec_none_as"

_CODECS: dict[type, Codec[Any]] = {}


class CodecError(ValueError):
    """A value that is not what its field holds; ``path`` says where (``batches[0].size``)."""

    def __init__(self, path: str, value: Any, expected: str) -> None:
        self.path, self.value, self.expected = path, value, expected
        super().__init__(f"{path}={str(value)[:60]!r} is not what a manifest holds there ({expected})")


class Codec(Generic[T]):
    """Encode and decode one dataclass by its fields' types.

    ``omit``: fields never stored (e.g. a live object). ``omit_none``: a None field
    is left out of the file rather than written as null. ``check``: run on each
    decoded record with the file's name, for what a type cannot say (counts that add
    up, names that cannot lead out of a folder).
    """

    def __init__(
        self,
        cls: type[T],
        *,
        omit: tuple[str, ...] = (),
        omit_none: bool = False,
        check: Callable[[T, str], None] | None = None,
    ) -> None:
        hints = typing.get_type_hints(cls)
        self.cls = cls
        self.fields = [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name not in omit]  # type: ignore[arg-type]
        self.omit_none = omit_none
        self.check = check
        _CODECS[cls] = self

    def encode(self, obj: T) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, _ in self.fields:
            value = getattr(obj, f.name)
            if value is None and self.omit_none:
                continue
            out[f.name] = f.metadata[NONE_AS] if value is None and NONE_AS in f.metadata else _encode(value)
        return out

    def decode(self, data: Any, where: str, path: str = "") -> T:
        """The record from its JSON object; CodecError names the first value that does not fit."""
        if not isinstance(data, dict):
            raise CodecError(path or "the record", data, "an object")
        values: dict[str, Any] = {}
        for f, hint in self.fields:
            place = f"{path}.{f.name}" if path else f.name
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise CodecError(place, None, "a value; it is missing")
                continue
            value = data[f.name]
            if NONE_AS in f.metadata and value == f.metadata[NONE_AS]:
                value = None
            values[f.name] = _decode(hint, value, place, where)
        record = self.cls(**values)
        if self.check is not None:
            self.check(record, where)
        return record


#: JSON's own scalars: written as they are. A manifest's long lists (a retry's request
#: numbers, up to a batch's 100,000) are of these, so they take the quick path both ways.
_SCALARS = (str, int, float, bool, type(None))


def _encode(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _CODECS[type(value)].encode(value)
    if isinstance(value, dict):
        return {str(k): v if type(v) in _SCALARS else _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if type(v) in _SCALARS else _encode(v) for v in value]
    return value


def _all_of(kind: Any, values: Any) -> bool:
    """Are all ``values`` exactly of the scalar type ``kind`` (no ``bool`` for ``int``)?"""
    return kind in (str, int, bool) and all(type(v) is kind for v in values)


def _decode(hint: Any, value: Any, path: str, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for i, option in enumerate(options):
            try:
                return _decode(option, value, path, where)
            except CodecError:
                if i == len(options) - 1:
                    raise
        raise CodecError(path, value, "none of its types")  # pragma: no cover (a union has a type)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise CodecError(path, value, "true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise CodecError(path, value, "a whole number")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise CodecError(path, value, "a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise CodecError(path, value, "a text")
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise CodecError(path, value, f"one of {', '.join(str(m.value) for m in hint)}") from None
    if isinstance(hint, type) and hint in _CODECS:
        return _CODECS[hint].decode(value, where, path)
    if origin is list or origin is tuple:
        if not isinstance(value, list):
            raise CodecError(path, value, "a list")
        if _all_of(args[0], value):
            items = value
        else:
            items = [_decode(args[0], v, f"{path}[{i}]", where) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise CodecError(path, value, "an object")
        key_type, item_type = args
        if key_type is str and _all_of(item_type, value.values()):
            return value
        out = {}
        for k, v in value.items():
            if key_type is int:
                if not (isinstance(k, str) and k.isdigit()):
                    raise CodecError(f"{path}.{k}", k, "a key that is a whole number")
                key: Any = int(k)
            else:
                key = k
            out[key] = _decode(item_type, v, f"{path}.{k}", where)
        return out
    raise TypeError(f"the codec has no rule for the type {hint!r} (at {path})")
