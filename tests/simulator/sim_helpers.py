"""Small builders shared by the simulator tests."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from typing import Any

MODEL = "claude-haiku-4-5"


def params(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    """Messages API params with one user turn."""
    return {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": text}], **extra}


def requests(n: int, prefix: str = "r", **extra: Any) -> list[dict[str, Any]]:
    """``n`` batch requests with ids ``r0..r{n-1}``."""
    return [{"custom_id": f"{prefix}{i}", "params": params(f"Request number {i}", **extra)} for i in range(n)]


class Cli:
    """A simulator process started with ``python -m batch_magic.simulator``."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batch_magic.simulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.banner = [self.proc.stdout.readline() for _ in range(4)]
        m = re.search(r"http://127\.0\.0\.1:\d+", self.banner[0])
        assert m, self.banner
        self.url = m.group(0)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out, err
