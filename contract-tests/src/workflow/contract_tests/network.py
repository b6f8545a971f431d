"""Network-fault checks every server store's failure tests run through a
:class:`~workflow.contract_tests.faults.FaultProxy` (PostgreSQL, MySQL, Redis).

Each takes a store whose URL points at the proxy, opened with a small
``operation_timeout`` (the store's bound is what ends the call: nothing here waits on a
clock of its own), and asserts what the issue of half-open connections asks for: a call
in a black hole fails with :class:`StoreUnavailableError` naming the operation and the
bound; the connection it used is never reused; the store works again once the network
heals. The runtime scenarios check the worker's local lease deadline: a partitioned
worker's step is cancelled once its lease is gone, and nothing more is written.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from workflow.runtime import Context, Runtime, workflow
from workflow.runtime.contract import ExecutionStore
from workflow.runtime.driver import DriveOutcome, DriveReport
from workflow.runtime.errors import LogConflictError, StoreUnavailableError
from workflow.runtime.records import NewEvent, RunStatus
from workflow.runtime.results import Claimed, Created
from workflow.runtime.worker import Worker

from .faults import FaultProxy

T0 = 1_700_000_000_000


async def black_holed_call_fails_within_its_bound(
    store: ExecutionStore, proxy: FaultProxy, bound: float, run_id: str
) -> None:
    """A claimed run's lease renewal sent into a black hole raises
    ``StoreUnavailableError`` naming "renew a lease" and the bound; after the network
    heals (the held connection passes again: a late reply could arrive on it) the next
    call runs on a new connection and sees the renewal either done or not, never an
    answer meant for another call."""
    assert isinstance(await store.create_run(run_id, "wf", None, None, T0), Created)
    claimed = await store.claim_run(run_id, "worker", 60_000, T0)
    assert isinstance(claimed, Claimed)
    before = proxy.connections
    proxy.set_mode("black_hole")
    with pytest.raises(StoreUnavailableError) as caught:
        await store.heartbeat(run_id, claimed.lease, 60_000, T0 + 1)
    error = caught.value
    assert proxy.fired.is_set(), "the call never reached the black hole"
    assert error.retryable
    assert "renew a lease" in str(error), str(error)
    assert f"operation_timeout={bound:g} s" in str(error), str(error)
    proxy.heal()
    loaded = await store.load_run(run_id)
    assert loaded is not None
    assert loaded.run_id == run_id
    assert loaded.lease is not None
    assert loaded.lease.expires_at in (T0 + 60_000, T0 + 1 + 60_000)
    # The timed-out connection was discarded: the read went out on a new one.
    assert proxy.connections > before, "the timed-out connection was reused"


async def black_hole_on_connect_fails_within_its_bound(
    store: ExecutionStore, proxy: FaultProxy, bound: float
) -> None:
    """A first call whose connection is opened into a black hole (the kernel accepts,
    nothing answers) fails within the bound too, then works once the network heals
    with the stale connections cut."""
    proxy.set_mode("black_hole")
    with pytest.raises(StoreUnavailableError) as caught:
        await store.load_run("absent")
    assert caught.value.retryable
    assert "read a run" in str(caught.value), str(caught.value)
    assert f"operation_timeout={bound:g} s" in str(caught.value), str(caught.value)
    proxy.heal(cut=True)
    assert await store.load_run("absent") is None


async def cut_idle_connections_are_replaced(store: ExecutionStore, proxy: FaultProxy) -> None:
    """Every pooled connection is cut while idle (a reset each: a failover, a NAT or
    load balancer that forgot them): the next calls open new connections and succeed,
    none fails on a dead pooled one (each such failure would count as a failed poll
    and back the worker off)."""
    # Several connections in the pool: concurrent calls each take one.
    await asyncio.gather(*(store.load_run(f"absent-{i}") for i in range(4)))
    before = proxy.connections
    await proxy.cut_all()
    for i in range(8):
        assert await store.load_run(f"absent-{i}") is None
    assert proxy.connections > before


GUARD_S = 60.0
"""Upper bound on any wait in the runtime scenarios: a hang fails the test."""
LEASE_MS = 1_500
"""The runtime's lease in the scenarios below (renewed every 500 ms): short, so a
partition outlives it; the store's own bound is far longer, so only the lease ends
the slice."""


async def _drive(rt: Runtime, store: ExecutionStore, run_id: str) -> DriveReport:
    """Claim ``run_id`` (only it: a run another scenario left behind on the same
    tables is not this one's) and drive it."""
    claimed = await store.claim_run(run_id, rt.owner, rt.lease_ms, rt.clock())
    assert isinstance(claimed, Claimed), claimed
    return await rt.drive(claimed)


async def partitioned_step_is_cancelled(
    proxied: ExecutionStore, direct: ExecutionStore, proxy: FaultProxy, run_id: str
) -> None:
    """A worker whose network black-holes mid-step: its heartbeat hangs, and once the
    lease runs out locally the running (async) step is cancelled, the slice ends
    ``lost`` and nothing more is written (the log stays empty), so no step runs on
    beside a new owner's copy."""
    started, cancelled = asyncio.Event(), asyncio.Event()
    later: list[str] = []

    async def long_step() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def next_step() -> None:
        later.append("next")

    @workflow("partitioned")
    async def partitioned(ctx: Context, _: Any) -> None:
        await ctx.step("long", long_step)
        await ctx.step("next", next_step)

    rt = Runtime(proxied, [partitioned], lease_ms=LEASE_MS, heartbeat_ms=LEASE_MS // 3)
    await rt.bind(direct).start("partitioned", run_id=run_id)
    async with asyncio.timeout(GUARD_S):
        drive_task = asyncio.create_task(_drive(rt, proxied, run_id))
        await started.wait()
        proxy.set_mode("black_hole")
        await cancelled.wait()  # the lease ran out locally: the step was cancelled
        drive = await drive_task
    assert drive.outcome is DriveOutcome.LOST, drive
    assert "ran out locally" in (drive.detail or ""), drive.detail
    assert later == []
    proxy.heal(cut=True)
    assert await direct.read_events(run_id) == []


async def late_sync_step_result_is_discarded(
    proxied: ExecutionStore, direct: ExecutionStore, proxy: FaultProxy, run_id: str
) -> None:
    """A synchronous step (in a thread, which cannot be cancelled) still running when
    the lease runs out locally: the slice ends ``lost`` at the deadline, the thread's
    result, when it comes, is discarded (never written), and the next step never
    starts."""
    entered, gate = threading.Event(), threading.Event()
    later: list[str] = []

    def blocking_step() -> str:
        entered.set()
        gate.wait(GUARD_S)
        return "late"

    def next_step() -> None:
        later.append("next")

    @workflow("partitioned-sync")
    async def partitioned_sync(ctx: Context, _: Any) -> None:
        await ctx.step("blocking", blocking_step)
        await ctx.step("next", next_step)

    rt = Runtime(proxied, [partitioned_sync], lease_ms=LEASE_MS, heartbeat_ms=LEASE_MS // 3)
    await rt.bind(direct).start("partitioned-sync", run_id=run_id)
    try:
        async with asyncio.timeout(GUARD_S):
            drive_task = asyncio.create_task(_drive(rt, proxied, run_id))
            await asyncio.to_thread(entered.wait, GUARD_S)
            proxy.set_mode("black_hole")
            drive = await drive_task  # ends at the local deadline
    finally:
        gate.set()  # the thread finishes now, after its slice was given up
    assert drive.outcome is DriveOutcome.LOST, drive
    assert later == []
    proxy.heal(cut=True)
    assert await direct.read_events(run_id) == []


async def worker_recovers_after_a_heal(
    proxied: ExecutionStore, direct: ExecutionStore, proxy: FaultProxy, run_id: str
) -> None:
    """A worker whose network black-holes mid-step and heals (its stale connections
    cut) carries on by itself: its slice was given up at the local lease deadline, the
    lease expires, the same worker claims the run again and finishes it. The step that
    was cut short runs again (its completion was never recorded); each step's completion
    is recorded once."""
    started, gave_up = asyncio.Event(), asyncio.Event()
    executions: list[str] = []

    async def first() -> None:
        executions.append("first")
        if len(executions) == 1:
            started.set()
            try:
                await asyncio.Event().wait()  # the first attempt hangs until cancelled
            except asyncio.CancelledError:
                gave_up.set()
                raise

    async def second() -> None:
        executions.append("second")

    @workflow("healing")
    async def healing(ctx: Context, _: Any) -> None:
        await ctx.step("first", first)
        await ctx.step("second", second)

    rt = Runtime(proxied, [healing], lease_ms=LEASE_MS, heartbeat_ms=LEASE_MS // 3)
    await rt.bind(direct).start("healing", run_id=run_id)
    worker = Worker(rt, poll_interval=0.05, grace_period=0)
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(GUARD_S):
            await started.wait()
            proxy.set_mode("black_hole")
            await gave_up.wait()  # the lease ran out locally
            proxy.heal(cut=True)
            # The worker's own progress: nothing to wait on but the store.
            while (loaded := await direct.load_run(run_id)) is None or not loaded.status.terminal:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await running
    assert loaded.status is RunStatus.FINISHED, loaded
    # The cut-short step ran again. On a loaded machine a later slice may also outlive
    # its short lease before its write lands, and run a step again whose completion was
    # not recorded (at least once); what must never happen is a step completed twice.
    assert executions[:2] == ["first", "first"], executions
    assert executions[-1] == "second", executions
    completed = [e.step_id for e in await direct.read_events(run_id) if e.type == "STEP_COMPLETED"]
    assert completed == ["first", "second"], completed


async def lost_replies_have_the_documented_answers(
    store: ExecutionStore, proxy: FaultProxy, run_id: str
) -> None:
    """A reply lost after the server ran the statement (``drop_replies``): the call
    raises ``StoreUnavailableError`` (retryable), and sending it again answers as
    docs/semantics.md says for a write that was applied: an append again is a
    ``LogConflictError`` whose ``current`` is just past the lost write (the runtime
    then reads the events back and counts the write as done), a renewal again renews
    the same lease (same token)."""
    assert isinstance(await store.create_run(run_id, "wf", None, None, T0), Created)
    claimed = await store.claim_run(run_id, "worker", 60_000, T0)
    assert isinstance(claimed, Claimed)
    event = NewEvent("step_completed", {"v": 1}, "s1")

    proxy.set_mode("drop_replies")
    with pytest.raises(StoreUnavailableError) as caught:
        await store.append_events(run_id, claimed.lease, 0, [event], T0 + 1)
    assert proxy.fired.is_set(), "the reply was never dropped"
    assert caught.value.retryable
    with pytest.raises(LogConflictError) as conflict:
        await store.append_events(run_id, claimed.lease, 0, [event], T0 + 1)
    assert conflict.value.current == 1  # the lost write was applied, once
    (stored,) = await store.read_events(run_id)
    assert (stored.type, stored.step_id, stored.data) == ("step_completed", "s1", {"v": 1})

    proxy.set_mode("drop_replies")
    with pytest.raises(StoreUnavailableError):
        await store.heartbeat(run_id, claimed.lease, 60_000, T0 + 2)
    assert proxy.fired.is_set()
    renewed = await store.heartbeat(run_id, claimed.lease, 60_000, T0 + 3)
    assert renewed.token == claimed.lease.token
    assert renewed.expires_at == T0 + 3 + 60_000
