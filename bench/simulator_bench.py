"""Benchmark the simulator at the API maximum: one 100,000-request batch.

Starts ``python -m batch_magic.simulator`` as a subprocess (port 0), then,
through the official SDK, creates a batch of N requests, waits for it to end
and downloads every result with ``client.messages.batches.results()``. Also
times a plain streamed download of the same results (no SDK parsing), reads
the simulator's own CPU time for each phase, and its peak RSS (VmHWM).

    .venv/bin/python bench/simulator_bench.py [--n 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx2

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int, key: str) -> int:
    """A ``kB`` figure of /proc/PID/status, in MiB."""
    m = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) // 1024 if m else -1


def make_requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"row-{i:06d}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "messages": [
                    {
                        "role": "user",
                        "content": f"Classify the sentiment of this review as positive, negative or neutral: "
                        f"order {i} arrived on time and the product works great.",
                    }
                ],
            },
        }
        for i in range(n)
    ]


def one_run(client: anthropic.Anthropic, pid: int, reqs: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    batch = client.messages.batches.create(requests=reqs)
    out["create_s"] = time.perf_counter() - t0
    out["create_sim_cpu_s"] = cpu_seconds(pid) - cpu0
    while client.messages.batches.retrieve(batch.id).processing_status != "ended":
        time.sleep(0.05)
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    n = sum(1 for _ in client.messages.batches.results(batch.id))
    out["results_sdk_s"] = time.perf_counter() - t0
    out["results_sim_cpu_s"] = cpu_seconds(pid) - cpu0
    assert n == len(reqs), (n, len(reqs))
    url = client.messages.batches.retrieve(batch.id).results_url
    assert url
    t0 = time.perf_counter()
    size = lines = 0
    with httpx2.stream("GET", url, headers={"x-api-key": "bench", "anthropic-version": "2023-06-01"}, timeout=600) as resp:
        for chunk in resp.iter_raw(1 << 16):
            size += len(chunk)
            lines += chunk.count(b"\n")
    out["results_raw_s"] = time.perf_counter() - t0
    out["results_mb"] = size / 1e6
    assert lines == len(reqs)
    client.messages.batches.delete(batch.id)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="requests in the batch (default 100000)")
    ap.add_argument("--runs", type=int, default=3, help="runs; medians are printed (default 3)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()

    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_magic.simulator", "--port", "0", "--processing-time", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        m = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())
        assert m, "the simulator did not print its URL"
        client = anthropic.Anthropic(api_key="sk-sim-bench", base_url=m.group(0), max_retries=0, timeout=600)
        idle_rss = proc_status(proc.pid, "VmRSS")
        reqs = make_requests(args.n)
        body_mb = len(json.dumps({"requests": reqs})) / 1e6
        runs = [one_run(client, proc.pid, reqs) for _ in range(args.runs)]
        peak = proc_status(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"simulator benchmark: {args.n:,} requests ({body_mb:.1f} MB request body), "
          f"median of {args.runs} run(s), Python {sys.version.split()[0]}, anthropic {anthropic.__version__}")
    print(f"  create through the SDK         {med['create_s']:6.2f} s   (simulator CPU {med['create_sim_cpu_s']:.2f} s)")
    print(f"  results through the SDK        {med['results_sdk_s']:6.2f} s   (simulator CPU {med['results_sim_cpu_s']:.2f} s)")
    print(f"  results, plain streamed GET    {med['results_raw_s']:6.2f} s   ({med['results_mb']:.0f} MB of JSONL)")
    print(f"  simulator RSS idle / peak      {idle_rss} MiB / {peak} MiB")
    if args.json:
        print(json.dumps({"n": args.n, "runs": runs, "median": med, "idle_rss_mib": idle_rss, "peak_rss_mib": peak}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
