"""A DataFrame's index stored as data: ``index.json`` and ``index.parquet``.

``index_files`` makes both files' contents from an index, ``index_from_files`` reads
them back exactly; ``IndexNotStored`` says why a job's labels cannot be read, and
``labels_digest`` stands in for labels that cannot be stored. Which job's files they
are, and where, is ``journal.py``'s job.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import JournalError

# Why Parquet (through pyarrow) for the labels: it is a data format, not code, so reading
# a journal that came from elsewhere runs nothing; and pyarrow already round-trips what an
# index holds (integers, floats, strings, bytes, tz-aware datetimes at their unit,
# timedeltas, periods, intervals, nullable integers, categoricals with their categories
# and order) in compact columns, where a JSON layout of our own would re-implement each
# dtype. The little Parquet cannot say is kept beside it in ``index.json``: each level's
# exact dtype (cast back on read: e.g. ``datetime64[s]``, which Parquet widens to ms),
# the level names (any JSON scalar or tuple), a RangeIndex as three numbers, and object
# levels of mixed Python types (``[1, "a"]``, which Arrow cannot type) as tagged scalars.
# pyarrow >= 14.0.1 never unpickles extension types from a file (CVE-2023-47248).
INDEX_META = "index.json"
INDEX_DATA = "index.parquet"
#: What format-1 journals held: the index pickled. Read only when the user trusts it.
PICKLED_INDEX = "index.pkl"
INDEX_LAYOUT = 1


@dataclass(frozen=True)
class IndexNotStored:
    """Why a job's index labels cannot be read (its rows merge by position only into
    the labels of ``digest``, or when the user asks for it)."""

    reason: str
    #: An ``index.pkl`` of an older journal is there, to convert once trusted.
    pickled: bool
    #: For labels that cannot be stored as data: a digest of their text, to tell
    #: whether a DataFrame still has exactly those labels in that order.
    digest: str | None = None

    def matches(self, index: pd.Index) -> bool:
        return self.digest is not None and labels_digest(index) == self.digest


def labels_digest(index: pd.Index) -> str:
    """A digest of an index's names and labels, in order, by their text."""
    import hashlib

    digest = hashlib.sha256(repr(list(index.names)).encode())
    for label in index:
        digest.update(repr(label).encode() + b"\x00")
    return digest.hexdigest()


def _encode_name(name: Any) -> Any:
    if isinstance(name, tuple):
        return {"tuple": [_encode_name(n) for n in name]}
    if name is None or isinstance(name, (str, bool, int)):
        return name
    if isinstance(name, float):
        return {"float": repr(name)}
    return str(name)  # a label name of another type keeps its text


def _decode_name(value: Any) -> Any:
    if isinstance(value, dict):
        if "tuple" in value and isinstance(value["tuple"], list):
            return tuple(_decode_name(v) for v in value["tuple"])
        if "float" in value:
            return float(value["float"])
        raise JournalError(f"An index name in the journal is not understood: {value!r}.")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    raise JournalError(f"An index name in the journal is not understood: {value!r}.")


def _encode_scalar(value: Any) -> list[Any]:
    """One label of a mixed-type object level as [tag, value]; raises TypeError otherwise."""
    if value is None:
        return ["none"]
    if isinstance(value, (bool, np.bool_)):
        return ["bool", bool(value)]
    if isinstance(value, (int, np.integer)):
        return ["int", int(value)]
    if isinstance(value, (float, np.floating)):
        return ["float", repr(float(value))]  # JSON has no NaN or inf
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, pd.Timestamp):
        return ["timestamp", value.isoformat()]
    raise TypeError(f"a label of type {type(value).__name__}")


