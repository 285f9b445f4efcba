"""The benchmarks run end to end in their quick form and print every section (not timings).

They time themselves, so how long they take depends on the machine and its load:
these tests put no limit of their own on it (no subprocess timeout, and
pytest-timeout's per-test limit is lifted); a hang is left to CI's own limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(0)]

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = (
    "== 1. Plan + submit",
    "== 2. Collect + merge",
    "== 3. End to end",
    "== 4. Kernel responsiveness",
    "== 5. Polling cost",
    "== 6. Images",
    "== 7. Polars frames",
    "== 8. The answer store",
)


def test_quick_run_prints_every_section(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for header in SECTIONS:
        assert header in proc.stdout, header
    for line in ("(a) plain: total", "(b) floor: orjson.dumps", "plain: scaled to", "floor: orjson.loads",
                 "peak RSS", "job polled", "retrieves (median)", "Files API: submit in all",
                 "re-run (another job, same files)", "5 small photos", "a new process's first job"):
        assert line in proc.stdout, line
    if (ROOT / "bench" / "simulator_bench.py").exists():
        assert "== Simulator's own figures" in proc.stdout
    assert "FAILED" not in proc.stdout
    assert out.exists() and "submit" in out.read_text()


def test_only_picks_one_section(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "polling"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "== 5. Polling cost" in proc.stdout
    assert "== 1. Plan + submit" not in proc.stdout
