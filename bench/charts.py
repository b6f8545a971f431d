"""PNG charts of the results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from .cpu import CpuCost
from .e2e import E2EReport
from .report import Report
from .scale import ScaleReport
from .verdict import FLOOR_TARGET, RAW_TARGET, SCALE_TARGET


def _grouped(
    ax: Axes, labels: list[str], series: dict[str, list[float]], width: float = 0.8
) -> None:
    n = max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (n - 1) / 2) * width / n for i in range(len(labels))]
        ax.bar(xs, values, width / n, label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    ax.legend(fontsize=8)


def ops_chart(report: Report, path: Path) -> Path | None:
    ops = [r.op.name for r in report.runs[0].results if r.callers == 1] if report.runs else []
    series = {}
    for run in report.runs:
        for callers in (1, 8):
            ratios = {
                r.op.name: r.ratio.median for r in run.results if r.ratio and r.callers == callers
            }
            if ratios:
                series[f"{run.name} x{callers}"] = [ratios.get(op, 0.0) for op in ops]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(12, 5))
    _grouped(ax, ops, series)
    ax.axhline(RAW_TARGET, color="red", linestyle="--", linewidth=1, label="target")
    ax.set_ylabel("store / raw floor (calls/s)")
    ax.set_title("Hot operations against one raw round trip (higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def e2e_chart(report: E2EReport, path: Path) -> Path | None:
    if not report.results:
        return None
    labels = [f"{r.store} {r.workers}w" for r in report.results]
    series = {
        "runtime": [r.runtime.median for r in report.results],
        "floor": [r.floor.median for r in report.results],
    }
    fig, (ax, cpu_ax) = plt.subplots(2, 1, figsize=(10, 9))
    _grouped(ax, labels, series)
    _e2e_cpu(cpu_ax, report, labels)
    if report.dbos is not None and not report.dbos.error:
        for (level, spread), style in zip(report.dbos.rates.items(), (":", "--"), strict=False):
            ax.axhline(
                spread.median,
                linestyle=style,
                linewidth=1,
                color="black",
                label=f"DBOS, {level} runs in flight",
            )
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("runs/s (log)")
    ax.set_title(f"Three-step workflow end to end (target runtime/floor ≥ {FLOOR_TARGET})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _e2e_cpu(ax: Axes, report: E2EReport, labels: list[str]) -> None:
    """CPU ms per run, client and server (0 where not measured), DBOS as lines."""

    def ms(cost: CpuCost | None, server: bool) -> float:
        if cost is None:
            return 0.0
        spread = cost.server if server else cost.client
        return 0.0 if spread is None else spread.median * 1e3

    series = {
        "runtime client": [ms(r.runtime_cpu, False) for r in report.results],
        "runtime server": [ms(r.runtime_cpu, True) for r in report.results],
        "floor client": [ms(r.floor_cpu, False) for r in report.results],
        "floor server": [ms(r.floor_cpu, True) for r in report.results],
    }
    _grouped(ax, labels, series)
    if report.dbos is not None and not report.dbos.error:
        for (level, cost), style in zip(report.dbos.cpu.items(), (":", "--"), strict=False):
            ax.axhline(
                ms(cost, False) + ms(cost, True),
                linestyle=style,
                linewidth=1,
                color="black",
                label=f"DBOS client + server, {level} in flight",
            )
        ax.legend(fontsize=8)
    ax.set_ylabel("CPU ms per run")
    ax.set_title("CPU per run (lower is better; server: this process's backends)")


def scale_chart(report: ScaleReport, path: Path) -> Path | None:
    ratios = report.ratios()
    if not ratios:
        return None
    ops = sorted({(op, small, large) for _, op, small, large, _ in ratios})
    labels = [f"{op} {large:,}/{small:,}" for op, small, large in ops]
    series: dict[str, list[float]] = {}
    for store in dict.fromkeys(s for s, *_ in ratios):
        got = {(op, a, b): x for s, op, a, b, x in ratios if s == store}
        series[store] = [got.get(key, 0.0) for key in ops]
    fig, ax = plt.subplots(figsize=(12, 5))
    _grouped(ax, labels, series)
    ax.axhline(SCALE_TARGET, color="red", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_ylabel("latency large / small (log)")
    ax.set_title(f"Scale: latency growth with size (target ≤ {SCALE_TARGET})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
