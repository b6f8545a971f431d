"""Runtime.start(..., timeout=): the run's deadline, fired by a sweep, ending a slice in
flight with RunTimedOutError (the contract cases check the stores' side)."""

from __future__ import annotations

import asyncio

import pytest

from workflow.runtime import (
    Context,
    InMemoryStore,
    InvalidArgumentError,
    RunFailedError,
    RunStatus,
    Runtime,
    workflow,
)
from workflow.runtime.driver import DriveOutcome

T0 = 1_700_000_000_000


@workflow("waits")
async def waits(ctx: Context, _: None) -> str:
    return str(await ctx.wait_for_signal("never"))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "5"])
async def test_start_refuses_a_bad_timeout_and_creates_nothing(bad: object) -> None:
    store = InMemoryStore()
    runtime = Runtime(workflows=[waits]).bind(store, clock=lambda: T0)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        await runtime.start(waits, None, run_id="r", timeout=bad)  # type: ignore[call-overload]
    assert await store.load_run("r") is None


async def test_a_started_run_times_out_at_its_deadline() -> None:
    store = InMemoryStore()
    clock = [T0]
    runtime = Runtime(workflows=[waits]).bind(store, clock=lambda: clock[0])
    run = await runtime.start(waits, None, run_id="r", timeout=1.5)
    assert run.deadline_at == T0 + 1_500
    again = await runtime.start(waits, None, run_id="r", timeout=99.0)
    assert again.deadline_at == T0 + 1_500  # idempotent: the first deadline stays
    await runtime.sweep()
    clock[0] += 1_500
    report = await runtime.sweep()
    assert [e.kind.value for e in report.timers] == ["deadline"]
    ended = await store.load_run("r")
    assert ended is not None
    assert ended.status is RunStatus.TIMED_OUT
    with pytest.raises(RunFailedError):
        await runtime.result("r")


async def test_a_deadline_is_exactly_the_timeout_after_the_run_was_created() -> None:
    # A clock that moves on every reading (a real one crossing a millisecond): the
    # deadline and the creation time come from one reading.
    store = InMemoryStore()
    ticks = iter(range(T0, T0 + 1_000))
    runtime = Runtime(workflows=[waits]).bind(store, clock=lambda: next(ticks))
    run = await runtime.start(waits, None, run_id="r", timeout=7200)
    assert run.deadline_at == run.created_at + 7_200_000


@workflow("slow")
async def slow(ctx: Context, _: None) -> str:
    return await ctx.step("work", _work)


GATE: asyncio.Event | None = None
ENTERED: asyncio.Event | None = None


async def _work() -> str:
    assert GATE is not None
    assert ENTERED is not None
    ENTERED.set()
    await GATE.wait()
    return "done"


async def test_a_slice_in_flight_when_the_deadline_fires_ends_cancelled() -> None:
    global GATE, ENTERED
    GATE, ENTERED = asyncio.Event(), asyncio.Event()
    store = InMemoryStore()
    clock = [T0]
    runtime = Runtime(workflows=[slow]).bind(store, clock=lambda: clock[0])
    await runtime.start(slow, None, run_id="s", timeout=1.0)
    (claim,) = await runtime.claim(1)
    drive = asyncio.create_task(runtime.drive(claim))
    await ENTERED.wait()
    clock[0] += 1_000
    assert [e.run_id for e in await store.fire_due_timers(clock[0], 10)] == ["s"]
    GATE.set()
    report = await drive
    assert report.outcome is DriveOutcome.CANCELLED
    ended = await store.load_run("s")
    assert ended is not None
    assert ended.status is RunStatus.TIMED_OUT
