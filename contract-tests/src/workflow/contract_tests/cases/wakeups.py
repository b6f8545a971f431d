"""Contract cases: wake-up hints (``Capability.NOTIFY_RUNNABLE``, ``watch_runnable``).

A watcher opened on ``store`` must yield after each transition that makes a run
claimable when another handle (another connection: what another process would use)
makes it. Each case sets its runs up *before* it opens the watcher, so no
notification of the setup can reach it, waits for the watcher's first yield (it
listens from then on), makes one transition through the other handle and waits for
the next yield. The waits are bounded by :data:`GUARD_S` only so that a broken store
fails instead of hanging; no case asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import pytest

from workflow.runtime import (
    Capability,
    Delivered,
    ExecutionStore,
    IntervalSpec,
    Pause,
    RunnableNotifier,
    RunStatus,
    Wait,
    WaitKind,
    Yield,
)
from workflow.runtime.wakeups import watch

from ..support import T0, StoreFactory, create, paused_on, requires, started

GUARD_S = 10.0
"""Upper bound on waiting for a yield (a hang guard, not a check)."""

WatchKiller = Callable[[ExecutionStore], Awaitable[int]]
"""What the ``kill_watch_connections`` fixture returns: kills, on the server, the
listener connections of the store's watchers and returns how many it killed (0 for a
store whose watchers hold no connection)."""


async def _next(watcher: AsyncIterator[None], after: str) -> None:
    try:
        await asyncio.wait_for(anext(watcher), GUARD_S)
    except TimeoutError:
        pytest.fail(f"watch_runnable() did not yield within {GUARD_S} s after {after}")
    except StopAsyncIteration:
        pytest.fail(f"watch_runnable() ended instead of yielding after {after}")


@contextlib.asynccontextmanager
async def _watching(store: ExecutionStore) -> AsyncIterator[AsyncGenerator[None, None]]:
    """A watcher on ``store`` that listens (its first yield came), closed on exit."""
    assert isinstance(store, RunnableNotifier), f"{type(store).__name__} has no watch_runnable"
    watcher = store.watch_runnable()
    try:
        await _next(watcher, "it was opened (the first yield says it listens)")
        yield watcher
    finally:
        await watcher.aclose()


class WakeupCases:
    @pytest.fixture
    def kill_watch_connections(self) -> WatchKiller:
        pytest.fail(
            f"{type(self).__name__} declares {Capability.NOTIFY_RUNNABLE.value!r} and must "
            "override the `kill_watch_connections` fixture"
        )

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_returns_the_stores_watcher(self, store: ExecutionStore) -> None:
        watcher = watch(store)
        assert watcher is not None
        try:
            await _next(watcher, "it was opened")
        finally:
            await watcher.aclose()

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_runnable_yields_when_another_handle_creates_a_run(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        async with _watching(store) as watcher:
            await create(other)
            await _next(watcher, "another handle created a run")

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_runnable_yields_when_a_signal_queues_a_paused_run(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        await paused_on(other, Wait(WaitKind.SIGNAL, "s1", name="go"))
        async with _watching(store) as watcher:
            result = await other.deliver_signal("run-1", "sig-1", "go", None, T0 + 1)
            assert isinstance(result, Delivered), result
            await _next(watcher, "a signal queued the paused run")

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_runnable_yields_when_an_approval_queues_a_paused_run(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        await paused_on(other, Wait(WaitKind.APPROVAL, "s1", approval_id="ok"))
        async with _watching(store) as watcher:
            result = await other.deliver_approval("run-1", "ok", True, T0 + 1)
            assert isinstance(result, Delivered), result
            await _next(watcher, "an approval queued the paused run")

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_runnable_yields_when_a_timer_fires(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        await paused_on(other, Wait(WaitKind.SLEEP, "nap", wake_at=T0 + 1_000))
        async with _watching(store) as watcher:
            assert len(await other.fire_due_timers(T0 + 1_000, 10)) == 1
            await _next(watcher, "a timer fired")

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_runnable_yields_when_a_settle_yields_the_run_back(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        claim = await started(other)
        async with _watching(store) as watcher:
            run = await other.settle_run("run-1", claim.lease, 0, [], Yield(), T0 + 1)
            assert run.status is RunStatus.QUEUED
            await _next(watcher, "settle_run(Yield) released the lease early")

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_runnable_yields_when_a_pause_is_already_satisfied(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        claim = await started(other)
        await other.deliver_signal("run-1", "sig-1", "go", None, T0)  # buffered
        async with _watching(store) as watcher:
            wait = Wait(WaitKind.SIGNAL, "s1", name="go")
            run = await other.settle_run("run-1", claim.lease, 0, [], Pause(wait), T0 + 1)
            assert run.status is RunStatus.QUEUED
            await _next(watcher, "settle_run(Pause) found its signal already delivered")

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_runnable_yields_when_a_schedule_fires_a_run(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        await other.upsert_schedule("sched", "wf", IntervalSpec(60_000, anchor_ms=T0), T0)
        async with _watching(store) as watcher:
            ticks = await other.fire_due_schedules(T0 + 60_000, 10)
            assert [t.run_id for t in ticks] == [f"sched@{T0 + 60_000}"]
            await _next(watcher, "a schedule fired a run")

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_runnable_survives_its_listener_connection_being_killed(
        self,
        store: ExecutionStore,
        store_factory: StoreFactory,
        kill_watch_connections: WatchKiller,
    ) -> None:
        other = await store_factory()
        async with _watching(store) as watcher:
            if await kill_watch_connections(store):
                # Reconnected: it yields once, since something may have been missed.
                await _next(watcher, "its listener connection was killed")
            await create(other)
            await _next(watcher, "a run was created after its listener was killed")

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_watch_runnable_ends_when_the_store_is_closed(
        self, store: ExecutionStore
    ) -> None:
        assert isinstance(store, RunnableNotifier)
        watcher = store.watch_runnable()
        await _next(watcher, "it was opened")
        waiting = asyncio.ensure_future(anext(watcher))
        await store.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, GUARD_S)
        # A watcher opened on a closed store ends at once.
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(store.watch_runnable()), GUARD_S)

    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_a_closed_watcher_leaves_the_others_watching(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        async with _watching(store) as first, _watching(store) as second:
            await first.aclose()
            with pytest.raises(StopAsyncIteration):
                await anext(first)
            await create(other)
            await _next(second, "a run was created")
