"""The worker wakes for work without waiting for its next poll: a run this process
starts, a signal or approval this process delivers, a timer of a run it paused, a
schedule's tick. Every worker here polls once a minute, so each test would hang (until
its guard timeout fails it) if the wake-up were missing; the store counts the calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import pytest

from workflow.runtime import (
    JSON,
    Capability,
    Claimed,
    Context,
    InboxEntry,
    InMemoryStore,
    RunStatus,
    Runtime,
    ScheduleTick,
    every,
    workflow,
)
from workflow.runtime.worker import Worker

GUARD_S = 10.0
"""A failure guard only: every wait below ends long before it unless a wake-up is lost."""

MINUTE = 60.0


class CountingStore(InMemoryStore):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.timer_firings = 0
        self.schedule_firings = 0
        self.claims = 0

    async def fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        self.timer_firings += 1
        return await super().fire_due_timers(now, limit)

    async def fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        self.schedule_firings += 1
        return await super().fire_due_schedules(now, limit)

    async def claim_runnable(
        self,
        owner: str,
        lease_ms: int,
        limit: int,
        now: int,
        *,
        with_history: bool = False,
        queues: Collection[str] | None = None,
    ) -> list[Claimed]:
        self.claims += 1
        return await super().claim_runnable(
            owner, lease_ms, limit, now, with_history=with_history, queues=queues
        )


@workflow("echo")
async def echo(ctx: Context, input: JSON) -> JSON:
    return await ctx.step("echo", lambda: input)


@workflow("waits")
async def waits(ctx: Context, _: JSON) -> JSON:
    return await ctx.wait_for_signal("go")


@workflow("naps")
async def naps(ctx: Context, _: JSON) -> JSON:
    await ctx.sleep(0.05)
    return "rested"


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Return once ``check()`` holds; fail after the guard timeout."""
    for _ in range(int(GUARD_S / 0.005)):
        if await check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not reached in {GUARD_S} s")


async def _swept(w: Worker) -> bool:
    return w.sweeps >= 1


async def _settled_in(w: Worker) -> bool:
    # Listening to the store's hints, and past the poll the first hint woke (each
    # watcher yields once when it starts listening).
    return w.listening and w.sweeps >= 2


async def _settled(rt: Runtime, run_id: str, status: RunStatus) -> None:
    async def reached() -> bool:
        run = await rt.store.load_run(run_id)
        return run is not None and run.status is status

    await _until(reached)


@pytest.fixture
async def worker() -> AsyncIterator[tuple[Runtime, Worker, CountingStore]]:
    store = CountingStore()
    rt = Runtime(store, [echo, waits, naps])
    w = Worker(rt, poll_interval=MINUTE, jitter=0)
    task = asyncio.create_task(w.run())
    # The first poll (at start) fires and finds nothing; from then on only wake-ups
    # bring the worker back within the minute.
    await _until(lambda: _settled_in(w))
    try:
        yield rt, w, store
    finally:
        w.stop()
        await asyncio.wait_for(task, GUARD_S)


