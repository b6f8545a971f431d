"""Running one suite or all of them, then the charts and the closing summary."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from . import charts, e2e, e2e_report, scale, scale_report
from .ops_suite import FULL as OPS_FULL
from .ops_suite import QUICK as OPS_QUICK
from .ops_suite import run_ops
from .report import RESULTS_DIR, Report
from .verdict import summary

SUITES = ("ops", "e2e", "scale")
MEMORY_RUNS = {"quick": 100, "default": 2_000, "full": 100_000}
"""Runs the worker-memory subprocess drives (in 4 chunks)."""


@dataclass(frozen=True)
class Choice:
    suites: tuple[str, ...]
    stores: tuple[str, ...]
    mode: str
    """"quick", "default" or "full"."""
    rounds: int | None = None


async def run(choice: Choice) -> None:
    began = time.perf_counter()
    stamp = datetime.now(UTC)
    stores = list(choice.stores)
    quick = choice.mode == "quick"
    ops: Report | None = None
    e2e_result: e2e.E2EReport | None = None
    scale_result: scale.ScaleReport | None = None
    written = []

    if "ops" in choice.suites:
        settings = OPS_QUICK if quick else OPS_FULL
        if choice.rounds is not None:
            settings = dataclasses.replace(settings, rounds=choice.rounds)
        ops = await run_ops(stores, settings)
        written.append(charts.ops_chart(ops, RESULTS_DIR / f"ops-{ops.started:%Y%m%dT%H%M%SZ}.png"))

    if "e2e" in choice.suites:
        e2e_settings = e2e.QUICK if quick else e2e.FULL
        if choice.rounds is not None:
            e2e_settings = dataclasses.replace(e2e_settings, rounds=choice.rounds)
        e2e_result = await e2e.run_e2e(stores, e2e_settings)
        print()
        print(e2e_report.text_table(e2e_result))
        json_path, md_path = e2e_report.write(e2e_result)
        stem = f"e2e-{e2e_result.started:%Y%m%dT%H%M%SZ}"
        written += [json_path, md_path, charts.e2e_chart(e2e_result, RESULTS_DIR / f"{stem}.png")]

    if "scale" in choice.suites:
        settings_s = {"quick": scale.QUICK, "default": scale.DEFAULT, "full": scale.FULL}[
            choice.mode
        ]
        scale_result = await scale.run_scale(stores, settings_s)
        memory_store = "redis" if "redis" in stores else "sqlite"
        print(f"== scale worker memory ({memory_store}, subprocess)", flush=True)
        scale_result.worker_memory = await asyncio.to_thread(
            scale_report.worker_memory, memory_store, MEMORY_RUNS[choice.mode]
        )
        print()
        print(scale_report.text_table(scale_result))
        json_path, md_path = scale_report.write(scale_result)
        stem = f"scale-{scale_result.started:%Y%m%dT%H%M%SZ}"
        written += [
            json_path,
            md_path,
            charts.scale_chart(scale_result, RESULTS_DIR / f"{stem}.png"),
        ]

    lines = summary(ops, e2e_result, scale_result)
    print("\n== summary against the targets")
    for line in lines:
        print(line)
    summary_path = RESULTS_DIR / f"summary-{stamp:%Y%m%dT%H%M%SZ}.md"
    summary_path.write_text(
        f"# bench summary — {stamp:%Y-%m-%d %H:%M:%S %Z} ({choice.mode})\n\n"
        + "\n".join(f"- {line}" for line in lines)
        + "\n"
    )
    written.append(summary_path)
    names = ", ".join(p.name for p in written if p is not None)
    print(f"\nwrote {names} in {RESULTS_DIR} ({time.perf_counter() - began:.0f} s in all)")


def suites_of(name: str) -> tuple[str, ...]:
    return SUITES if name == "all" else (name,)
