"""Child runs in the runtime: ctx.child, ctx.start_child and ctx.child_result on the
in-memory store (the contract cases check the stores' side: the child's entry in its
parent's inbox, the cascade of a cancellation)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from workflow.runtime import (
    JSON,
    Capability,
    ChildFailedError,
    ChildTimeoutError,
    Context,
    Created,
    CreateResult,
    EventType,
    InMemoryStore,
    ParentPolicy,
    RetryPolicy,
    RunStatus,
    Runtime,
    StoreUnavailableError,
    WaitKind,
    WorkflowFailed,
    child_run_id_for,
    workflow,
)
from workflow.runtime.children import placement_of
from workflow.runtime.driver import DriveOutcome
from workflow.runtime.worker import Worker

T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


async def settle(runtime: Runtime, rounds: int = 50) -> None:
    """Sweep until a sweep finds nothing to do."""
    for _ in range(rounds):
        if not (await runtime.sweep()).did_work:
            return
    raise AssertionError("the runs never settled")


async def events_of(store: InMemoryStore, run_id: str) -> list[str]:
    return [e.type for e in await store.read_events(run_id)]


@workflow("double")
async def double(ctx: Context, n: int) -> int:
    if n < 0:
        raise WorkflowFailed(f"cannot double {n}", code="negative")
    return 2 * n


@workflow("waits")
async def waits(ctx: Context, _: None) -> JSON:
    return await ctx.wait_for_signal("go")


@workflow("parent")
async def parent(ctx: Context, n: int) -> int:
    return await ctx.child(double, n, step_id="double")


def runtime_on(store: InMemoryStore, *workflows: Any, clock: Clock | None = None) -> Runtime:
    return Runtime(store, [parent, double, waits, *workflows], clock=clock or Clock())


def test_a_child_id_is_derived_from_its_parent_step_and_workflow() -> None:
    one = child_run_id_for("tenant-1@order-7", "ship", "shipping")
    assert one == child_run_id_for("tenant-1@order-7", "ship", "shipping")
    assert one.startswith("tenant-1@child-")
    assert len(one) == len("tenant-1@child-") + 24
    assert placement_of(one) == "tenant-1"
    assert child_run_id_for("order-7", "ship", "shipping").startswith("order-7@child-")
    others = {
        child_run_id_for("tenant-1@order-8", "ship", "shipping"),
        child_run_id_for("tenant-1@order-7", "ship-2", "shipping"),
        child_run_id_for("tenant-1@order-7", "ship", "billing"),
    }
    assert one not in others
    assert len(others) == 3
    # A grandchild keeps the root's placement: one tree, one place.
    assert placement_of(child_run_id_for(one, "x", "y")) == "tenant-1"


async def test_a_parent_gets_its_childs_output() -> None:
    store = InMemoryStore()
    runtime = runtime_on(store)
    await runtime.start(parent, 21, run_id="p")
    await settle(runtime)
    assert await runtime.result("p") == 42
    (child,) = (await store.list_runs(parent_run_id="p")).items
    assert child.run_id == child_run_id_for("p", "double", "double")
    assert (child.parent_run_id, child.parent_policy) == ("p", ParentPolicy.CANCEL)
    assert child.status is RunStatus.FINISHED
    assert await events_of(store, "p") == [
        EventType.CHILD_STARTED,
        EventType.CHILD_WAITING,
        EventType.CHILD_FINISHED,
        EventType.RUN_FINISHED,
    ]
    # The child's end was taken from the parent's inbox, and spent.
    (entry,) = await store.read_inbox("p", include_consumed=True)
    assert (entry.key, entry.consumed) == (child.run_id, True)


async def test_the_parent_pauses_on_its_child_and_the_childs_end_wakes_it() -> None:
    store = InMemoryStore()
    runtime = runtime_on(store)

    @workflow("asks")
    async def asks(ctx: Context, _: None) -> JSON:
        return await ctx.child(waits, None, step_id="ask")

    runtime = runtime_on(store, asks)
    await runtime.start(asks, None, run_id="p")
    await settle(runtime)
    paused = await store.load_run("p")
    assert paused is not None
    assert paused.status is RunStatus.PAUSED
    assert paused.wait is not None
    assert paused.wait.kind is WaitKind.CHILD
    child_id = child_run_id_for("p", "ask", "waits")
    assert paused.wait.name == child_id
    await runtime.signal(child_id, "go", {"answer": 1})
    await settle(runtime)
    assert await runtime.result("p") == {"answer": 1}


@workflow("fan-out")
async def fan_out(ctx: Context, ns: list[int]) -> dict[str, Any]:
    handles = [await ctx.start_child(double, n, step_id=f"double-{i}") for i, n in enumerate(ns)]
    doubled: list[int] = []
    failed: list[str] = []
    for handle in handles:
        try:
            doubled.append(await ctx.child_result(handle))
        except ChildFailedError as exc:
            code = exc.error.code if exc.error else "-"
            failed.append(f"{exc.status.value}:{code}:{exc.error.message if exc.error else ''}")
    return {"doubled": doubled, "failed": failed}


async def test_many_children_in_flight_and_one_failure_handled() -> None:
    store = InMemoryStore()
    runtime = runtime_on(store, fan_out)
    ns = [*range(20), -1]
    await runtime.start(fan_out, ns, run_id="p")
    await settle(runtime)
    assert await runtime.result("p") == {
        "doubled": [2 * n for n in range(20)],
        "failed": ["errored:negative:cannot double -1"],
    }
    children = (await store.list_runs(parent_run_id="p", limit=100)).items
    assert len(children) == 21
    assert (await events_of(store, "p")).count(EventType.CHILD_STARTED) == 21


async def test_an_uncaught_child_failure_fails_the_parent() -> None:
    store = InMemoryStore()
    runtime = runtime_on(store)
    await runtime.start(parent, -3, run_id="p")
    await settle(runtime)
    ended = await store.load_run("p")
    assert ended is not None
    assert ended.status is RunStatus.ERRORED
    assert ended.error is not None
    assert (ended.error.type, ended.error.code) == ("ChildFailedError", "child_failed")
    assert "ended errored: WorkflowFailed: cannot double -3" in ended.error.message


@workflow("impatient")
async def impatient(ctx: Context, _: None) -> JSON:
    handle = await ctx.start_child(waits, None, step_id="slow")
    try:
        return await ctx.child_result(handle, timeout=1.0)
    except ChildTimeoutError:
        pass
    # The child runs on: waiting again gets its output once it ends.
    return {"late": await ctx.child_result(handle)}


async def test_a_wait_that_times_out_leaves_the_child_running() -> None:
    store = InMemoryStore()
    clock = Clock()
    runtime = runtime_on(store, impatient, clock=clock)
    await runtime.start(impatient, None, run_id="p")
    await settle(runtime)
    child_id = child_run_id_for("p", "slow", "waits")
    clock.now += 1_000
    await settle(runtime)
    waiting = await store.load_run("p")
    assert waiting is not None
    assert waiting.status is RunStatus.PAUSED
    assert waiting.wait is not None
    assert waiting.wait.step_id == "$child:slow#2"
    child = await store.load_run(child_id)
    assert child is not None
    assert child.status is RunStatus.PAUSED
    await runtime.signal(child_id, "go", "done")
    await settle(runtime)
    assert await runtime.result("p") == {"late": "done"}
    assert EventType.CHILD_WAIT_TIMED_OUT in await events_of(store, "p")


@workflow("keeps")
async def keeps(ctx: Context, _: None) -> None:
    await ctx.start_child(waits, None, step_id="cancel")
    await ctx.start_child(waits, None, step_id="abandon", policy=ParentPolicy.ABANDON)
    await ctx.wait_for_signal("never")


async def test_a_cancelled_parent_cancels_its_cancel_children_only() -> None:
    store = InMemoryStore()
    runtime = runtime_on(store, keeps)
    await runtime.start(keeps, None, run_id="p")
    await settle(runtime)
    await runtime.cancel("p")
    cancelled = await store.load_run(child_run_id_for("p", "cancel", "waits"))
    assert cancelled is not None
    assert cancelled.status is RunStatus.CANCELLED
    assert cancelled.error is not None
    assert cancelled.error.type == "ParentEnded"
    abandoned = await store.load_run(child_run_id_for("p", "abandon", "waits"))
    assert abandoned is not None
    assert abandoned.status is RunStatus.PAUSED


async def test_a_child_run_timeout_is_its_deadline_and_it_inherits_the_queue() -> None:
    store = InMemoryStore()
    clock = Clock()

    @workflow("bounded")
    async def bounded(ctx: Context, _: None) -> JSON:
        return await ctx.child(waits, None, step_id="w", run_timeout=2.5)

    runtime = runtime_on(store, bounded, clock=clock)
    await runtime.start(bounded, None, run_id="p", queue="batch")
    await settle(runtime)
    child = await store.load_run(child_run_id_for("p", "w", "waits"))
    assert child is not None
    assert (child.deadline_at, child.queue) == (T0 + 2_500, "batch")
    clock.now += 2_500
    await settle(runtime)
    ended = await store.load_run("p")
    assert ended is not None
    assert ended.status is RunStatus.ERRORED
    assert ended.error is not None
    assert "ended timed_out" in ended.error.message


class CreateAnswerLost(InMemoryStore):
    """Creates a child, then loses the answer once: as if the worker died between the
    child's creation and the record of it in the parent's log."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []
        self.lost = False

    async def create_run(self, run_id: str, *args: Any, **kwargs: Any) -> CreateResult:
        result = await super().create_run(run_id, *args, **kwargs)
        if isinstance(result, Created):
            self.created.append(run_id)
        if kwargs.get("parent_run_id") is not None and not self.lost:
            self.lost = True
            raise StoreUnavailableError("the answer was lost")
        return result


