"""``python -m bench e2e``: the three-step workflow driven to completion by the
runtime's workers, against the floor on the same store, and against DBOS.

Per store and per worker count W (1 and 8): W ``Worker`` objects in this one process
(concurrent asyncio tasks, not processes), each with its own ``Runtime`` on its own
store handle (own connection pool) and the runtime's default 8 drive slots. A round
starts ``runs`` runs (8 starts in flight) and ends when the last ``RUN_FINISHED`` is
written; runs/s counts from the first start. The floor round makes the same runs
with :func:`three_steps.floor_run` on W handles with 8 callers each (the same runs in
flight), and the two alternate (A B A B …) so the ratio is taken per round.

Each timed round also reports its CPU time per run (``bench.cpu``): this process's
(every thread: the event loop and the drivers' threads) and, where it can be read,
the server's for this process's connections (PostgreSQL backends, MariaDB threads;
on Redis the whole server). On a shared machine runs/s of a one-process asyncio
runtime suffers from every neighbour; CPU per run does much less.

Latency: one worker on an idle store, with the runtime's default poll interval (1 s),
and one run at a time: the time from ``Runtime.start`` to its ``RUN_FINISHED`` being
written, p50 and p99 over ``latency_runs`` runs; the store calls those runs sent,
per run. A run started in the worker's process is claimed at once (the worker's
wake-up), so no poll interval is in the figure. DBOS: the same, from
``start_workflow_async`` to ``get_result``.

DBOS runs the same workflow in a subprocess (``bench.dbos_side``) on the PostgreSQL
server, after the stores, with 8 and 64 runs in flight (1 and 8 workers' slots); it
measures its own process's CPU and its PostgreSQL backends' the same way.
"""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workflow.runtime import Capability, EventType, ExecutionStore, Runtime, StoredEvent
from workflow.runtime.worker import Worker
from workflow.store.sql import SQLStore

from .counting import Recorder, all_statements
from .cpu import CpuCost, Meter, ServerCpu, Spent, per_unit
from .report import REPO_ROOT
from .stats import Percentiles, Spread, ratios
from .targets import TARGETS, ServerMissing, Target
from .three_steps import THREE_STEPS, WORKFLOW_ID, floor_run

SLOTS = 8
"""Drive slots of one runtime (its default ``concurrency``) and floor callers per handle."""
STARTS_IN_FLIGHT = 8


@dataclass(frozen=True)
class E2ESettings:
    runs: int
    rounds: int
    workers: tuple[int, ...] = (1, 8)
    poll_s: float = 0.02
    """Worker ``poll_interval`` on stores that cannot tell a worker of new work: how
    long an idle worker waits before it polls again (a finished drive wakes it
    sooner); the default 1 s would measure idle time. Stores that tell
    (``NOTIFY_RUNNABLE``) run with the default, as deployed: their hints wake the
    workers."""
    timeout_s: float = 300.0
    latency_runs: int = 200
    """Runs, one at a time on an idle worker, for the start-to-finish latency."""


QUICK = E2ESettings(runs=16, rounds=1, latency_runs=20)
FULL = E2ESettings(runs=200, rounds=5)


@dataclass(frozen=True)
class E2EResult:
    store: str
    workers: int
    runs: int
    runtime: Spread
    """Runs per second through the runtime."""
    floor: Spread
    ratio: Spread
    """runtime / floor, per round."""
    runtime_sent_per_run: float | None = None
    floor_sent_per_run: float | None = None
    unit: str = "stmts"
    runtime_cpu: CpuCost | None = None
    """CPU seconds per run through the runtime (client, and server where measured)."""
    floor_cpu: CpuCost | None = None
    whole_server: bool = False
    """The server CPU is the whole server's (Redis), not only this process's share."""


@dataclass(frozen=True)
class LatencyResult:
    store: str
    latency: Percentiles
    """Seconds from start to the run's end being written, one run at a time."""
    sent_per_run: float | None
    unit: str


@dataclass
class DbosResult:
    rates: dict[int, Spread] = field(default_factory=dict)
    """Runs/s by runs in flight."""
    cpu: dict[int, CpuCost] = field(default_factory=dict)
    """CPU seconds per run by runs in flight: DBOS's process, its PostgreSQL backends."""
    version: str | None = None
    error: str | None = None
    latency: Percentiles | None = None
    """Seconds from ``start_workflow_async`` to ``get_result``, one run at a time."""


@dataclass
class E2EReport:
    started: datetime
    settings: E2ESettings
    results: list[E2EResult] = field(default_factory=list)
    dbos: DbosResult | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    latencies: list[LatencyResult] = field(default_factory=list)


class _Finished:
    """Counts RUN_FINISHED events (the runtime's listener) until ``n`` were written."""

    def __init__(self, n: int) -> None:
        self.n, self.seen, self.done = n, 0, asyncio.Event()

    def __call__(self, event: StoredEvent) -> None:
        if event.type == EventType.RUN_FINISHED:
            self.seen += 1
            if self.seen >= self.n:
                self.done.set()


