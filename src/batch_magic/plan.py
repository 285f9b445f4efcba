"""Turn a DataFrame, a template and options into the requests to send.

Pure: no I/O. Each row is rendered; rows with a missing input are skipped;
identical requests are sent once and their answer fanned out to every row that
asked; each unique request gets our own ``custom_id`` (``r<number>``, valid for
the API whatever the index looks like); requests are split into batches under
the API's limits (100,000 requests, 256 MB of serialised body) and the user's
chunk size. The fingerprint covers every rendered prompt, in row order, every
parameter and the rows' labels (the index), so an identical re-run over the same
rows is recognised and never paid twice, and the same cell over another frame
(other labels) is another job (whose prompts the answer store may already hold).

A template that shows images or PDFs renders each row's files to markers that
carry the file's sha256 (``media.py``): prompts stay text, so deduplication
and the fingerprint work by content hash, and the plan's ``media`` lists each
distinct file once. Text-only templates never touch that path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .errors import MediaError, PlanError
from .media import MediaCollector, MediaItem, extra_body_bytes, problems_message
from .template import Template

MAX_REQUESTS_PER_BATCH = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
# Room for the envelope and for differences in JSON spacing between encoders.
BATCH_BYTES_MARGIN = 1024 * 1024

#: Marks a row that is not sent in the row → request map: its input is missing or blank ...
SKIPPED = -1
#: ... or it was left out of a sample (``--sample``): status ``not_sent``.
NOT_SENT = -2


@dataclass(frozen=True)
class RequestOptions:
    """Everything besides the prompt that goes into each request's params."""

    model: str
    max_tokens: int
    system: str | None = None
    #: ``output_config.effort`` (low, medium, high, xhigh, max); None: the model's default.
    effort: str | None = None
    #: The ``thinking`` param (``{"type": "disabled"}`` to leave room for a short answer).
    thinking: dict[str, Any] | None = None
    #: A JSON schema for ``output_config.format`` (labels, --schema, --json).
    output_schema: dict[str, Any] | None = None
    #: Use a forced tool call instead of ``output_config`` (models without it).
    use_tool: bool = False
    #: Mark the system prompt for caching (1-hour TTL, as advised for batches).
    cache_system: bool = False
    #: Extra Messages API params, passed through as given (e.g. metadata, stop_sequences);
    #: an ``output_config`` here is merged with ours.
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise PlanError(f"model={self.model!r} is not a model name; use e.g. 'claude-haiku-5-5'.")
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) or self.max_tokens < 1:
            raise PlanError(f"max_tokens={self.max_tokens!r} must be a whole number of at least 1.")

    def shared_params(self) -> dict[str, Any]:
        """The params every request shares; ``messages`` is added per request."""
        params: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens}
        if self.system:
            if self.cache_system:
                params["system"] = [
                    {
                        "type": "text",
                        "text": self.system,
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    }
                ]
            else:
                params["system"] = self.system
        if self.thinking is not None:
            params["thinking"] = dict(self.thinking)
        extra = dict(self.extra)
        # One output_config: the user's own keys, then the format and effort chosen here.
        output_config: dict[str, Any] = dict(extra.pop("output_config", None) or {})
        if self.effort is not None:
            output_config["effort"] = self.effort
        if self.output_schema is not None:
            if self.use_tool:
                params["tools"] = [
                    {
                        "name": "answer",
                        "description": "Record the answer for this input.",
                        "input_schema": self.output_schema,
                    }
                ]
                params["tool_choice"] = {"type": "tool", "name": "answer"}
            else:
                output_config["format"] = {"type": "json_schema", "schema": self.output_schema}
        if output_config:
            params["output_config"] = output_config
        params.update(extra)
        return params


def request_params(shared: dict[str, Any], prompt: str | list[dict[str, Any]]) -> dict[str, Any]:
    """One request's params: the shared ones and a user turn (a prompt, or content blocks)."""
    return {**shared, "messages": [{"role": "user", "content": prompt}]}


