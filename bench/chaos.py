"""``python -m bench.chaos --store postgres``: workers under cycling network faults
(issue 18). Not run in CI: it takes minutes and its figures depend on the machine.

Per store: ``--workers`` runtimes in this process, each with its own store handle
behind its own :class:`~workflow.contract_tests.faults.FaultProxy`, run ``--runs``
runs of a 4-step workflow with durable sleeps between the steps, while every proxy
cycles through faults (each phase ``--phase`` seconds, workers out of step):
latency 50±10 ms, connection resets of requests, replies dropped after the server ran
the statement, a black hole that heals with its connections cut, and a black hole that
heals letting its held connections pass (half-open, then back). Every step execution
is noted (its run, step and when it began), every recorded completion too (the
runtime's listener), and the figures printed at the end:

* runs finished / started;
* re-runs after recorded completion: a step that began after its completion had been
  recorded (**must be 0**);
* extra executions per 1,000 runs: step executions beyond one per step (the
  at-least-once cost of the faults);
* time to detect a black hole: how long a store call on a black-holed connection
  takes to fail (a probe handle per proxy; it is the store's ``operation_timeout``);
* recovery time: from a heal to that worker's next recorded step completion.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from workflow.contract_tests.faults import FaultProxy, fault_proxy
from workflow.runtime import (
    Context,
    EventType,
    ExecutionStore,
    Runtime,
    StoredEvent,
    StoreUnavailableError,
    current_step,
    workflow,
)
from workflow.runtime.worker import Worker

URLS = {
    "postgres": os.environ.get("BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test"),
    "mysql": os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
    "redis": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
}
PHASES = ("latency", "reset_requests", "drop_replies", "black_hole_cut", "black_hole_pass")
STEPS = 4
STEP_S = 0.5
"""How long each step runs (``--step``)."""
NAP_S = 1.0
"""The durable sleep between two steps."""


@dataclass
class Tally:
    began: list[tuple[str, str, float]] = field(default_factory=list)
    recorded: dict[tuple[str, str], float] = field(default_factory=dict)
    recorded_by: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    detect_s: list[float] = field(default_factory=list)
    recover_s: list[float] = field(default_factory=list)


TALLY = Tally()


async def chaos_step(i: int) -> int:
    call = current_step()
    TALLY.began.append((call.run_id, call.step_id, time.monotonic()))
    await asyncio.sleep(STEP_S)
    return i


@workflow("chaos")
async def chaos(ctx: Context, _: Any) -> int:
    total = 0
    for i in range(STEPS):
        total += await ctx.step(f"s{i}", chaos_step, i)
        if i < STEPS - 1:
            await ctx.sleep(NAP_S, step_id=f"nap{i}")
    return total


def listener_for(owner: str) -> Any:
    def on_event(event: StoredEvent) -> None:
        if event.type is EventType.STEP_COMPLETED and event.step_id is not None:
            now = time.monotonic()
            TALLY.recorded.setdefault((event.run_id, event.step_id), now)
            TALLY.recorded_by[owner].append(now)

    return on_event


@contextlib.asynccontextmanager
async def storage(kind: str) -> AsyncIterator[dict[str, Any]]:
    """Where the runs live: a new schema/database/prefix, removed afterwards."""
    name = f"chaos_{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        yield {"prefix": f"{name}:"}
        from redis.asyncio import Redis

        client = Redis.from_url(URLS["redis"])
        keys = [k async for k in client.scan_iter(match=f"{name}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
        await client.aclose()
        return
    yield {"schema": name}
    import sqlalchemy as sa

    driver = "postgresql+psycopg" if kind == "postgres" else "mysql+pymysql"
    drop = (
        "DROP SCHEMA IF EXISTS {} CASCADE" if kind == "postgres" else "DROP DATABASE IF EXISTS {}"
    )
    engine = sa.create_engine(sa.make_url(URLS[kind]).set(drivername=driver))
    with engine.begin() as conn:
        conn.exec_driver_sql(drop.format(name))
    engine.dispose()


def open_store(kind: str, port: int | None, where: dict[str, Any], bound: float) -> ExecutionStore:
    """A handle on the server (``port``: through the proxy listening there)."""
    url = URLS[kind]
    if port is not None:
        parts = urlsplit(url)
        netloc = f"{parts.netloc.rpartition('@')[0]}@" if "@" in parts.netloc else ""
        url = parts._replace(netloc=f"{netloc}127.0.0.1:{port}").geturl()
    if kind == "postgres":
        from workflow.store.postgres.store import PostgresStore

        return PostgresStore.from_url(url, operation_timeout=bound, **where)
    if kind == "mysql":
        from workflow.store.mysql.store import MySQLStore

        return MySQLStore.from_url(url, operation_timeout=bound, **where)
    from workflow.store.redis.store import RedisStore

    return RedisStore.from_url(url, operation_timeout=bound, **where)


def _server_port(kind: str) -> int:
    return {"postgres": 5432, "mysql": 3306, "redis": 6379}[kind]


async def fault_cycle(
    proxy: FaultProxy, probe: ExecutionStore, owner: str, phase_s: float, offset: int
) -> None:
    """Cycle ``proxy`` through the faults, ``phase_s`` seconds each, a clean phase
    between two faults."""
    for n in itertools.count(offset):
        fault = PHASES[n % len(PHASES)]
        proxy.latency, proxy.jitter = (0.04, 0.02) if fault == "latency" else (0.0, 0.0)
        if fault in ("reset_requests", "drop_replies"):
            end = time.monotonic() + phase_s
            while time.monotonic() < end:
                proxy.set_mode(
                    "reset_requests" if fault == "reset_requests" else "drop_replies"
                )  # one-shot: staged again until the phase ends
                await asyncio.sleep(0.2)
            proxy.set_mode("pass")
        elif fault.startswith("black_hole"):
            proxy.set_mode("black_hole")
            began = time.monotonic()
            with contextlib.suppress(StoreUnavailableError):
                await probe.load_run("absent")
            TALLY.detect_s.append(time.monotonic() - began)
            await asyncio.sleep(max(0.0, phase_s - (time.monotonic() - began)))
            proxy.heal(cut=fault == "black_hole_cut")
            healed = time.monotonic()
            asyncio.get_running_loop().create_task(_recovery(owner, healed))
        else:
            await asyncio.sleep(phase_s)
        proxy.latency = proxy.jitter = 0.0
        await asyncio.sleep(phase_s)  # a clean phase


async def _recovery(owner: str, healed: float) -> None:
    for _ in range(6000):
        if any(t > healed for t in TALLY.recorded_by[owner]):
            TALLY.recover_s.append(min(t for t in TALLY.recorded_by[owner] if t > healed) - healed)
            return
        await asyncio.sleep(0.01)


async def run(
    kind: str,
    runs: int,
    workers: int,
    phase_s: float,
    bound: float,
    lease_ms: int,
    timeout_s: float,
) -> dict[str, Any]:
    global TALLY
    TALLY = Tally()
    async with storage(kind) as where, contextlib.AsyncExitStack() as stack:
        admin: Any = open_store(kind, None, where, bound)
        stack.push_async_callback(admin.close)
        await admin.create_schema()
        starter = Runtime(admin, [chaos])
        ids = [f"c{n:05d}" for n in range(runs)]
        for run_id in ids:
            await starter.start("chaos", None, run_id=run_id)
        proxies: list[FaultProxy] = []
        tasks: list[asyncio.Task[Any]] = []
        worker_objs: list[Worker] = []
        for w in range(workers):
            proxy = await stack.enter_async_context(fault_proxy("127.0.0.1", _server_port(kind)))
            proxies.append(proxy)
            store = open_store(kind, proxy.port, where, bound)
            probe = open_store(kind, proxy.port, where, bound)
            stack.push_async_callback(store.close)
            stack.push_async_callback(probe.close)
            owner = f"chaos-w{w}"
            rt = Runtime(
                store, [chaos], owner=owner, lease_ms=lease_ms, listener=listener_for(owner)
            )
            worker = Worker(rt, poll_interval=0.05, jitter=0.2, grace_period=5)
            worker_objs.append(worker)
            tasks.append(asyncio.create_task(worker.run()))
            tasks.append(asyncio.create_task(fault_cycle(proxy, probe, owner, phase_s, w * 2)))
        began = time.monotonic()
        finished = 0
        while time.monotonic() - began < timeout_s:
            await asyncio.sleep(1.0)
            finished = 0
            for run_id in ids:
                got = await admin.load_run(run_id)
                finished += got is not None and got.status.value == "finished"
            if finished == runs:
                break
        elapsed = time.monotonic() - began
        for worker in worker_objs:
            worker.stop()
        for task in tasks:
            if not task.done() and task.get_coro().__name__ == "fault_cycle":  # type: ignore[union-attr]
                task.cancel()
        for proxy in proxies:
            proxy.heal(cut=True)
        await asyncio.gather(*tasks, return_exceptions=True)
    reruns = sum(
        1
        for run_id, step_id, t in TALLY.began
        if (run_id, step_id) in TALLY.recorded and t > TALLY.recorded[(run_id, step_id)]
    )
    executions = len(TALLY.began)
    return {
        "store": kind,
        "runs_started": runs,
        "runs_finished": finished,
        "seconds": round(elapsed, 1),
        "reruns_after_recorded_completion": reruns,
        "extra_executions_per_1000_runs": round(
            (executions - finished * STEPS) * 1000 / max(1, runs), 1
        ),
        "black_hole_detect_s": _spread(TALLY.detect_s),
        "recovery_s": _spread(TALLY.recover_s),
        "operation_timeout_s": bound,
        "lease_ms": lease_ms,
    }


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "n": len(values),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--store", action="append", choices=sorted(URLS), help="repeatable; default all three"
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--step", type=float, default=STEP_S, help="seconds each step runs")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--phase", type=float, default=3.0, help="seconds per fault phase")
    parser.add_argument("--operation-timeout", type=float, default=2.0)
    parser.add_argument("--lease-ms", type=int, default=6000)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    globals()["STEP_S"] = args.step  # read by the step as it runs
    for kind in args.store or sorted(URLS):
        result = asyncio.run(
            run(
                kind,
                args.runs,
                args.workers,
                args.phase,
                args.operation_timeout,
                args.lease_ms,
                args.timeout,
            )
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
