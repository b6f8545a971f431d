"""Eight workers in one process share one listener and take its hints in turns.

Every worker here has its own Runtime and its own handle on one in-memory dataset
(what eight workers on eight store handles of one URL are), and polls once a minute:
only the store's hints bring a worker back sooner. Counts, not times: the claims the
hints cause, the sweeps of workers with no free slot, and that every run ends (a test
that lost a wake-up would wait for the next poll, a minute, and its guard fails it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from workflow.runtime import (
    JSON,
    Claimed,
    Context,
    InMemoryStore,
    RunStatus,
    Runtime,
    workflow,
)
from workflow.runtime.wakeups import Hub
from workflow.runtime.worker import Worker

GUARD_S = 10.0
"""A failure guard only: every wait below ends long before it unless a wake-up is lost."""

MINUTE = 60.0
T = TypeVar("T")
WORKERS = 8
T0 = 1_700_000_000_000


class Claims:
    """Every claim_runnable of every handle on the dataset: how many, and what each got."""

    def __init__(self) -> None:
        self.got: list[int] = []

    @property
    def empty(self) -> int:
        return self.got.count(0)


class CountingStore(InMemoryStore):
    claims: Claims

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
        got = await super().claim_runnable(
            owner, lease_ms, limit, now, with_history=with_history, queues=queues
        )
        self.claims.got.append(len(got))
        return got


def counting_store() -> CountingStore:
    # A class per test: its handles (type(self)(...)) share the counter.
    cls = type("Counting", (CountingStore,), {"claims": Claims()})
    store: CountingStore = cls()
    return store


@workflow("echo")
async def echo(ctx: Context, input: JSON) -> JSON:
    return await ctx.step("echo", lambda: input)


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(int(GUARD_S / 0.005)):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not reached in {GUARD_S} s")


class PollingWorker(Worker):
    """A worker that says whether a poll of it is running. Its sweep count goes up when
    the poll returns to the run loop, a few loop turns after its claim told the hub;
    counted around the await the loop makes, ``polling`` drops to 0 in the same turn as
    the count goes up."""

    polling: int = 0

    async def _until_stopped(self, call: Awaitable[T]) -> T:
        self.polling += 1
        try:
            return await super()._until_stopped(call)
        finally:
            self.polling -= 1


@asynccontextmanager
async def workers(
    store: CountingStore, workflows: list[Any], concurrency: int, hint_delay: float = 0.002
) -> AsyncIterator[tuple[list[PollingWorker], Hub]]:
    """``WORKERS`` workers on handles of ``store``, listening and past their start."""
    ws = [
        PollingWorker(
            Runtime(store.handle(), workflows, concurrency=concurrency),
            poll_interval=MINUTE,
            jitter=0,
            hint_delay=hint_delay,
        )
        for _ in range(WORKERS)
    ]
    tasks = [asyncio.create_task(w.run()) for w in ws]
    hub = None

    def settled() -> bool:
        nonlocal hub
        hub = Hub.of(store._data)
        return (
            hub is not None
            and all(w.listening and w.sweeps >= 1 for w in ws)
            and hub.hints <= hub.served  # the (re)subscription's hint was served
        )

    try:
        await _until(settled)
        assert hub is not None
        yield ws, hub
    finally:
        for w in ws:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), GUARD_S)


def _granted(w: Worker) -> bool:
    """Whether the hub handed ``w`` the process's next claim."""
    return w._turns is not None and w._turns.granted


async def _finished(store: InMemoryStore, n: int) -> None:
    async def count() -> int:
        return len((await store.list_runs(status=RunStatus.FINISHED, limit=500)).items)

    for _ in range(int(GUARD_S / 0.005)):
        if await count() >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{await count()} of {n} runs finished in {GUARD_S} s")


async def test_eight_workers_share_one_listener() -> None:
    store = counting_store()
    async with workers(store, [echo], concurrency=8) as (_, hub):
        assert hub.sessions == 1  # one subscription for the eight handles' watchers
        assert len(hub._claimers) == WORKERS
    assert Hub.of(store._data) is None  # the last worker out closed it


async def test_hints_of_runs_made_together_lead_to_few_claims_not_one_per_worker() -> None:
    store = counting_store()
    other = store.handle()  # another process's handle: creates queued runs, one hint each
    runs = 20
    async with workers(store, [echo], concurrency=8) as (_, hub):
        before = len(store.claims.got)
        hints = hub.hints
        for i in range(runs):  # no await yields to the loop in between: 20 hints at once
            await other.create_run(f"r{i}", "echo", "1", i, T0)
        assert hub.hints == hints + runs
        await _finished(store, runs)
        claims = store.claims.got[before:]
    # One worker claims 8 (full: there may be more), hands the turn on, the next 8, the
    # last 4 (short: all served). Eight workers each claiming on each hint (the herd a
    # NOTIFY brings) would send at least eight, most of them empty.
    assert sum(claims) == runs
    assert len(claims) <= runs // 8 + 2, claims
    assert claims.count(0) <= 1, claims


