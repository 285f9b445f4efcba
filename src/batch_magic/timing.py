"""How long batches take, from the journal's own history.

Request counts cannot move while a batch runs (the API fills them in at the
end), so the one sense of time a running job can give is how long this
journal's earlier batches like it took: same model, similar size, same kind of
server. Pure: it reads manifests it is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .status import DurationHint, epoch

#: Sizes within this factor of each other count as similar.
SIZE_FACTOR = 2.0
#: The most recent batches looked at.
MAX_SAMPLES = 50
#: From this many samples on, the spread is the 10th to 90th percentile (not min to max).
PERCENTILES_FROM = 10


def typical_batch_duration(
    manifests: Iterable[dict[str, Any]], *, job_id: str, model: str, size: int, simulated: bool
) -> DurationHint | None:
    """Creation-to-end times of other jobs' ended batches like this one, or None."""
    samples: list[tuple[float, float]] = []  # (created, seconds)
    for m in manifests:
        if m.get("job_id") == job_id or m.get("cancel_requested"):
            continue  # a canceled job's batches ended early, on purpose
        if (m.get("params") or {}).get("model") != model or bool(m.get("simulated")) != simulated:
            continue
        for b in m.get("batches") or ():
            if b.get("state") != "ended" or not size / SIZE_FACTOR <= int(b.get("size") or 0) <= size * SIZE_FACTOR:
                continue
            created, ended = epoch(b.get("created_at")), epoch(b.get("ended_at"))
            if created is not None and ended is not None and ended >= created:
                samples.append((created, ended - created))
    if not samples:
        return None
    samples.sort()
    seconds = np.array([s for _, s in samples[-MAX_SAMPLES:]])
    if len(seconds) >= PERCENTILES_FROM:
        low, high = np.percentile(seconds, [10, 90])
    else:
        low, high = seconds.min(), seconds.max()
    return DurationHint(float(np.median(seconds)), float(low), float(high), len(seconds))


__all__ = ["typical_batch_duration"]