async def test_a_crash_between_the_childs_creation_and_its_record_creates_it_once() -> None:
    store = CreateAnswerLost()
    clock = Clock()
    runtime = Runtime(store, [parent, double], clock=clock, lease_ms=1_000)
    await runtime.start(parent, 5, run_id="p")
    report = await runtime.sweep()
    assert [d.outcome for d in report.drives if d.run_id == "p"] == [DriveOutcome.ABANDONED]
    assert await events_of(store, "p") == []  # nothing of the child recorded
    clock.now += 1_000  # the abandoned lease expires; the next claim replays
    await settle(runtime)
    assert await runtime.result("p") == 10
    child_id = child_run_id_for("p", "double", "double")
    assert store.created == ["p", child_id]
    assert (await events_of(store, "p")).count(EventType.CHILD_STARTED) == 1
    assert len((await store.list_runs(parent_run_id="p")).items) == 1


async def test_replays_create_nothing_new() -> None:
    store = CreateAnswerLost()
    store.lost = True  # no failure: count the creates across slices
    clock = Clock()

    @workflow("steps-around")
    async def steps_around(ctx: Context, _: None) -> list[int]:
        first = await ctx.child(double, 1, step_id="one")
        await ctx.sleep(1.0, step_id="nap")
        second = await ctx.child(double, 2, step_id="two")
        return [first, second]

    runtime = Runtime(store, [steps_around, double], clock=clock)
    await runtime.start(steps_around, None, run_id="p")
    await settle(runtime)
    clock.now += 1_000
    await settle(runtime)
    assert await runtime.result("p") == [2, 4]
    assert sorted(store.created) == sorted(
        ["p", child_run_id_for("p", "one", "double"), child_run_id_for("p", "two", "double")]
    )


