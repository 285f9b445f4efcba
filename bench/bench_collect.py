"""Figure 2: collect + merge, against a plain ``df.loc`` loop and the orjson floor.

One batch of distinct tickets is created in the simulator and has ended; then,
side by side in one run:

* ours: ``BatchClient.download_results`` (raw bytes streamed to the journal
  file), ``ResultTable.ingest_file``, ``build_columns`` and ``merge_into``,
  as the job does them;
* plain: ``for r in client.messages.batches.results(id)`` assigning the text
  with ``df.loc`` row by row (on a smaller batch, scaled linearly when the full
  size would take too long; the output says so);
* floor: ``orjson.loads`` of every line of the same file, and the same results
  streamed by bare httpx2 (the transport and the simulator generating them).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc

TARGET_VS_PLAIN = 10.0
TARGET_VS_FLOOR = 2.0


def _batch(client: Any, df: Any) -> tuple[str, Any]:
    """Create one batch of ``df``'s rows and return its id and the plan."""
    from batch_magic import api
    from batch_magic.client import create_body_columns
    from batch_magic.plan import custom_ids

    prepared = api.prepare(df, bc.TEMPLATE, max_tokens=bc.MAX_TOKENS)
    prompts = prepared.plan.prompts
    body = create_body_columns(prepared.plan.options.shared_params(), custom_ids(range(len(prompts))), prompts)
    info = client.create(body)
    return info.id, prepared


def plain_loop(sdk: Any, batch_id: str, df: Any) -> None:
    """What one writes without batch_magic: the SDK's iterator and ``df.loc``."""
    df["answer"] = None
    for r in sdk.messages.batches.results(batch_id):
        row = int(r.custom_id[1:])
        if r.result.type == "succeeded":
            df.loc[row, "answer"] = r.result.message.content[0].text
        else:
            df.loc[row, "answer"] = None


