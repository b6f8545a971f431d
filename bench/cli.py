"""The command line: ``python -m bench ops [--stores ...] [--quick] [--rounds N]``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Sequence

from .ops_suite import FULL, QUICK, run_ops
from .targets import TARGETS


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
        ("ops", "hot operations per store vs one raw driver statement"),
        ("all", "every suite (today: ops)"),
    ):
        sub = suites.add_parser(name, help=help_text)
        sub.add_argument(
            "--stores",
            type=_stores,
            default=list(TARGETS),
            help=f"comma-separated subset of {','.join(TARGETS)} (default: all)",
        )
        sub.add_argument("--quick", action="store_true", help="short batches: under a minute")
        sub.add_argument("--rounds", type=_positive, help="A/B rounds (default 7, quick 3)")
    return top


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.rounds is not None:
        settings = dataclasses.replace(settings, rounds=args.rounds)
    # Both suites are ops for now; e2e and scale join `all` when they exist.
    try:
        asyncio.run(run_ops(args.stores, settings))
    except KeyboardInterrupt:
        # The stores' context managers have dropped their schemas and files by now.
        raise SystemExit("interrupted: no results written; temporary schemas removed") from None