class NoChildren(InMemoryStore):
    @property
    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities - {Capability.CHILDREN}


async def test_a_store_without_children_fails_the_run_with_a_typed_error() -> None:
    store = NoChildren()
    runtime = runtime_on(store)
    await runtime.start(parent, 1, run_id="p")
    await settle(runtime)
    ended = await store.load_run("p")
    assert ended is not None
    assert ended.status is RunStatus.ERRORED
    assert ended.error is not None
    assert (ended.error.type, ended.error.code) == (
        "ChildrenUnsupportedError",
        "children_unsupported",
    )
    assert "Capability.CHILDREN" in ended.error.message
    assert (await store.list_runs()).items == [ended]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("step_id", "step_id"),
        ("policy", "ParentPolicy"),
        ("run_timeout", "run_timeout"),
        ("timeout", "timeout must be a positive number"),
        ("handle", "child_result needs the handle"),
    ],
)
async def test_misuse_fails_the_run_before_anything_is_created(call: str, message: str) -> None:
    store = InMemoryStore()

    @workflow("misuse")
    async def misuse(ctx: Context, _: None) -> JSON:
        if call == "step_id":
            return await ctx.child(double, 1, step_id="x" * 250)
        if call == "policy":
            return await ctx.child(double, 1, policy="cancel")  # type: ignore[call-overload,no-any-return]
        if call == "run_timeout":
            return await ctx.child(double, 1, run_timeout=-1)
        if call == "timeout":
            return await ctx.child(double, 1, timeout=0)
        return await ctx.child_result("not a handle")  # type: ignore[arg-type]

    runtime = Runtime(store, [misuse, double], run_retry=RetryPolicy.never())
    await runtime.start(misuse, None, run_id="p")
    await settle(runtime)
    ended = await store.load_run("p")
    assert ended is not None
    assert ended.status is RunStatus.ERRORED
    assert ended.error is not None
    assert message in ended.error.message
    assert [r.run_id for r in (await store.list_runs()).items] == ["p"]


