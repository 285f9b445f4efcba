"""Figure 6: a job over 10,000 images, uploads through the Files API against inline base64.

Measured against the simulator process over real HTTP:

* plan: ``prepare`` reads, checks and hashes every file (first time, and again
  in the same process, as a re-run cell does);
* uploads: every distinct file uploaded once (``uploads.upload_all``, 6
  threads), then the create body naming the uploads (``file_id`` sources),
  built and POSTed;
* inline: the same requests with each file inline as base64 (what one writes
  without the Files API), built and POSTed; its size against the 256 MB limit;
* re-run: a new job over the same files (other words): uploads found in the
  journal, nothing uploaded, body built and POSTed;
* a handful: five small files, uploads + create against inline + create, for
  the "inline for a few files?" decision.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc

TEMPLATE = "{{ image(photo) }} What is the main colour of this product?"
RERUN_TEMPLATE = "{{ image(photo) }} Which kind of product is this?"
BATCH_LIMIT = 256 * 1024 * 1024


def make_photos(folder: Path, n: int, side: int) -> list[str]:
    """``n`` distinct PNG 'photos': a colour with grain, ``side`` px square (a few KB each)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        base = np.array([(i * 37) % 256, (i * 91) % 256, (i * 53) % 256], dtype=np.int16)
        pixels = np.clip(base + rng.integers(-20, 21, (side, side, 3)), 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:05d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def inline_body(prepared: Any, tag: str) -> bytes:
    """The create body with every file inline as base64 (read from disk per request)."""
    from batch_magic.client import create_body_columns
    from batch_magic.media import content_encoder, inline_source, markers
    from batch_magic.plan import custom_ids

    plan = prepared.plan

    def encode(prompt: str) -> bytes:
        # A source per request, as one writes it without a store of uploads: read and encode.
        sources = {}
        for _, sha in markers(prompt):
            item = plan.media[sha]
            sources[sha] = inline_source(item, Path(item.path or "").read_bytes())
        return content_encoder(sources)(prompt)

    return create_body_columns(
        plan.options.shared_params(), custom_ids(range(plan.n_requests), tag), plan.prompts, encode=encode
    )


def file_body(prepared: Any, file_ids: dict[str, str], tag: str) -> bytes:
    from batch_magic.client import create_body_columns
    from batch_magic.media import content_encoder, file_source
    from batch_magic.plan import custom_ids

    plan = prepared.plan
    sources = {sha: file_source(fid) for sha, fid in file_ids.items()}
    return create_body_columns(
        plan.options.shared_params(), custom_ids(range(plan.n_requests), tag), plan.prompts,
        encode=content_encoder(sources),
    )


def submit_with_uploads(client: Any, journal: Any, prepared: Any, tag: str) -> dict[str, Any]:
    """Upload what is not recorded, build the body naming the uploads, POST it."""
    from batch_magic.destination import destination_url
    from batch_magic.uploads import UploadStore, upload_all

    items = list(prepared.plan.media.values())
    w_up, c_up, (done, progress) = bc.timed(
        upload_all, client.files, UploadStore(journal), items, destination_url(client.base_url),
        read=lambda item: item.read(),
    )
    w_body, _, body = bc.timed(file_body, prepared, {s: u.file_id for s, u in done.items()}, tag)
    w_post, _, info = bc.timed(client.create, body)
    return {"upload": w_up, "upload_cpu": c_up, "uploaded": progress.uploaded, "reused": progress.reused,
            "body": w_body, "post": w_post, "bytes": len(body), "batch": info.id}


def bench(quick: bool = False) -> dict[str, Any]:
    from batch_magic import api
    from batch_magic.client import BatchClient
    from batch_magic.journal import Journal

    bc.section("6. Images: 10,000 photos through the Files API vs inline base64")
    n, side = (1_000, 40) if quick else (10_000, 40)
    out: dict[str, Any] = {"n": n}
    with bc.simulator() as sim, tempfile.TemporaryDirectory(prefix="bm-bench-media-") as tmp:
        client = BatchClient(bc.sdk_client(sim.url))
        w_make, _, paths = bc.timed(make_photos, Path(tmp) / "photos", n, side)
        import pandas as pd

        df = pd.DataFrame({"photo": paths})
        total_bytes = sum(Path(p).stat().st_size for p in paths)
        print(f"{n:,} distinct PNG photos, {side}x{side} px, {total_bytes / n / 1000:.1f} KB each on average "
              f"({total_bytes / 1e6:.1f} MB in all; made in {bc.fmt_s(w_make)})")
        journal = Journal(Path(tmp) / "journal")

        w_plan, _, prepared = bc.timed(api.prepare, df, TEMPLATE, model=bc.MODEL, max_tokens=bc.MAX_TOKENS)
        w_plan2, _, _ = bc.timed(api.prepare, df, TEMPLATE, model=bc.MODEL, max_tokens=bc.MAX_TOKENS)
        print(f"plan (read, check, hash every file): {bc.fmt_s(w_plan)} first, {bc.fmt_s(w_plan2)} again "
              "in the same process (files known by path, size and mtime)")

        cpu0 = sim.cpu_seconds()
        files = submit_with_uploads(client, journal, prepared, "aaaaaaaa")
        sim_cpu = sim.cpu_seconds() - cpu0
        w_inline_body, _, inline = bc.timed(inline_body, prepared, "bbbbbbbb")
        fits = len(inline) <= BATCH_LIMIT
        inline_post = float("nan")
        if fits:
            inline_post, _, _ = bc.timed(client.create, inline)
        # the re-run: another job over the same photos
        rerun_prepared = api.prepare(df, RERUN_TEMPLATE, model=bc.MODEL, max_tokens=bc.MAX_TOKENS)
        rerun = submit_with_uploads(client, journal, rerun_prepared, "cccccccc")

        per_file = total_bytes / n
        rows = [
            ["Files API: upload (6 threads)", f"{files['uploaded']:,} uploaded", bc.fmt_s(files["upload"]), "", ""],
            ["Files API: body + create", "", bc.fmt_s(files["body"] + files["post"]),
             f"{files['bytes'] / 1e6:.2f} MB", f"{files['bytes'] / n:.0f} B"],
            ["Files API: submit in all", "", bc.fmt_s(files["upload"] + files["body"] + files["post"]), "", ""],
            ["inline base64: body + create", "", bc.fmt_s(w_inline_body + inline_post) if fits else
             f"{bc.fmt_s(w_inline_body)} + refused", f"{len(inline) / 1e6:.1f} MB", f"{len(inline) / n:.0f} B"],
            ["re-run (another job, same files)", f"{rerun['uploaded']:,} uploaded, {rerun['reused']:,} reused",
             bc.fmt_s(rerun["upload"] + rerun["body"] + rerun["post"]), f"{rerun['bytes'] / 1e6:.2f} MB", ""],
        ]
        print(bc.table(rows, ["", "files", "time", "body", "per request"]))
        print(f"uploads: {n / files['upload']:.0f} files/s against the local simulator; CPU of this process "
              f"{files['upload_cpu']:.1f} s, of the simulator {sim_cpu:.1f} s (it reads each image once, and "
              "shares the 2 cores)")
        # How far inline goes: the 256 MB limit, in photos per batch, at this size and at real photo sizes.
        overhead = (len(inline) - n * 4 * per_file / 3) / n
        for kb in (per_file / 1000, 30, 100, 500):
            per_request = 4 * kb * 1000 / 3 + overhead
            print(f"inline at {kb:>5.0f} KB a photo: {BATCH_LIMIT / per_request:>8,.0f} photos fit in a 256 MB batch; "
                  f"with file ids: {min(100_000, BATCH_LIMIT / (files['bytes'] / n)):,.0f} (the 100,000-request limit)")
        out.update(plan=w_plan, plan_again=w_plan2, files=files, inline_bytes=len(inline),
                   inline_body=w_inline_body, inline_post=inline_post, rerun=rerun, sim_cpu=sim_cpu)

        # A handful of small files: is inline worth a second code path?
        few = pd.DataFrame({"photo": make_photos(Path(tmp) / "few", 5, 32)})
        few_prepared = api.prepare(few, TEMPLATE, model=bc.MODEL, max_tokens=bc.MAX_TOKENS)
        t_files, t_inline = [], []
        for rep in range(5):
            fresh = Journal(Path(tmp) / f"few-{rep}")
            r = submit_with_uploads(client, fresh, few_prepared, f"dddd{rep:04d}")
            t_files.append(r["upload"] + r["body"] + r["post"])
            w_b, _, body = bc.timed(inline_body, few_prepared, f"eeee{rep:04d}")
            w_p, _, _ = bc.timed(client.create, body)
            t_inline.append(w_b + w_p)
        print(f"5 small photos, median of 5: uploads + create {bc.fmt_s(bc.median(t_files))}, inline + create "
              f"{bc.fmt_s(bc.median(t_inline))} (locally; on the real API each upload round trip adds its "
              "latency, once per file ever)")
        out["few"] = {"files": bc.median(t_files), "inline": bc.median(t_inline)}
    return out


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    bench(p.parse_args().quick)
