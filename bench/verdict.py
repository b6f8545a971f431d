"""The closing summary: the key ratios against the issue's targets.

- hot ops: one round trip on PostgreSQL, SQLite and Redis, and at least 0.8 times the raw
  floor (one connection);
- e2e: at least 5 times DBOS's runs/s, and within 2x of the floor (runtime/floor ≥ 0.5);
- scale: large/small latency ratio at most 1.5.

A benchmark measures, it does not fail: the summary says MET or SHORT per target and
names what falls short. The in-process memory store is the contract's reference, not
a production store: its rows are in the tables but not judged here.
"""

from __future__ import annotations

from .e2e import E2EReport
from .e2e_report import dbos_ratio
from .report import Report
from .scale import ScaleReport

ONE_TRIP_STORES = ("postgres", "sqlite", "redis")
NOT_JUDGED = ("memory",)
RAW_TARGET = 0.8
DBOS_TARGET = 5.0
FLOOR_TARGET = 0.5
SCALE_TARGET = 1.5


def _mark(ok: bool) -> str:
    return "MET  " if ok else "SHORT"


def ops_lines(report: Report) -> list[str]:
    lines = []
    for run in report.runs:
        if run.name not in ONE_TRIP_STORES:
            continue
        single = [r for r in run.results if r.callers == 1]
        multi = [
            f"{r.op.name} ({r.statements.per_call:g})"
            for r in single
            if r.statements is not None and r.statements.per_call > 1
        ]
        slow = [
            f"{r.op.name} {r.ratio.median:.2f}"
            for r in single
            if r.ratio is not None and r.ratio.median < RAW_TARGET
        ]
        unit = {"redis": "round trip", "sqlite": "hop to the driver thread"}.get(
            run.name, "statement"
        )
        lines.append(
            f"{_mark(not multi)} ops {run.name}: one {unit} per call"
            + ("" if not multi else f" — more in: {', '.join(multi)}")
        )
        lines.append(
            f"{_mark(not slow)} ops {run.name}: store/raw ≥ {RAW_TARGET} "
            f"({len(single) - len(slow)}/{len(single)} ops)"
            + ("" if not slow else f" — below: {', '.join(slow)}")
        )
    return lines


def e2e_lines(report: E2EReport) -> list[str]:
    lines = []
    for r in report.results:
        vs = dbos_ratio(report, r)
        if vs is not None:
            lines.append(
                f"{_mark(vs >= DBOS_TARGET)} e2e {r.store} {r.workers}w: runtime/DBOS "
                f"{vs:.2f} (target ≥ {DBOS_TARGET:g})"
            )
    if report.dbos is not None and report.dbos.error:
        lines.append(f"SHORT e2e DBOS comparison: DBOS failed — {report.dbos.error}")
    for r in report.results:
        if r.store in NOT_JUDGED:
            continue
        lines.append(
            f"{_mark(r.ratio.median >= FLOOR_TARGET)} e2e {r.store} {r.workers}w: "
            f"runtime/floor {r.ratio.median:.2f} (target ≥ {FLOOR_TARGET:g}, i.e. within 2x)"
        )
    return lines


def scale_lines(report: ScaleReport) -> list[str]:
    lines = []
    for store, op, small, large, ratio in report.ratios():
        if store in NOT_JUDGED:
            continue
        lines.append(
            f"{_mark(ratio <= SCALE_TARGET)} scale {store} {op}: {large:,} vs {small:,} "
            f"→ {ratio:.2f} (target ≤ {SCALE_TARGET:g})"
        )
    m = report.worker_memory
    if m is not None and "peak_last_over_first" in m:
        ratio = float(str(m["peak_last_over_first"]))
        lines.append(
            f"{_mark(ratio <= SCALE_TARGET)} scale worker memory: peak RSS last/first "
            f"chunk {ratio:.2f} (target ≤ {SCALE_TARGET:g})"
        )
    return lines


def summary(ops: Report | None, e2e: E2EReport | None, scale: ScaleReport | None) -> list[str]:
    lines: list[str] = []
    if ops is not None:
        lines += ops_lines(ops)
    if e2e is not None:
        lines += e2e_lines(e2e)
    if scale is not None:
        lines += scale_lines(scale)
    met = sum(1 for ln in lines if ln.startswith("MET"))
    return [*lines, f"{met} of {len(lines)} targets met"]
