"""The command line: ``python -m bench {ops,e2e,scale,all} [--stores ...] [--quick |
--full] [--rounds N]``."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from .suites import Choice, run, suites_of
from .targets import OPS_ONLY, OPT_IN, TARGETS


def _stores(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(TARGETS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown store(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(TARGETS)}"
        )
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m bench",
        description="Store benchmarks, measured side by side (see bench/README.md).",
    )
    suites = top.add_subparsers(dest="suite", required=True)
    for name, help_text in (
        ("ops", "hot operations per store vs one raw round trip, 1 and 8 connections"),
        ("e2e", "a three-step workflow through the runtime vs the floor and DBOS"),
        ("scale", "latency with 10k/100k (1M with --full) items, worker memory"),
        ("all", "every suite: ops, e2e, scale, then the summary against the targets"),
    ):
        sub = suites.add_parser(name, help=help_text)
        sub.add_argument(
            "--stores",
            type=_stores,
            default=[name for name in TARGETS if name not in OPT_IN],
            help=f"comma-separated subset of {','.join(TARGETS)} (default: all)",
        )
        size = sub.add_mutually_exclusive_group()
        size.add_argument(
            "--quick", action="store_true", help="short: all suites in about a minute"
        )
        size.add_argument("--full", action="store_true", help="scale: also 1M items (slow)")
        sub.add_argument("--rounds", type=_positive, help="A/B rounds (default 7, quick 3)")
    return top


def main(argv: Sequence[str] | None = None) -> None:
    top = parser()
    args = top.parse_args(argv)
    not_here = sorted(OPS_ONLY.intersection(args.stores))
    if not_here and args.suite != "ops":
        top.error(f"{', '.join(not_here)}: the ops suite only (python -m bench ops --stores ...)")
    mode = "quick" if args.quick else "full" if args.full else "default"
    choice = Choice(suites_of(args.suite), tuple(args.stores), mode, args.rounds)
    try:
        asyncio.run(run(choice))
    except KeyboardInterrupt:
        # The stores' context managers have dropped their schemas and files by now.
        raise SystemExit("interrupted: temporary schemas removed") from None
