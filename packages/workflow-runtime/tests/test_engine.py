"""Engine and driver details on the in-memory store: misuse of the context, payload
rules for results, step timeouts, listeners, losing the lease mid-step, and the worker's
graceful stop. (The behaviour every store must support is in the contract suite's
``RuntimeCases``.)"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from workflow.runtime import (
    JSON,
    Claimed,
    Context,
    DriveOutcome,
    InMemoryStore,
    InvalidArgumentError,
    RetryPolicy,
    RunStatus,
    Runtime,
    StepFailedError,
    StepTimeoutError,
    StoredEvent,
    WorkflowDefinitionError,
    WorkflowFailed,
    approval_id_for,
    current_step,
    workflow,
)
from workflow.runtime.history import EventType, History
from workflow.runtime.worker import JSONFormatter, TextFormatter, Worker

T0 = 1_700_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def runtime(*workflows: Any, **options: Any) -> tuple[Runtime, InMemoryStore]:
    store = InMemoryStore()
    options.setdefault("run_retry", RetryPolicy.never())
    options.setdefault("clock", FakeClock())
    return Runtime(store, workflows, **options), store


async def error_of(store: InMemoryStore, run_id: str) -> tuple[str, str]:
    run = await store.load_run(run_id)
    assert run is not None
    assert run.status is RunStatus.ERRORED
    assert run.error is not None
    return run.error.type, run.error.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("twice", "step id 'a' is used twice"),
        ("reserved", "starts with '$'"),
        ("empty", "step_id must not be empty"),
        ("gather", "await context operations one at a time"),
        ("nested", "await context operations one at a time"),
    ],
)
async def test_misusing_the_context_fails_the_run_with_a_clear_error(
    body: str, message: str
) -> None:
    @workflow("misuse")
    async def misuse(ctx: Context, _: JSON) -> JSON:
        try:
            if body == "twice":
                await ctx.step("a", lambda: 1)
                await ctx.step("a", lambda: 2)
            elif body == "reserved":
                await ctx.step("$mine", lambda: 1)
            elif body == "empty":
                await ctx.step("", lambda: 1)
            elif body == "gather":

                async def slow() -> int:
                    await asyncio.sleep(0.01)
                    return 1

                await asyncio.gather(ctx.step("a", slow), ctx.step("b", slow))
            else:

                async def inner() -> int:
                    return ctx.now()

                await ctx.step("a", inner)
        except Exception:
            pass  # misuse wins even when workflow code swallows it
        return "unreachable"

    rt, store = runtime(misuse)
    await rt.start("misuse", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FAILED
    kind, text = await error_of(store, "r")
    assert kind == "WorkflowDefinitionError"
    assert message in text


async def test_a_result_that_is_not_a_payload_is_a_final_step_failure() -> None:
    calls: list[int] = []

    def tuple_result() -> Any:
        calls.append(1)
        return (1, 2)

    @workflow("bad-result")
    async def bad(ctx: Context, _: JSON) -> JSON:
        try:
            await ctx.step("t", tuple_result)
        except StepFailedError as exc:
            return [exc.error.type, exc.attempts]
        return None

    rt, _ = runtime(bad)
    await rt.start("bad-result", None, run_id="r")
    await rt.sweep()
    assert await rt.result("r") == ["PayloadError", 1]
    assert calls == [1]  # not retried: retrying cannot make it a payload


async def test_a_step_attempt_over_its_timeout_fails_with_step_timeout() -> None:
    cancelled: list[bool] = []

    async def hang() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    @workflow("timeout")
    async def timing_out(ctx: Context, _: JSON) -> JSON:
        try:
            await ctx.step("hang", hang, timeout=0.01, retry=RetryPolicy.never())
        except StepFailedError as exc:
            return exc.error.type
        return None

    rt, _ = runtime(timing_out)
    await rt.start("timeout", None, run_id="r")
    await rt.sweep()
    assert await rt.result("r") == StepTimeoutError.__name__
    assert cancelled == [True]


async def test_workflow_failed_ends_the_run_at_once_despite_run_retries() -> None:
    @workflow("fatal")
    async def fatal(ctx: Context, _: JSON) -> JSON:
        raise WorkflowFailed("order is invalid", code="invalid_order")

    rt, store = runtime(fatal, run_retry=RetryPolicy(max_attempts=5))
    await rt.start("fatal", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FAILED
    run = await store.load_run("r")
    assert run is not None
    assert run.error is not None
    assert (run.error.type, run.error.code) == ("WorkflowFailed", "invalid_order")


async def test_the_listener_sees_every_event_as_stored() -> None:
    seen: list[StoredEvent] = []

    @workflow("listened")
    async def listened(ctx: Context, _: JSON) -> JSON:
        await ctx.step("a", lambda: 1)
        await ctx.sleep(0)  # due at once: no pause
        return await ctx.step("b", lambda: 2)

    rt, store = runtime(listened, listener=seen.append)
    await rt.start("listened", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FINISHED
    stored = await store.read_events("r")
    assert [(e.index, e.type, e.step_id, e.data) for e in seen] == [
        (e.index, e.type, e.step_id, e.data) for e in stored
    ]
    assert [e.type for e in stored] == [
        EventType.STEP_COMPLETED,
        EventType.SLEEP_STARTED,
        EventType.SLEEP_COMPLETED,
        EventType.STEP_COMPLETED,
        EventType.RUN_FINISHED,
    ]


async def test_a_failing_listener_does_not_break_the_run() -> None:
    def broken_display(event: StoredEvent) -> None:
        raise RuntimeError("terminal went away")

    @workflow("shown")
    async def shown(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("a", lambda: 1)

    rt, _ = runtime(shown, listener=broken_display)
    await rt.start("shown", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FINISHED
    assert await rt.result("r") == 1


async def test_losing_the_lease_cancels_the_running_step_and_writes_nothing() -> None:
    clock = FakeClock()
    started = asyncio.Event()
    cancelled: list[str] = []

    async def long_step() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(current_step().step_id)
            raise
        return "late"

    @workflow("stolen")
    async def stolen(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("long", long_step)

    rt, store = runtime(stolen, clock=clock, lease_ms=1_000, heartbeat_ms=5)
    await rt.start("stolen", None, run_id="r")
    sweep = asyncio.create_task(rt.sweep())
    await started.wait()
    clock.now += 60_000  # the heartbeats stop counting: the lease expires...
    thief = await store.claim_run("r", "thief", 30_000, clock.now)  # ...and is taken
    assert isinstance(thief, Claimed)
    (drive,) = (await asyncio.wait_for(sweep, 10)).drives
    assert drive.outcome is DriveOutcome.LOST
    assert cancelled == ["long"]
    assert await store.read_events("r") == []
    run = await store.load_run("r")
    assert run is not None
    assert run.lease == thief.lease


async def test_a_runtime_without_a_store_says_how_to_get_one() -> None:
    @workflow("x")
    async def x(ctx: Context, _: JSON) -> JSON:
        return None

    rt = Runtime(None, [x])
    with pytest.raises(InvalidArgumentError, match=r"runtime\.bind\(store\)"):
        await rt.start("x")
    bound = rt.bind(InMemoryStore())
    assert bound.owner != rt.owner
    assert await bound.sweep() is not None


def test_approval_ids_are_deterministic_and_distinct() -> None:
    assert approval_id_for("run-1", "ok") == approval_id_for("run-1", "ok")
    assert approval_id_for("run-1", "ok") != approval_id_for("run-2", "ok")
    assert approval_id_for("run-1", "ok") != approval_id_for("run-1", "ok2")
    assert approval_id_for("a\x1fb", "c") != approval_id_for("a", "b\x1fc")
    assert approval_id_for("run-1", "ok").startswith("apr-")


def test_current_step_outside_a_step_is_an_error() -> None:
    with pytest.raises(WorkflowDefinitionError, match="only available inside a step"):
        current_step()


def test_history_groups_events_by_operation_and_counts_run_attempts() -> None:
    def ev(i: int, type: str, step: str | None) -> StoredEvent:
        return StoredEvent("r", i, type, step, None, T0)

    history = History.read(
        [
            ev(0, EventType.STEP_ATTEMPT_FAILED, "a"),
            ev(1, EventType.RUN_ATTEMPT_FAILED, None),
            ev(2, EventType.STEP_COMPLETED, "a"),
            ev(3, EventType.SLEEP_STARTED, "s"),
            ev(4, "SOMETHING_ELSE", "x"),
            ev(5, EventType.SLEEP_COMPLETED, "s"),
        ]
    )
    assert [(op.kind.value, op.step_id, [e.index for e in op.events]) for op in history.ops] == [
        ("step", "a", [0, 2]),
        ("sleep", "s", [3, 5]),
    ]
    assert history.run_attempts_failed == 1


async def test_the_worker_stops_gracefully_yielding_the_running_slice() -> None:
    step_started = asyncio.Event()

    async def slow() -> str:
        step_started.set()
        await asyncio.sleep(0.05)
        return "slow"

    @workflow("graceful")
    async def graceful(ctx: Context, _: JSON) -> JSON:
        await ctx.step("slow", slow)
        await ctx.step("next", lambda: "next")
        return "done"

    store = InMemoryStore()
    rt = Runtime(store, [graceful])
    await rt.start("graceful", None, run_id="r")
    worker = Worker(rt, poll_interval=0.01)
    running = asyncio.create_task(worker.run())
    await step_started.wait()
    worker.stop()
    await asyncio.wait_for(running, 10)
    run = await store.load_run("r")
    assert run is not None
    # The running step finished and was recorded; the next never started; no lease.
    assert (run.status, run.lease) == (RunStatus.QUEUED, None)
    assert [e.step_id for e in await store.read_events("r")] == ["slow"]


def test_log_formatters_carry_the_structured_fields() -> None:
    record = logging.LogRecord("workflow.runtime", logging.INFO, "x", 1, "run %s", ("r",), None)
    record.run_id = "r"
    record.outcome = "finished"
    body = json.loads(JSONFormatter().format(record))
    assert body["msg"] == "run r"
    assert (body["run_id"], body["outcome"], body["level"]) == ("r", "finished", "info")
    text = TextFormatter().format(record)
    assert text.endswith("run r  run_id=r outcome=finished")
