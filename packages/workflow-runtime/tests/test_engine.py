"""Engine and driver details on the in-memory store: misuse of the context, payload
rules for results, step timeouts, listeners, losing the lease mid-step, and the worker's
graceful stop. (The behaviour every store must support is in the contract suite's
``RuntimeCases``.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Collection, Sequence
from typing import Any

import pytest

from workflow.runtime import (
    JSON,
    Claimed,
    Context,
    DriveOutcome,
    InboxEntry,
    InboxRef,
    InMemoryStore,
    InvalidArgumentError,
    Lease,
    NewEvent,
    RetryPolicy,
    RunStatus,
    Runtime,
    StepCall,
    StepFailedError,
    StepTimeoutError,
    StoredEvent,
    StoreUnavailableError,
    WorkflowDefinitionError,
    WorkflowFailed,
    approval_id_for,
    current_step,
    workflow,
)
from workflow.runtime.cli.logs import TextFormatter, json_formatter
from workflow.runtime.history import EventType, History
from workflow.runtime.worker import Worker

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


async def test_a_ctx_call_inside_a_step_fails_the_run_not_the_step() -> None:
    @workflow("nested")
    async def nested(ctx: Context, _: JSON) -> JSON:
        async def inner() -> str:
            return await ctx.step("inner", lambda: "x")

        # A retrying step policy: misuse recorded as the step's failure would retry.
        await ctx.step("outer", inner, retry=RetryPolicy(max_attempts=3))
        return "unreachable"

    rt, store = runtime(nested)
    await rt.start("nested", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FAILED
    kind, text = await error_of(store, "r")
    assert (kind, "await context operations one at a time" in text) == (
        "WorkflowDefinitionError",
        True,
    )
    types = {e.type for e in await store.read_events("r")}
    assert not types & {EventType.STEP_FAILED, EventType.STEP_ATTEMPT_FAILED}


async def test_approval_meta_that_is_not_a_payload_is_refused_at_the_wait() -> None:
    @workflow("bad-meta")
    async def bad_meta(ctx: Context, _: JSON) -> JSON:
        try:
            await ctx.wait_for_approval("ok?", meta={"when": (1, 2)}, timeout=0)  # type: ignore[dict-item]
        except WorkflowDefinitionError as exc:
            return ["refused", str(exc)]
        return "waited"

    rt, store = runtime(bad_meta)
    await rt.start("bad-meta", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FAILED
    kind, text = await error_of(store, "r")
    assert kind == "WorkflowDefinitionError"
    assert "meta of approval 'approval#1'" in text
    assert [e.type for e in await store.read_events("r")] == [EventType.RUN_FAILED]


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


def test_history_groups_events_by_operation_and_counts_consecutive_run_attempts() -> None:
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
            ev(6, EventType.RUN_ATTEMPT_FAILED, None),
            ev(7, EventType.RUN_ATTEMPT_FAILED, None),
        ]
    )
    assert [(op.kind.value, op.step_id, [e.index for e in op.events]) for op in history.ops] == [
        ("step", "a", [0, 2]),
        ("sleep", "s", [3, 5]),
    ]
    assert history.run_attempts_failed == 2  # the one before the progress is forgiven


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


async def test_a_blocked_step_holds_up_neither_new_runs_nor_timers_on_the_worker() -> None:
    release = asyncio.Event()
    blocking = asyncio.Event()

    async def block() -> str:
        blocking.set()
        await release.wait()
        return "released"

    @workflow("blocker")
    async def blocker(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("block", block)

    @workflow("sleeper")
    async def sleeper(ctx: Context, _: JSON) -> JSON:
        await ctx.sleep(1)
        return "woke"

    @workflow("quick")
    async def quick(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("q", lambda: "quick")

    sleeping = asyncio.Event()

    def on_event(event: StoredEvent) -> None:
        # Written with the settle that pauses the run and stores its timer.
        if event.type == EventType.SLEEP_STARTED:
            sleeping.set()

    clock = FakeClock()
    rt, store = runtime(blocker, sleeper, quick, concurrency=2, clock=clock, listener=on_event)

    async def status(run_id: str) -> RunStatus:
        run = await store.load_run(run_id)
        assert run is not None
        return run.status

    await rt.start("blocker", None, run_id="b")
    await rt.start("sleeper", None, run_id="s")
    worker = Worker(rt, poll_interval=0.01, jitter=0)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(blocking.wait(), 10)
        await asyncio.wait_for(sleeping.wait(), 10)
        assert await status("s") is RunStatus.PAUSED
        clock.now += 1_000  # the sleeper's timer is due now (the leases still hold)
        await rt.start("quick", None, run_id="q")  # claimable only now
        assert await rt.result("s", wait=10, poll=0.005) == "woke"
        assert await rt.result("q", wait=10, poll=0.005) == "quick"
        assert await status("b") is RunStatus.RUNNING  # still inside its step
        release.set()
        assert await rt.result("b", wait=10, poll=0.005) == "released"
    finally:
        release.set()
        worker.stop()
        await asyncio.wait_for(running, 10)


class _CountingStore(InMemoryStore):
    """The in-memory store, counting the sweep calls a worker makes."""

    fires = 0
    claims = 0

    async def fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        self.fires += 1
        return await super().fire_due_timers(now, limit)

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
        self.claims += 1
        return await super().claim_runnable(
            owner, lease_ms, limit, now, with_history=with_history, queues=queues
        )


async def test_a_worker_refills_freed_slots_without_firing_timers_each_time() -> None:
    # Each run ending frees a slot and the worker claims into it at once; firing due
    # schedules and timers each time would cost two calls per run for nothing new.
    @workflow("short")
    async def short(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("s", lambda: "done")

    store = _CountingStore()
    rt = Runtime(store, [short], concurrency=2)
    for i in range(20):
        await rt.start("short", None, run_id=f"r{i}")
    worker = Worker(rt, poll_interval=60, jitter=0)  # one firing in the whole test
    running = asyncio.create_task(worker.run())
    try:
        for i in range(20):
            assert await rt.result(f"r{i}", wait=10, poll=0.005) == "done"
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)
    assert store.claims >= 10  # two slots refilled run after run
    assert store.fires == 1


class _WriteLog(InMemoryStore):
    """The in-memory store, recording the event types of each write a slice makes."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.writes: list[tuple[str, list[str]]] = []

    async def append_events(
        self,
        run_id: str,
        lease: Lease,
        expected_next_index: int,
        events: Sequence[NewEvent],
        now: int,
        *,
        consume: Sequence[InboxRef] = (),
    ) -> int:
        self.writes.append(("append", [e.type for e in events]))
        return await super().append_events(
            run_id, lease, expected_next_index, events, now, consume=consume
        )

    async def settle_run(self, run_id: str, lease: Lease, *args: Any, **kwargs: Any) -> Any:
        self.writes.append(("settle", [e.type for e in args[1]]))
        return await super().settle_run(run_id, lease, *args, **kwargs)


