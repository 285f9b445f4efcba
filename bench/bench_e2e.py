"""Figure 3: end to end through the simulator, wall time and peak memory of the client.

The simulator runs as one process and the client (``batch_magic.submit(...,
wait=True)`` on a DataFrame of distinct tickets) as another, so the client's
peak RSS (``ru_maxrss`` read at its end) is its own. The DataFrame is built
before the clock starts; its memory is reported apart (``data``).

The last line is what a user meets first: a new process's first job (5,000
rows), its imports included. Its clock starts when the process is started
(the interpreter, pandas, batch_magic and the data all load on it), and stops
when the job has merged.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc

TARGET_1M_S = 60.0
TARGET_1M_MB = 4096.0
#: A new process's first job: its size, and its figures a round ago (before the journal
#: loaded jsonschema for every job): wall 3.8-4.0 s, peak RSS 142 MB.
FIRST_JOB_ROWS = 5_000
FIRST_JOB_BEFORE = "3.8-4.0 s, 142 MB"


def _cpu() -> float:
    """CPU seconds of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client_main(url: str, rows: int, journal: str) -> dict[str, Any]:
    """Runs in the client process: submit, wait, check, report."""
    import batch_magic as bm

    t_import = time.perf_counter()
    df = bc.ticket_frame(rows)
    data_mb = bc.rss_mb()
    sdk = bc.sdk_client(url)
    cpu0 = _cpu()
    t0 = time.perf_counter()
    job = bm.submit(df, bc.TEMPLATE, client=sdk, journal=journal, max_tokens=bc.MAX_TOKENS)
    t_submitted = time.perf_counter()
    job.wait()
    wall = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    answered = int((df["answer_status"] == "succeeded").sum())
    return {
        "rows": rows,
        "wall_s": wall,
        "client_cpu_s": cpu,
        "submit_call_s": t_submitted - t0,
        "data_build_s": t0 - t_import,
        "batches": job.status.batches_total,
        "answered": answered,
        "data_rss_mb": data_mb,
        "peak_rss_mb": bc.peak_rss_mb(),
    }


def first_job_main(url: str, rows: int, journal: str) -> dict[str, Any]:
    """Runs in a new client process: imports, the frame, submit, wait; timed from the start."""
    import batch_magic as bm

    df = bc.ticket_frame(rows)
    job = bm.submit(df, bc.TEMPLATE, client=bc.sdk_client(url), journal=journal, max_tokens=bc.MAX_TOKENS)
    submitted_at = time.time()
    job.wait()
    return {
        "rows": rows,
        "submitted_at": submitted_at,
        "ended_at": time.time(),
        "answered": int((df["answer_status"] == "succeeded").sum()),
        "modules": sorted(m for m in ("jsonschema", "polars", "sklearn", "scipy") if m in sys.modules),
        "peak_rss_mb": bc.peak_rss_mb(),
    }


def run_client(url: str, rows: int, mode: str = "--client") -> dict[str, Any]:
    started_at = time.time()
    with tempfile.TemporaryDirectory(prefix="bm-bench-e2e-") as tmp:
        out = subprocess.run(
            [sys.executable, __file__, mode, "--url", url, "--rows", str(rows), "--journal", tmp],
            capture_output=True, text=True, timeout=900,
        )
    if out.returncode != 0:
        raise RuntimeError(f"e2e client failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if mode == "--first-job":  # timed from the process's start (wall clocks: two processes)
        result["wall_s"] = result["ended_at"] - started_at
        result["until_submitted_s"] = result["submitted_at"] - started_at
    return result


def bench(quick: bool = False) -> dict[str, Any]:
    bc.section("3. End to end through the simulator (client process alone)")
    sizes = [(20_000, 2)] if quick else [(100_000, 3), (1_000_000, 2)]
    print("each size run in a fresh client process; median of the runs; simulator in its own process")
    results: dict[str, Any] = {}
    rows_out = []
    for rows, repeats in sizes:
        runs = []
        for _ in range(repeats):
            # A fresh simulator per run: it keeps every batch it has seen in memory.
            with bc.simulator() as sim:
                cpu0 = sim.cpu_seconds()
                r = run_client(sim.url, rows)
                r["sim_cpu_s"] = sim.cpu_seconds() - cpu0
            if r["answered"] != rows:
                raise RuntimeError(f"only {r['answered']} of {rows} rows answered")
            runs.append(r)
        wall = bc.median([r["wall_s"] for r in runs])
        peak = max(r["peak_rss_mb"] for r in runs)
        results[str(rows)] = {"runs": runs, "wall_s": wall, "peak_rss_mb": peak}
        target = ""
        if rows == 1_000_000:
            ok = wall < TARGET_1M_S and peak < TARGET_1M_MB
            target = f"< {TARGET_1M_S:.0f} s, < {TARGET_1M_MB / 1024:.0f} GB: {bc.verdict(ok)}"
        rows_out.append([
            f"{rows:,} rows",
            runs[0]["batches"],
            bc.fmt_s(wall),
            f"{rows / wall:,.0f}",
            f"{bc.median([r['data_rss_mb'] for r in runs]):,.0f} MB",
            f"{peak:,.0f} MB",
            bc.fmt_s(bc.median([r["client_cpu_s"] for r in runs])),
            bc.fmt_s(bc.median([r["sim_cpu_s"] for r in runs])),
            target,
        ])
    print(bc.table(rows_out, ["size", "batches", "wall", "rows/s", "data", "peak RSS", "client CPU", "simulator CPU", "target"]))
    results["first_job"] = first_job(1 if quick else 3)
    return results


def first_job(repeats: int) -> dict[str, Any]:
    """A new process's first job, imports included: median wall and highest peak RSS."""
    runs = []
    with bc.simulator() as sim:
        for _ in range(repeats):
            r = run_client(sim.url, FIRST_JOB_ROWS, "--first-job")
            if r["answered"] != FIRST_JOB_ROWS:
                raise RuntimeError(f"only {r['answered']} of {FIRST_JOB_ROWS} rows answered")
            runs.append(r)
    wall = bc.median([r["wall_s"] for r in runs])
    peak = max(r["peak_rss_mb"] for r in runs)
    print(
        f"a new process's first job, {FIRST_JOB_ROWS:,} rows, imports included: {bc.fmt_s(wall)} "
        f"(submitted after {bc.fmt_s(bc.median([r['until_submitted_s'] for r in runs]))}), peak RSS "
        f"{peak:,.0f} MB; a round ago {FIRST_JOB_BEFORE}; median of {repeats} new process{'es' if repeats > 1 else ''}; "
        f"loaded besides: {', '.join(runs[0]['modules']) or 'none of jsonschema, polars, sklearn, scipy'}"
    )
    return {"runs": runs, "wall_s": wall, "peak_rss_mb": peak}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--client", action="store_true")
    p.add_argument("--first-job", action="store_true")
    p.add_argument("--url")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--journal")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.client:
        print(json.dumps(client_main(args.url, args.rows, args.journal)))
    elif args.first_job:
        print(json.dumps(first_job_main(args.url, args.rows, args.journal)))
    else:
        bench(args.quick)


if __name__ == "__main__":
    main()
