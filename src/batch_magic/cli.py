"""``batch-magic``: the command line.

``batch-magic demo`` runs the quickstart end to end against the built-in
simulator (no key, no network, no cost) and prints the merged table;
``batch-magic simulator ...`` is ``python -m batch_magic.simulator ...``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence

DEMO_TEMPLATE = (
    "You triage customer support tickets for an online shop.\n"
    "Which team should handle this ticket?\n\n"
    "Ticket: {{ text }}"
)

REAL_API_HELP = """\
This ran against the built-in simulator: the answers are simulated, not Claude's.
To use the real Message Batches API (billed at half the realtime price):
    export ANTHROPIC_API_KEY=sk-ant-...
then in a notebook:
    %load_ext batch_magic
    %%batch df --out team --labels billing,shipping,technical,account,returns
    Which team should handle this ticket? {{ text }}
"""


def demo(rows: int | None, processing_time: float, width: int) -> int:
    import anthropic
    import pandas as pd

    from . import api
    from .datasets import CATEGORIES, load_tickets
    from .panel import format_status
    from .simulator import Simulator

    df = load_tickets()
    if rows:
        df = df.head(rows).copy()
    print(f"batch_magic demo: {len(df)} support tickets, classified into {len(CATEGORIES)} teams.")
    print("Starting the built-in simulator (SIMULATED answers: no API key, no network, no cost).\n")
    with Simulator(processing_time=processing_time) as sim, tempfile.TemporaryDirectory() as journal:
        client = anthropic.Anthropic(api_key="sk-sim-demo", base_url=sim.url)
        started = time.monotonic()
        last: list[str] = []

        def show(status: object) -> None:
            line = format_status(status)  # type: ignore[arg-type]
            if not last or line.split(" | ")[0] != last[-1].split(" | ")[0]:
                print("  " + line, flush=True)
            last.append(line)

        job = api.submit(
            df, DEMO_TEMPLATE, out="team", labels=list(CATEGORIES), max_tokens=20,
            client=client, journal=journal, start=False,
        )
        job.observe(show)
        job.start()
        result = job.wait()
        elapsed = time.monotonic() - started

    shown = result[["ticket_id", "text", "category", "team", "team_status"]].copy()
    shown["text"] = shown["text"].astype("string").str.replace("\n", " ").str.slice(0, width)
    with pd.option_context("display.width", 200, "display.max_colwidth", width + 5):
        print("\n" + shown.head(15).to_string(index=False))
    answered = result["team_status"].eq("succeeded")
    accuracy = (result.loc[answered, "team"].astype(str) == result.loc[answered, "category"].astype(str)).mean()
    s = job.status
    print(
        f"\n{len(result)} rows -> {s.n_requests} requests sent "
        f"({s.n_deduplicated} duplicates answered once, {s.n_skipped} rows skipped: empty text) "
        f"in {elapsed:.1f} s."
    )
    print("Row statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(s.row_counts.items())))
    print(f"Accuracy against the gold 'category' column: {accuracy:.0%} (simulated answers).")
    if s.actual_cost is not None:
        print(f"Cost had this been the real API: ${s.actual_cost:.4f} at the batch price.")
    print("\n" + REAL_API_HELP)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batch-magic", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the quickstart offline against the built-in simulator")
    d.add_argument("--rows", type=int, default=None, help="use only the first N tickets")
    d.add_argument("--processing-time", type=float, default=3.0, help="simulated seconds per batch")
    d.add_argument("--width", type=int, default=60, help="characters of ticket text to show")
    sub.add_parser("simulator", help="run the local Batches API simulator", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "simulator":
        from .simulator.__main__ import main as simulator_main

        return int(simulator_main(rest) or 0)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return demo(args.rows, args.processing_time, args.width)


if __name__ == "__main__":
    sys.exit(main())