async def test_a_step_result_is_written_before_the_next_step_and_the_last_with_the_settle() -> None:
    # Three steps, three writes: the results of steps one and two each go out before the
    # next step's function runs; the last one rides with the settle that finishes the run.
    seen: list[list[str]] = []

    def step(store: _WriteLog, value: int) -> int:
        seen.append([t for _, types in store.writes for t in types])
        return value + 1

    store = _WriteLog()

    @workflow("three")
    async def three(ctx: Context, _: JSON) -> JSON:
        value = 0
        for step_id in ("one", "two", "three"):
            value = await ctx.step(step_id, step, store, value)
        return value

    rt = Runtime(store, [three], clock=FakeClock())
    await rt.start("three", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FINISHED
    done, finished = EventType.STEP_COMPLETED, EventType.RUN_FINISHED
    assert store.writes == [
        ("append", [done]),
        ("append", [done]),
        ("settle", [done, finished]),
    ]
    # Each step ran after the results before it were durable.
    assert seen == [[], [done], [done, done]]
    assert await rt.result("r") == 3


async def test_a_step_result_over_the_stores_payload_limit_fails_the_step_not_a_write() -> None:
    # The result is written later, with the slice's next write: the size is checked when
    # the step ends, so the failure is the step's (final: retrying cannot shrink it).
    calls: list[int] = []

    def big() -> str:
        calls.append(1)
        return "x" * 3000

    @workflow("big")
    async def big_result(ctx: Context, _: JSON) -> JSON:
        try:
            await ctx.step("big", big)
        except StepFailedError as exc:
            return [exc.error.type, exc.attempts]
        return None

    store = InMemoryStore(max_payload_bytes=2000)
    rt = Runtime(store, [big_result], clock=FakeClock())
    await rt.start("big", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FINISHED
    assert await rt.result("r") == ["PayloadError", 1]
    assert calls == [1]


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_a_worker_limit_out_of_range_is_refused(limit: int) -> None:
    rt, _ = runtime()
    with pytest.raises(InvalidArgumentError, match="limit"):
        Worker(rt, limit=limit)


def test_log_formatters_carry_the_structured_fields() -> None:
    record = logging.LogRecord("workflow.runtime", logging.INFO, "x", 1, "run %s", ("r",), None)
    record.run_id = "r"
    record.outcome = "finished"
    record.__dict__["when"] = object()  # not JSON: written as its str()
    body = json.loads(json_formatter().format(record))
    assert body["msg"] == "run r"
    assert (body["run_id"], body["outcome"], body["level"]) == ("r", "finished", "INFO")
    assert body["when"].startswith("<object object")
    text = TextFormatter().format(record)
    assert text.endswith(f"run r  run_id=r outcome=finished when={record.__dict__['when']}")


async def test_a_sync_step_runs_off_the_event_loop_with_current_step() -> None:
    release, started = threading.Event(), threading.Event()
    seen: list[str] = []

    def blocking() -> bool:
        seen.append(current_step().step_id)
        started.set()
        # Set by the test from the event loop: only possible while this runs elsewhere.
        return release.wait(10)

    @workflow("sync-step")
    async def sync_step(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("block", blocking)

    rt, _ = runtime(sync_step)
    await rt.start("sync-step", None, run_id="r")
    sweep = asyncio.create_task(rt.sweep())
    await asyncio.to_thread(started.wait, 10)
    release.set()
    await sweep
    assert await rt.result("r") is True
    assert seen == ["block"]


async def test_a_sync_step_over_its_timeout_fails_with_step_timeout() -> None:
    release = threading.Event()

    @workflow("sync-timeout")
    async def sync_timeout(ctx: Context, _: JSON) -> JSON:
        try:
            await ctx.step("block", release.wait, 10, timeout=0.01, retry=RetryPolicy.never())
        except StepFailedError as exc:
            return exc.error.type
        return None

    rt, _ = runtime(sync_timeout)
    await rt.start("sync-timeout", None, run_id="r")
    try:
        await rt.sweep()
    finally:
        release.set()  # the abandoned thread ends
    assert await rt.result("r") == StepTimeoutError.__name__


class ClaimFailsAfterFirst(InMemoryStore):
    """The reference store, except that every claim after the first fails (an outage)."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0
        self.claim_failed = asyncio.Event()

    async def claim_runnable(self, *args: Any, **kwargs: Any) -> list[Claimed]:
        self.claims += 1
        if self.claims > 1:
            self.claim_failed.set()
            raise StoreUnavailableError("store down")
        return await super().claim_runnable(*args, **kwargs)


async def test_a_failed_claim_lets_the_running_drives_finish() -> None:
    store = ClaimFailsAfterFirst()

    @workflow("quick")
    async def quick(ctx: Context, _: JSON) -> JSON:
        return "quick"

    @workflow("waits")
    async def waits(ctx: Context, _: JSON) -> JSON:
        async def until_claim_failed() -> str:
            await store.claim_failed.wait()
            return "done"

        return await ctx.step("wait", until_claim_failed)

    rt = Runtime(store, [quick, waits], clock=FakeClock(), concurrency=2)
    await rt.start("quick", None, run_id="a")
    await rt.start("waits", None, run_id="b")
    report = await asyncio.wait_for(rt.sweep(), 10)
    assert sorted((d.run_id, d.outcome) for d in report.drives) == [
        ("a", DriveOutcome.FINISHED),
        ("b", DriveOutcome.FINISHED),
    ]
    assert await rt.result("b") == "done"


@pytest.mark.parametrize("where", ["workflow", "step"])
async def test_an_error_too_large_to_store_still_ends_the_run(where: str) -> None:
    def explode() -> None:
        raise ValueError("é\x00" * 5_000)  # escapes and multi-byte text, far over the limit

    @workflow("huge-error")
    async def huge_error(ctx: Context, _: JSON) -> JSON:
        if where == "step":
            await ctx.step("explode", explode, retry=RetryPolicy.never())
        explode()
        return None

    store = InMemoryStore(max_payload_bytes=2_000)
    rt = Runtime(store, [huge_error], clock=FakeClock(), run_retry=RetryPolicy.never())
    await rt.start("huge-error", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FAILED
    run = await store.load_run("r")
    assert run is not None
    assert (run.status, run.lease) == (RunStatus.ERRORED, None)
    assert run.error is not None
    assert "é\x00é\x00" in run.error.message
    assert "…" in run.error.message  # cut, not dropped


def test_a_last_resort_error_fits_even_a_tiny_payload_limit() -> None:
    from workflow.runtime import codec
    from workflow.runtime.engine import ERROR_ENVELOPE_BYTES, fit_error
    from workflow.runtime.records import ErrorInfo

    huge = ErrorInfo("T" * 10_000, "m\n" * 10_000, "c" * 1_000, "t\x01" * 10_000)
    for limit in (ERROR_ENVELOPE_BYTES + 100, 1_000, 10_000):
        fitted = fit_error(huge, limit)
        codec.encode_error(fitted, max_bytes=limit - ERROR_ENVELOPE_BYTES)


async def test_a_run_of_an_unregistered_version_is_put_back_not_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @workflow("deploy", version="2")
    async def new(ctx: Context, _: JSON) -> JSON:
        return "v2"

    @workflow("deploy", version="1")
    async def old(ctx: Context, _: JSON) -> JSON:
        return "v1"

    clock = FakeClock()
    store = InMemoryStore()
    new_app = Runtime(store, [new], clock=clock, run_retry=RetryPolicy(max_attempts=2))
    old_app = Runtime(store, [old], clock=clock)
    await old_app.start("deploy", None, run_id="r")
    for _ in range(5):  # far more than run_retry's attempts
        (drive,) = (await new_app.sweep()).drives
        assert drive.outcome is DriveOutcome.DEFERRED
        clock.now += 60_000
    events = await store.read_events("r")
    assert EventType.RUN_ATTEMPT_FAILED not in [e.type for e in events]
    assert sum("put back" in r.getMessage() for r in caplog.records) == 1  # once per run
    (drive,) = (await old_app.sweep()).drives
    assert drive.outcome is DriveOutcome.FINISHED
    assert await old_app.result("r") == "v1"


class StepResultWriteFailsOnce(InMemoryStore):
    """The reference store, except that the first write of a step's result fails as an
    outage would: before it is applied, or after (the answer lost on the way back)."""

    def __init__(self, applied: bool) -> None:
        super().__init__()
        self.applied = applied
        self.failed = False

    async def append_events(
        self,
        run_id: str,
        lease: Lease,
        expected_next_index: int,
        events: Sequence[NewEvent],
        now: int,
        *,
        consume: Sequence[InboxRef] = (),
    ) -> int:
        if not self.failed and any(e.type == EventType.STEP_COMPLETED for e in events):
            self.failed = True
            if self.applied:
                await super().append_events(
                    run_id, lease, expected_next_index, events, now, consume=consume
                )
            raise StoreUnavailableError("connection reset")
        return await super().append_events(
            run_id, lease, expected_next_index, events, now, consume=consume
        )


@pytest.mark.parametrize("applied", [False, True])
async def test_an_outage_writing_a_step_result_does_not_run_the_step_again(
    applied: bool,
) -> None:
    calls: list[int] = []

    def charge() -> str:
        calls.append(1)
        return "charged"

    @workflow("pay")
    async def pay(ctx: Context, _: JSON) -> JSON:
        charged = await ctx.step("charge", charge)
        # The next step makes the slice write charge's result (an append) before it runs.
        return await ctx.step("receipt", str.upper, charged)

    store = StepResultWriteFailsOnce(applied)
    rt = Runtime(store, [pay], clock=FakeClock())
    await rt.start("pay", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FINISHED
    assert store.failed
    assert calls == [1]
    types = [e.type for e in await store.read_events("r")]
    assert types.count(EventType.STEP_COMPLETED) == 2
    assert await rt.result("r") == "CHARGED"


class HeartbeatsFail(InMemoryStore):
    """The reference store, except that every heartbeat fails (the store is down for
    the worker while its step runs)."""

    async def heartbeat(self, run_id: str, lease: Lease, lease_ms: int, now: int) -> Lease:
        raise StoreUnavailableError("heartbeat timed out")


async def test_failing_heartbeats_stop_the_step_before_its_lease_expires() -> None:
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

    @workflow("unguarded")
    async def unguarded(ctx: Context, _: JSON) -> JSON:
        return await ctx.step("long", long_step)

    store = HeartbeatsFail()
    rt = Runtime(store, [unguarded], clock=clock, lease_ms=1_000, heartbeat_ms=5)
    await rt.start("unguarded", None, run_id="r")
    sweep = asyncio.create_task(rt.sweep())
    await started.wait()
    clock.now += 1_000  # the lease runs out with no renewal
    (drive,) = (await asyncio.wait_for(sweep, 10)).drives
    assert drive.outcome is DriveOutcome.LOST
    assert cancelled == ["long"]
    assert await store.read_events("r") == []


async def test_run_retries_count_consecutive_failures_not_all_failures() -> None:
    crashed: set[int] = set()

    @workflow("progressing")
    async def progressing(ctx: Context, _: JSON) -> JSON:
        for i in range(3):
            await ctx.step(f"s{i}", str, i)
            if i not in crashed:  # each slice gets one step further, then crashes
                crashed.add(i)
                raise RuntimeError(f"crash after s{i}")
        return "done"

    clock = FakeClock()
    rt, _ = runtime(progressing, clock=clock, run_retry=RetryPolicy(max_attempts=2, jitter=0))
    await rt.start("progressing", None, run_id="r")
    outcomes: list[DriveOutcome] = []
    for _ in range(4):
        outcomes += [d.outcome for d in (await rt.sweep()).drives]
        clock.now += 120_000
    assert outcomes == [DriveOutcome.RETRYING] * 3 + [DriveOutcome.FINISHED]
    assert await rt.result("r") == "done"


@pytest.mark.parametrize("how", ["workflow_failed", "step_failed"])
async def test_changed_code_failing_during_replay_is_non_deterministic(how: str) -> None:
    changed = False

    def broken() -> None:
        raise ValueError("nope")

    @workflow("changing")
    async def changing(ctx: Context, _: JSON) -> JSON:
        try:
            await ctx.step("a", broken, retry=RetryPolicy.never())
        except StepFailedError:
            if changed and how == "step_failed":
                raise  # the new code no longer tolerates the recorded failure
        if changed and how == "workflow_failed":
            raise WorkflowFailed("new rule", code="rejected")
        await ctx.sleep(60, step_id="nap")
        return "done"

    clock = FakeClock()
    rt, store = runtime(changing, clock=clock)
    await rt.start("changing", None, run_id="r")
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.PAUSED
    changed = True  # deployed under the same version while the run sleeps
    clock.now += 61_000
    (drive,) = (await rt.sweep()).drives
    assert drive.outcome is DriveOutcome.FAILED
    kind, text = await error_of(store, "r")
    assert kind == "NonDeterminismError"
    assert "recorded sleep 'nap'" in text


def test_idempotency_keys_are_distinct_whatever_the_ids_hold() -> None:
    assert StepCall("A-1", "charge", 1).idempotency_key == "A-1/charge"
    assert (
        StepCall("A-1", "charge", 1).idempotency_key == StepCall("A-1", "charge", 2).idempotency_key
    )
    keys = {
        StepCall(run_id, step_id, 1).idempotency_key
        for run_id, step_id in [("a/b", "c"), ("a", "b/c"), ("a/b/c", "d"), ("a", "b/c/d")]
    }
    assert len(keys) == 4


async def test_a_step_left_running_by_workflow_code_is_cancelled_before_settling() -> None:
    cancelled: list[str] = []

    async def long_step() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("long")
            raise
        return "late"

    async def quick_step() -> str:
        return "quick"

    @workflow("left-running")
    async def left_running(ctx: Context, _: JSON) -> JSON:
        # gather raises the misuse at once and leaves "long" running.
        with contextlib.suppress(Exception):
            await asyncio.gather(ctx.step("long", long_step), ctx.step("quick", quick_step))
        return None

    rt, _ = runtime(left_running)
    await rt.start("left-running", None, run_id="r")
    (drive,) = (await asyncio.wait_for(rt.sweep(), 10)).drives
    assert drive.outcome is DriveOutcome.FAILED
    assert cancelled == ["long"]  # already, when the sweep returns


@pytest.mark.parametrize(("lease_ms", "heartbeat_ms"), [(1_000, 1_000), (1_000, 5_000), (1, None)])
def test_a_heartbeat_not_shorter_than_the_lease_is_refused(
    lease_ms: int, heartbeat_ms: int | None
) -> None:
    with pytest.raises(InvalidArgumentError, match=r"heartbeat_ms .* must be less than lease_ms"):
        Runtime(InMemoryStore(), [], lease_ms=lease_ms, heartbeat_ms=heartbeat_ms)
