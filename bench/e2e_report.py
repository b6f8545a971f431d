"""Rendering the e2e suite: a table, JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .cpu import CpuCost
from .e2e import SLOTS, E2EReport, E2EResult
from .report import RESULTS_DIR, machine
from .stats import Spread

HEADER = (
    "store",
    "workers",
    "runtime runs/s",
    "floor runs/s",
    "runtime/floor",
    "runtime CPU ms/run (client + server)",
    "floor CPU ms/run (client + server)",
    "sent/run (runtime)",
    "sent/run (floor)",
    "runtime/DBOS",
    "DBOS/runtime CPU",
)
WHOLE_SERVER = "*"
"""Marks a server figure that is the whole server's (Redis), other clients included."""


def _spread(s: Spread, digits: int = 0) -> str:
    return f"{s.median:,.{digits}f} ({s.low:,.{digits}f}-{s.high:,.{digits}f})"


def dbos_ratio(report: E2EReport, r: E2EResult) -> float | None:
    """Our runs/s over DBOS's with as many runs in flight (PostgreSQL only: DBOS runs
    on that server)."""
    if r.store != "postgres" or report.dbos is None or report.dbos.error:
        return None
    theirs = report.dbos.rates.get(r.workers * SLOTS)
    return None if theirs is None else r.runtime.median / theirs.median


def dbos_cpu_ratio(report: E2EReport, r: E2EResult) -> float | None:
    """DBOS's CPU per run (process + PostgreSQL backends) over ours with as many runs
    in flight: above 1, the runtime spends less CPU per run than DBOS."""
    if r.store != "postgres" or report.dbos is None or report.dbos.error:
        return None
    theirs = report.dbos.cpu.get(r.workers * SLOTS)
    if theirs is None or theirs.total is None or r.runtime_cpu is None:
        return None
    ours = r.runtime_cpu.total
    return None if not ours else theirs.total / ours


def cpu_cell(cost: CpuCost | None, whole_server: bool = False) -> str:
    """``client + server`` medians in ms per run; ``—`` where not measured."""
    if cost is None:
        return "—"
    client = f"{cost.client.median * 1e3:.2f}"
    if cost.server is None:
        return f"{client} + —"
    mark = WHOLE_SERVER if whole_server else ""
    return f"{client} + {cost.server.median * 1e3:.2f}{mark}"


def _sent(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} {'rt' if unit != 'stmts' else 'stmts'}"


def rows(report: E2EReport) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for r in report.results:
        vs_dbos = dbos_ratio(report, r)
        cpu_vs_dbos = dbos_cpu_ratio(report, r)
        out.append(
            (
                r.store,
                str(r.workers),
                _spread(r.runtime),
                _spread(r.floor),
                _spread(r.ratio, 2),
                cpu_cell(r.runtime_cpu, r.whole_server),
                cpu_cell(r.floor_cpu, r.whole_server),
                _sent(r.runtime_sent_per_run, r.unit),
                _sent(r.floor_sent_per_run, r.unit),
                "—" if vs_dbos is None else f"{vs_dbos:.2f}",
                "—" if cpu_vs_dbos is None else f"{cpu_vs_dbos:.2f}",
            )
        )
    dbos = report.dbos
    if dbos is not None and not dbos.error:
        for level, rate in dbos.rates.items():
            out.append(
                (
                    f"DBOS {dbos.version}",
                    f"{level} in flight",
                    _spread(rate),
                    "—",
                    "—",
                    cpu_cell(dbos.cpu.get(level)),
                    "—",
                    "—",
                    "—",
                    "—",
                    "—",
                )
            )
    return out


def dbos_lines(report: E2EReport) -> list[str]:
    if report.dbos is None:
        return ["DBOS: not run (needs the postgres store)"]
    if report.dbos.error:
        return [f"DBOS: FAILED — {report.dbos.error}"]
    return [
        f"DBOS {report.dbos.version}: {level} runs in flight: {_spread(s)} runs/s, "
        f"CPU {cpu_cell(report.dbos.cpu.get(level))} ms/run (process + its PostgreSQL backends)"
        for level, s in report.dbos.rates.items()
    ]


def cpu_note(report: E2EReport) -> str:
    marked = any(r.whole_server for r in report.results)
    return (
        "CPU: medians over the rounds, client = this process (every thread), server = "
        "the backends serving this process's connections (— where not readable)"
        + (
            f"; {WHOLE_SERVER} the whole Redis server's CPU, other clients included"
            if marked
            else ""
        )
        + "."
    )


