"""OpenTelemetry: spans for start, slices, steps and store operations, the trace
carried from start() to the worker that drives the run (another Runtime on the same
data, as another process would be), and the run and step metrics. Captured with the
SDK's in-memory exporter and reader (workflow.contract_tests.otel_capture)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from workflow.contract_tests.otel_capture import Capture, capturing
from workflow.runtime import (
    JSON,
    Capability,
    Context,
    EventType,
    InMemoryStore,
    Runtime,
    WorkflowFailed,
    workflow,
)


@pytest.fixture
def otel() -> Iterator[Capture]:
    with capturing() as found:
        yield found


@workflow("otel-greet")
async def greet(ctx: Context, input: JSON) -> JSON:
    name = await ctx.wait_for_signal("name")
    return await ctx.step("hello", lambda: f"{input} {name}")


@workflow("otel-fail")
async def fail(ctx: Context, input: JSON) -> JSON:
    await ctx.step("before", lambda: 1)
    raise WorkflowFailed("no")


class NoClaimOnCreate(InMemoryStore):
    """The reference store, without CLAIM_ON_CREATE (as a store may be)."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities - {Capability.CLAIM_ON_CREATE}


def spans_of(otel: Capture, run_id: str, name: str) -> list[Any]:
    return [
        span
        for span in otel.finished_spans()
        if span.name == name and (span.attributes or {}).get("workflow.run_id") == run_id
    ]


@pytest.mark.parametrize("store_type", [InMemoryStore, NoClaimOnCreate])
async def test_a_worker_in_another_runtime_continues_the_trace_of_start(
    otel: Capture, store_type: type[InMemoryStore]
) -> None:
    data = store_type()
    client = Runtime(data, [greet])
    worker = Runtime(data.handle(), [greet])

    run = await client.start("otel-greet", "hello")
    # Stored with the run, as its first event, for a worker in any process.
    events = await data.read_events(run.run_id)
    assert [e.type for e in events] == [EventType.TRACE_CONTEXT]
    assert isinstance(events[0].data, dict)
    assert "traceparent" in events[0].data

    await worker.run_until_idle()  # the first slice waits for the signal
    await client.signal(run.run_id, "name", "ada")
    await worker.run_until_idle()  # the second replays past TRACE_CONTEXT and ends
    assert await client.result(run.run_id) == "hello ada"

    [start] = spans_of(otel, run.run_id, "workflow.start otel-greet")
    slices = spans_of(otel, run.run_id, "workflow.run otel-greet")
    [step] = spans_of(otel, run.run_id, "workflow.step")
    assert len(slices) == 2
    for slice_ in slices:
        assert slice_.context.trace_id == start.context.trace_id
        assert slice_.parent.span_id == start.context.span_id
    assert step.context.trace_id == start.context.trace_id
    assert step.parent.span_id == slices[1].context.span_id
    assert step.attributes["workflow.step_id"] == "hello"
    assert [s.attributes["workflow.outcome"] for s in slices] == ["paused", "finished"]


async def test_store_operations_are_client_spans_with_the_database_conventions(
    otel: Capture,
) -> None:
    runtime = Runtime(InMemoryStore(), [greet])
    run = await runtime.start("otel-greet", "hi")
    [start] = spans_of(otel, run.run_id, "workflow.start otel-greet")
    inside = [
        s for s in otel.finished_spans() if s.parent and s.parent.span_id == start.context.span_id
    ]
    create = next(s for s in inside if s.name == "create_run")
    assert create.kind.name == "CLIENT"
    assert dict(create.attributes or {}) == {
        "db.system": "memory",
        "db.operation.name": "create_run",
    }
    # The trace context's write is part of the start, in the same trace.
    assert "settle_run" in {s.name for s in inside}


