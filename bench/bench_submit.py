"""Figure 1: plan + submit, against a plain SDK script and the orjson floor.

Measured side by side in one run, for each size, median of several runs:

* ours: ``prepare`` (render, skip, deduplicate, split, fingerprint, estimate),
  ``create_job`` (the journal, fsync'ed), ``create_body`` (the splice) and the
  POST through the SDK's ``client.post(..., content=...)``, exactly as
  ``submit`` and the job do it;
* (a) plain: a loop building the request dicts, then
  ``client.messages.batches.create(requests=...)``;
* (b) floor: ``orjson.dumps`` of the same body, built beforehand; and the same
  bytes POSTed with bare httpx2 (the transport and the simulator's own work,
  which no client can avoid).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc


def plain_script(sdk: Any, df: Any) -> tuple[float, float, Any]:
    """What one writes without batch_magic: dicts in a loop, then the SDK's create."""
    def build() -> list[dict[str, Any]]:
        requests = []
        for i, text in enumerate(df["text"]):
            requests.append({
                "custom_id": f"row-{i}",
                "params": {
                    "model": bc.MODEL,
                    "max_tokens": bc.MAX_TOKENS,
                    "messages": [{"role": "user", "content": bc.TEMPLATE.replace("{{ text }}", str(text))}],
                },
            })
        return requests

    w_build, _, requests = bc.timed(build)
    w_create, c_create, _ = bc.timed(sdk.messages.batches.create, requests=requests)
    return w_build, w_create, c_create


