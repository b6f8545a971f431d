"""Rendering a suite's results: a table on stdout, JSON and Markdown on disk, and a
short summary of the ratios that matter."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .cpu import CpuCost
from .measure import OpResult, Settings
from .stats import Spread

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
"""Where ``python -m bench.…`` subprocesses run from."""
HEADER = (
    "store",
    "operation",
    "conns",
    "stmts/call",
    "store calls/s",
    "raw floor",
    "raw calls/s",
    "store/raw",
    "store CPU µs/call",
    "raw CPU µs/call",
    "raw/store CPU",
)
"""The CPU columns: ``client + server`` medians in µs per call (server ``—`` where
not readable, ``*`` the whole Redis server's); raw/store CPU is the client side's
ratio, per round (≥ 0.8: the store's CPU per call is within the target)."""


@dataclass
class StoreRun:
    name: str
    where: str
    version: str | None = None
    driver: str | None = None
    floor_statements: dict[str, str] = field(default_factory=dict)
    results: list[OpResult] = field(default_factory=list)


@dataclass
class Report:
    suite: str
    started: datetime
    settings: Settings
    runs: list[StoreRun] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _rate(s: Spread | None) -> str:
    if s is None:
        return "—"
    return f"{s.median:,.0f} ({s.low:,.0f}-{s.high:,.0f})"


def _ratio(s: Spread | None) -> str:
    return "—" if s is None else f"{s.median:.2f} ({s.low:.2f}-{s.high:.2f})"


def _num(n: float) -> str:
    return f"{n:.0f}" if n == int(n) else f"{n:.2f}"


def _statements(r: OpResult) -> str:
    """SQL statements per call; on Redis, round trips (and commands) per call."""
    if r.statements is None:
        return "—"
    text = _num(r.statements.per_call)
    if r.statements.commands_per_call is not None:
        text = f"{text} rt ({_num(r.statements.commands_per_call)} cmd)"
    return text


def cpu_cell(cost: CpuCost | None, whole_server: bool = False) -> str:
    """``client + server`` medians in µs per call."""
    if cost is None:
        return "—"
    client = f"{cost.client.median * 1e6:,.0f}"
    if cost.server is None:
        return f"{client} + —"
    mark = "*" if whole_server else ""
    return f"{client} + {cost.server.median * 1e6:,.0f}{mark}"


def rows(report: Report) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for run in report.runs:
        for r in run.results:
            floor = r.op.floor.value if r.raw_rate is not None else "—"
            out.append(
                (
                    run.name,
                    r.op.name,
                    str(r.callers),
                    _statements(r),
                    _rate(r.store_rate),
                    floor,
                    _rate(r.raw_rate),
                    _ratio(r.ratio),
                    cpu_cell(r.store_cpu, r.whole_server),
                    cpu_cell(r.raw_cpu, r.whole_server),
                    _ratio(r.cpu_ratio),
                )
            )
    return out


def text_table(report: Report) -> str:
    table = [HEADER, *rows(report)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def summary(report: Report) -> list[str]:
    """One line per store: how far the hot operations sit from one raw statement."""
    lines = []
    for run in report.runs:
        ranked = sorted(
            (r.ratio.median, r.op.name)
            for r in run.results
            if r.ratio is not None and r.callers == 1
        )
        if not ranked:
            rates = [r.store_rate.median for r in run.results]
            if rates:
                lines.append(
                    f"{run.name}: {min(rates):,.0f}-{max(rates):,.0f} calls/s "
                    "(in-process: no raw floor)"
                )
            continue
        single = [r.op.name for r in run.results if r.statements and r.statements.per_call == 1]
        (worst, worst_op), (best, best_op) = ranked[0], ranked[-1]
        unit = {"redis": "round-trip", "sqlite": "hop", "d1-local": "request"}.get(
            run.name, "statement"
        )
        lines.append(
            f"{run.name}: store/raw median {statistics.median(v for v, _ in ranked):.2f} "
            f"over {len(ranked)} ops (1 conn); closest {best_op} {best:.2f}, "
            f"furthest {worst_op} {worst:.2f}; 1-{unit} ops: {', '.join(single) or 'none'}"
        )
        by_cpu = sorted(
            (r.cpu_ratio.median, r.op.name)
            for r in run.results
            if r.cpu_ratio is not None and r.callers == 1
        )
        if by_cpu:
            (worst, worst_op), (best, best_op) = by_cpu[0], by_cpu[-1]
            lines.append(
                f"{run.name}: raw/store client CPU per call, median "
                f"{statistics.median(v for v, _ in by_cpu):.2f} over {len(by_cpu)} ops "
                f"(1 conn); closest {best_op} {best:.2f}, furthest {worst_op} {worst:.2f}"
            )
        together = [r.ratio.median for r in run.results if r.ratio is not None and r.callers > 1]
        if together:
            lines.append(
                f"{run.name}: store/raw median {statistics.median(together):.2f} "
                f"with {max(r.callers for r in run.results)} concurrent callers"
            )
    for name, reason in report.skipped.items():
        lines.append(f"{name}: SKIPPED ({reason})")
    return lines


def markdown(report: Report) -> str:
    s = report.settings
    out = [
        f"# bench {report.suite} — {report.started:%Y-%m-%d %H:%M:%S %Z}",
        "",
        f"{s.rounds} rounds, batches of ~{s.batch_seconds:g} s per side, "
        f"medians (min-max); Python {platform.python_version()}, {os.cpu_count()} CPUs. "
        "CPU columns: client + server medians in µs per call (client = this process, "
        "every thread; server = the backends serving its connections, — where not "
        "readable, * the whole Redis server's); raw/store CPU = raw client CPU per "
        "call over the store's, per round.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in rows(report)),
        "",
        "## Stores and raw floor statements",
        "",
    ]
    for run in report.runs:
        driver = f", raw driver {run.driver}" if run.driver else ""
        version = f"{run.version}, " if run.version else ""
        out.append(f"- **{run.name}**: {version}{run.where}{driver}")
        out.extend(f"  - `{k}`: `{v}`" for k, v in run.floor_statements.items())
    for name, reason in report.skipped.items():
        out.append(f"- **{name}**: SKIPPED — {reason}")
    ops = {r.op.name: r.op.does for run in report.runs for r in run.results}
    out += ["", "## What one call does", "", *(f"- `{k}`: {v}" for k, v in ops.items())]
    out += ["", "## Summary", "", *(f"- {line}" for line in summary(report)), ""]
    return "\n".join(out)


def _result_json(r: OpResult) -> dict[str, Any]:
    return {
        "op": r.op.name,
        "does": r.op.does,
        "callers": r.callers,
        "unit": None if r.statements is None else r.statements.unit,
        "commands_per_call": None if r.statements is None else r.statements.commands_per_call,
        "statements_per_call": None if r.statements is None else r.statements.per_call,
        "statements": None if r.statements is None else list(r.statements.one_call),
        "store_calls_per_s": r.store_rate.as_dict(),
        "store_batch": r.batch,
        "floor": r.op.floor.value if r.raw_rate is not None else None,
        "raw_calls_per_s": None if r.raw_rate is None else r.raw_rate.as_dict(),
        "raw_batch": r.raw_batch if r.raw_rate is not None else None,
        "store_over_raw": None if r.ratio is None else r.ratio.as_dict(),
        "store_cpu_us_per_call": None if r.store_cpu is None else r.store_cpu.as_dict(1e6),
        "raw_cpu_us_per_call": None if r.raw_cpu is None else r.raw_cpu.as_dict(1e6),
        "raw_cpu_over_store_cpu": None if r.cpu_ratio is None else r.cpu_ratio.as_dict(),
        "server_cpu_whole_server": r.whole_server,
    }


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def to_json(report: Report) -> dict[str, Any]:
    return {
        "suite": report.suite,
        "started": report.started.isoformat(),
        "settings": asdict(report.settings),
        "machine": machine(),
        "stores": [
            {
                "name": run.name,
                "where": run.where,
                "version": run.version,
                "driver": run.driver,
                "floor_statements": run.floor_statements,
                "results": [_result_json(r) for r in run.results],
            }
            for run in report.runs
        ],
        "skipped": report.skipped,
        "summary": summary(report),
    }


def write(report: Report, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{report.suite}-{report.started:%Y%m%dT%H%M%SZ}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
