"""Contract cases: the replay engine and the runtime driver on the store under test.

The runtime reaches the store through the contract only, so these cases hold on every
store that passes the rest of the suite: steps run once and replay from the log,
retries and sleeps are durable timers, waits take buffered and later wake-ups, failing
runs retry with backoff and then end ``errored``, stale leases are recovered, schedules
are reconciled, and two runtimes sharing the data never drive one run at once.

Time is a fake clock the cases advance by hand: nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from workflow.runtime import (
    JSON,
    Buffered,
    Claimed,
    Context,
    Delivered,
    DriveOutcome,
    ExecutionStore,
    IntervalSpec,
    ResultTimeoutError,
    RetryPolicy,
    RunConflictError,
    RunFailedError,
    RunNotFoundError,
    RunStatus,
    Runtime,
    StepFailedError,
    WaitKind,
    WaitTimeoutError,
    Workflow,
    approval_id_for,
    current_step,
    every,
    workflow,
)
from workflow.runtime.history import RUN_RETRY_STEP, EventType, field_of

from ..support import T0, StoreFactory

NO_RETRY = RetryPolicy.never()


class FakeClock:
    """Milliseconds the case moves forward by hand."""

    def __init__(self, now: int = T0) -> None:
        self.now: int = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


def _runtime(
    store: ExecutionStore, clock: FakeClock, *workflows: Workflow[Any, Any], **options: Any
) -> Runtime:
    options.setdefault("run_retry", NO_RETRY)
    return Runtime(store, workflows, clock=clock, **options)


async def _types(store: ExecutionStore, run_id: str) -> list[tuple[str, str | None]]:
    return [(e.type, e.step_id) for e in await store.read_events(run_id)]


async def _status(store: ExecutionStore, run_id: str) -> RunStatus:
    run = await store.load_run(run_id)
    assert run is not None
    return run.status


class RuntimeCases:
    async def test_runtime_runs_each_step_once_and_replays_recorded_results(
        self, store: ExecutionStore
    ) -> None:
        calls: Counter[str] = Counter()

        async def fetch(n: int) -> dict[str, Any]:
            calls["fetch"] += 1
            return {"n": n, "items": [1, 2.5, "x", None, True]}

        def total(data: dict[str, Any]) -> int:
            calls["total"] += 1
            return int(data["n"]) * 10

        @workflow("wf-steps")
        async def steps(ctx: Context, input: dict[str, Any]) -> JSON:
            data = await ctx.step("fetch", fetch, input["n"])
            await ctx.sleep(10, step_id="nap")
            return {"data": data, "total": await ctx.step("total", total, data)}

        clock = FakeClock()
        rt = _runtime(store, clock, steps)
        run = await rt.start("wf-steps", {"n": 4}, run_id="r-steps")
        (drive,) = (await rt.sweep()).drives
        assert (drive.run_id, drive.outcome) == (run.run_id, DriveOutcome.PAUSED)
        assert drive.run is not None
        assert drive.run.wait is not None
        assert (drive.run.wait.kind, drive.run.wait.wake_at) == (WaitKind.SLEEP, T0 + 10_000)
        assert not (await rt.sweep()).drives  # not due yet

        clock.advance(10_000)
        report = await rt.sweep()
        assert [d.outcome for d in report.drives] == [DriveOutcome.FINISHED]
        assert calls == {"fetch": 1, "total": 1}
        expected = {"data": {"n": 4, "items": [1, 2.5, "x", None, True]}, "total": 40}
        assert await rt.result(run.run_id) == expected
        assert await _types(store, run.run_id) == [
            (EventType.STEP_COMPLETED, "fetch"),
            (EventType.SLEEP_STARTED, "nap"),
            (EventType.SLEEP_COMPLETED, "nap"),
            (EventType.STEP_COMPLETED, "total"),
            (EventType.RUN_FINISHED, None),
        ]

    async def test_runtime_retries_a_failing_step_after_a_durable_backoff(
        self, store: ExecutionStore
    ) -> None:
        attempts: list[int] = []

        async def flaky() -> str:
            attempts.append(current_step().attempt)
            if len(attempts) < 3:
                raise ConnectionError(f"transient {len(attempts)}")
            return "charged"

        policy = RetryPolicy(max_attempts=3, initial_delay=1, backoff=2, jitter=0)

        @workflow("wf-retry")
        async def retrying(ctx: Context, _: JSON) -> JSON:
            return await ctx.step("charge", flaky, retry=policy)

        clock = FakeClock()
        rt = _runtime(store, clock, retrying)
        run = await rt.start("wf-retry", None, run_id="r-retry")
        (drive,) = (await rt.sweep()).drives
        assert drive.outcome is DriveOutcome.PAUSED
        assert drive.run is not None
        assert drive.run.wait is not None
        assert (drive.run.wait.step_id, drive.run.wait.wake_at) == ("charge", T0 + 1_000)
        clock.advance(999)
        assert not (await rt.sweep()).drives
        clock.advance(1)
        (drive,) = (await rt.sweep()).drives
        assert drive.run is not None
        assert drive.run.wait is not None
        assert drive.run.wait.wake_at == T0 + 1_000 + 2_000
        clock.advance(2_000)
        assert [d.outcome for d in (await rt.sweep()).drives] == [DriveOutcome.FINISHED]
        assert attempts == [1, 2, 3]
        assert await rt.result(run.run_id) == "charged"
        events = await store.read_events(run.run_id)
        failed = [e for e in events if e.type == EventType.STEP_ATTEMPT_FAILED]
        assert [(field_of(e, "attempt"), field_of(e, "retry_at")) for e in failed] == [
            (1, T0 + 1_000),
            (2, T0 + 3_000),
        ]
        assert events[-2].data == {"result": "charged", "attempt": 3}

    async def test_runtime_replays_a_final_step_error_without_running_the_step_again(
        self, store: ExecutionStore
    ) -> None:
        calls: list[str] = []

        def broken() -> None:
            calls.append("broken")
            raise LookupError("no such customer")

        @workflow("wf-final")
        async def final(ctx: Context, _: JSON) -> JSON:
            caught: JSON = None
            try:
                await ctx.step("lookup", broken, retry=NO_RETRY)
            except StepFailedError as exc:
                caught = [exc.step_id, exc.error.type, exc.error.message, exc.attempts]
            await ctx.sleep(1, step_id="nap")
            return caught

        clock = FakeClock()
        rt = _runtime(store, clock, final)
        run = await rt.start("wf-final", None, run_id="r-final")
        await rt.sweep()
        clock.advance(1_000)
        await rt.sweep()
        assert calls == ["broken"]
        assert await rt.result(run.run_id) == ["lookup", "LookupError", "no such customer", 1]

    async def test_runtime_ends_the_run_errored_when_a_step_error_escapes(
        self, store: ExecutionStore
    ) -> None:
        def broken() -> None:
            raise ValueError("card declined")

        @workflow("wf-escape")
        async def escape(ctx: Context, _: JSON) -> JSON:
            return await ctx.step("charge", broken, retry=NO_RETRY)

        rt = _runtime(store, FakeClock(), escape, run_retry=RetryPolicy(max_attempts=5))
        run = await rt.start("wf-escape", None, run_id="r-escape")
        (drive,) = (await rt.sweep()).drives
        # A recorded step failure replays identically: retrying the run cannot help.
        assert drive.outcome is DriveOutcome.FAILED
        failed = await store.load_run(run.run_id)
        assert failed is not None
        assert failed.status is RunStatus.ERRORED
        assert failed.error is not None
        assert (failed.error.type, failed.error.code) == ("StepFailedError", "step_failed")
        assert "card declined" in failed.error.message
        with pytest.raises(RunFailedError, match="card declined"):
            await rt.result(run.run_id)

    async def test_runtime_reports_a_non_deterministic_replay_naming_both_steps(
        self, store: ExecutionStore
    ) -> None:
        @workflow("wf-changed")
        async def before(ctx: Context, _: JSON) -> JSON:
            await ctx.step("reserve-stock", lambda: 1)
            await ctx.sleep(5, step_id="nap")
            return None

        @workflow("wf-changed")
        async def after(ctx: Context, _: JSON) -> JSON:
            await ctx.step("charge-card", lambda: 2)
            return None

        clock = FakeClock()
        run = await _runtime(store, clock, before).start("wf-changed", None, run_id="r-nd")
        await _runtime(store, clock, before).sweep()
        clock.advance(5_000)
        (drive,) = (await _runtime(store, clock, after).sweep()).drives
        assert drive.outcome is DriveOutcome.FAILED
        failed = await store.load_run(run.run_id)
        assert failed is not None
        assert failed.error is not None
        assert failed.error.type == "NonDeterminismError"
        assert "'reserve-stock'" in failed.error.message
        assert "'charge-card'" in failed.error.message

    async def test_runtime_retries_a_failing_run_with_backoff_then_ends_it_errored(
        self, store: ExecutionStore
    ) -> None:
        tries: list[int] = []

        @workflow("wf-bug")
        async def buggy(ctx: Context, _: JSON) -> JSON:
            tries.append(1)
            raise ZeroDivisionError("bug in workflow code")

        @workflow("wf-fine")
        async def fine(ctx: Context, _: JSON) -> JSON:
            return await ctx.step("ok", lambda: "ok")

        clock = FakeClock()
        policy = RetryPolicy(max_attempts=3, initial_delay=1, backoff=2, jitter=0)
        rt = _runtime(store, clock, buggy, fine, run_retry=policy)
        bad = await rt.start("wf-bug", None, run_id="r-bug")
        good = await rt.start("wf-fine", None, run_id="r-fine")
        report = await rt.sweep()
        # One failing run never stops the sweep: the other run finished in it.
        assert {d.run_id: d.outcome for d in report.drives} == {
            bad.run_id: DriveOutcome.RETRYING,
            good.run_id: DriveOutcome.FINISHED,
        }
        paused = await store.load_run(bad.run_id)
        assert paused is not None
        assert paused.wait is not None
        assert (paused.status, paused.wait.step_id) == (RunStatus.PAUSED, RUN_RETRY_STEP)
        assert paused.wait.wake_at == T0 + 1_000
        clock.advance(1_000)
        assert [d.outcome for d in (await rt.sweep()).drives] == [DriveOutcome.RETRYING]
        clock.advance(1_999)
        assert not (await rt.sweep()).drives  # still backing off (2 s after attempt 2)
        clock.advance(1)
        assert [d.outcome for d in (await rt.sweep()).drives] == [DriveOutcome.FAILED]
        assert len(tries) == 3
        ended = await store.load_run(bad.run_id)
        assert ended is not None
        assert ended.status is RunStatus.ERRORED
        assert ended.error is not None
        assert ended.error.type == "ZeroDivisionError"
        assert [t for t, _ in await _types(store, bad.run_id)] == [
            EventType.RUN_ATTEMPT_FAILED,
            EventType.RUN_ATTEMPT_FAILED,
            EventType.RUN_FAILED,
        ]

    async def test_runtime_puts_back_a_run_of_an_unknown_workflow_uncounted(
        self, store: ExecutionStore
    ) -> None:
        @workflow("ghost", version="9")
        async def ghost(ctx: Context, _: JSON) -> JSON:
            return "boo"

        clock = FakeClock()
        await store.create_run("r-ghost", "ghost", "9", None, T0)
        rt = _runtime(store, clock, run_retry=RetryPolicy(max_attempts=2, jitter=0))
        for _ in range(3):  # more sweeps than run_retry has attempts
            assert [d.outcome for d in (await rt.sweep()).drives] == [DriveOutcome.DEFERRED]
            clock.advance(60_000)
        run = await store.load_run("r-ghost")
        assert run is not None
        assert (run.status.terminal, run.lease, run.error) == (False, None, None)
        assert await store.read_events("r-ghost") == []
        # The worker that registers it (next in a rolling deploy) runs it.
        owner = _runtime(store, clock, ghost)
        assert [d.outcome for d in (await owner.sweep()).drives] == [DriveOutcome.FINISHED]
        assert await owner.result("r-ghost") == "boo"

    async def test_runtime_takes_signals_delivered_before_and_after_the_wait(
        self, store: ExecutionStore
    ) -> None:
        @workflow("wf-signal")
        async def waiting(ctx: Context, _: JSON) -> JSON:
            first = await ctx.wait_for_signal("paid")
            second = await ctx.wait_for_signal("paid")
            return [first, second]

        rt = _runtime(store, FakeClock(), waiting)
        run = await rt.start("wf-signal", None, run_id="r-signal")
        # Before the run waits: kept, and taken by the first wait.
        assert isinstance(await rt.signal(run.run_id, "paid", {"eur": 1}), Buffered)
        (drive,) = (await rt.sweep()).drives
        assert drive.outcome is DriveOutcome.PAUSED
        assert drive.run is not None
        assert drive.run.wait is not None
        assert (drive.run.wait.kind, drive.run.wait.name) == (WaitKind.SIGNAL, "paid")
        # While it waits: wakes it.
        assert isinstance(await rt.signal(run.run_id, "paid", {"eur": 2}), Delivered)
        assert [d.outcome for d in (await rt.sweep()).drives] == [DriveOutcome.FINISHED]
        assert await rt.result(run.run_id) == [{"eur": 1}, {"eur": 2}]
        assert await store.read_inbox(run.run_id) == []  # both consumed

    async def test_runtime_times_a_signal_wait_out(self, store: ExecutionStore) -> None:
        @workflow("wf-timeout")
        async def impatient(ctx: Context, _: JSON) -> JSON:
            try:
                return await ctx.wait_for_signal("reply", timeout=5)
            except WaitTimeoutError:
                return "timed out"

        clock = FakeClock()
        rt = _runtime(store, clock, impatient)
        run = await rt.start("wf-timeout", None, run_id="r-timeout")
        (drive,) = (await rt.sweep()).drives
        assert drive.run is not None
        assert drive.run.wait is not None
        assert drive.run.wait.wake_at == T0 + 5_000
        clock.advance(5_000)
        await rt.sweep()
        assert await rt.result(run.run_id) == "timed out"
        # A late signal finds the run closed.
        assert await _status(store, run.run_id) is RunStatus.FINISHED

    async def test_runtime_approval_ids_derive_from_run_and_step(
        self, store: ExecutionStore
    ) -> None:
        @workflow("wf-approve")
        async def asking(ctx: Context, _: JSON) -> JSON:
            decision = await ctx.wait_for_approval("Ship it?", step_id="ship-ok")
            return [decision.approval_id, decision.approved, decision.feedback]

        rt = _runtime(store, FakeClock(), asking)
        a = await rt.start("wf-approve", None, run_id="r-approve-a")
        b = await rt.start("wf-approve", None, run_id="r-approve-b")
        await rt.sweep()
        waits = {}
        for run_id in (a.run_id, b.run_id):
            run = await store.load_run(run_id)
            assert run is not None
            assert run.wait is not None
            assert run.wait.kind is WaitKind.APPROVAL
            waits[run_id] = run.wait.approval_id
        assert waits == {r: approval_id_for(r, "ship-ok") for r in (a.run_id, b.run_id)}
        assert waits[a.run_id] != waits[b.run_id]
        delivered = await rt.approve(a.run_id, waits[a.run_id] or "", False, feedback="too big")
        assert isinstance(delivered, Delivered)
        await rt.sweep()
        assert await rt.result(a.run_id) == [waits[a.run_id], False, "too big"]
        assert await _status(store, b.run_id) is RunStatus.PAUSED

    async def test_runtime_records_now_and_uuid_so_replays_see_the_same(
        self, store: ExecutionStore
    ) -> None:
        seen: list[tuple[int, str]] = []

        @workflow("wf-clock")
        async def stamping(ctx: Context, _: JSON) -> JSON:
            stamp = (ctx.now(), ctx.uuid())
            seen.append(stamp)
            await ctx.sleep(1, step_id="nap")
            return list(stamp)

        clock = FakeClock()
        rt = _runtime(store, clock, stamping)
        run = await rt.start("wf-clock", None, run_id="r-clock")
        await rt.sweep()
        clock.advance(1_000)
        await rt.sweep()
        assert len(seen) == 2
        assert seen[0] == seen[1]
        assert seen[0][0] == T0
        assert await rt.result(run.run_id) == list(seen[0])

    async def test_runtime_yields_at_the_slice_deadline_and_resumes(
        self, store: ExecutionStore
    ) -> None:
        clock = FakeClock()
        ran: list[str] = []

        def slow(name: str) -> str:
            ran.append(name)
            clock.advance(600)
            return name

        @workflow("wf-long")
        async def long(ctx: Context, _: JSON) -> JSON:
            return [await ctx.step(f"s{i}", slow, f"s{i}") for i in range(4)]

        rt = _runtime(store, clock, long, slice_ms=1_000)
        run = await rt.start("wf-long", None, run_id="r-long")
        outcomes: list[DriveOutcome] = []
        for _ in range(5):
            outcomes.extend(d.outcome for d in (await rt.sweep()).drives)
        assert outcomes == [DriveOutcome.YIELDED, DriveOutcome.FINISHED]
        assert ran == ["s0", "s1", "s2", "s3"]
        assert await rt.result(run.run_id) == ["s0", "s1", "s2", "s3"]

    async def test_runtime_stops_a_run_cancelled_while_it_runs(self, store: ExecutionStore) -> None:
        ran: list[str] = []

        async def cancel_me() -> str:
            ran.append("cancel")
            await store.cancel_run(current_step().run_id, "operator", T0)
            return "done"

        @workflow("wf-cancel")
        async def doomed(ctx: Context, _: JSON) -> JSON:
            await ctx.step("cancel", cancel_me)
            await ctx.step("never", lambda: ran.append("never"))
            return None

        rt = _runtime(store, FakeClock(), doomed)
        run = await rt.start("wf-cancel", None, run_id="r-cancel")
        (drive,) = (await rt.sweep()).drives
        assert drive.outcome is DriveOutcome.CANCELLED
        assert ran == ["cancel"]
        assert await _status(store, run.run_id) is RunStatus.CANCELLED
        assert await store.read_events(run.run_id) == []
        with pytest.raises(RunFailedError, match="cancelled"):
            await rt.result(run.run_id)

    async def test_runtime_recovers_a_run_whose_worker_died(self, store: ExecutionStore) -> None:
        calls: Counter[str] = Counter()

        @workflow("wf-stale")
        async def work(ctx: Context, _: JSON) -> JSON:
            return await ctx.step("once", lambda: calls.update(["once"]) or "ok")

        clock = FakeClock()
        rt = _runtime(store, clock, work)
        run = await rt.start("wf-stale", None, run_id="r-stale")
        # A worker claims the run and dies without a word.
        dead = await store.claim_run(run.run_id, "dead-worker", 1_000, T0)
        assert isinstance(dead, Claimed)
        assert not (await rt.sweep()).drives  # its lease still holds
        clock.advance(1_000)
        (drive,) = (await rt.sweep()).drives
        assert drive.outcome is DriveOutcome.FINISHED
        assert calls == {"once": 1}
        assert await rt.result(run.run_id) == "ok"

    async def test_runtime_reconciles_schedules_from_code(self, store: ExecutionStore) -> None:
        @workflow("wf-tick", schedules=[every(60, id="tick-every-minute", input={"k": 1})])
        async def ticking(ctx: Context, input: JSON) -> JSON:
            return input

        @workflow("wf-tick")
        async def unscheduled(ctx: Context, input: JSON) -> JSON:
            return input

        clock = FakeClock()
        await store.upsert_schedule("foreign", "not-ours", IntervalSpec(1_000), T0)
        rt = _runtime(store, clock, ticking)
        (declared,) = await rt.reconcile_schedules()
        assert (declared.schedule_id, declared.enabled) == ("tick-every-minute", True)
        assert declared.spec == IntervalSpec(60_000)
        clock.now = declared.next_fire_at
        report = await rt.sweep()
        (tick,) = [t for t in report.ticks if t.schedule_id == "tick-every-minute"]
        assert tick.run_id == f"tick-every-minute@{declared.next_fire_at}"
        assert await rt.result(tick.run_id) == {"k": 1}

        # The schedule was removed from the code: the next start-up disables it.
        await _runtime(store, clock, unscheduled).reconcile_schedules()
        gone = await store.get_schedule("tick-every-minute")
        assert gone is not None
        assert not gone.enabled
        foreign = await store.get_schedule("foreign")
        assert foreign is not None
        assert foreign.enabled

    async def test_runtime_start_is_idempotent_and_result_reports_each_end(
        self, store: ExecutionStore
    ) -> None:
        @workflow("wf-a")
        async def a(ctx: Context, input: JSON) -> JSON:
            return input

        @workflow("wf-b")
        async def b(ctx: Context, input: JSON) -> JSON:
            return input

        rt = _runtime(store, FakeClock(), a, b)
        first = await rt.start("wf-a", {"v": 1}, run_id="r-same")
        again = await rt.start("wf-a", {"v": 2}, run_id="r-same")
        assert again.input == first.input == {"v": 1}
        with pytest.raises(RunConflictError):
            await rt.start("wf-b", None, run_id="r-same")
        with pytest.raises(ResultTimeoutError):
            await rt.result("r-same", wait=0)
        with pytest.raises(RunNotFoundError):
            await rt.result("r-missing")
        await rt.sweep()
        assert await rt.result("r-same", wait=1) == {"v": 1}

    async def test_two_runtimes_never_drive_one_run_at_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        active: set[str] = set()
        overlaps: list[str] = []
        executed: Counter[tuple[str, str]] = Counter()

        async def work(step: str) -> str:
            run_id = current_step().run_id
            if run_id in active:
                overlaps.append(run_id)
            active.add(run_id)
            executed[(run_id, step)] += 1
            await asyncio.sleep(0.001)
            active.discard(run_id)
            return step

        @workflow("wf-shared")
        async def shared(ctx: Context, _: JSON) -> JSON:
            return [await ctx.step(f"s{i}", work, f"s{i}") for i in range(3)]

        clock = FakeClock()
        runtimes = [
            _runtime(await store_factory(), clock, shared, concurrency=4, owner=f"w{i}")
            for i in range(2)
        ]
        run_ids = [
            (await runtimes[0].start("wf-shared", None, run_id=f"r-{i:02d}")).run_id
            for i in range(12)
        ]
        await asyncio.gather(*(rt.run_until_idle() for rt in runtimes))
        assert overlaps == []
        for run_id in run_ids:
            assert await runtimes[0].result(run_id) == ["s0", "s1", "s2"]
        assert set(executed.values()) == {1}
        assert len(executed) == 3 * len(run_ids)