@workflow("middle")
async def middle(ctx: Context, _: None) -> JSON:
    return await ctx.child(waits, None, step_id="leaf")


@workflow("root")
async def root(ctx: Context, _: None) -> JSON:
    return await ctx.child(middle, None, step_id="middle")


async def test_a_tree_shares_its_roots_placement_and_a_timed_out_root_cancels_it() -> None:
    store = InMemoryStore()
    clock = Clock()
    runtime = runtime_on(store, root, middle, clock=clock)
    await runtime.start(root, None, run_id="tenant-9@root", timeout=5.0)
    await settle(runtime)
    mid_id = child_run_id_for("tenant-9@root", "middle", "middle")
    leaf_id = child_run_id_for(mid_id, "leaf", "waits")
    assert placement_of(mid_id) == placement_of(leaf_id) == "tenant-9"
    leaf = await store.load_run(leaf_id)
    assert leaf is not None
    assert (leaf.status, leaf.parent_run_id) == (RunStatus.PAUSED, mid_id)
    clock.now += 5_000
    await settle(runtime)
    statuses = [
        (r.status, r.error.type if r.error else None)
        for r in [await store.load_run(i) for i in ("tenant-9@root", mid_id, leaf_id)]
        if r is not None
    ]
    assert statuses == [
        (RunStatus.TIMED_OUT, "DeadlineExceeded"),
        (RunStatus.CANCELLED, "ParentEnded"),
        (RunStatus.CANCELLED, "ParentEnded"),
    ]


class CreateHangs(InMemoryStore):
    """Creates a child, then never answers: the worker is stopped hard meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.created = asyncio.Event()
        self.hang = True

    async def create_run(self, run_id: str, *args: Any, **kwargs: Any) -> CreateResult:
        result = await super().create_run(run_id, *args, **kwargs)
        if kwargs.get("parent_run_id") is not None and self.hang:
            self.hang = False
            self.created.set()
            await asyncio.Event().wait()  # until cancelled
        return result


async def test_a_hard_stop_right_after_the_childs_creation_replays_to_the_same_child() -> None:
    store = CreateHangs()
    runtime = runtime_on(store)
    await runtime.start(parent, 7, run_id="p")
    (claim,) = await runtime.claim(1)
    drive = asyncio.create_task(runtime.drive(claim))
    await store.created.wait()
    drive.cancel()  # the worker is stopped hard: the slice is released, nothing recorded
    with pytest.raises(asyncio.CancelledError):
        await drive
    assert await events_of(store, "p") == []
    await settle(runtime)
    assert await runtime.result("p") == 14
    assert len((await store.list_runs(parent_run_id="p")).items) == 1
    assert (await events_of(store, "p")).count(EventType.CHILD_STARTED) == 1


class Polling(InMemoryStore):
    """A store that neither claims at create nor tells of others' work."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities - {Capability.CLAIM_ON_CREATE, Capability.NOTIFY_RUNNABLE}


