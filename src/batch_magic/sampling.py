"""Which rows a sample sends: seeded, reproducible, optionally stratified.

A sample is part of the plan: the rows not chosen are marked ``NOT_SENT`` in the
row map (status ``not_sent`` when merged, never ``skipped``, which means an
empty input), so the same sample of the same frame is the same job, and a full
run afterwards takes the sample's answers from the journal's answer store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import PlanError


def choose_rows(df: pd.DataFrame, n: int, *, seed: int = 0, stratify: str | None = None) -> np.ndarray:
    """Sorted positions of ``n`` rows of ``df``, drawn without replacement with ``seed``.

    With ``stratify``, each value of that column gets its share of the sample
    (``n * group / total``, the remainders going to the largest fractions), so a
    rare class is represented as it is in the frame; a value with a share under
    one row may get none. Missing values of the column form a group of their own.
    """
    total = len(df)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise PlanError(f"sample={n!r} must be a whole number of rows of at least 1 (e.g. --sample 50).")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PlanError(f"seed={seed!r} must be a whole number of at least 0 (e.g. --seed 7).")
    rng = np.random.default_rng(int(seed))
    if n >= total:
        return np.arange(total, dtype=np.int64)
    if stratify is None:
        return np.sort(rng.choice(total, size=int(n), replace=False)).astype(np.int64)
    if stratify not in df.columns:
        raise PlanError(
            f"stratify={stratify!r} is not a column of the DataFrame; give one of: "
            f"{', '.join(map(repr, list(df.columns)[:20]))}."
        )
    codes, _ = pd.factorize(df[stratify], use_na_sentinel=False)
    sizes = np.bincount(codes)
    share = sizes * (n / total)
    take = np.floor(share).astype(np.int64)
    # The rows left after the whole shares go to the groups with the largest remainders
    # (ties to the earlier group: stable and reproducible).
    left = int(n - take.sum())
    if left:
        take[np.argsort(-(share - take), kind="stable")[:left]] += 1
    chosen = [
        rng.choice(np.flatnonzero(codes == g), size=int(k), replace=False) for g, k in enumerate(take) if k
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
