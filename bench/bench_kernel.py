"""Figure 4: is the kernel still free while a job is polled?

A real ipykernel is started (from a kernelspec written for this interpreter)
and driven with jupyter_client: the round trip of a trivial cell (``1+1``:
execute request sent -> the kernel back to idle) is timed on an idle kernel,
then again while a ``%%batch`` job runs against a simulator whose batches take
an hour, so the job's poll task (on the kernel's own event loop, SDK calls in
a worker thread) and its panel are live. The simulator's request log tells how
many polls fell inside the measured window.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc

KERNEL = "batch-magic-bench"
TARGET_MS = 10.0


def _kernel_manager(root: Path) -> Any:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "batch_magic bench", "language": "python",
    }))
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))


def run_cell(kc: Any, code: str, timeout: float = 60) -> tuple[float, dict[str, Any]]:
    """Seconds from sending ``code`` to the kernel going idle after it; and its reply."""
    start = time.perf_counter()
    msg_id = kc.execute(code, store_history=False)
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"):
            took = time.perf_counter() - start
            break
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"cell failed: {code!r}: {reply['content']}")
    return took, reply


def _round_trips(kc: Any, n: int, rng: random.Random) -> list[float]:
    out = []
    for _ in range(n):
        time.sleep(rng.uniform(0.02, 0.12))  # land at different moments of the poll cycle
        out.append(run_cell(kc, "1+1")[0])
    return out


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(values) * 1000,
        "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def bench(quick: bool = False) -> dict[str, Any]:
    from batch_magic.simulator import Simulator

    bc.section("4. Kernel responsiveness: a trivial cell, idle vs while a job is polled")
    n = 15 if quick else 30
    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="bm-bench-kernel-") as tmp, \
            Simulator(processing_time=3600.0) as sim:
        root = Path(tmp)
        km = _kernel_manager(root)
        env = dict(os.environ)
        env.update(sim.env("sk-sim-bench"))
        env["BATCH_MAGIC_DIR"] = str(root / "journal")
        log = open(root / "kernel.log", "wb")  # noqa: SIM115 (closed below, after the kernel)
        km.start_kernel(env=env, cwd=str(root), stdout=log, stderr=log)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            run_cell(kc, "%load_ext batch_magic")
            run_cell(kc, "import anthropic, batch_magic.api, pandas as pd\n"
                         "df = pd.DataFrame({'text': [f'ticket {i}' for i in range(1000)]})")
            for _ in range(5):
                run_cell(kc, "1+1")  # warm up
            idle = _round_trips(kc, n, rng)
            submit_s, _ = run_cell(kc, "%%batch df --out x\nClassify this ticket: {{ text }}")
            time.sleep(1.0)  # the batch is created and the poll task is running
            state = run_cell(kc, "job = %batch job\nassert job.status.state == 'in_progress', job.status.state")
            assert state
            polls_before = sum(1 for r in sim.requests if r.endpoint == "retrieve")
            t0 = time.time()
            busy = _round_trips(kc, n, rng)
            window = time.time() - t0
            polls = sum(1 for r in sim.requests if r.endpoint == "retrieve") - polls_before
            run_cell(kc, "job.cancel()")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
            log.close()
    a, b = _stats(idle), _stats(busy)
    extra = b["median_ms"] - a["median_ms"]
    rows = [
        ["idle kernel", n, f"{a['median_ms']:.2f} ms", f"{a['p90_ms']:.2f} ms", f"{a['max_ms']:.2f} ms"],
        ["job polled (%%batch, panel live)", n, f"{b['median_ms']:.2f} ms", f"{b['p90_ms']:.2f} ms", f"{b['max_ms']:.2f} ms"],
    ]
    print(f"'1+1' round trip (execute request -> kernel idle); {polls} polls in the {window:.1f} s window; "
          f"the %%batch cell itself took {submit_s * 1000:.0f} ms")
    print(bc.table(rows, ["kernel", "runs", "median", "p90", "max"]))
    print(f"target < {TARGET_MS:.0f} ms more: {bc.verdict(extra < TARGET_MS)} (median {extra:+.2f} ms)")
    return {"idle": a, "busy": b, "extra_median_ms": extra, "polls_in_window": polls,
            "window_s": window, "submit_cell_s": submit_s, "runs": n}


if __name__ == "__main__":
    bench("--quick" in sys.argv)
