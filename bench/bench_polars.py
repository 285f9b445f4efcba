"""Figure 7: a Polars frame against the same pandas frame: plan, merge, peak memory.

The same rows (a ticket text, an id, a number and a long unused notes column)
as a pandas and as a Polars frame, side by side in one run:

* plan: ``api.prepare`` of a labels job (render, skip, deduplicate, split,
  fingerprint, estimate); for Polars also with ``key="id"`` (the key checked
  for missing and repeated values);
* merge: ``build_columns`` and the merge of one answer per row (results made
  in memory, so only our work is timed): into the same rows by position
  (pandas: into the frame itself; Polars: a new frame), and into a shuffled
  frame (pandas: by the index labels; Polars: by the key);
* peak memory: each step once more in a fresh process, reading the frame from
  Parquet; the growth of the peak resident set over what the loaded frame held
  (the kernel's peak counter is reset just before the step). The target is
  that Polars adds less than one copy of the columns the template reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc

LABELS = ["billing", "shipping", "technical", "account", "returns"]
TEMPLATE = "Which team should handle this ticket ({{ stars }} stars)? {{ text }}"
#: Polars no slower than pandas, within the noise of a shared machine.
TIME_TOLERANCE = 1.10


def write_frame(n: int, path: Path) -> None:
    """``n`` distinct tickets with an id, a number and a long notes column nobody reads."""
    import pandas as pd

    from batch_magic.datasets import load_tickets

    texts = [str(t) for t in load_tickets()["text"].dropna()]
    m = len(texts)
    pd.DataFrame({
        "id": [f"T{i:07d}" for i in range(n)],
        "text": [f"{texts[i % m]} (ref {i})" for i in range(n)],
        "stars": [i % 5 + 1 for i in range(n)],
        "notes": [f"internal notes {i} " * 8 for i in range(n)],
    }).to_parquet(path)


def load(kind: str, path: Path, *, keyed: bool = False) -> Any:
    """The frame as a user of ``kind`` loads it (pandas with the ids as its index when keyed)."""
    if kind == "polars":
        import polars as pl

        return pl.read_parquet(path)
    import pandas as pd

    df = pd.read_parquet(path)
    return df.set_index("id") if keyed else df


def results_table(n_requests: int) -> Any:
    """One succeeded label answer per request, as the job reads a results file."""
    import orjson

    from batch_magic.results import ResultTable

    def line(k: int) -> bytes:
        message = {"content": [{"type": "text", "text": orjson.dumps({"label": LABELS[k % 5]}).decode()}],
                   "stop_reason": "end_turn", "usage": {"input_tokens": 40, "output_tokens": 6}}
        return orjson.dumps({"custom_id": f"r{k}", "result": {"type": "succeeded", "message": message}})

    table = ResultTable.empty(n_requests)
    table.ingest_lines(line(k) for k in range(n_requests))
    return table


def planned_job(frame: Any, journal: Any, *, key: str | None) -> tuple[Any, Any, Any]:
    """(prepared, record, results table) of a labels job over ``frame``, in ``journal``."""
    from batch_magic import api, frames

    extra = {"key": key} if key else {}
    prepared = api.prepare(frame, TEMPLATE, labels=LABELS, **extra)
    job_id = api.create_job(journal, prepared, api._job_fingerprint(prepared), simulated=True)
    frames.note_planned(journal, job_id, frame)
    return prepared, journal.read_record(job_id), results_table(prepared.plan.n_requests)


def merge_step(kind: str, prepared: Any, record: Any, table: Any, target: Any, journal: Any) -> Any:
    """The job's merge (the driver's ``_merge_now``): the columns, then into the frame (pandas,
    an earlier job's stale columns dropped first) or a new frame (Polars, likewise)."""
    from batch_magic import frames
    from batch_magic.merge import build_columns, merge_into, stale_columns

    columns = build_columns(record.out, prepared.spec, table, prepared.plan.row_requests)
    if kind == "polars":
        return frames.merge(journal, record, columns, target)[1]
    for name in stale_columns(record, journal.records(), target.columns, columns):
        del target[name]
    merge_into(target, columns, prepared.plan.index, out=record.out)
    return target


def shuffled(kind: str, frame: Any) -> Any:
    if kind == "polars":
        return frame.sample(fraction=1.0, shuffle=True, seed=0)
    return frame.sample(frac=1.0, random_state=0)


# -- peak memory, in a fresh process per step ------------------------------------------------
def _settle() -> None:
    """Hand memory freed while loading back to the system (the C heap and Arrow's pool),
    so that what the step allocates shows as growth instead of reusing freed pages."""
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    pa.default_memory_pool().release_unused()
    time.sleep(0.5)  # the allocators' background return of freed pages


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, step: str, path: Path) -> dict[str, float]:
    """Run ``step`` once on the frame loaded from ``path``; the peak RSS growth it caused."""
    from batch_magic.journal import Journal

    keyed = step == "merge_reordered"
    frame = load(kind, path, keyed=keyed)
    key = "id" if keyed and kind == "polars" else None
    with tempfile.TemporaryDirectory(prefix="bm-bench-polars-") as tmp:
        journal = Journal(tmp)
        from batch_magic import api

        api.prepare(frame[:100], TEMPLATE, labels=LABELS)  # modules, model card and prices loaded
        if step == "plan":
            run = lambda: api.prepare(frame, TEMPLATE, labels=LABELS)  # noqa: E731
        else:
            prepared, record, table = planned_job(frame, journal, key=key)
            target = shuffled(kind, frame) if keyed else (frame.copy(deep=False) if kind == "pandas" else frame)
            run = lambda: merge_step(kind, prepared, record, table, target, journal)  # noqa: E731
        _settle()
        base = _status_mb("VmRSS")
        _reset_peak()
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
        return {"growth_mb": _status_mb("VmHWM") - base, "seconds": seconds}


