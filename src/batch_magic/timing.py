"""How long batches take, from the journal's own history.

Request counts cannot move while a batch runs (the API fills them in at the
end), so the one sense of time a running job can give is how long this
journal's earlier batches like it took: same model, similar size, same kind of
server. Pure: it reads the job records it is given.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .record import BatchState, JobRecord
from .status import DurationHint, epoch

#: Sizes within this factor of each other count as similar.
SIZE_FACTOR = 2.0
#: The most recent batches looked at.
MAX_SAMPLES = 50
#: From this many samples on, the spread is the 10th to 90th percentile (not min to max).
PERCENTILES_FROM = 10


def typical_batch_duration(
    records: Iterable[JobRecord], *, job_id: str, model: str, size: int, simulated: bool
) -> DurationHint | None:
    """Creation-to-end times of other jobs' ended batches like this one, or None."""
    samples: list[tuple[float, float]] = []  # (created, seconds)
    for r in records:
        if r.job_id == job_id or r.cancel_requested_at:
            continue  # a canceled job's batches ended early, on purpose
        if r.options.model != model or r.simulated != simulated:
            continue
        for b in r.batches:
            if b.state is not BatchState.ENDED or not size / SIZE_FACTOR <= b.size <= size * SIZE_FACTOR:
                continue
            created, ended = epoch(b.created_at), epoch(b.ended_at)
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
