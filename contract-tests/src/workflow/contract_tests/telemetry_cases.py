"""The OpenTelemetry case every server store's tests run: a run started through one
store object is driven through another on the same data (two connection pools, as two
processes would have), and the driving side's spans join the trace of the start; the
store operations name the store's ``db.system``. Needs ``opentelemetry-sdk``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from workflow.runtime import JSON, Context, ExecutionStore, Runtime, workflow

from .otel_capture import capturing

OpenStore = Callable[[], Awaitable[ExecutionStore]]
"""Opens a new store object on the test's data."""


@workflow("otel-case")
async def triple(ctx: Context, input: JSON) -> JSON:
    return await ctx.step("triple", lambda: 3 * int(str(input)))


async def check_trace_continues_in_another_store(open_store: OpenStore, db_system: str) -> None:
    starter_store, worker_store = await open_store(), await open_store()
    try:
        with capturing() as otel:
            client = Runtime(starter_store, [triple])
            run = await client.start("otel-case", 7)
            await Runtime(worker_store, [triple]).run_until_idle()
            assert await client.result(run.run_id) == 21
        spans = otel.finished_spans()
        [start] = [s for s in spans if s.name == "workflow.start otel-case"]
        [run_slice] = [s for s in spans if s.name == "workflow.run otel-case"]
        [step] = [s for s in spans if s.name == "workflow.step"]
        assert run_slice.parent is not None
        assert run_slice.parent.span_id == start.context.span_id
        assert step.context.trace_id == start.context.trace_id
        operations = [s for s in spans if s.attributes and "db.operation.name" in s.attributes]
        assert {"create_run", "claim_runnable", "settle_run"} <= {s.name for s in operations}
        assert {(s.attributes or {}).get("db.system") for s in operations} == {db_system}
    finally:
        await starter_store.close()
        await worker_store.close()
