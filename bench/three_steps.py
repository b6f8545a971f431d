"""The end-to-end workload: a workflow of three trivial steps, and the "floor" — the
fewest store calls a durable run of it needs, made directly through the store API."""

from __future__ import annotations

import time

from workflow.runtime import (
    JSON,
    Claimed,
    Context,
    EventType,
    ExecutionStore,
    Finish,
    NewEvent,
    Workflow,
)

WORKFLOW_ID = "bench3"
VERSION = "1"
STEPS = ("one", "two", "three")
LEASE_MS = 60_000


async def _add_one(value: int) -> int:
    # Async, as DBOS's side of the comparison is (bench.dbos_side): the runtime calls
    # an async step on its event loop; a plain function would hop to a thread.
    return value + 1


async def _three_steps(ctx: Context, input: JSON) -> JSON:
    value = 0
    for step_id in STEPS:
        value = await ctx.step(step_id, _add_one, value)
    return {"total": value}


THREE_STEPS = Workflow(WORKFLOW_ID, _three_steps, VERSION)


def clock() -> int:
    return time.time_ns() // 1_000_000


async def floor_run(store: ExecutionStore, run_id: str, owner: str) -> None:
    """One durable run with the fewest calls: create, claim, one append per step (each
    step's result is durable before the next step starts, as in the runtime), and the
    settle that finishes it — six round trips."""
    now = clock()
    await store.create_run(run_id, WORKFLOW_ID, VERSION, None, now)
    claim = await store.claim_run(run_id, owner, LEASE_MS, now)
    if not isinstance(claim, Claimed):
        raise RuntimeError(f"floor: run {run_id} not claimed: {claim!r}")
    index, value = 0, 0
    for step_id in STEPS:
        value += 1
        done = NewEvent(EventType.STEP_COMPLETED, {"result": value}, step_id)
        index = await store.append_events(run_id, claim.lease, index, [done], clock())
    await store.settle_run(
        run_id,
        claim.lease,
        index,
        [NewEvent(EventType.RUN_FINISHED)],
        Finish({"total": value}),
        clock(),
    )
