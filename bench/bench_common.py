"""Shared pieces of the benchmarks: the simulator process, the data, timing, output.

Every benchmark talks to the simulator over real HTTP, run as its own process
(``python -m batch_magic.simulator --port 0 --processing-time 0``), so that the
client's time and memory are measured apart from the server's.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "Classify the sentiment of this support ticket: {{ text }}"
MODEL = "claude-haiku-4-5"
MAX_TOKENS = 50


# -- the simulator --------------------------------------------------------------------------
@dataclass
class SimProcess:
    url: str
    proc: subprocess.Popen[str]

    def cpu_seconds(self) -> float:
        """User + system CPU the simulator process has used so far (from /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


@contextlib.contextmanager
def simulator(*args: str) -> Iterator[SimProcess]:
    """``python -m batch_magic.simulator --port 0 ...`` as a child process; yields its URL."""
    cmd = [sys.executable, "-m", "batch_magic.simulator", "--port", "0", *args]
    if not any(a.startswith("--processing-time") for a in args):
        cmd += ["--processing-time", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the simulator did not start: {line!r}")
        url = line.split("listening on", 1)[1].split()[0].rstrip(",")
        yield SimProcess(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sdk_client(url: str) -> Any:
    import anthropic

    return anthropic.Anthropic(api_key="sk-sim-bench", base_url=url, max_retries=0, timeout=600)


# -- data -----------------------------------------------------------------------------------
def ticket_frame(n: int) -> Any:
    """``n`` distinct support tickets (the shipped data set, numbered so none repeats)."""
    import pandas as pd

    from batch_magic.datasets import load_tickets

    texts = [str(t) for t in load_tickets()["text"].dropna()]
    m = len(texts)
    return pd.DataFrame({"text": [f"{texts[i % m]} (ref {i})" for i in range(n)]})


# -- timing ---------------------------------------------------------------------------------
@dataclass
class Timing:
    """Wall and CPU seconds of several runs of one thing."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, float, Any]:
    """(wall seconds, this process's CPU seconds, result) of one call ``fn(*args, **kwargs)``."""
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return time.perf_counter() - w0, time.process_time() - c0, result


def measure(timing: Timing, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, its wall and CPU time added to ``timing``."""
    wall, cpu, result = timed(fn, *args, **kwargs)
    timing.wall.append(wall)
    timing.cpu.append(cpu)
    return result


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's current resident set size, in MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- output ---------------------------------------------------------------------------------
def fmt_s(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "n/a"
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)