LATENCY_HEADER = ("store", "start-to-finish p50 ms", "p99 ms", "runs", "sent/run")


def latency_rows(report: E2EReport) -> list[tuple[str, ...]]:
    """One run at a time on an idle worker; DBOS the same (last row)."""
    out: list[tuple[str, ...]] = [
        (
            r.store,
            f"{r.latency.p50 * 1e3:.2f}",
            f"{r.latency.p99 * 1e3:.2f}",
            str(r.latency.n),
            _sent(r.sent_per_run, r.unit),
        )
        for r in report.latencies
    ]
    dbos = report.dbos
    if dbos is not None and dbos.latency is not None:
        out.append(
            (
                f"DBOS {dbos.version}",
                f"{dbos.latency.p50 * 1e3:.2f}",
                f"{dbos.latency.p99 * 1e3:.2f}",
                str(dbos.latency.n),
                "—",
            )
        )
    return out


def _aligned(header: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    table = [header, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return [ln.rstrip() for ln in lines]


def text_table(report: E2EReport) -> str:
    lines = _aligned(HEADER, rows(report))
    latency = _aligned(LATENCY_HEADER, latency_rows(report)) if report.latencies else []
    return "\n".join([*lines, "", cpu_note(report), *dbos_lines(report), "", *latency]).rstrip()


def markdown(report: E2EReport) -> str:
    s = report.settings
    return "\n".join(
        [
            f"# bench e2e — {report.started:%Y-%m-%d %H:%M:%S %Z}",
            "",
            f"{s.runs} runs per round, {s.rounds} rounds (runtime and floor alternate), "
            f"worker poll interval {s.poll_s:g} s (1 s on stores whose wake-up hints wake "
            f"the workers), {SLOTS} drive slots per worker; "
            "workers are asyncio tasks in one process, each with its own store handle. "
            + cpu_note(report),
            "",
            "| " + " | ".join(HEADER) + " |",
            "|" + "---|" * len(HEADER),
            *("| " + " | ".join(row) + " |" for row in rows(report)),
            "",
            *(f"- {line}" for line in dbos_lines(report)),
            *(f"- {k}: SKIPPED — {v}" for k, v in report.skipped.items()),
            "",
            "Start-to-finish latency, one run at a time on an idle worker (default poll "
            "interval: the worker is woken by the start):",
            "",
            "| " + " | ".join(LATENCY_HEADER) + " |",
            "|" + "---|" * len(LATENCY_HEADER),
            *("| " + " | ".join(row) + " |" for row in latency_rows(report)),
            "",
        ]
    )


def to_json(report: E2EReport) -> dict[str, Any]:
    dbos: dict[str, Any] | None = None
    if report.dbos is not None:
        dbos = {
            "version": report.dbos.version,
            "error": report.dbos.error,
            "runs_per_s_by_inflight": {str(k): v.as_dict() for k, v in report.dbos.rates.items()},
            "cpu_ms_per_run_by_inflight": {
                str(k): v.as_dict(1e3) for k, v in report.dbos.cpu.items()
            },
            "latency_seconds": None
            if report.dbos.latency is None
            else report.dbos.latency.as_dict(),
        }
    return {
        "suite": "e2e",
        "started": report.started.isoformat(),
        "settings": asdict(report.settings),
        "machine": machine(),
        "results": [
            {
                "store": r.store,
                "workers": r.workers,
                "runs": r.runs,
                "runtime_runs_per_s": r.runtime.as_dict(),
                "floor_runs_per_s": r.floor.as_dict(),
                "runtime_over_floor": r.ratio.as_dict(),
                "runtime_sent_per_run": r.runtime_sent_per_run,
                "floor_sent_per_run": r.floor_sent_per_run,
                "unit": r.unit,
                "runtime_over_dbos": dbos_ratio(report, r),
                "runtime_cpu_ms_per_run": None
                if r.runtime_cpu is None
                else r.runtime_cpu.as_dict(1e3),
                "floor_cpu_ms_per_run": None if r.floor_cpu is None else r.floor_cpu.as_dict(1e3),
                "server_cpu_whole_server": r.whole_server,
                "dbos_cpu_over_runtime_cpu": dbos_cpu_ratio(report, r),
            }
            for r in report.results
        ],
        "latency": [
            {
                "store": r.store,
                "seconds": r.latency.as_dict(),
                "sent_per_run": r.sent_per_run,
                "unit": r.unit,
            }
            for r in report.latencies
        ],
        "dbos": dbos,
        "skipped": report.skipped,
    }


def write(report: E2EReport, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"e2e-{report.started:%Y%m%dT%H%M%SZ}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
