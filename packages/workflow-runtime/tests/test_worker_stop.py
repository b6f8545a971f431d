"""Stop means stop, in process: a slice still running after the grace period is
cancelled and releases its lease; a bad grace period is refused."""

from __future__ import annotations

import asyncio

import pytest

from workflow.runtime import JSON, Context, InMemoryStore, InvalidArgumentError, Runtime, workflow
from workflow.runtime.records import RunStatus
from workflow.runtime.worker import Worker


async def test_a_slice_past_the_grace_period_is_cancelled_and_released() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    @workflow("stuck")
    async def stuck(ctx: Context, _: JSON) -> JSON:
        await ctx.step("forever", forever)
        return "never"

    store = InMemoryStore()
    rt = Runtime(store, [stuck])
    await rt.start("stuck", None, run_id="r")
    worker = Worker(rt, poll_interval=0.01, grace_period=0)
    running = asyncio.create_task(worker.run())
    await started.wait()
    worker.stop()
    await asyncio.wait_for(running, 30)  # a guard: a hang fails instead of blocking
    assert worker.cut_short
    run = await store.load_run("r")
    assert run is not None
    # Cancelled: nothing recorded, and the run handed back at once.
    assert (run.status, run.lease) == (RunStatus.QUEUED, None)
    assert await store.read_events("r") == []


async def test_a_stop_with_nothing_running_is_not_cut_short() -> None:
    worker = Worker(Runtime(InMemoryStore(), []), poll_interval=0.01, grace_period=0)
    running = asyncio.create_task(worker.run())
    worker.stop()
    await asyncio.wait_for(running, 30)
    assert not worker.cut_short


@pytest.mark.parametrize("grace", [-1, float("nan"), float("inf"), True, "30"])
def test_a_bad_grace_period_is_refused(grace: object) -> None:
    with pytest.raises(InvalidArgumentError, match="grace_period"):
        Worker(Runtime(InMemoryStore(), []), grace_period=grace)  # type: ignore[arg-type]
