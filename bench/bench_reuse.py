"""Figure 8: the answer store at scale: what reuse adds to planning a job.

Side by side in one run, for each size, median of several runs:

* plan: ``api.prepare`` of the frame (render, skip, deduplicate, split,
  fingerprint, estimate): what every job pays before sending anything;
* keys: the content key of every request (``answer_store.request_keys``);
* lookup, none stored: looking every key up in an empty store (a first job);
* keep: putting every answer in the store once (after a first job's merge);
* lookup, all stored: every key found, with its answer (a re-run over the
  same rows, e.g. the full run after a sample, or rows appended);

and the ratio of (keys + lookup) to the plan: what reuse costs a job on top.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc


def bench(quick: bool = False) -> dict[str, Any]:
    import numpy as np

    from batch_magic import api
    from batch_magic.answer_store import AnswerStore, request_keys
    from batch_magic.results import SUCCEEDED, ResultTable

    bc.section("8. The answer store: lookups and keeping answers vs planning the job")
    sizes = [(20_000, 3)] if quick else [(100_000, 3), (1_000_000, 1)]
    out: dict[str, Any] = {}
    rows = []
    for n, runs in sizes:
        df = bc.ticket_frame(n)
        timings = {name: bc.Timing() for name in ("plan", "keys", "miss", "keep", "hit")}
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="bm-bench-reuse-") as tmp:
                prepared = bc.measure(timings["plan"], api.prepare, df, bc.TEMPLATE, model=bc.MODEL,
                                      max_tokens=bc.MAX_TOKENS)
                plan = prepared.plan
                shared = plan.options.shared_params()
                keys = bc.measure(timings["keys"], request_keys, "http://127.0.0.1:1", shared, plan.prompts)
                store = AnswerStore(Path(tmp))
                none = bc.measure(timings["miss"], store.lookup, keys)
                assert none.n == 0
                table = ResultTable.empty(len(keys))
                table.status[:] = SUCCEEDED
                table.answer[:] = "billing"
                for column in (table.input_tokens, table.output_tokens, table.thinking_tokens,
                               table.cache_read_tokens, table.cache_write_tokens, table.cache_write_5m_tokens):
                    column[:] = 7
                numbers = np.arange(len(keys), dtype=np.int64)
                kept = bc.measure(timings["keep"], store.remember, "bench", keys, table.known(numbers))
                assert kept == len(keys)
                found = bc.measure(timings["hit"], store.lookup, keys)
                assert found.n == len(keys)
        plan_s = timings["plan"].median
        added = timings["keys"].median + timings["hit"].median
        rows.append([
            f"{n:,}", bc.fmt_s(plan_s), bc.fmt_s(timings["keys"].median), bc.fmt_s(timings["miss"].median),
            bc.fmt_s(timings["keep"].median), bc.fmt_s(timings["hit"].median), f"{added / plan_s:.2f}x",
        ])
        out[str(n)] = {name: t.median for name, t in timings.items()} | {"reuse_over_plan": added / plan_s}
    print(bc.table(rows, ["rows", "plan", "keys", "lookup (none)", "keep", "lookup (all)", "(keys+lookup)/plan"]))
    print(f"peak RSS {bc.peak_rss_mb():,.0f} MB")
    return out


if __name__ == "__main__":
    bench(quick="--quick" in sys.argv)
