"""Stop means stop, in process: a slice still running after the grace period is
cancelled and releases its lease; a bad grace period is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest

from workflow.runtime import (
    JSON,
    Claimed,
    Context,
    InMemoryStore,
    InvalidArgumentError,
    Runtime,
    workflow,
)
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


class ClaimAnswersLate(InMemoryStore):
    """The in-memory store, except that a claim is held up (as a statement still on its
    way to the server) until the test lets it go; it then claims as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()
        self.in_flight: set[asyncio.Future[list[Claimed]]] = set()

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
        async def on_the_server() -> list[Claimed]:
            self.asked.set()
            await self.answer.wait()
            return await super(ClaimAnswersLate, self).claim_runnable(
                owner, lease_ms, limit, now, with_history=with_history, queues=queues
            )

        # Shielded, as a statement the server runs whether or not its caller was
        # cancelled (a driver thread, a query already sent).
        task = asyncio.ensure_future(on_the_server())
        self.in_flight.add(task)
        return await asyncio.shield(task)


async def test_a_claim_in_flight_at_a_stop_is_handed_back_not_left_leased() -> None:
    # A poll cancelled at once would leave what the store's claim took leased to a
    # stopped worker until the lease expires; within the grace period it ends, and the
    # drive its claim starts yields the run back at once.
    @workflow("echo")
    async def echo(ctx: Context, input: JSON) -> JSON:
        return await ctx.step("echo", lambda: input)

    store = ClaimAnswersLate()
    rt = Runtime(store, [echo])
    await store.create_run("r", "echo", "1", "x", rt.clock())
    worker = Worker(rt, poll_interval=60, grace_period=30)
    running = asyncio.create_task(worker.run())
    await store.asked.wait()
    worker.stop()
    await asyncio.sleep(0)
    store.answer.set()
    await asyncio.wait_for(running, 30)  # a guard: a hang fails instead of blocking
    await asyncio.gather(*store.in_flight)
    assert not worker.cut_short
    run = await store.load_run("r")
    assert run is not None
    assert (run.status, run.lease) == (RunStatus.QUEUED, None)