@dataclass
class Plan:
    """The requests of one job and how they map back to the rows."""

    options: RequestOptions
    #: One prompt per unique request; request ``k`` has custom_id ``r{k}``.
    prompts: list[str]
    #: For each row position, the request it reads its answer from, or SKIPPED.
    row_requests: np.ndarray
    #: The index of the DataFrame at plan time (to merge after a reorder).
    index: pd.Index
    #: Request numbers per batch, in submission order.
    batches: list[range]
    #: Why each skipped row was skipped, by row position (short text).
    skip_reasons: dict[int, str]
    fingerprint: str
    #: Each distinct image or PDF the prompts show, by sha256 (empty for text alone).
    media: dict[str, MediaItem] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.row_requests)

    @property
    def n_requests(self) -> int:
        return len(self.prompts)

    @property
    def n_skipped(self) -> int:
        return int((self.row_requests == SKIPPED).sum())

    @property
    def n_not_sent(self) -> int:
        """Rows left out of a sample."""
        return int((self.row_requests == NOT_SENT).sum())

    @property
    def n_deduplicated(self) -> int:
        """Rows that share a request with an earlier row (not sent again)."""
        return self.n_rows - self.n_skipped - self.n_not_sent - self.n_requests


#: Length of a job's id tag: hex digits, so never an 'r' (see ``custom_id``).
ID_TAG_LEN = 8