def _decode_scalar(item: Any) -> Any:
    if not isinstance(item, list) or not item:
        raise JournalError(f"An index label in the journal is not understood: {item!r}.")
    tag, *rest = item
    if tag == "none":
        return None
    if tag == "bool" and rest and isinstance(rest[0], bool):
        return rest[0]
    if tag == "int" and rest and isinstance(rest[0], int):
        return rest[0]
    if tag == "float" and rest and isinstance(rest[0], str):
        return float(rest[0])
    if tag == "str" and rest and isinstance(rest[0], str):
        return rest[0]
    if tag == "timestamp" and rest and isinstance(rest[0], str):
        return pd.Timestamp(rest[0])
    raise JournalError(f"An index label in the journal is not understood: {item!r}.")


def index_files(index: pd.Index) -> tuple[dict[str, Any], bytes | None]:
    """``index.json`` content and ``index.parquet`` bytes (None: no Parquet needed)."""
    names = [_encode_name(n) for n in index.names]
    if isinstance(index, pd.RangeIndex):
        return {"layout": INDEX_LAYOUT, "range": [index.start, index.stop, index.step], "names": names}, None
    levels = [index.get_level_values(i) for i in range(index.nlevels)]
    meta: dict[str, Any] = {
        "layout": INDEX_LAYOUT,
        "names": names,
        "multi": isinstance(index, pd.MultiIndex),
        "dtypes": [str(level.dtype) for level in levels],
        "tagged": {},
    }
    columns: dict[str, Any] = {}
    import pyarrow as pa

    for i, level in enumerate(levels):
        values = pd.Series(level, copy=False).reset_index(drop=True)
        try:
            pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            try:  # object labels of mixed types: one tagged scalar each
                meta["tagged"][str(i)] = [_encode_scalar(v) for v in level]
            except TypeError as exc:
                meta["unstorable"] = f"level {i} holds {exc}, which cannot be stored as data"
                meta["digest"] = labels_digest(index)
                return meta, None
            continue
        columns[f"l{i}"] = values
    if not columns:
        return meta, None
    buf = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buf, engine="pyarrow", index=False)
    return meta, buf.getvalue()


def index_from_files(meta: Any, data: bytes | None) -> pd.Index:
    """The index ``index_files`` stored, exactly (dtypes, names, duplicates, order)."""
    if not isinstance(meta, dict) or meta.get("layout") != INDEX_LAYOUT:
        raise JournalError(f"The stored index is not in a layout this version reads: {str(meta)[:80]!r}.")
    raw_names = meta.get("names")
    if not isinstance(raw_names, list):
        raise JournalError("The stored index has no list of names.")
    names = [_decode_name(n) for n in raw_names]
    if "range" in meta:
        r = meta["range"]
        if not (isinstance(r, list) and len(r) == 3 and all(isinstance(x, int) for x in r)):
            raise JournalError(f"The stored RangeIndex is not three integers: {r!r}.")
        return pd.RangeIndex(r[0], r[1], r[2], name=names[0] if names else None)
    dtypes, tagged = meta.get("dtypes"), meta.get("tagged") or {}
    if not isinstance(dtypes, list) or len(dtypes) != len(names) or not isinstance(tagged, dict):
        raise JournalError("The stored index's levels do not match its names.")
    table = None
    if data is not None:
        table = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    levels = []
    for i, dtype in enumerate(dtypes):
        if str(i) in tagged:
            items = tagged[str(i)]
            if not isinstance(items, list):
                raise JournalError(f"The stored index's level {i} is not a list of labels.")
            level = pd.Index([_decode_scalar(v) for v in items], dtype=object)
        else:
            if table is None or f"l{i}" not in table.columns:
                raise JournalError(f"The stored index lacks its level {i} ({INDEX_DATA}).")
            level = pd.Index(table[f"l{i}"])
        if str(level.dtype) != dtype:
            try:
                level = level.astype(pd.api.types.pandas_dtype(dtype))
            except (TypeError, ValueError) as exc:
                raise JournalError(f"The stored index's level {i} cannot be read as {dtype!r} ({exc}).") from None
        levels.append(level)
    if meta.get("multi"):
        return pd.MultiIndex.from_arrays(levels, names=names)
    if len(levels) != 1:
        raise JournalError("The stored index has no level.")
    return levels[0].rename(names[0])
