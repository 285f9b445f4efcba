"""Small builders shared by the simulator tests."""

from __future__ import annotations

from typing import Any

MODEL = "claude-haiku-4-5"


def params(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    """Messages API params with one user turn."""
    return {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": text}], **extra}


def requests(n: int, prefix: str = "r", **extra: Any) -> list[dict[str, Any]]:
    """``n`` batch requests with ids ``r0..r{n-1}``."""
    return [{"custom_id": f"{prefix}{i}", "params": params(f"Request number {i}", **extra)} for i in range(n)]
