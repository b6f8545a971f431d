"""The hot operations, each with the state it needs set up before a timed batch.

``prepare(env, n)`` builds (untimed) what ``n`` calls need — queued runs to claim,
paused runs with due timers, due schedules — and returns the call; the timed loop
then only awaits ``call(0) … call(n - 1)``. Time is a logical clock that moves by
1 ms per use, so leases (``LEASE_MS``) never expire and far-future wake-ups never
fall due during a run.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from workflow.runtime import (
    JSON,
    ExecutionStore,
    Finish,
    IntervalSpec,
    Lease,
    NewEvent,
    Overlap,
    Pause,
    Wait,
)
from workflow.runtime.validation import MAX_LIMIT

T = TypeVar("T")
Call = Callable[[int], Awaitable[object]]
"""One call of a batch, given its index in the batch."""

LEASE_MS = 10**9
FAR_FUTURE_MS = 10**9
BATCH_LIMIT = 10
"""``limit`` of the batch operations (claim_runnable, fire_due_*): each call takes 10."""
PAGE_SIZE = 50
INPUT: JSON = {"customer": "c-123", "items": [1, 2, 3], "note": "benchmark input"}


class Floor(enum.StrEnum):
    """Which single raw statement an operation is compared with."""

    WRITE = "update_pk"
    READ = "select_pk"
    PAGE = "select_page"


@dataclass
class Env:
    """What every preparation and call shares: the store, the clock, fresh ids."""

    store: ExecutionStore
    """The store under test: timed calls only, so it uses one connection."""
    helper: ExecutionStore | None = None
    """Another handle on the same data for the setup (default: ``store``)."""
    setup_concurrency: int = 1
    """Setup calls in flight at once on ``helper``: servers overlap round trips,
    SQLite would only queue writers on its lock."""
    time: int = 1_700_000_000_000
    ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def setup(self) -> ExecutionStore:
        return self.store if self.helper is None else self.helper

    def now(self) -> int:
        self.time += 1
        return self.time

    def new_ids(self, prefix: str, n: int) -> list[str]:
        return [f"{prefix}-{next(self.ids)}" for _ in range(n)]

    async def each(self, items: Iterable[T], setup: Callable[[T], Awaitable[object]]) -> None:
        gate = asyncio.Semaphore(self.setup_concurrency)

        async def one(item: T) -> None:
            async with gate:
                await setup(item)

        await asyncio.gather(*(one(item) for item in items))

    async def queued(self, prefix: str, n: int) -> list[str]:
        ids = self.new_ids(prefix, n)
        await self.each(
            ids, lambda run_id: self.setup.create_run(run_id, "bench", None, INPUT, self.now())
        )
        return ids

    async def claimed(self, prefix: str, n: int) -> list[tuple[str, Lease]]:
        """``n`` new runs, held by "setup". Claimed in bulk to keep setup short; older
        queued runs left by earlier batches get claimed on the way, which is harmless."""
        ids = await self.queued(prefix, n)
        wanted, leases = set(ids), dict[str, Lease]()
        while len(leases) < n:
            claims = await self.setup.claim_runnable("setup", LEASE_MS, MAX_LIMIT, self.now())
            assert claims, "setup: the runs just created were not claimable"
            leases.update((c.run.run_id, c.lease) for c in claims if c.run.run_id in wanted)
        return [(run_id, leases[run_id]) for run_id in ids]


@dataclass(frozen=True)
class HotOp:
    name: str
    floor: Floor
    does: str
    """What one call does, for the report."""
    prepare: Callable[[Env, int], Awaitable[Call]]
    setup_per_call: int = 1
    """Runs or schedules set up per call: batches are capped so that the stores stay
    small (the memory store scans all runs in claim_runnable and fire_due_*)."""


async def _create_run(env: Env, n: int) -> Call:
    ids = env.new_ids("create", n)
    return lambda i: env.store.create_run(ids[i], "bench", None, INPUT, env.now())


async def _claim_run(env: Env, n: int) -> Call:
    ids = await env.queued("claim", n)
    return lambda i: env.store.claim_run(ids[i], "worker", LEASE_MS, env.now())


async def _claim_runnable(env: Env, n: int) -> Call:
    await env.queued("runnable", n * BATCH_LIMIT)
    return lambda i: env.store.claim_runnable("worker", LEASE_MS, BATCH_LIMIT, env.now())


async def _heartbeat(env: Env, n: int) -> Call:
    [(run_id, lease)] = await env.claimed("beat", 1)
    return lambda i: env.store.heartbeat(run_id, lease, LEASE_MS, env.now())


def _append(size: int) -> Callable[[Env, int], Awaitable[Call]]:
    async def prepare(env: Env, n: int) -> Call:
        [(run_id, lease)] = await env.claimed("append", 1)

        def call(i: int) -> Awaitable[object]:
            events = [NewEvent("step_done", {"i": i, "j": j}, f"s{i}") for j in range(size)]
            return env.store.append_events(run_id, lease, i * size, events, env.now())

        return call

    return prepare


async def _settle_run(env: Env, n: int) -> Call:
    held = await env.claimed("settle", n)

    def call(i: int) -> Awaitable[object]:
        run_id, lease = held[i]
        now = env.now()
        wait = Wait.sleep("nap", now + FAR_FUTURE_MS)
        return env.store.settle_run(
            run_id, lease, 0, [NewEvent("sleeping", {"ms": FAR_FUTURE_MS}, "nap")], Pause(wait), now
        )

    return call


async def _paused(env: Env, prefix: str, n: int, wait: Callable[[int], Wait]) -> list[str]:
    held = await env.claimed(prefix, n)

    def pause(item: tuple[str, Lease]) -> Awaitable[object]:
        now = env.now()
        return env.setup.settle_run(item[0], item[1], 0, [], Pause(wait(now)), now)

    await env.each(held, pause)
    return [run_id for run_id, _ in held]


async def _deliver_signal(env: Env, n: int) -> Call:
    ids = await _paused(env, "signal", n, lambda now: Wait.signal("approve", "go"))
    return lambda i: env.store.deliver_signal(ids[i], f"sig-{i}", "go", {"ok": True}, env.now())


async def _fire_due_timers(env: Env, n: int) -> Call:
    # Due one ms after they were armed: every call of the batch finds BATCH_LIMIT due.
    await _paused(env, "timer", n * BATCH_LIMIT, lambda now: Wait.sleep("nap", now + 1))
    return lambda i: env.store.fire_due_timers(env.now(), BATCH_LIMIT)


async def _fire_due_schedules(env: Env, n: int) -> Call:
    # First tick one ms from now, the next one decades later: each fires exactly once.
    def declare(schedule_id: str) -> Awaitable[object]:
        now = env.now()
        spec = IntervalSpec(every_ms=FAR_FUTURE_MS * 1000, anchor_ms=now + 1)
        return env.setup.upsert_schedule(
            schedule_id, "bench", spec, now, overlap=Overlap.ALLOW, input=INPUT
        )

    await env.each(env.new_ids("sched", n * BATCH_LIMIT), declare)
    return lambda i: env.store.fire_due_schedules(env.now(), BATCH_LIMIT)


async def _list_runs(env: Env, n: int) -> Call:
    page = await env.setup.list_runs(limit=PAGE_SIZE)
    if len(page.items) < PAGE_SIZE:
        await env.queued("listed", PAGE_SIZE * 2)
    return lambda i: env.store.list_runs(limit=PAGE_SIZE)


async def _load_run(env: Env, n: int) -> Call:
    [(run_id, lease)] = await env.claimed("load", 1)
    await env.setup.settle_run(run_id, lease, 0, [], Finish({"total": 42}), env.now())
    return lambda i: env.store.load_run(run_id)


HOT_OPS: tuple[HotOp, ...] = (
    HotOp("create_run", Floor.WRITE, "insert a queued run", _create_run),
    HotOp("claim_run", Floor.WRITE, "claim one queued run by id", _claim_run),
    HotOp(
        "claim_runnable",
        Floor.WRITE,
        f"claim {BATCH_LIMIT} queued runs",
        _claim_runnable,
        BATCH_LIMIT,
    ),
    HotOp("heartbeat", Floor.WRITE, "extend a held lease", _heartbeat),
    HotOp("append_events_1", Floor.WRITE, "append 1 event", _append(1)),
    HotOp("append_events_10", Floor.WRITE, "append 10 events", _append(10)),
    HotOp("settle_run", Floor.WRITE, "1 event + Pause(sleep)", _settle_run),
    HotOp("deliver_signal", Floor.WRITE, "signal wakes a paused run", _deliver_signal),
    HotOp(
        "fire_due_timers", Floor.WRITE, f"{BATCH_LIMIT} due timers", _fire_due_timers, BATCH_LIMIT
    ),
    HotOp(
        "fire_due_schedules",
        Floor.WRITE,
        f"{BATCH_LIMIT} due schedules",
        _fire_due_schedules,
        BATCH_LIMIT,
    ),
    HotOp("list_runs", Floor.PAGE, f"newest page of {PAGE_SIZE}", _list_runs),
    HotOp("load_run", Floor.READ, "one run by id", _load_run),
)