async def runtime_round(
    handles: Sequence[ExecutionStore],
    ids: Sequence[str],
    settings: E2ESettings,
    server: ServerCpu | None = None,
) -> tuple[float, Spent]:
    """Runs/s and the round's CPU cost (from the first start to the last finish)."""
    finished = _Finished(len(ids))
    runtimes = [
        Runtime(h, [THREE_STEPS], owner=f"bench-w{k}", concurrency=SLOTS, listener=finished)
        for k, h in enumerate(handles)
    ]
    told = Capability.NOTIFY_RUNNABLE in handles[0].capabilities
    poll_s = 1.0 if told else settings.poll_s
    workers = [Worker(rt, poll_interval=poll_s, jitter=0.0) for rt in runtimes]
    gate = asyncio.Semaphore(STARTS_IN_FLIGHT)

    async def start(run_id: str) -> None:
        async with gate:
            await runtimes[0].start(WORKFLOW_ID, None, run_id=run_id)

    meter = Meter(server)
    await meter.start()
    began = time.perf_counter()
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await asyncio.gather(*(start(run_id) for run_id in ids))
        try:
            await asyncio.wait_for(finished.done.wait(), settings.timeout_s)
        except TimeoutError:
            raise RuntimeError(
                f"only {finished.seen} of {len(ids)} runs finished in {settings.timeout_s} s"
            ) from None
        elapsed = time.perf_counter() - began
        spent = await meter.stop()
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    return len(ids) / elapsed, spent


class _Ends:
    """One event per run id, set when the run's ``RUN_FINISHED`` is written."""

    def __init__(self) -> None:
        self.events: dict[str, asyncio.Event] = {}

    def expect(self, run_id: str) -> asyncio.Event:
        return self.events.setdefault(run_id, asyncio.Event())

    def __call__(self, event: StoredEvent) -> None:
        if event.type == EventType.RUN_FINISHED:
            self.expect(event.run_id).set()


async def latency_config(target: Target, settings: E2ESettings) -> LatencyResult:
    """Start-to-finish latency of single runs on an idle worker (see the module docs)."""
    store = await target.fresh()
    ends = _Ends()
    rt = Runtime(store, [THREE_STEPS], owner="bench-latency", listener=ends)
    worker = Worker(rt)  # the default poll interval: only wake-ups make it prompt
    task = asyncio.create_task(worker.run())
    samples: list[float] = []

    async def one(run_id: str) -> float:
        done = ends.expect(run_id)
        began = time.perf_counter()
        await rt.start(WORKFLOW_ID, None, run_id=run_id)
        await asyncio.wait_for(done.wait(), settings.timeout_s)
        return time.perf_counter() - began

    async def all_runs() -> None:
        for i in range(settings.latency_runs):
            samples.append(await one(f"lat-{i}"))

    try:
        for i in range(3):  # warm-up: connections, statement caches
            await one(f"lat-warm-{i}")
        sent = await _counted(target.recorder, settings.latency_runs, all_runs())
    finally:
        worker.stop()
        await asyncio.gather(task, return_exceptions=True)
    return LatencyResult(target.name, Percentiles.of(samples), sent, target.unit)


async def floor_round(
    handles: Sequence[ExecutionStore], ids: Sequence[str], server: ServerCpu | None = None
) -> tuple[float, Spent]:
    callers = [(h, k) for h in handles for k in range(SLOTS)]

    async def caller(store: ExecutionStore, owner: str, mine: Sequence[str]) -> None:
        for run_id in mine:
            await floor_run(store, run_id, owner)

    meter = Meter(server)
    await meter.start()
    began = time.perf_counter()
    await asyncio.gather(
        *(caller(h, f"floor-{j}", ids[j :: len(callers)]) for j, (h, _) in enumerate(callers))
    )
    rate = len(ids) / (time.perf_counter() - began)
    return rate, await meter.stop()


async def _counted(recorder: Recorder | None, runs: int, work: Any) -> float | None:
    if recorder is None:
        await work
        return None
    with recorder() as sent:
        await work
    return len(sent) / runs


