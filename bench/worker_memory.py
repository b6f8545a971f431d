"""Worker memory while many runs pass through it, in a process of its own:
``python -m bench.worker_memory --store sqlite --runs 4000``.

One ``Worker`` (default 8 drive slots) drives the three-step workflow; runs are
started in ``CHECKPOINTS`` equal chunks, and after each chunk has finished the peak
resident set (``VmHWM`` in ``/proc/self/status``) and the current one
(``/proc/self/statm``) are taken. Not ``ru_maxrss``: Linux keeps it across ``exec``, so
a process started from a large harness would report the harness's size.
A worker that keeps nothing per finished run ends at about the memory of its first
chunk: the report gives last / first. Prints ``BENCH_RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import time
from typing import Any

from workflow.runtime import EventType, Runtime, StoredEvent
from workflow.runtime.worker import Worker

from .targets import TARGETS
from .three_steps import THREE_STEPS, WORKFLOW_ID

CHECKPOINTS = 4
MARK = "BENCH_RESULT "


def _current_rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_rss_kib() -> int:
    """The process's own high-water mark (reset by exec, unlike ``ru_maxrss``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def measure(store_name: str, runs: int) -> dict[str, Any]:
    per_chunk = max(1, runs // CHECKPOINTS)
    finished = 0
    chunk_done = asyncio.Event()
    target_count = 0

    def listener(event: StoredEvent) -> None:
        nonlocal finished
        if event.type == EventType.RUN_FINISHED:
            finished += 1
            if finished >= target_count:
                chunk_done.set()

    points: list[dict[str, float]] = []
    async with TARGETS[store_name]() as target:
        store = await target.fresh()
        runtime = Runtime(store, [THREE_STEPS], owner="bench-mem", listener=listener)
        worker = Worker(runtime, poll_interval=0.02, jitter=0.0)
        task = asyncio.create_task(worker.run())
        gate = asyncio.Semaphore(8)

        async def start(run_id: str) -> None:
            async with gate:
                await runtime.start(WORKFLOW_ID, None, run_id=run_id)

        began = time.perf_counter()
        try:
            for chunk in range(CHECKPOINTS):
                target_count = (chunk + 1) * per_chunk
                chunk_done.clear()
                await asyncio.gather(*(start(f"mem-{chunk}-{i}") for i in range(per_chunk)))
                await asyncio.wait_for(chunk_done.wait(), 600)
                gc.collect()
                points.append(
                    {
                        "runs": target_count,
                        "max_rss_kib": _peak_rss_kib(),
                        "rss_kib": _current_rss_kib(),
                    }
                )
        finally:
            worker.stop()
            await task
    elapsed = time.perf_counter() - began
    return {
        "store": store_name,
        "runs": per_chunk * CHECKPOINTS,
        "seconds": elapsed,
        "points": points,
        "peak_last_over_first": points[-1]["max_rss_kib"] / points[0]["max_rss_kib"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.worker_memory")
    ap.add_argument("--store", default="sqlite", choices=sorted(TARGETS))
    ap.add_argument("--runs", type=int, default=4000)
    args = ap.parse_args()
    try:
        out = asyncio.run(measure(args.store, args.runs))
    except Exception as exc:  # reported to the parent, which keeps the other results
        out = {"error": f"{type(exc).__name__}: {exc}"}
    print(MARK + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
