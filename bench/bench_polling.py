"""Figure 5: what polling costs (API calls per batch-hour) and how soon an end is seen.

Two ways, side by side:

* the schedule: the job's own ``poll_interval`` stepped over a batch that runs
  for hours (poll right after create, then sleep
  ``clamp(fraction x time run, poll_min, poll_max)``, as the driver does);
* real runs: jobs against the simulator with a 3 s processing time (and, in
  the full run, one 20 s batch) counting the retrieve calls the simulator
  served, and timing from the batch's ``ended_at`` to the merged DataFrame.

``JobSettings()`` are the defaults used against the real API; a client pointed
at a local simulator gets quicker ones (``poll_min=0.2, poll_max=5``).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc

TARGET_PER_HOUR = 60
TARGET_LAG_S = 5.0


def poll_times(settings: Any, horizon_s: float) -> list[float]:
    """Seconds after creation at which the job polls one batch still running, up to ``horizon_s``."""
    from batch_magic.settings import poll_interval

    times = []
    t = 0.0
    while t < horizon_s:
        times.append(t)  # one retrieve per loop turn
        t += poll_interval(settings, t)
    return times


def schedule_figures(settings: Any) -> dict[str, float]:
    times = poll_times(settings, 3 * 3600)

    def calls(a: float, b: float) -> int:
        return sum(1 for x in times if a <= x < b)

    def lag(end: float) -> float:
        return min(x for x in times if x >= end) - end

    return {
        "first_minute": calls(0, 60),
        "first_hour": calls(0, 3600),
        "per_hour_after_5min": calls(300, 3900),
        "per_hour_after_10min": calls(600, 4200),
        "lag_3s": lag(3.0),
        "lag_60s_worst": max(lag(e) for e in [x / 10 for x in range(1, 600)]),
        "lag_1h_worst": max(lag(3600 + e) for e in range(0, 120)),
    }


def real_run(processing_s: float, settings: Any, rows: int = 200) -> dict[str, float]:
    """One job against an in-process simulator: retrieve calls and end -> merged seconds."""
    import pandas as pd

    import batch_magic as bm
    from batch_magic.simulator import Simulator

    df = pd.DataFrame({"text": [f"ticket {i}" for i in range(rows)]})
    with Simulator(processing_time=processing_s) as sim, tempfile.TemporaryDirectory() as tmp:
        job = bm.submit(df, bc.TEMPLATE, client=sim.client(max_retries=0), journal=tmp,
                        settings=settings, max_tokens=bc.MAX_TOKENS)
        job.wait(timeout=processing_s + 120)
        merged = time.time()
        (batch_id,) = sim.batch_ids()
        ended_at = sim.batch(batch_id)["ended_at"]
        ended = dt.datetime.fromisoformat(ended_at.replace("Z", "+00:00")).timestamp()
        retrieves = sum(1 for r in sim.requests if r.endpoint == "retrieve")
    return {"retrieves": retrieves, "end_to_merged_s": merged - ended}


def bench(quick: bool = False) -> dict[str, Any]:
    from batch_magic.settings import JobSettings

    bc.section("5. Polling cost and how soon an end is seen")
    api_settings = JobSettings()
    local_settings = JobSettings(poll_min=0.2, poll_max=5.0, backoff_min=0.2)
    out: dict[str, Any] = {}
    rows = []
    for name, s in (("JobSettings() (real API)", api_settings), ("local simulator", local_settings)):
        f = schedule_figures(s)
        out[name] = {"schedule": f}
        rows.append([name, f"{s.poll_min:g}-{s.poll_max:g} s, x{s.poll_fraction:g}", f["first_minute"],
                     f["first_hour"], f["per_hour_after_5min"], f["per_hour_after_10min"],
                     bc.fmt_s(f["lag_3s"]), bc.fmt_s(f["lag_60s_worst"]), bc.fmt_s(f["lag_1h_worst"])])
    print("schedule (the job's poll_interval over a batch's age), retrieve calls per batch:")
    print(bc.table(rows, ["settings", "interval", "1st min", "1st hour", "/h from 5 min", "/h from 10 min",
                          "lag, 3 s batch", "worst lag < 1 min", "worst lag ~1 h"]))
    api = out["JobSettings() (real API)"]["schedule"]
    print(f"target <= ~{TARGET_PER_HOUR}/hour once running a few minutes: "
          f"{bc.verdict(api['per_hour_after_10min'] <= TARGET_PER_HOUR)} ({api['per_hour_after_5min']} from 5 min, "
          f"{api['per_hour_after_10min']} from 10 min)")

    runs = [(3.0, 1 if quick else 3)] + ([] if quick else [(20.0, 1)])
    rows = []
    for name, s in (("JobSettings() (real API)", api_settings), ("local simulator", local_settings)):
        for processing, repeats in runs:
            if processing > 3 and s is local_settings:
                continue
            results = [real_run(processing, s) for _ in range(repeats)]
            lag = bc.median([r["end_to_merged_s"] for r in results])
            calls = bc.median([r["retrieves"] for r in results])
            # Polls while it runs, the one that sees it ended, and the SDK's own retrieve
            # inside results() (it looks up the results URL).
            predicted = sum(1 for x in poll_times(s, processing + 120) if x < processing) + 2
            out[name][f"real_{processing:g}s"] = {"runs": results, "lag_s": lag, "retrieves": calls,
                                                  "predicted_retrieves": predicted}
            rows.append([name, f"{processing:g} s", repeats, f"{calls:g}", predicted, bc.fmt_s(lag)])
    print("real runs against the simulator (200 rows, one batch):")
    print(bc.table(rows, ["settings", "batch runs", "runs", "retrieves (median)", "schedule + SDK",
                          "batch end -> merged"]))
    lag3 = out["JobSettings() (real API)"]["real_3s"]["lag_s"]
    print(f"target first answer within a few seconds of a quick batch ending: "
          f"{bc.verdict(lag3 <= TARGET_LAG_S)} ({bc.fmt_s(lag3)} with the real-API defaults)")
    return out


if __name__ == "__main__":
    bench("--quick" in sys.argv)