def bench(quick: bool = False) -> dict[str, Any]:
    import httpx2
    import orjson

    from batch_magic import api
    from batch_magic.client import BatchClient, create_body_columns
    from batch_magic.journal import Journal
    from batch_magic.plan import custom_id, custom_ids, request_params

    bc.section("1. Plan + submit vs a plain SDK script and the orjson floor")
    sizes = [(2_000, 5), (10_000, 3)] if quick else [(10_000, 7), (100_000, 3)]
    out: dict[str, Any] = {}
    with bc.simulator() as sim, tempfile.TemporaryDirectory(prefix="bm-bench-submit-") as tmp:
        sdk = bc.sdk_client(sim.url)
        client = BatchClient(sdk)
        http = httpx2.Client(timeout=600)
        headers = {"x-api-key": "sk-sim-bench", "anthropic-version": "2023-06-01",
                   "content-type": "application/json"}

        def raw_post(body: bytes) -> None:
            http.post(f"{sim.url}/v1/messages/batches", content=body, headers=headers).raise_for_status()

        for n, repeats in sizes:
            df = bc.ticket_frame(n)
            t: dict[str, bc.Timing] = {k: bc.Timing() for k in (
                "plan", "journal", "body", "post", "floor", "raw_post", "plain_build", "plain_create")}
            plain_cpu: list[float] = []
            ours_total: list[float] = []
            body_mb = 0.0
            for rep in range(repeats):
                journal = Journal(Path(tmp) / f"j{n}-{rep}")
                # ours, step by step as submit() and the job run them
                prepared = bc.measure(t["plan"], api.prepare, df, bc.TEMPLATE, max_tokens=bc.MAX_TOKENS)
                fp = api._job_fingerprint(prepared)
                bc.measure(t["journal"], api.create_job, journal, prepared, fp, simulated=True)
                shared = prepared.plan.options.shared_params()
                prompts = prepared.plan.prompts
                ks = list(range(len(prompts)))
                body = bc.measure(t["body"], create_body_columns, shared, custom_ids(ks), map(prompts.__getitem__, ks))
                bc.measure(t["post"], client.create, body)
                ours_total.append(sum(t[k].wall[-1] for k in ("plan", "journal", "body", "post")))
                body_mb = len(body) / 1e6
                # (b) the floor: the same body, dicts built beforehand, serialised by orjson
                requests = [{"custom_id": custom_id(k), "params": request_params(shared, p)} for k, p in enumerate(prompts)]
                floor_body = bc.measure(t["floor"], orjson.dumps, {"requests": requests})
                assert orjson.loads(floor_body) == orjson.loads(body)
                requests = floor_body = None
                bc.measure(t["raw_post"], raw_post, body)
                body = prepared = None
                # (a) the plain script
                w_build, w_create, c_create = plain_script(sdk, df)
                t["plain_build"].wall.append(w_build)
                t["plain_create"].wall.append(w_create)
                plain_cpu.append(c_create)
            med = {k: v.median for k, v in t.items()}
            client_work = [sum(t[k].wall[i] for k in ("plan", "journal", "body")) for i in range(repeats)]
            plain_total = [a + b for a, b in zip(t["plain_build"].wall, t["plain_create"].wall)]
            floor_post = [a + b for a, b in zip(t["floor"].wall, t["raw_post"].wall)]
            ours = bc.median(ours_total)
            work = bc.median(client_work)
            r = {
                "rows": n, "repeats": repeats, "body_mb": body_mb,
                "median_s": med, "ours_total_s": ours, "client_work_s": work,
                "plain_total_s": bc.median(plain_total), "floor_plus_post_s": bc.median(floor_post),
                "plain_create_client_cpu_s": bc.median(plain_cpu),
                "post_client_cpu_s": t["post"].cpu_median,
            }
            out[str(n)] = r
            print(f"\n{n:,} rows ({body_mb:.1f} MB body), median of {repeats}:")
            rows = [
                ["ours: plan (render, dedupe, split, fingerprint, estimate)", bc.fmt_s(med["plan"]), ""],
                ["ours: journal (prompts, rows, index, manifest; fsync)", bc.fmt_s(med["journal"]), ""],
                ["ours: create body (create_body_columns, as the job)", bc.fmt_s(med["body"]), f"{med['body'] / med['floor']:.1f}x floor"],
                ["ours: POST pre-serialised body via SDK client.post", bc.fmt_s(med["post"]),
                 f"client CPU {bc.fmt_s(t['post'].cpu_median)}"],
                ["ours: client work (plan + journal + body)", bc.fmt_s(work), f"{work / med['floor']:.1f}x floor"],
                ["ours: total plan + submit", bc.fmt_s(ours), ""],
                ["(a) plain: build dicts in a loop", bc.fmt_s(med["plain_build"]), ""],
                ["(a) plain: SDK messages.batches.create(requests=...)", bc.fmt_s(med["plain_create"]),
                 f"client CPU {bc.fmt_s(bc.median(plain_cpu))}"],
                ["(a) plain: total", bc.fmt_s(r["plain_total_s"]), f"{r['plain_total_s'] / ours:.1f}x ours"],
                ["(b) floor: orjson.dumps of the same body", bc.fmt_s(med["floor"]), ""],
                ["(b) floor: bare httpx2 POST of the same bytes", bc.fmt_s(med["raw_post"]), "simulator parsing dominates"],
                ["(b) floor: serialise + POST", bc.fmt_s(r["floor_plus_post_s"]), f"ours {ours / r['floor_plus_post_s']:.2f}x"],
            ]
            print(bc.table(rows, ["step", "time", "ratio"]))
            ok_plain = ours < r["plain_total_s"]
            ok_floor_total = ours <= 2 * r["floor_plus_post_s"]
            print(f"target faster than (a): {bc.verdict(ok_plain)} ({r['plain_total_s'] / ours:.1f}x faster); "
                  f"<= 2x floor incl. the POST: {bc.verdict(ok_floor_total)} ({ours / r['floor_plus_post_s']:.2f}x); "
                  f"client work alone {work / med['floor']:.1f}x the bare serialisation "
                  f"({bc.verdict(work <= 2 * med['floor'])})")
            print(f"SDK request handling: create(requests=...) costs {bc.fmt_s(bc.median(plain_cpu))} of client CPU "
                  f"vs {bc.fmt_s(t['post'].cpu_median)} for client.post(content=bytes)")
        http.close()
    return out


if __name__ == "__main__":
    bench("--quick" in sys.argv)