def new_id_tag() -> str:
    """A job's own tag for its custom_ids, so its results can be told from others'."""
    import secrets

    return secrets.token_hex(ID_TAG_LEN // 2)


def custom_id(k: int, tag: str = "") -> str:
    """Request ``k``'s id: the job's tag, ``r``, the number (e.g. ``3fa85f64r17``)."""
    return f"{tag}r{k}"


def custom_ids(numbers: Iterable[int], tag: str = "") -> Iterator[str]:
    """``custom_id(k, tag)`` for each k (Python ints), without a Python call per id."""
    return map((tag + "r{}").format, numbers)


def request_number(cid: str) -> int:
    """``k`` back from a custom_id (the tag is hex, so the first 'r' ends it)."""
    return int(cid[cid.index("r") + 1 :])


def _missing_mask(values: pd.Series) -> np.ndarray:
    mask = values.isna().to_numpy(dtype=bool)
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        try:
            blank = values.astype("string").str.strip().eq("").fillna(False).to_numpy(dtype=bool)
        except (UnicodeDecodeError, TypeError, ValueError):  # bytes of a file, say: only text can be blank
            blank = np.fromiter(
                (type(v) is str and not v.strip() for v in values.to_numpy(dtype=object)),
                dtype=bool, count=len(values),
            )
        mask = mask | blank
    return mask


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    """The values a template name reads: a column, else a named index level."""
    matches = [c for c in df.columns if str(c) == name]
    if not matches:
        levels = [i for i, n in enumerate(df.index.names) if n is not None and str(n) == name]
        if len(levels) == 1:
            return pd.Series(df.index.get_level_values(levels[0]), index=df.index, name=name)
    if len(matches) != 1:
        raise PlanError(
            f"The DataFrame has {len(matches)} columns named {name!r}; "
            "rename the duplicates so the template can tell them apart."
        )
    col = df[matches[0]]
    if isinstance(col, pd.DataFrame):  # duplicate labels that compare equal
        raise PlanError(f"The DataFrame has several columns named {name!r}; rename them.")
    return col


def build_plan(
    df: pd.DataFrame,
    template: Template,
    options: RequestOptions,
    *,
    chunk_size: int | None = None,
    send_rows: np.ndarray | None = None,
) -> Plan:
    """Render every row and lay out the batches (no I/O, nothing sent).

    ``send_rows`` (sorted row positions, a sample): only those rows are rendered
    and sent; the others are ``NOT_SENT`` in the row map."""
    if not isinstance(df, pd.DataFrame):
        raise PlanError(f"Expected a pandas DataFrame, got {type(df).__name__}.")
    options.validate()
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise PlanError(f"chunk_size={chunk_size!r} must be a whole number of at least 1.")
    if len(df) == 0:
        raise PlanError("The DataFrame has no rows: there is nothing to send.")

    index_names = list(df.index.names)
    if template.needs_whole_row:
        used = [str(c) for c in df.columns]
        used += [str(n) for n in index_names if n is not None and str(n) not in used]
    else:
        used = template.check_columns(list(df.columns), index_names)

    n = len(df)
    series = {name: _column(df, name) for name in used}
    missing = np.zeros(n, dtype=bool)
    skip_reasons: dict[int, str] = {}
    if not template.needs_whole_row:
        for name, values in series.items():
            col_missing = _missing_mask(values)
            for pos in np.flatnonzero(col_missing & ~missing)[:100_000]:
                skip_reasons[int(pos)] = f"{name} is missing"
            missing |= col_missing

    unsampled = np.zeros(n, dtype=bool)
    if send_rows is not None:
        unsampled[:] = True
        unsampled[send_rows] = False
        for pos in np.flatnonzero(unsampled & missing):
            skip_reasons.pop(int(pos), None)
    keep = np.flatnonzero(~missing & ~unsampled)
    columns = {name: values.to_numpy(dtype=object)[keep] for name, values in series.items()}
    collector = MediaCollector() if template.uses_media else None
    rendered = template.render_columns(columns, len(keep), media=collector)
    if collector is not None and collector.n_problems:
        index = df.index
        raise MediaError(
            problems_message(collector.problems, collector.n_problems, lambda i: row_name(index, int(keep[i])))
        )

    row_requests = np.full(n, SKIPPED, dtype=np.int64)
    if not template.never_blank:
        blank = np.fromiter((not p.strip() for p in rendered), dtype=bool, count=len(rendered))
        if blank.any():
            for pos in keep[blank].tolist():
                skip_reasons[pos] = "the rendered prompt is empty"
            keep = keep[~blank]
            rendered = [p for p, b in zip(rendered, blank.tolist()) if not b]
    # Unique prompts in order of first appearance; request k is the k-th of them.
    prompts = list(dict.fromkeys(rendered))
    if len(prompts) == len(rendered):
        row_requests[keep] = np.arange(len(prompts), dtype=np.int64)
    elif prompts:
        number = {p: k for k, p in enumerate(prompts)}
        row_requests[keep] = np.fromiter(map(number.__getitem__, rendered), dtype=np.int64, count=len(rendered))
    row_requests[unsampled] = NOT_SENT
    if not prompts:
        raise PlanError(
            f"All {n - int(unsampled.sum())} rows {'of the sample ' if send_rows is not None else ''}were skipped because their inputs are missing or empty "
            f"(columns used: {', '.join(map(repr, used))}); there is nothing to send."
        )

    shared = options.shared_params()
    media = collector.items if collector is not None else {}
    batches = split_batches(prompts, shared, chunk_size or MAX_REQUESTS_PER_BATCH, media=bool(media))
    return Plan(
        options=options,
        prompts=prompts,
        row_requests=row_requests,
        index=df.index.copy(),
        batches=batches,
        skip_reasons=skip_reasons,
        fingerprint=fingerprint(shared, prompts, row_requests, rows=labels_digest(df.index)),
        media=media,
    )


def row_name(index: pd.Index, position: int) -> str:
    """How a message names a row: by its label, and where the label repeats also by its
    position (``row 'b' at .iloc[3]``), so the row can be found."""
    label = index[position]
    if index.is_unique:
        return f"row {label!r}"
    return f"row {label!r} at .iloc[{position}]"


def request_bytes(shared: dict[str, Any], prompts: Sequence[str]) -> np.ndarray:
    """Exact serialised size of each request in a create body, without building it."""
    empty = orjson.dumps({"custom_id": "", "params": request_params(shared, "")})
    # minus the empty prompt's quotes, plus the comma and the id's tag
    base = len(empty) - 2 + 1 + ID_TAG_LEN
    n = len(prompts)
    sizes = np.fromiter(map(len, map(orjson.dumps, prompts)), dtype=np.int64, count=n)
    return sizes + _id_lengths(n) + base


def _id_lengths(n: int) -> np.ndarray:
    """``len(custom_id(k))`` for k in 0..n-1, without the tag: the 'r' and the digits."""
    k = np.arange(n, dtype=np.int64)
    lengths = np.full(n, 2, dtype=np.int64)
    power = 10
    while power < n:
        lengths += k >= power
        power *= 10
    return lengths


def _range_bytes(shared: dict[str, Any], prompts: Sequence[str], r: range) -> int:
    """The serialised size of requests ``r`` in a create body (sum of ``request_bytes``)."""
    empty = orjson.dumps({"custom_id": "", "params": request_params(shared, "")})
    base = len(empty) - 2 + 1 + ID_TAG_LEN
    chunk = prompts[r.start : r.stop]
    encoded = len(orjson.dumps(chunk if isinstance(chunk, (list, tuple)) else list(chunk)))
    prompt_bytes = encoded - 2 - max(0, len(r) - 1)  # minus the brackets and the commas
    ids = 0
    digits, low = 1, 0
    while low < r.stop:
        high = 10**digits
        ids += max(0, min(r.stop, high) - max(r.start, low)) * (1 + digits)
        digits, low = digits + 1, high
    return prompt_bytes + ids + base * len(r)


def split_batches(
    prompts: Sequence[str], shared: dict[str, Any], max_requests: int, *, media: bool = False
) -> list[range]:
    """Consecutive ranges of request numbers, each under both API limits.

    ``media``: some prompts show files, whose content blocks take more bytes than
    their markers (an upper bound is added per block)."""
    max_requests = min(max_requests, MAX_REQUESTS_PER_BATCH)
    limit = MAX_BATCH_BYTES - BATCH_BYTES_MARGIN
    total = len(prompts)
    by_count = [range(a, min(a + max_requests, total)) for a in range(0, total, max_requests)]
    if not media and all(_range_bytes(shared, prompts, r) <= limit for r in by_count):
        return by_count  # every chunk fits: exactly what the byte-wise split below gives
    sizes = request_bytes(shared, prompts)
    if media:
        sizes = sizes + np.fromiter(map(extra_body_bytes, prompts), dtype=np.int64, count=total)
    too_big = np.flatnonzero(sizes > limit)
    if too_big.size:
        k = int(too_big[0])
        raise PlanError(
            f"Request {k} alone is {sizes[k] / 1e6:.0f} MB, over the API's 256 MB batch "
            "limit; shorten that row's text."
        )
    batches: list[range] = []
    start = 0
    cumulative = np.cumsum(sizes)
    while start < total:
        stop = min(start + max_requests, total)
        offset = cumulative[start - 1] if start else 0
        # The largest stop whose body fits in the byte limit.
        fit = int(np.searchsorted(cumulative, offset + limit, side="right"))
        stop = max(start + 1, min(stop, fit))
        batches.append(range(start, stop))
        start = stop
    return batches


def fingerprint(
    shared: dict[str, Any], prompts: Sequence[str], row_requests: np.ndarray, *, rows: bytes = b""
) -> str:
    """Stable hash of every parameter, every prompt, the row → request map and the rows'
    identity (``rows``: ``labels_digest`` of their labels)."""
    h = hashlib.sha256()
    h.update(orjson.dumps(shared, option=orjson.OPT_SORT_KEYS))
    h.update(b"\x00")
    for p in prompts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    h.update(np.ascontiguousarray(row_requests, dtype=np.int64).tobytes())
    h.update(b"\x00" + rows)
    return h.hexdigest()


def labels_digest(labels: pd.Index | pd.DataFrame) -> bytes:
    """A digest of the rows' labels in order: an index (each level of a MultiIndex), or
    the key columns of a Polars frame as pandas columns.

    pandas' own hash of each label's value (``hash_pandas_object``, vectorised: a few
    milliseconds for a million numbers or dates, about 0.1 s for a million texts; not
    categorised first, as labels are mostly distinct), so a kernel restart that reads
    the same data again gives the same digest. Labels it cannot hash (dicts, say) are
    hashed by their text."""
    try:
        hashed = pd.util.hash_pandas_object(labels, index=False, categorize=False).to_numpy()
    except TypeError:  # unhashable labels: their text, in order
        h = hashlib.sha256()
        for label in labels if isinstance(labels, pd.Index) else labels.itertuples(index=False):
            h.update(repr(label).encode("utf-8", "surrogatepass") + b"\x1e")
        return h.digest()
    return hashlib.sha256(np.ascontiguousarray(hashed, dtype=np.uint64).tobytes()).digest()