def totals(otel: Capture) -> dict[tuple[str, str | None], float]:
    """Every metric's total so far (a counter's sum, a histogram's count) by workflow id:
    the metrics are cumulative over the test session, so tests compare totals."""
    found: dict[tuple[str, str | None], float] = {}
    for name in (
        "workflow.runs.started",
        "workflow.runs.finished",
        "workflow.runs.failed",
        "workflow.claim.lag",
        "workflow.step.duration",
    ):
        for point in otel.points(name):
            key = (name, (point.attributes or {}).get("workflow.id"))
            found[key] = found.get(key, 0) + getattr(point, "value", getattr(point, "count", 0))
    return found


async def test_run_and_step_metrics(otel: Capture) -> None:
    runtime = Runtime(InMemoryStore(), [greet, fail])
    before = totals(otel)
    done = await runtime.start("otel-greet", "hey")
    await runtime.signal(done.run_id, "name", "you")
    await runtime.start("otel-fail")
    await runtime.run_until_idle()
    after = totals(otel)
    added = {
        key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)
    }

    assert added == {
        ("workflow.runs.started", "otel-greet"): 1,
        ("workflow.runs.started", "otel-fail"): 1,
        ("workflow.runs.finished", "otel-greet"): 1,
        ("workflow.runs.failed", "otel-fail"): 1,
        # One slice each, each a claim.
        ("workflow.claim.lag", "otel-greet"): 1,
        ("workflow.claim.lag", "otel-fail"): 1,
        # One attempt of "hello", one of "before" (by outcome, not workflow).
        ("workflow.step.duration", None): 2,
    }


PROBE = """
import asyncio, json
from workflow.runtime import InMemoryStore, Runtime, workflow

@workflow("plain")
async def plain(ctx, input):
    return await ctx.step("one", lambda: input)

async def main():
    store = InMemoryStore()
    runtime = Runtime(store, [plain])
    run = await runtime.start("plain", 1)
    events = [e.type for e in await store.read_events(run.run_id)]
    await runtime.run_until_idle()
    print(json.dumps({"events": events, "result": await runtime.result(run.run_id)}))

asyncio.run(main())
"""


def test_without_a_tracer_provider_nothing_is_stored_with_the_run() -> None:
    # A fresh interpreter: this one has the SDK's providers set for good.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == {"events": [], "result": 1}


async def test_an_unsampled_start_stores_no_trace_context() -> None:
    with capturing():
        pass  # the SDK's providers are set; past this, nothing is sampled
    store = InMemoryStore()
    runtime = Runtime(store, [greet])
    run = await runtime.start("otel-greet", "hi")
    assert await store.read_events(run.run_id) == []


@workflow("otel-child")
async def otel_child(ctx: Context, input: JSON) -> JSON:
    return await ctx.step("child-step", lambda: input)


@workflow("otel-parent")
async def otel_parent(ctx: Context, input: JSON) -> JSON:
    return await ctx.child(otel_child, input, step_id="child")


async def test_a_child_run_continues_its_parents_trace(otel: Capture) -> None:
    data = InMemoryStore()
    runtime = Runtime(data, [otel_parent, otel_child])
    run = await runtime.start(otel_parent, "x", run_id="p")
    await runtime.run_until_idle()
    assert await runtime.result(run.run_id) == "x"
    (child,) = (await data.list_runs(parent_run_id="p")).items
    assert (await data.read_events(child.run_id))[0].type == EventType.TRACE_CONTEXT
    [start] = spans_of(otel, "p", "workflow.start otel-parent")
    [child_start] = spans_of(otel, child.run_id, "workflow.start otel-child")
    parent_slices = spans_of(otel, "p", "workflow.run otel-parent")
    child_slices = spans_of(otel, child.run_id, "workflow.run otel-child")
    assert child_start.context.trace_id == start.context.trace_id
    # Started from the parent's first slice; the child's slices hang from its start.
    assert child_start.parent.span_id == parent_slices[0].context.span_id
    assert child_slices
    for slice_ in child_slices:
        assert slice_.parent.span_id == child_start.context.span_id