async def test_busy_workers_are_not_woken_by_hints_and_a_freed_slot_claims_the_waiting_run() -> (
    None
):
    release = asyncio.Event()

    @workflow("blocks")
    async def blocks(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("wait", release.wait)

    store = counting_store()
    other = store.handle()
    # hint_delay=0: a granted turn wakes its worker at once, so no wake is pending
    # once no worker holds the turn.
    async with workers(store, [blocks, echo], concurrency=1, hint_delay=0) as (ws, hub):
        for i in range(WORKERS):
            await other.create_run(f"busy{i}", "blocks", "1", None, T0)

        async def all_busy() -> bool:
            runs = (await store.list_runs(status=RunStatus.RUNNING)).items
            return len(runs) == WORKERS

        for _ in range(int(GUARD_S / 0.005)):
            if await all_busy():
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError("the eight blocking runs were not all claimed")
        # The last claim came back full: the hub owes a claim to the next free slot.
        # No poll running: the sweep counts are final (a poll that told the hub its
        # claim still has to return before its worker counts the sweep).
        await _until(lambda: hub._holder is None and not any(w.polling for w in ws))
        claims, sweeps = len(store.claims.got), [w.sweeps for w in ws]
        hints = hub.hints
        for i in range(5):
            await other.create_run(f"later{i}", "echo", "1", i, T0)
        assert hub.hints == hints + 5
        for _ in range(20):
            await asyncio.sleep(0)
        # Every slot busy: no worker was woken (no sweep), nothing claimed.
        assert [w.sweeps for w in ws] == sweeps
        assert len(store.claims.got) == claims
        # The hints wait for a free slot: the first one to free claims them (no lost
        # wake-up; the next poll is a minute away).
        release.set()
        await _finished(store, WORKERS + 5)


async def test_a_worker_that_stops_holding_the_turn_hands_it_on() -> None:
    release = asyncio.Event()

    @workflow("blocks")
    async def blocks(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("wait", release.wait)

    store = counting_store()
    other = store.handle()
    async with workers(store, [blocks, echo], concurrency=8) as (ws, hub):
        # The first worker drives a run that holds up its stop's grace period ...
        rt = ws[0].runtime
        await rt.start("blocks", None, run_id="slow")
        # ... gets the next turn, and stops before it claims.
        ws[0].hint_delay = MINUTE
        hub._next = 0
        await other.create_run("r", "echo", "1", None, T0)
        assert _granted(ws[0])
        ws[0].stop()
        assert not _granted(ws[0])
        # Another worker claims and finishes the run while the first one still waits.
        assert await rt.result("r", wait=GUARD_S, poll=0.005) is None
        assert not release.is_set()
        release.set()


async def test_a_start_is_created_claimed_for_any_worker_of_the_process_with_a_free_slot() -> None:
    release = asyncio.Event()

    @workflow("blocks")
    async def blocks(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("wait", release.wait)

    store = counting_store()
    async with workers(store, [blocks, echo], concurrency=2) as (ws, _):
        claims = len(store.claims.got)
        starter = ws[0].runtime
        owners = set()
        for i in range(WORKERS * 2):
            run = await starter.start("blocks", None, run_id=f"b{i}")
            # Created claimed (one store call): the starter's own worker's two slots,
            # then the other workers' of this process.
            assert run.status is RunStatus.RUNNING
            assert run.lease is not None
            owners.add(run.lease.owner)
        assert owners == {w.runtime.owner for w in ws}
        full = await starter.start("echo", None, run_id="queued")
        assert full.status is RunStatus.QUEUED  # no free slot in the process
        assert len(store.claims.got) == claims  # no claim: every start was created claimed
        release.set()
        await _finished(store, WORKERS * 2 + 1)


async def test_a_start_is_created_claimed_only_for_a_worker_that_serves_its_queue() -> None:
    store = counting_store()
    ws = [
        Worker(Runtime(store.handle(), [echo], queues=queues), poll_interval=MINUTE, jitter=0)
        for queues in (["a"], ["b"])
    ]
    tasks = [asyncio.create_task(w.run()) for w in ws]
    try:
        await _until(lambda: all(w.listening and w.sweeps >= 1 for w in ws))
        starter, serves_b = ws[0].runtime, ws[1].runtime
        own = await starter.start("echo", 1, run_id="in-a", queue="a")
        assert own.lease is not None
        assert own.lease.owner == starter.owner
        lent = await starter.start("echo", 2, run_id="in-b", queue="b")
        # The starter's worker does not serve "b": the run goes to the worker that does.
        assert lent.lease is not None
        assert lent.lease.owner == serves_b.owner
        nobody = await starter.start("echo", 3, run_id="in-c", queue="c")
        assert nobody.status is RunStatus.QUEUED  # no worker of the process serves "c"
        await _finished(store, 2)
        left = await store.load_run("in-c")
        assert left is not None
        assert left.status is RunStatus.QUEUED
    finally:
        for w in ws:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), GUARD_S)
