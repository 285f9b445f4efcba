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
from typing import Any

#: The quickstart's cell, as a template over the tickets' columns.
DEMO_TEMPLATE = (
    "You triage customer support tickets for an online shop.\n"
    "Which team should handle this ticket?\n\n"
    "Ticket: {{ text }}"
)
#: Rows of the result table printed.
SHOWN_ROWS = 15

REAL_API_HELP = """\
These answers came from the built-in simulator: they are SIMULATED, not Claude's.
To run the same job on Claude through the real Message Batches API (half the
realtime price), set a key before starting Jupyter:

    export ANTHROPIC_API_KEY=sk-ant-...

then, in a notebook, a first cell:

    %load_ext batch_magic
    from batch_magic import load_tickets
    df = load_tickets()

and a second cell (a cell magic such as %%batch must be the first line of its cell):

    %%batch df --out team --labels billing,shipping,technical,account,returns
    Which team should handle this ticket? {{ text }}

Add --dry-run to the %%batch line first to see the cost estimate without sending
anything. From Python: batch_magic.submit(df, template, out="team", labels=[...], wait=True).
The repository's notebooks/ walk through it all, offline."""


def demo(rows: int | None, processing_time: float, width: int) -> int:
    """Classify the bundled tickets through the simulator and print what came back."""
    import anthropic
    import pandas as pd

    from . import api
    from .datasets import CATEGORIES, load_tickets
    from .format import format_counts, format_seconds, format_status, money, plural
    from .pricing import load_prices
    from .simulator import Simulator
    from .states import RowStatus

    df = load_tickets()
    if rows is not None:
        df = df.head(rows).copy()
    print(f"batch_magic demo: {len(df)} support tickets, each sent to a model that picks one of {len(CATEGORIES)} teams.")
    print("Starting the built-in simulator: SIMULATED answers, no API key, no network, no cost.\n")
    with Simulator(processing_time=processing_time) as sim, tempfile.TemporaryDirectory() as journal:
        client = anthropic.Anthropic(api_key="sk-sim-demo", base_url=sim.url)
        started = time.monotonic()
        seen: set[str] = set()

        def show(status: Any) -> None:
            # One line per state, the first time it is reached.
            if status.state not in seen:
                seen.add(status.state)
                print("  " + format_status(status), flush=True)

        job = api.submit(
            df, DEMO_TEMPLATE, out="team", labels=list(CATEGORIES), max_tokens=20,
            client=client, journal=journal, start=False,
        )
        job.observe(show)
        job.start()
        result = job.wait()
        assert isinstance(result, pd.DataFrame)  # a pandas frame in, the same frame out
        elapsed = time.monotonic() - started

    shown = result[["ticket_id", "text", "category", "team", "team_status"]].copy()
    shown["text"] = (
        shown["text"].astype("string").str.replace("\n", " ", regex=False).str.slice(0, width)
    )
    shown = shown.rename(columns={"category": "gold", "team": "team (SIMULATED)", "team_status": "status"})
    print(f"\nThe first {min(SHOWN_ROWS, len(shown))} rows, with the new columns merged in (SIMULATED answers):\n")
    with pd.option_context("display.width", 250, "display.max_colwidth", width + 5):
        print(shown.head(SHOWN_ROWS).to_string(index=False))

    s = job.status
    answered = result["team_status"].eq(RowStatus.SUCCEEDED)
    n_answered = int(answered.sum())
    correct = result.loc[answered, "team"].astype(str) == result.loc[answered, "category"].astype(str)
    print("\nSummary")
    print(
        f"  {plural(len(result), 'row')} -> {plural(s.n_requests, 'request')} in "
        f"{plural(s.batches_total, 'batch')}, done in {format_seconds(elapsed)} "
        f"({plural(s.n_deduplicated, 'duplicate text')} asked once, "
        f"{plural(s.n_skipped, 'empty row')} skipped)"
    )
    print("  row statuses: " + format_counts(s.row_counts))
    if n_answered:
        print(
            f"  accuracy against the gold 'category' column: {correct.mean():.0%} of "
            f"{n_answered} answered tickets (SIMULATED answers: this measures the simulator, not Claude)"
        )
    if s.actual_cost is not None:
        realtime = s.actual_cost / load_prices().batch_discount
        print(
            f"  had this been the real API ({s.model}): {money(s.actual_cost)} at the batch price, "
            f"{money(realtime)} through the realtime API"
        )
    print("\n" + REAL_API_HELP)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 seconds or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batch-magic", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "demo",
        help="run the quickstart offline against the built-in simulator",
        description="Classify the bundled support tickets through the built-in simulator "
        "(no key, no network, no cost) and print the merged table and a summary.",
    )
    d.add_argument("--rows", type=_positive_int, default=None, metavar="N", help="use only the first N tickets (default: all 300)")
    d.add_argument("--processing-time", type=_seconds, default=3.0, metavar="S", help="simulated seconds a batch takes (default 3)")
    d.add_argument("--width", type=_positive_int, default=60, metavar="N", help="characters of ticket text to show (default 60)")
    sub.add_parser("simulator", help="run the local Batches API simulator (see --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "simulator":
        from .simulator.__main__ import main as simulator_main

        return int(simulator_main(rest) or 0)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return demo(args.rows, args.processing_time, args.width)
    except KeyboardInterrupt:
        print("\nbatch-magic demo: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
