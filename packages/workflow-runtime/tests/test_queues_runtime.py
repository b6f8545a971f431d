"""Runtime placement and queue-serving on the reference store."""

from __future__ import annotations

import pytest

from workflow.runtime import (
    Context,
    InMemoryStore,
    InvalidArgumentError,
    RunStatus,
    Runtime,
    workflow,
)
from workflow.runtime.records import JSON

T0 = 1_700_000_000_000


@workflow("echo")
async def echo(ctx: Context, value: JSON) -> JSON:
    return await ctx.step("echo", lambda: value)


async def test_start_places_the_run_and_a_runtime_serves_only_its_queues() -> None:
    store = InMemoryStore()
    emails = Runtime(store, [echo], queues=["emails"], clock=lambda: T0)
    everything = Runtime(store, [echo], clock=lambda: T0)
    a = await emails.start(echo, 1, run_id="a", queue="emails", priority=3, partition_key="t")
    b = await emails.start(echo, 2, run_id="b")
    assert (a.queue, a.priority, a.partition_key) == ("emails", 3, "t")
    assert (b.queue, b.priority, b.partition_key) == ("default", 0, None)
    report = await emails.sweep()
    assert [d.run_id for d in report.drives] == ["a"]
    left = await store.load_run("b")
    assert left is not None
    assert left.status is RunStatus.QUEUED
    assert [d.run_id for d in (await everything.sweep()).drives] == ["b"]


def test_runtime_refuses_bad_queues() -> None:
    with pytest.raises(InvalidArgumentError, match="queues"):
        Runtime(InMemoryStore(), [echo], queues="emails")