def peak_growth(kind: str, step: str, path: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, step, str(path)], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the {kind} {step} child failed:\n{proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- the figure -------------------------------------------------------------------------------
def bench(quick: bool = False, n: int | None = None) -> dict[str, Any]:
    from batch_magic import api
    from batch_magic.journal import Journal

    n = n or (5_000 if quick else 1_000_000)
    repeats = 3 if quick or n > 200_000 else 5
    bc.section(f"7. Polars frames vs the same pandas frame ({n:,} rows)")
    out: dict[str, Any] = {"rows": n, "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="bm-bench-polars-") as tmp:
        path = Path(tmp) / "tickets.parquet"
        write_frame(n, path)
        frames = {kind: load(kind, path) for kind in ("pandas", "polars")}
        keyed = {kind: load(kind, path, keyed=True) for kind in ("pandas", "polars")}
        used_mb = frames["polars"].select("text", "stars").estimated_size("mb")
        t: dict[str, bc.Timing] = {k: bc.Timing() for k in (
            "plan_pandas", "plan_polars", "plan_polars_key",
            "merge_pandas", "merge_polars", "reordered_pandas", "reordered_polars")}
        for rep in range(repeats):
            bc.measure(t["plan_pandas"], api.prepare, frames["pandas"], TEMPLATE, labels=LABELS)
            bc.measure(t["plan_polars"], api.prepare, frames["polars"], TEMPLATE, labels=LABELS)
            bc.measure(t["plan_polars_key"], api.prepare, frames["polars"], TEMPLATE, labels=LABELS, key="id")
            for kind in ("pandas", "polars"):
                journal = Journal(Path(tmp) / f"j-{kind}-{rep}")
                prepared, record, table = planned_job(frames[kind], journal, key=None)
                target = frames[kind].copy(deep=False) if kind == "pandas" else frames[kind]
                merged = bc.measure(t[f"merge_{kind}"], merge_step, kind, prepared, record, table, target, journal)
                assert merged.shape[0] == n
                journal = Journal(Path(tmp) / f"k-{kind}-{rep}")
                prepared, record, table = planned_job(keyed[kind], journal, key="id" if kind == "polars" else None)
                target = shuffled(kind, keyed[kind])
                bc.measure(t[f"reordered_{kind}"], merge_step, kind, prepared, record, table, target, journal)
        med = {k: v.median for k, v in t.items()}
        memory = {f"{step}_{kind}": peak_growth(kind, step, path)["growth_mb"]
                  for step in ("plan", "merge", "merge_reordered") for kind in ("pandas", "polars")}
    out.update(median_s=med, peak_growth_mb=memory, used_columns_mb=used_mb)

    def ratio(a: str, b: str) -> str:
        return f"{med[a] / med[b]:.2f}x"

    rows = [
        ["plan (prepare, labels)", bc.fmt_s(med["plan_pandas"]), bc.fmt_s(med["plan_polars"]),
         ratio("plan_polars", "plan_pandas")],
        ["plan with key='id' (Polars; pandas has its index)", "", bc.fmt_s(med["plan_polars_key"]),
         ratio("plan_polars_key", "plan_pandas")],
        ["merge into the same rows (columns + merge)", bc.fmt_s(med["merge_pandas"]),
         bc.fmt_s(med["merge_polars"]), ratio("merge_polars", "merge_pandas")],
        ["merge into a shuffled frame (index labels / key)", bc.fmt_s(med["reordered_pandas"]),
         bc.fmt_s(med["reordered_polars"]), ratio("reordered_polars", "reordered_pandas")],
        ["peak memory growth: plan", f"{memory['plan_pandas']:.0f} MB", f"{memory['plan_polars']:.0f} MB",
         f"{memory['plan_polars'] - memory['plan_pandas']:+.0f} MB"],
        ["peak memory growth: merge", f"{memory['merge_pandas']:.0f} MB", f"{memory['merge_polars']:.0f} MB",
         f"{memory['merge_polars'] - memory['merge_pandas']:+.0f} MB"],
        ["peak memory growth: merge into a shuffled frame", f"{memory['merge_reordered_pandas']:.0f} MB",
         f"{memory['merge_reordered_polars']:.0f} MB",
         f"{memory['merge_reordered_polars'] - memory['merge_reordered_pandas']:+.0f} MB"],
    ]
    print(f"\n{n:,} rows, median of {repeats}; the columns the template reads take {used_mb:.0f} MB:")
    print(bc.table(rows, ["step", "pandas", "polars", "polars vs pandas"]))
    slower = [k for k in ("plan", "merge", "reordered") if med[f"{k}_polars"] > TIME_TOLERANCE * med[f"{k}_pandas"]]
    extra = max(memory[f"{s}_polars"] - memory[f"{s}_pandas"] for s in ("plan", "merge", "merge_reordered"))
    print(f"target no slower than pandas (within {TIME_TOLERANCE - 1:.0%}): {bc.verdict(not slower)}"
          + (f" (slower: {', '.join(slower)})" if slower else ""))
    print(f"target peak memory below one extra copy of the columns used: {bc.verdict(extra < used_mb)} "
          f"(at most {extra:+.0f} MB over pandas, against {used_mb:.0f} MB)")
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], Path(sys.argv[4]))))
    else:
        size = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--rows=")), None)
        bench("--quick" in sys.argv, size)
