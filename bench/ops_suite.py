"""``python -m bench ops``: every hot operation on every store, against the raw floor."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from .hot_ops import HOT_OPS, Env, Floor
from .measure import OpResult, Settings, measure, measure_together
from .raw_floor import RawFloor
from .report import Report, StoreRun, summary, text_table, write
from .targets import TARGETS, ServerMissing, Target

CALLERS = 8
"""Concurrent callers of the second mode (each on its own pool connection)."""

QUICK = Settings(
    rounds=2,
    batch_seconds=0.015,
    warmup_calls=3,
    min_batch=2,
    max_setup=120,
    concurrent_ops=("create_run", "claim_run", "append_events_1", "settle_run", "load_run"),
)
"""A smoke run (``all --quick`` in about a minute): the ratios are indicative only,
and only the operations without bulk setup run with concurrent callers."""
FULL = Settings(rounds=7, batch_seconds=0.3, warmup_calls=20, min_batch=10)


def loud(message: str) -> None:
    """Printed on stdout (next to the table) and stderr (next to errors)."""
    line = f"!!! {message}"
    print(line, flush=True)
    print(line, file=sys.stderr, flush=True)


async def run_store(name: str, settings: Settings, concurrent: bool = True) -> StoreRun:
    began = time.perf_counter()
    async with TARGETS[name]() as target:
        print(f"  {name:<8} opened in {time.perf_counter() - began:.1f} s: {target.where}")
        run = StoreRun(target.name, target.where)
        if target.floor is not None:
            run.version = await target.floor.server_version()
            run.driver = target.floor.driver
            run.floor_statements = {f.value: target.floor.statement(f) for f in Floor}
        floors = await _more_floors(target, CALLERS if concurrent else 0)
        try:
            for op in HOT_OPS:
                began = time.perf_counter()
                env = Env(await target.fresh(), target.helper, target.setup_concurrency)
                result = await measure(
                    op,
                    env,
                    settings,
                    recorder=target.recorder,
                    floor=target.floor,
                    unit=target.unit,
                    server=target.server_cpu,
                )
                run.results.append(result)
                _progress(name, result, began)
                # The in-process store has no connections to spread callers over.
                wanted = settings.concurrent_ops
                if (
                    concurrent
                    and target.floor is not None
                    and (wanted is None or op.name in wanted)
                ):
                    began = time.perf_counter()
                    env = Env(await target.fresh(), target.helper, target.setup_concurrency)
                    result = await measure_together(
                        op, env, settings, CALLERS, floors, target.server_cpu
                    )
                    run.results.append(result)
                    _progress(name, result, began)
        finally:
            for floor in floors:
                await floor.close()
        return run


def _progress(store: str, r: OpResult, began: float) -> None:
    cpu = ""
    if r.store_cpu is not None:
        cpu = f", cpu {r.store_cpu.client.median * 1e6:,.0f} µs/call"
        if r.raw_cpu is not None and r.cpu_ratio is not None:
            cpu += (
                f" (raw {r.raw_cpu.client.median * 1e6:,.0f}, raw/store {r.cpu_ratio.median:.2f})"
            )
    print(
        f"  {store:<8} {r.op.name:<20} x{r.callers:<2} {r.store_rate.median:>10,.0f} calls/s"
        f"{cpu}  ({time.perf_counter() - began:.1f} s)",
        flush=True,
    )


async def _more_floors(target: Target, n: int) -> list[RawFloor]:
    """``n`` raw floors on connections of their own, for the concurrent mode."""
    if target.open_floor is None:
        return []
    return [await target.open_floor() for _ in range(n)]


async def run_ops(stores: Sequence[str], settings: Settings, concurrent: bool = True) -> Report:
    report = Report("ops", datetime.now(UTC), settings)
    began = time.perf_counter()
    for name in stores:
        print(f"== {name}", flush=True)
        try:
            report.runs.append(await run_store(name, settings, concurrent))
        except ServerMissing as exc:
            loud(f"SKIPPED {name}: {exc}")
            report.skipped[name] = str(exc)
    print()
    print(text_table(report))
    print()
    for line in summary(report):
        print(line)
    json_path, md_path = write(report)
    print(f"\nwrote {json_path} and {md_path.name} in {time.perf_counter() - began:.0f} s")
    return report