class PollingStore(CountingStore):
    """The counting store as a store that can neither claim at create nor tell of
    others' work: runs are created queued, and the worker polls for them."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities - {Capability.CLAIM_ON_CREATE, Capability.NOTIFY_RUNNABLE}


async def test_a_run_started_in_the_workers_process_is_created_claimed_and_driven_there(
    worker: tuple[Runtime, Worker, CountingStore],
) -> None:
    rt, w, store = worker
    claims = store.claims
    for i in range(3):
        run = await rt.start("echo", i, run_id=f"r{i}")
        assert run.status is RunStatus.RUNNING
        assert run.lease is not None
        assert run.lease.owner == rt.owner
        assert await rt.result(f"r{i}", wait=GUARD_S, poll=0.005) == i
    assert store.timer_firings == 1  # no periodic firing meanwhile
    # Created claimed, and no refill when a drive ends: the store tells of new work
    # (NOTIFY_RUNNABLE) and told of none.
    assert store.claims == claims
    assert w.reserved == 0


async def test_without_claim_on_create_a_started_run_is_claimed_at_once() -> None:
    store = PollingStore()
    rt = Runtime(store, [echo])
    w = Worker(rt, poll_interval=MINUTE, jitter=0)
    task = asyncio.create_task(w.run())
    try:
        await _until(lambda: _swept(w))
        for i in range(3):
            run = await rt.start("echo", i, run_id=f"r{i}")
            assert run.status is RunStatus.QUEUED
            assert await rt.result(f"r{i}", wait=GUARD_S, poll=0.005) == i
    finally:
        w.stop()
        await asyncio.wait_for(task, GUARD_S)
    # The first poll's claim, then per run: the claim its start woke (one run, fewer
    # than asked: no second claim at once) and the refill when its drive ended. The
    # refill and the next start's wake-up may fall into one poll (the test starts the
    # next run as soon as it sees the result, which may be before the worker's refill):
    # so at least one claim per run and at most two, never a second claim at once.
    assert 1 + 3 <= store.claims <= 1 + 3 * 2


async def test_a_start_with_every_slot_busy_leaves_the_run_queued_for_a_claim() -> None:
    release = asyncio.Event()

    @workflow("blocks")
    async def blocks(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("wait", release.wait)

    store = CountingStore()
    rt = Runtime(store, [blocks, echo], concurrency=1)
    w = Worker(rt, poll_interval=MINUTE, jitter=0)
    task = asyncio.create_task(w.run())
    try:
        await _until(lambda: _swept(w))
        busy = await rt.start("blocks", None, run_id="busy")
        assert busy.status is RunStatus.RUNNING
        queued = await rt.start("echo", "later", run_id="later")
        assert queued.status is RunStatus.QUEUED  # no free slot: created queued
        release.set()
        assert await rt.result("later", wait=GUARD_S, poll=0.005) == "later"
    finally:
        release.set()
        w.stop()
        await asyncio.wait_for(task, GUARD_S)


async def test_a_signal_delivered_in_the_workers_process_resumes_the_run_at_once(
    worker: tuple[Runtime, Worker, CountingStore],
) -> None:
    rt, _, _ = worker
    await rt.start("waits", None, run_id="w")
    await _settled(rt, "w", RunStatus.PAUSED)
    await rt.signal("w", "go", "now")
    assert await rt.result("w", wait=GUARD_S, poll=0.005) == "now"


async def test_a_timer_of_a_run_the_worker_paused_fires_when_due_not_at_the_next_poll(
    worker: tuple[Runtime, Worker, CountingStore],
) -> None:
    rt, _, store = worker
    await rt.start("naps", None, run_id="n")
    assert await rt.result("n", wait=GUARD_S, poll=0.005) == "rested"
    assert store.timer_firings == 2  # the start's firing, then the one the nap asked for


async def test_a_schedules_ticks_fire_when_due_not_at_the_next_poll() -> None:
    @workflow("ticker", schedules=[every(0.05)])
    async def ticker(ctx: Context, _: JSON) -> JSON:
        return "tick"

    store = CountingStore()
    rt = Runtime(store, [ticker])
    w = Worker(rt, poll_interval=MINUTE, jitter=0)
    task = asyncio.create_task(w.run())
    try:

        async def three_ticks_ran() -> bool:
            return len((await store.list_runs(status=RunStatus.FINISHED)).items) >= 3

        await _until(three_ticks_ran)
    finally:
        w.stop()
        await asyncio.wait_for(task, GUARD_S)
    assert store.schedule_firings >= 3


async def test_a_stopped_worker_no_longer_listens_to_its_runtime() -> None:
    store = CountingStore()
    rt = Runtime(store, [echo])
    w = Worker(rt, poll_interval=MINUTE, jitter=0)
    task = asyncio.create_task(w.run())
    await _until(lambda: _swept(w))
    w.stop()
    await asyncio.wait_for(task, GUARD_S)
    claims = store.claims
    await rt.start("echo", 1, run_id="after")
    await asyncio.sleep(0)
    assert store.claims == claims
    run = await store.load_run("after")
    assert run is not None
    assert run.status is RunStatus.QUEUED


async def test_a_run_started_elsewhere_wakes_the_worker_through_the_stores_hint(
    worker: tuple[Runtime, Worker, CountingStore],
) -> None:
    # Another process's runtime (another handle on the same data, no worker of its
    # own): the run is created queued, and the store's hint (NOTIFY_RUNNABLE) wakes
    # the worker long before its next poll.
    rt, w, store = worker
    assert w.listening
    elsewhere = Runtime(store.handle(), [echo])
    run = await elsewhere.start("echo", "far", run_id="far")
    assert run.status is RunStatus.QUEUED
    assert await rt.result("far", wait=GUARD_S, poll=0.005) == "far"
