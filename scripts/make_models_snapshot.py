"""Write ``src/batch_magic/data/models.json``: what each model accepts, for offline dry runs.

The Models API (``GET /v1/models/{id}``) is the authority on a model's
lifecycle and capabilities, and batch_magic asks it whenever it has a client.
A dry run without a client (no key, no simulator) reads this snapshot instead
and says so. The facts below are transcribed by hand from the platform docs
pages named beside them, not taken from the simulator: the two are
independent readings of the API. Re-check them when models change, bump
``TAKEN``, and run

    python scripts/make_models_snapshot.py           # write the file
    python scripts/make_models_snapshot.py --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TAKEN = "2026-12-02"
OUT = Path(__file__).resolve().parent.parent / "src" / "batch_magic" / "data" / "models.json"

ALL_EFFORT = ("low", "medium", "high", "xhigh", "max")
EPOCH = "1970-01-01T00:00:00Z"  # the Models API's own value for an unknown release date

# Thinking types a model accepts (every other type is a 400 from that model), from
# /docs/en/build-with-claude/thinking-troubleshooting and each model's what's-new page.
ADAPTIVE_ON = ("adaptive", "disabled")  # on by default; off only at effort high or lower
ALWAYS_ON = ("adaptive",)  # thinking cannot be turned off
BETWEEN_TOOLS = ("adaptive", "between_tools")  # Sonnet 5.5: between_tools instead of disabled
ADAPTIVE_OFF = ("adaptive", "disabled")  # 4.7, 4.8: adaptive on request, off by default
BOTH_MODES = ("adaptive", "enabled", "disabled")  # 4.6: extended thinking deprecated but accepted
EXTENDED = ("enabled", "disabled")  # 4.5 and earlier: extended thinking only

#: id, aliases, display name, released, lifecycle, deprecated_at, retires_at,
#: max_input_tokens, max_tokens, structured outputs, effort levels, thinking types, source.
MODELS: list[tuple[Any, ...]] = [
    ("claude-haiku-5-5", (), "Claude Haiku 5.5", "2026-10-07T00:00:00Z", "active", None, None,
     1_000_000, 128_000, True, ALL_EFFORT, ADAPTIVE_ON, "models/haiku-5-5/overview"),
    ("claude-sonnet-5-5", (), "Claude Sonnet 5.5", EPOCH, "active", None, None,
     1_000_000, 128_000, True, ALL_EFFORT, BETWEEN_TOOLS, "models/overview"),
    ("claude-opus-5-5", (), "Claude Opus 5.5", "2026-09-22T00:00:00Z", "active", None, None,
     1_000_000, 128_000, True, ALL_EFFORT, ALWAYS_ON, "models/opus-5-5/whats-new-opus-5-5"),
    ("claude-fable-5-2", (), "Claude Fable 5.2", EPOCH, "active", None, None,
     1_000_000, 128_000, True, ALL_EFFORT, ALWAYS_ON, "models/overview"),
    ("claude-fable-5-1", (), "Claude Fable 5.1", EPOCH, "active", None, None,
     1_000_000, 128_000, True, ALL_EFFORT, ALWAYS_ON, "models/overview"),
    ("claude-opus-5", (), "Claude Opus 5", EPOCH, "active", None, None,
     1_000_000, 128_000, True, ALL_EFFORT, ADAPTIVE_ON, "models/opus-5/whats-new-opus-5"),
    ("claude-sonnet-5", (), "Claude Sonnet 5", EPOCH, "active", None, None,
     1_000_000, 128_000, True, ALL_EFFORT, ADAPTIVE_ON, "build-with-claude/thinking-troubleshooting"),
    ("claude-opus-4-8", (), "Claude Opus 4.8", EPOCH, "active", None, None,
     1_000_000, 128_000, True, ALL_EFFORT, ADAPTIVE_OFF, "build-with-claude/thinking-troubleshooting"),
    ("claude-opus-4-7", (), "Claude Opus 4.7", "2026-04-16T00:00:00Z", "active", None, None,
     1_000_000, 128_000, True, ALL_EFFORT, ADAPTIVE_OFF, "build-with-claude/thinking-troubleshooting"),
    ("claude-opus-4-6", (), "Claude Opus 4.6", EPOCH, "active", None, None,
     1_000_000, 128_000, True, ("low", "medium", "high", "max"), BOTH_MODES, "build-with-claude/effort"),
    ("claude-opus-4-5-20251101", ("claude-opus-4-5",), "Claude Opus 4.5", "2025-11-24T00:00:00Z",
     "active", None, None, 200_000, 64_000, True, ("low", "medium", "high"), EXTENDED,
     "models/opus-4-5/overview"),
    ("claude-sonnet-4-5-20250929", ("claude-sonnet-4-5",), "Claude Sonnet 4.5", "2025-09-29T00:00:00Z",
     "active", None, None, 200_000, 64_000, True, (), EXTENDED, "about-claude/models/overview"),
    ("claude-haiku-4-5-20251001", ("claude-haiku-4-5",), "Claude Haiku 4.5", "2025-10-01T00:00:00Z",
     "active", None, None, 200_000, 64_000, True, (), EXTENDED, "models/haiku-4-5/migration-guide"),
    # Retired: requests naming them fail ([3p] release notes quoted by provider trackers).
    ("claude-opus-4-1-20250805", ("claude-opus-4-1",), "Claude Opus 4.1", "2025-08-05T00:00:00Z",
     "retired", "2026-06-05T00:00:00Z", "2026-08-05T00:00:00Z", 200_000, 32_000, False, (), EXTENDED,
     "about-claude/model-deprecations"),
    ("claude-sonnet-4-20250514", ("claude-sonnet-4-0",), "Claude Sonnet 4", "2025-05-14T00:00:00Z",
     "retired", None, "2026-06-15T00:00:00Z", 200_000, 64_000, False, (), EXTENDED,
     "about-claude/model-deprecations"),
    ("claude-opus-4-20250514", ("claude-opus-4-0",), "Claude Opus 4", "2025-05-14T00:00:00Z",
     "retired", None, "2026-06-15T00:00:00Z", 200_000, 32_000, False, (), EXTENDED,
     "about-claude/model-deprecations"),
]


def _supported(flag: bool) -> dict[str, bool]:
    return {"supported": bool(flag)}


def model_info(row: tuple[Any, ...]) -> dict[str, Any]:
    """One row as the Models API would answer it (the SDK's ``ModelInfo`` shape)."""
    (model_id, aliases, name, created, lifecycle, deprecated_at, retires_at,
     max_input, max_out, structured, effort, thinking, source) = row
    line = model_id.split("-")[1]
    return {
        "type": "model",
        "id": model_id,
        "aliases": list(aliases),
        "display_name": name,
        "created_at": created,
        "line": line,
        "lifecycle": lifecycle,
        "deprecated_at": deprecated_at,
        "retires_at": retires_at,
        "max_input_tokens": max_input,
        "max_tokens": max_out,
        "capabilities": {
            "batch": _supported(True),
            "structured_outputs": _supported(structured),
            "image_input": _supported(True),
            "pdf_input": _supported(True),
            "effort": {"supported": bool(effort), **{lvl: _supported(lvl in effort) for lvl in ALL_EFFORT}},
            "thinking": {
                "supported": bool(thinking),
                "types": {t: _supported(t in thinking) for t in ("adaptive", "between_tools", "disabled", "enabled")},
            },
        },
        "source": f"https://platform.claude.com/docs/en/{source}",
    }


def snapshot() -> str:
    data = {
        "taken": TAKEN,
        "note": "Transcribed from the platform docs for offline dry runs; the Models API is the authority.",
        "models": [model_info(row) for row in MODELS],
    }
    return json.dumps(data, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    text = snapshot()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python scripts/make_models_snapshot.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(MODELS)} models, taken {TAKEN})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
