"""A driver killed with SIGKILL in the middle of its uploads uploads no file twice.

The simulator runs as its own process with ``--state``; uploads are slowed a
little so the script can be killed while some files are uploaded and recorded,
some in flight and some not started. The same script is run again until it
ends; then every distinct file is on the server exactly once and every row is
answered or skipped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import anthropic
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

SIMULATOR = textwrap.dedent(
    """
    import sys, time
    from batch_magic.simulator import Simulator
    port, state = int(sys.argv[1]), sys.argv[2]
    sim = Simulator(port=port, state_dir=state, processing_time=0.5)
    sim.add_fault("file_upload", None, delay=0.04)
    sim.start()
    print(sim.url, flush=True)
    while True:
        time.sleep(3600)
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    import batch_magic as bm
    files = json.load(open(sys.argv[1]))
    df = pd.DataFrame({"photo": files})
    job = bm.submit(df, "{{ media(photo) }} What is it?", out="seen", max_tokens=60)
    job.wait(timeout=300)
    print(json.dumps({
        "job": job.id,
        "statuses": {k: int(v) for k, v in df["seen_status"].value_counts().items() if v},
        "answers_match": all(
            (p is None) or (p.endswith(".pdf") == ("PDF" in a)) for p, a in zip(files, df["seen"].astype(object))
        ),
    }))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_files(folder: Path) -> list[str | None]:
    """180 distinct images, 20 PDFs; 260 rows with duplicates and a few missing values."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    try:
        from make_media import pdf_bytes
    finally:
        sys.path.pop(0)
    folder.mkdir()
    rng = np.random.default_rng(3)
    distinct = []
    for i in range(180):
        path = folder / f"photo_{i:03d}.png"
        pixels = np.clip(np.array([200, 40, 40]) + rng.integers(-15, 16, (24, 24 + i % 50, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        distinct.append(str(path))
    for i in range(20):
        path = folder / f"invoice_{i:02d}.pdf"
        path.write_bytes(pdf_bytes([[(11, f"Invoice number: INV-{i:04d}")]], title=f"Invoice {i}", author="Test"))
        distinct.append(str(path))
    rows: list[str | None] = [distinct[int(k)] for k in rng.integers(0, len(distinct), 250)]
    rows += distinct  # every file at least once
    for k in (5, 77, 140):
        rows[k] = None
    return rows


def test_a_driver_killed_mid_upload_never_uploads_a_file_twice(tmp_path: Path) -> None:
    rows = make_files(tmp_path / "files")
    distinct = {p for p in rows if p is not None}
    (tmp_path / "files.json").write_text(json.dumps(rows))
    (tmp_path / "sim.py").write_text(SIMULATOR)
    (tmp_path / "job.py").write_text(SCRIPT)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim = subprocess.Popen([sys.executable, str(tmp_path / "sim.py"), str(port), str(tmp_path / "state")],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None and sim.stdout.readline().strip() == url
        env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "sk-sim-test",
               "BATCH_MAGIC_DIR": str(tmp_path / "journal")}
        uploads = tmp_path / "journal" / "uploads"

        def recorded() -> int:
            return sum(1 for p in uploads.rglob("*.json") if p.name != "server.json" and ".intent" not in p.name)

        def in_flight() -> int:
            return sum(1 for _ in uploads.rglob("*.intent.json"))

        kills = []
        for low, high in ((15, 60), (80, 140)):
            proc = subprocess.Popen([sys.executable, str(tmp_path / "job.py"), str(tmp_path / "files.json")],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if uploads.is_dir() and low <= recorded() <= high and in_flight() > 0:
                    break
                time.sleep(0.005)
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append((recorded(), in_flight()))
        # Killed with uploads done, others in flight (their intents written, answers unseen).
        assert all(done >= 15 and flight > 0 for done, flight in kills), kills

        proc = subprocess.Popen([sys.executable, str(tmp_path / "job.py"), str(tmp_path / "files.json")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["statuses"] == {"succeeded": len(rows) - 3, "skipped": 3}
        assert result["answers_match"]

        client = anthropic.Anthropic(api_key="sk-sim-test", base_url=url)
        names = Counter(f.filename for f in client.files.list(limit=1000))
        assert len(names) == len(distinct)
        assert set(names.values()) == {1}, [n for n, c in names.items() if c > 1]
        assert recorded() == len(distinct) and in_flight() == 0
        assert len(client.messages.batches.list(limit=100).data) == 1  # and one batch, sent once
    finally:
        sim.send_signal(signal.SIGKILL)
        sim.wait()