async def run_config(target: Target, workers: int, settings: E2ESettings, tag: str) -> E2EResult:
    store = await target.fresh()
    extra: list[ExecutionStore] = []
    if target.open_handle is None:
        handles = [store] * workers
    else:
        extra = [target.open_handle() for _ in range(workers - 1)]
        handles = [store, *extra]
    # Counted on the first handle: with one worker, every call goes through it; with
    # more, on every handle (SQL), or process-wide (the Redis and SQLite recorders).
    recorder = target.recorder
    if workers > 1 and all(isinstance(h, SQLStore) for h in handles):
        sql_handles = [h for h in handles if isinstance(h, SQLStore)]
        recorder = functools.partial(all_statements, sql_handles)
    counter = iter(range(10**9))

    def ids(n: int, side: str) -> list[str]:
        return [f"{tag}-{side}-{next(counter)}" for _ in range(n)]

    try:
        # Warm-up rounds, counted: one run per slot with one worker; with more, a full
        # round (a few runs would all be created claimed by the starting worker).
        warm = SLOTS if workers == 1 else settings.runs
        rt_sent = await _counted(recorder, warm, runtime_round(handles, ids(warm, "rt"), settings))
        fl_sent = await _counted(recorder, warm, floor_round(handles, ids(warm, "fl")))
        server = target.server_cpu
        rt_rates: list[float] = []
        fl_rates: list[float] = []
        rt_cpu: list[Spent] = []
        fl_cpu: list[Spent] = []
        n = settings.runs
        for _ in range(settings.rounds):
            rate, spent = await runtime_round(handles, ids(n, "rt"), settings, server)
            rt_rates.append(rate)
            rt_cpu.append(per_unit(spent, n))
            rate, spent = await floor_round(handles, ids(n, "fl"), server)
            fl_rates.append(rate)
            fl_cpu.append(per_unit(spent, n))
    finally:
        for h in extra:
            await h.close()
    return E2EResult(
        target.name,
        workers,
        settings.runs,
        Spread.of(rt_rates),
        Spread.of(fl_rates),
        ratios(rt_rates, fl_rates),
        rt_sent,
        fl_sent,
        target.unit,
        CpuCost.of(rt_cpu),
        CpuCost.of(fl_cpu),
        server is not None and server.whole_server,
    )


def run_dbos(settings: E2ESettings) -> DbosResult:
    inflight = ",".join(str(w * SLOTS) for w in settings.workers)
    command = [
        sys.executable,
        "-m",
        "bench.dbos_side",
        f"--runs={settings.runs}",
        f"--rounds={settings.rounds}",
        f"--inflight={inflight}",
        f"--latency={settings.latency_runs}",
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=settings.timeout_s,
            check=False,
            cwd=REPO_ROOT,
        )
    except subprocess.TimeoutExpired:
        return DbosResult(error=f"DBOS did not finish in {settings.timeout_s} s")
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
    if not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return DbosResult(error=f"exit {done.returncode}: " + " | ".join(tail))
    out = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    if "error" in out:
        return DbosResult(error=str(out["error"]))
    rates = {int(k): Spread.of(v) for k, v in out["rates"].items()}
    cpu = {
        int(k): CpuCost.of(
            [(c / settings.runs, None if s is None else s / settings.runs) for c, s in v]
        )
        for k, v in out.get("cpu", {}).items()
    }
    latency = out.get("latency")
    return DbosResult(
        rates, cpu, str(out["version"]), latency=Percentiles.of(latency) if latency else None
    )


async def run_e2e(stores: Sequence[str], settings: E2ESettings) -> E2EReport:
    report = E2EReport(datetime.now(UTC), settings)
    for name in stores:
        print(f"== e2e {name}", flush=True)
        try:
            async with TARGETS[name]() as target:
                for workers in settings.workers:
                    began = time.perf_counter()
                    result = await run_config(target, workers, settings, f"e2e{workers}")
                    report.results.append(result)
                    print(
                        f"  {name:<8} {workers} worker(s): runtime {result.runtime.median:,.0f}"
                        f" runs/s {cpu_brief(result.runtime_cpu)}, floor"
                        f" {result.floor.median:,.0f} runs/s {cpu_brief(result.floor_cpu)}"
                        f"  ({time.perf_counter() - began:.1f} s)",
                        flush=True,
                    )
                lat = await latency_config(target, settings)
                report.latencies.append(lat)
                print(f"  {name:<8} latency: {latency_brief(lat.latency)}", flush=True)
        except ServerMissing as exc:
            print(f"!!! SKIPPED {name}: {exc}", flush=True)
            report.skipped[name] = str(exc)
    if "postgres" in stores and "postgres" not in report.skipped:
        print("== e2e dbos (subprocess)", flush=True)
        report.dbos = await asyncio.to_thread(run_dbos, settings)
        if report.dbos.error:
            print(f"!!! DBOS failed: {report.dbos.error}", flush=True)
        else:
            if report.dbos.latency is not None:
                print(f"  dbos     latency: {latency_brief(report.dbos.latency)}", flush=True)
            for level, spread in report.dbos.rates.items():
                print(
                    f"  dbos     {level} in flight: {spread.median:,.0f} runs/s"
                    f" {cpu_brief(report.dbos.cpu.get(level))}",
                    flush=True,
                )
    return report


def cpu_brief(cost: CpuCost | None) -> str:
    """``[cpu 1.23 + 0.98 ms/run]``: client + server medians (server ``—`` if unknown)."""
    if cost is None:
        return ""
    server = "—" if cost.server is None else f"{cost.server.median * 1e3:.2f}"
    return f"[cpu {cost.client.median * 1e3:.2f} + {server} ms/run]"


def latency_brief(p: Percentiles) -> str:
    return f"p50 {p.p50 * 1e3:.2f} ms, p99 {p.p99 * 1e3:.2f} ms ({p.n} runs, one at a time)"