@pytest.mark.parametrize("store_kind", ["notifying", "polling"])
async def test_a_worker_polling_once_a_minute_runs_parent_and_children_through(
    store_kind: str,
) -> None:
    store = Polling() if store_kind == "polling" else InMemoryStore()
    runtime = Runtime(store, [fan_out, double])
    worker = Worker(runtime, poll_interval=60.0, jitter=0)
    task = asyncio.create_task(worker.run())
    try:
        await runtime.start(fan_out, [1, 2, 3], run_id="p")
        # A guard only: the run ends long before unless a wake-up is lost (a poll would
        # come after a minute).
        assert await runtime.result("p", wait=10.0, poll=0.005) == {
            "doubled": [2, 4, 6],
            "failed": [],
        }
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10.0)


async def test_code_that_starts_another_workflow_at_a_recorded_step_is_non_deterministic() -> None:
    store = InMemoryStore()

    @workflow("changes")
    async def before(ctx: Context, _: None) -> JSON:
        return await ctx.child(waits, None, step_id="c")

    runtime = Runtime(store, [before, waits], run_retry=RetryPolicy.never())
    await runtime.start(before, None, run_id="p")
    await settle(runtime)

    @workflow("changes")
    async def after(ctx: Context, _: None) -> JSON:
        return await ctx.child(double, 1, step_id="c")

    deployed = Runtime(store, [after, waits, double], run_retry=RetryPolicy.never())
    await deployed.signal(child_run_id_for("p", "c", "waits"), "go")
    await settle(deployed)
    ended = await store.load_run("p")
    assert ended is not None
    assert ended.error is not None
    assert ended.error.type == "NonDeterminismError"
    assert "of workflow 'waits', but the code now starts one of 'double'" in ended.error.message


class CreateYields(InMemoryStore):
    """Creates yield to the event loop, as every store over a network does."""

    async def create_run(self, run_id: str, *args: Any, **kwargs: Any) -> CreateResult:
        await asyncio.sleep(0)
        return await super().create_run(run_id, *args, **kwargs)


async def test_two_child_starts_at_once_are_refused() -> None:
    store = CreateYields()

    @workflow("gathers")
    async def gathers(ctx: Context, _: None) -> JSON:
        await asyncio.gather(
            ctx.start_child(double, 1, step_id="a"), ctx.start_child(double, 2, step_id="b")
        )
        return None

    runtime = Runtime(store, [gathers, double], run_retry=RetryPolicy.never())
    await runtime.start(gathers, None, run_id="p")
    await settle(runtime)
    ended = await store.load_run("p")
    assert ended is not None
    assert ended.error is not None
    assert "await context operations one at a time" in ended.error.message


@workflow("fills")
async def fills(ctx: Context, n: int) -> str:
    return "x" * n


async def test_a_childs_output_at_the_stores_payload_limit_reaches_its_parent() -> None:
    store = InMemoryStore(max_payload_bytes=1024)

    @workflow("takes")
    async def takes(ctx: Context, n: int) -> int:
        return len(await ctx.child(fills, n, step_id="fill"))

    runtime = Runtime(store, [takes, fills])
    await runtime.start(takes, 1022, run_id="p")  # the output's JSON: 1024 bytes
    await settle(runtime)
    assert await runtime.result("p") == 1022
