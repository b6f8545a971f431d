"""The closing summary: the key ratios against the issue's targets.

- hot ops: one round trip on PostgreSQL, SQLite, MariaDB/MySQL and Redis, and at
  least 0.8 times the raw floor (one connection) in calls/s; the single-row hot
  operations (create, claim, heartbeat, append, settle, load) at least 0.8 times one
  raw driver statement in client CPU per call (raw CPU / store CPU ≥ 0.8) on each SQL
  store;
- e2e: at least 5 times DBOS's runs/s, and within 2x of the floor (runtime/floor ≥ 0.5);
  CPU per run through the runtime: PostgreSQL client ≤ 1.5 ms (with and without
  prepared statements), PostgreSQL server ≤ 1.5 ms with prepared statements, SQLite
  client ≤ 1.2 ms, MariaDB/MySQL client + server within 1.5x of PostgreSQL's (the
  same worker count, PostgreSQL without prepared statements, the store's default);
- scale: large/small latency ratio at most 1.5.

A benchmark measures, it does not fail: the summary says MET or SHORT per target and
names what falls short. The in-process memory store is the contract's reference, not
a production store: its rows are in the tables but not judged here.
"""

from __future__ import annotations

from .e2e import E2EReport, E2EResult
from .e2e_report import dbos_ratio
from .report import Report
from .scale import ScaleReport

ONE_TRIP_STORES = ("postgres", "postgres-prepared", "sqlite", "mysql", "redis")
SQL_STORES = ("sqlite", "postgres", "postgres-prepared", "mysql")
SINGLE_ROW_OPS = (
    "create_run",
    "claim_run",
    "heartbeat",
    "append_events_1",
    "settle_run",
    "load_run",
)
"""The single-row hot operations the CPU-per-call target is about."""
NOT_JUDGED = ("memory",)
RAW_TARGET = 0.8
RAW_CPU_TARGET = 0.8
DBOS_TARGET = 5.0
FLOOR_TARGET = 0.5
SCALE_TARGET = 1.5
PG_CLIENT_MS = 1.5
"""PostgreSQL e2e: client CPU per run, ms."""
PG_SERVER_MS = 1.5
"""PostgreSQL e2e with prepared statements: server CPU per run, ms."""
SQLITE_CLIENT_MS = 1.2
MYSQL_OVER_PG = 1.5
"""MariaDB/MySQL e2e: client + server CPU per run over PostgreSQL's."""


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
        unit = {
            "redis": "round trip",
            "sqlite": "hop to the driver thread",
            "mysql": "round trip (one multi-statement batch)",
        }.get(run.name, "statement")
        lines.append(
            f"{_mark(not multi)} ops {run.name}: one {unit} per call"
            + ("" if not multi else f" — more in: {', '.join(multi)}")
        )
        lines.append(
            f"{_mark(not slow)} ops {run.name}: store/raw ≥ {RAW_TARGET} "
            f"({len(single) - len(slow)}/{len(single)} ops)"
            + ("" if not slow else f" — below: {', '.join(slow)}")
        )
    return lines + cpu_ops_lines(report)


def cpu_ops_lines(report: Report) -> list[str]:
    """Per SQL store: raw/store client CPU per call of the single-row hot operations."""
    lines = []
    for run in report.runs:
        if run.name not in SQL_STORES:
            continue
        judged = [
            r
            for r in run.results
            if r.callers == 1 and r.op.name in SINGLE_ROW_OPS and r.cpu_ratio is not None
        ]
        if not judged:
            continue
        below = [
            f"{r.op.name} {r.cpu_ratio.median:.2f}"
            for r in judged
            if r.cpu_ratio is not None and r.cpu_ratio.median < RAW_CPU_TARGET
        ]
        lines.append(
            f"{_mark(not below)} ops {run.name}: single-row ops' CPU per call, raw/store ≥ "
            f"{RAW_CPU_TARGET} ({len(judged) - len(below)}/{len(judged)} ops)"
            + ("" if not below else f" — below: {', '.join(below)}")
        )
    return lines


def _ms(value: float) -> str:
    return f"{value * 1e3:.2f} ms"


def cpu_e2e_lines(report: E2EReport) -> list[str]:
    """The CPU-per-run targets of the e2e suite (runtime side)."""
    lines = []
    by_key = {(r.store, r.workers): r for r in report.results}

    def client(r: E2EResult, limit_ms: float, what: str) -> None:
        if r.runtime_cpu is None:
            return
        got = r.runtime_cpu.client.median
        lines.append(
            f"{_mark(got * 1e3 <= limit_ms)} e2e {r.store} {r.workers}w: {what} client CPU "
            f"{_ms(got)}/run (target ≤ {limit_ms:g} ms)"
        )

    for r in report.results:
        if r.store in ("postgres", "postgres-prepared"):
            client(r, PG_CLIENT_MS, "runtime")
        elif r.store == "sqlite":
            client(r, SQLITE_CLIENT_MS, "runtime")
    for r in report.results:
        if r.store != "postgres-prepared" or r.runtime_cpu is None:
            continue
        if r.runtime_cpu.server is None:
            lines.append(
                f"SHORT e2e {r.store} {r.workers}w: server CPU not measured (the backends' "
                "CPU time is only readable with the server on this machine)"
            )
            continue
        got = r.runtime_cpu.server.median
        lines.append(
            f"{_mark(got * 1e3 <= PG_SERVER_MS)} e2e {r.store} {r.workers}w: runtime server "
            f"CPU {_ms(got)}/run (target ≤ {PG_SERVER_MS:g} ms)"
        )
    for r in report.results:
        pg = by_key.get(("postgres", r.workers))
        if r.store != "mysql" or pg is None or r.runtime_cpu is None or pg.runtime_cpu is None:
            continue
        ours, theirs = r.runtime_cpu.total, pg.runtime_cpu.total
        if ours is None or theirs is None or not theirs:
            lines.append(
                f"SHORT e2e mysql {r.workers}w: CPU vs PostgreSQL not measured (server CPU "
                "unreadable)"
            )
            continue
        lines.append(
            f"{_mark(ours / theirs <= MYSQL_OVER_PG)} e2e mysql {r.workers}w: client + "
            f"server CPU {_ms(ours)}/run vs PostgreSQL's {_ms(theirs)} → "
            f"{ours / theirs:.2f}x (target ≤ {MYSQL_OVER_PG:g}x)"
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
    return lines + cpu_e2e_lines(report)


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
