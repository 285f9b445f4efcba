"""Run every benchmark of batch_magic and print each figure with its baselines.

    .venv/bin/python bench/run.py               # everything (about 5 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick       # smaller sizes, for CI (under a minute)
    .venv/bin/python bench/run.py --only submit --only polling
    .venv/bin/python bench/run.py --json out.json

Sections: submit (1. plan + submit), collect (2. collect + merge), e2e (3. end
to end, 100k and 1M rows), kernel (4. kernel responsiveness), polling (5.
polling cost), media (6. 10,000 images: Files API uploads against inline
base64, and a re-run), polars (7. a Polars frame against the same pandas frame: plan,
merge and peak memory; 1M rows, 5,000 with --quick), reuse (8. the answer store at
100k and 1M rows against planning the job), simulator (the simulator's own figures,
bench/simulator_bench.py,
when that file is there; 10,000 requests and one run with --quick).

Every figure is measured against the simulator over real HTTP with zero
processing delay (polling: 3 s), medians over several runs, and each ratio
from runs made side by side in the same process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SECTIONS = ("submit", "collect", "e2e", "kernel", "polling", "media", "polars", "reuse", "simulator")


def machine() -> str:
    mem_gb = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores, {mem_gb:.0f} GB RAM, {platform.machine()}, "
            f"Python {platform.python_version()}, load average {load:.2f} at start")


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("batch-magic", "anthropic", "orjson", "pandas", "numpy", "polars", "pyarrow", "ipykernel"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def simulator_bench(quick: bool) -> dict[str, Any]:
    import bench_common as bc

    bc.section("Simulator's own figures (bench/simulator_bench.py)")
    script = HERE / "simulator_bench.py"
    if not script.exists():
        print("bench/simulator_bench.py is not there; skipped")
        return {"skipped": True}
    extra = ["--n", "10000", "--runs", "1"] if quick else []
    proc = subprocess.run([sys.executable, str(script), *extra], capture_output=True, text=True, timeout=600)
    print(proc.stdout.rstrip())
    if proc.returncode != 0:
        print(f"simulator_bench.py exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    return {"returncode": proc.returncode}


def runners() -> dict[str, Callable[[bool], dict[str, Any]]]:
    import bench_collect
    import bench_e2e
    import bench_kernel
    import bench_media
    import bench_polars
    import bench_polling
    import bench_reuse
    import bench_submit

    return {
        "submit": bench_submit.bench,
        "collect": bench_collect.bench,
        "e2e": bench_e2e.bench,
        "kernel": bench_kernel.bench,
        "polling": bench_polling.bench,
        "media": bench_media.bench,
        "polars": bench_polars.bench,
        "reuse": bench_reuse.bench,
        "simulator": simulator_bench,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs (CI)")
    p.add_argument("--only", action="append", choices=SECTIONS, metavar="NAME",
                   help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    args = p.parse_args(argv)
    chosen = args.only or list(SECTIONS)

    print(f"batch_magic benchmarks, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
          f"{' (quick)' if args.quick else ''}")
    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    table = runners()
    results: dict[str, Any] = {"date": dt.date.today().isoformat(), "quick": args.quick, "machine": machine()}
    failed = []
    started = time.perf_counter()
    for name in SECTIONS:
        if name not in chosen:
            continue
        t0 = time.perf_counter()
        try:
            results[name] = table[name](args.quick)
        except Exception:
            failed.append(name)
            print(f"section {name} FAILED:\n{traceback.format_exc()}", flush=True)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nall done in {time.perf_counter() - started:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
