"""``python -m bench ops``: every hot operation on every store, against the raw floor."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from .hot_ops import HOT_OPS, Env, Floor
from .measure import Settings, measure
from .report import Report, StoreRun, summary, text_table, write
from .targets import TARGETS, ServerMissing

QUICK = Settings(rounds=3, batch_seconds=0.04, warmup_calls=3, min_batch=3, max_setup=1_000)
FULL = Settings(rounds=7, batch_seconds=0.3, warmup_calls=20, min_batch=10)


def loud(message: str) -> None:
    """Printed on stdout (next to the table) and stderr (next to errors)."""
    line = f"!!! {message}"
    print(line, flush=True)
    print(line, file=sys.stderr, flush=True)


async def run_store(name: str, settings: Settings) -> StoreRun:
    began = time.perf_counter()
    async with TARGETS[name]() as target:
        print(f"  {name:<8} opened in {time.perf_counter() - began:.1f} s: {target.where}")
        run = StoreRun(target.name, target.where)
        if target.floor is not None:
            run.version = await target.floor.server_version()
            run.driver = target.floor.driver
            run.floor_statements = {f.value: target.floor.statement(f) for f in Floor}
        for op in HOT_OPS:
            began = time.perf_counter()
            env = Env(await target.fresh(), target.helper, target.setup_concurrency)
            result = await measure(op, env, settings, sql=target.sql, floor=target.floor)
            run.results.append(result)
            print(
                f"  {name:<8} {op.name:<20} {result.store_rate.median:>10,.0f} calls/s"
                f"  ({time.perf_counter() - began:.1f} s)",
                flush=True,
            )
        return run


async def run_ops(stores: Sequence[str], settings: Settings) -> Report:
    report = Report("ops", datetime.now(UTC), settings)
    began = time.perf_counter()
    for name in stores:
        print(f"== {name}", flush=True)
        try:
            report.runs.append(await run_store(name, settings))
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