def bench(quick: bool = False) -> dict[str, Any]:
    import httpx2
    import orjson

    from batch_magic.client import BatchClient
    from batch_magic.merge import build_columns, merge_into
    from batch_magic.results import ResultTable

    n, plain_n, repeats, plain_repeats = (10_000, 2_000, 3, 2) if quick else (100_000, 10_000, 5, 3)
    bc.section("2. Collect + merge vs a plain df.loc loop and the orjson floor")
    with bc.simulator() as sim, tempfile.TemporaryDirectory(prefix="bm-bench-collect-") as tmp:
        sdk = bc.sdk_client(sim.url)
        client = BatchClient(sdk)
        df = bc.ticket_frame(n)
        batch_id, prepared = _batch(client, df)
        small_df = bc.ticket_frame(plain_n)
        small_id, _ = _batch(client, small_df)
        plan = prepared.plan
        t: dict[str, bc.Timing] = {k: bc.Timing() for k in (
            "download", "ingest", "columns", "merge", "raw_download", "floor", "plain")}
        dest = Path(tmp) / "results.jsonl"
        raw_dest = Path(tmp) / "raw.jsonl"
        headers = {"x-api-key": "sk-sim-bench", "anthropic-version": "2023-06-01"}
        ours_total: list[float] = []
        size_mb = 0.0

        def raw_download() -> None:
            with httpx2.stream("GET", f"{sim.url}/v1/messages/batches/{batch_id}/results",
                              headers=headers, timeout=600) as response, open(raw_dest, "wb") as fh:
                for chunk in response.iter_raw():
                    fh.write(chunk)

        def floor() -> int:
            loads = orjson.loads
            count = 0
            with open(dest, "rb") as fh:
                for line in fh:
                    loads(line)
                    count += 1
            return count

        def ingest() -> ResultTable:
            table = ResultTable.empty(plan.n_requests)
            table.ingest_file(dest)
            return table

        for _ in range(repeats):
            lines = bc.measure(t["download"], client.download_results, batch_id, dest)
            assert lines == n
            size_mb = dest.stat().st_size / 1e6
            table = bc.measure(t["ingest"], ingest)
            columns = bc.measure(t["columns"], build_columns, "answer", prepared.spec, table, plan.row_requests, {})
            target = df.copy()
            bc.measure(t["merge"], merge_into, target, columns, plan.index, out="answer")
            assert (target["answer_status"] == "succeeded").all()
            ours_total.append(sum(t[k].wall[-1] for k in ("download", "ingest", "columns", "merge")))
            bc.measure(t["raw_download"], raw_download)
            assert bc.measure(t["floor"], floor) == n
            table = columns = target = None
        for _ in range(plain_repeats):
            frame = small_df.copy()
            bc.measure(t["plain"], plain_loop, sdk, small_id, frame)
            assert frame["answer"].notna().all()
    med = {k: v.median for k, v in t.items()}
    cpu = {k: v.cpu_median for k, v in t.items()}
    scale = n / plain_n
    plain_scaled = med["plain"] * scale
    ours = bc.median(ours_total)
    client_side = med["ingest"] + med["columns"] + med["merge"]
    client_cpu = cpu["ingest"] + cpu["columns"] + cpu["merge"]
    floor_total = med["raw_download"] + med["floor"]
    # The simulator generating the results (the bare download) is the same work in both.
    plain_client = plain_scaled - med["raw_download"]
    print(f"{n:,} results ({size_mb:.0f} MB of JSONL), "
          f"median of {repeats}; plain loop on {plain_n:,} results x{scale:.0f} (linear)")
    rows = [
        ["ours: download (SDK streaming, raw bytes to the journal)", bc.fmt_s(med["download"]), f"client CPU {bc.fmt_s(cpu['download'])}"],
        ["ours: read results (ResultTable.ingest_file)", bc.fmt_s(med["ingest"]), f"CPU {bc.fmt_s(cpu['ingest'])}"],
        ["ours: typed columns (build_columns)", bc.fmt_s(med["columns"]), f"CPU {bc.fmt_s(cpu['columns'])}"],
        ["ours: into the DataFrame (merge_into)", bc.fmt_s(med["merge"]), ""],
        ["ours: client side (read + columns + merge)", bc.fmt_s(client_side), f"{client_side / med['floor']:.1f}x floor parse (CPU {client_cpu / cpu['floor']:.1f}x)"],
        ["ours: total collect + merge", bc.fmt_s(ours), ""],
        [f"plain: SDK results() + df.loc, {plain_n:,} rows", bc.fmt_s(med["plain"]), ""],
        [f"plain: scaled to {n:,} rows", bc.fmt_s(plain_scaled), f"{plain_scaled / ours:.0f}x ours"],
        ["plain minus the simulator's own time (same in both)", bc.fmt_s(plain_client),
         f"{plain_client / max(ours - med['raw_download'], 1e-9):.0f}x ours minus it"],
        ["floor: orjson.loads of every line", bc.fmt_s(med["floor"]), f"CPU {bc.fmt_s(cpu['floor'])}"],
        ["floor: bare httpx2 stream of the results", bc.fmt_s(med["raw_download"]), "the simulator generating them dominates"],
        ["floor: download + parse", bc.fmt_s(floor_total), f"ours {ours / floor_total:.2f}x"],
    ]
    print(bc.table(rows, ["step", "time", "ratio"]))
    print(f"target >= {TARGET_VS_PLAIN:.0f}x faster than plain: {bc.verdict(plain_scaled / ours >= TARGET_VS_PLAIN)} "
          f"({plain_scaled / ours:.0f}x); within {TARGET_VS_FLOOR:.0f}x of the floor (download + parse): "
          f"{bc.verdict(ours <= TARGET_VS_FLOOR * floor_total)} ({ours / floor_total:.2f}x); "
          f"client side alone vs parse only: {client_side / med['floor']:.1f}x "
          f"({bc.verdict(client_side <= TARGET_VS_FLOOR * med['floor'])})")
    return {"rows": n, "median_s": med, "cpu_median_s": cpu, "ours_total_s": ours,
            "plain_scaled_s": plain_scaled, "plain_client_s": plain_client, "plain_rows": plain_n, "floor_total_s": floor_total,
            "client_side_s": client_side}


if __name__ == "__main__":
    bench("--quick" in sys.argv)
