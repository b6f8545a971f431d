"""Rendering the scale suite: latencies by size, the large/small ratios, worker memory."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .report import REPO_ROOT, RESULTS_DIR, machine
from .scale import ScaleReport

HEADER = ("store", "operation", "size", "ms/call", "seeded in", "vs smallest")


def _ratio_of(report: ScaleReport) -> dict[tuple[str, str, int], float]:
    return {(s, op, large): ratio for s, op, _, large, ratio in report.ratios()}


def rows(report: ScaleReport) -> list[tuple[str, ...]]:
    ratio = _ratio_of(report)
    out: list[tuple[str, ...]] = []
    for r in report.results:
        x = ratio.get((r.store, r.op, r.size))
        out.append(
            (
                r.store,
                r.op,
                f"{r.size:,}",
                f"{r.ms.median:.2f} ({r.ms.low:.2f}-{r.ms.high:.2f})",
                f"{r.seed_s:.1f} s",
                "—" if x is None else f"{x:.2f}",
            )
        )
    return out


def memory_lines(report: ScaleReport) -> list[str]:
    m = report.worker_memory
    if m is None:
        return []
    if "error" in m:
        return [f"worker memory: FAILED — {m['error']}"]
    points = m.get("points")
    assert isinstance(points, list)
    first, last = points[0], points[-1]
    return [
        f"worker memory ({m['store']} store, {m['runs']} runs in {len(points)} chunks, "
        f"{m['seconds']:.1f} s): peak RSS {first['max_rss_kib'] / 1024:.1f} MiB after "
        f"{first['runs']} runs, {last['max_rss_kib'] / 1024:.1f} MiB after {last['runs']} "
        f"(last/first {m['peak_last_over_first']:.2f})"
    ]


def text_table(report: ScaleReport) -> str:
    table = [HEADER, *rows(report)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*(ln.rstrip() for ln in lines), "", *memory_lines(report)])


def markdown(report: ScaleReport) -> str:
    s = report.settings
    return "\n".join(
        [
            f"# bench scale — {report.started:%Y-%m-%d %H:%M:%S %Z}",
            "",
            f"Sizes {', '.join(f'{n:,}' for n in s.sizes)}; {s.calls} timed calls each "
            "(one connection), median (min-max) ms per call; `vs smallest` is the median "
            "latency over the smallest size's. list_runs uses limit 10 (the last page is "
            "page size/10, reached by its keyset cursor); append_events appends 1 event "
            "to a run already holding `size` events.",
            "",
            "| " + " | ".join(HEADER) + " |",
            "|" + "---|" * len(HEADER),
            *("| " + " | ".join(row) + " |" for row in rows(report)),
            "",
            *(f"- {line}" for line in memory_lines(report)),
            *(f"- {k}: SKIPPED — {v}" for k, v in report.skipped.items()),
            "",
        ]
    )


def to_json(report: ScaleReport) -> dict[str, Any]:
    return {
        "suite": "scale",
        "started": report.started.isoformat(),
        "settings": asdict(report.settings),
        "machine": machine(),
        "results": [
            {"store": r.store, "op": r.op, "size": r.size, "ms": r.ms.as_dict(), "seed_s": r.seed_s}
            for r in report.results
        ],
        "ratios": [
            {"store": s, "op": op, "small": a, "large": b, "large_over_small": x}
            for s, op, a, b, x in report.ratios()
        ],
        "worker_memory": report.worker_memory,
        "skipped": report.skipped,
    }


def write(report: ScaleReport, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"scale-{report.started:%Y%m%dT%H%M%SZ}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


def worker_memory(store: str, runs: int, timeout_s: float = 600) -> dict[str, object]:
    """Runs ``bench.worker_memory`` in a subprocess and returns its result."""
    command = [sys.executable, "-m", "bench.worker_memory", f"--store={store}", f"--runs={runs}"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout_s} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
    if not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    out = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    assert isinstance(out, dict)
    return out
