"""``python -m batch_magic.simulator``: run the simulator as a command.

Binds 127.0.0.1 only, prints its base URL and the environment variables to
set, and exits cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .faults import ENDPOINTS
from .simulator import Simulator


def _rate(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected CATEGORY=RATE, e.g. overloaded_error=0.05, not {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate must be a number in {text!r}") from None


def _fault(text: str) -> tuple[str, int, int | None]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or (parts[0] not in ENDPOINTS and parts[0] != "*"):
        raise argparse.ArgumentTypeError(
            f"expected ENDPOINT:STATUS[:TIMES] with ENDPOINT one of {', '.join(ENDPOINTS)} or '*', not {text!r}"
        )
    try:
        return parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"STATUS and TIMES must be integers in {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m batch_magic.simulator",
        description="A local simulator of Anthropic's Message Batches API (binds 127.0.0.1 only).",
    )
    p.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one (default 8765)")
    p.add_argument("--state", metavar="DIR", help="keep batches and uploaded files in DIR so they survive a restart")
    p.add_argument("--processing-time", type=float, default=3.0, metavar="S",
                   help="simulated seconds a batch takes to end (default 3)")
    p.add_argument("--per-request-time", type=float, default=0.0, metavar="S",
                   help="extra simulated seconds per request in a batch (default 0)")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="time factor: 60 makes a simulated hour last a minute (default 1)")
    p.add_argument("--cancel-delay", type=float, default=1.0, metavar="S",
                   help="simulated seconds a batch stays 'canceling' (default 1)")
    p.add_argument("--error-rate", type=_rate, action="append", default=[], metavar="CATEGORY=RATE",
                   help="errored results of this category at this rate, e.g. overloaded_error=0.05 (repeatable)")
    p.add_argument("--expire-rate", type=float, default=0.0, metavar="F", help="fraction of requests that expire")
    p.add_argument("--fault", type=_fault, action="append", default=[], metavar="ENDPOINT:STATUS[:TIMES]",
                   help="script HTTP failures, e.g. create:429:2 (repeatable)")
    p.add_argument("--retention-days", type=float, default=29.0, metavar="D",
                   help="days after creation when results are archived (default 29)")
    p.add_argument("--refusal-rate", type=float, default=0.0, metavar="F",
                   help="fraction of requests the model refuses (stop_reason 'refusal'; default 0)")
    p.add_argument("--invalid-rate", type=float, default=0.0, metavar="F",
                   help="fraction of structured answers that break their schema (default 0)")
    p.add_argument("--strict-models", nargs="?", const=True, default=None, metavar="A,B",
                   help="serve only the model table's ids (no value) or only these ids; "
                        "otherwise any Claude-like id is served as a current model")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of every random choice (default 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sim = Simulator(
            port=args.port,
            state_dir=args.state,
            verbose=args.verbose,
            processing_time=args.processing_time,
            per_request_time=args.per_request_time,
            speed=args.speed,
            cancel_delay=args.cancel_delay,
            error_rates=dict(args.error_rate),
            expire_rate=args.expire_rate,
            seed=args.seed,
            retention_days=args.retention_days,
            refusal_rate=args.refusal_rate,
            invalid_rate=args.invalid_rate,
            strict_models=(args.strict_models.split(",") if isinstance(args.strict_models, str)
                           else args.strict_models),
        )
        for endpoint, status, times in args.fault:
            sim.add_fault(endpoint, status, times=times)
        sim.start()
    except (ValueError, OSError) as exc:
        print(f"batch_magic simulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    kept = f", batches and files kept in {args.state}" if args.state else ""
    print(f"batch_magic simulator listening on {sim.url}{kept}", flush=True)
    print("Point a client at it with:", flush=True)
    print(f"  export ANTHROPIC_BASE_URL={sim.url}", flush=True)
    print("  export ANTHROPIC_API_KEY=sk-sim-anything", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    print("batch_magic simulator stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
