"""Contract cases: child runs (``create_run(..., parent_run_id=)``, ``Capability.CHILDREN``).

A child's end (finished, errored, cancelled, timed out) writes a ``child`` entry to its
live parent's inbox and wakes a parent paused on it; a parent cancelled or timed out
cancels its ``cancel``-policy children, down the tree, in the same atomic step. Child
ids have the form ``<parent's placement>@<suffix>`` (``parent@c1``), which every store
accepts (Redis places a run by the text before its last ``@``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import pytest

from workflow.runtime import (
    JSON,
    AlreadyTerminal,
    Cancelled,
    Capability,
    Claimed,
    Conflict,
    Created,
    ErrorInfo,
    ExecutionStore,
    Existing,
    Fail,
    Finish,
    InboxEntry,
    InboxKind,
    InboxRef,
    InvalidArgumentError,
    Lease,
    NotClaimable,
    Outcome,
    ParentPolicy,
    Pause,
    Run,
    RunCancelledError,
    RunStatus,
    RunTimedOutError,
    Wait,
    WaitKind,
)

from ..support import LEASE_MS, T0, StoreFactory, create, event, requires
from .runs import HOLDER_WRITES, HolderWrite, holder_write, loaded
from .wakeups import _next, _watching

PARENT = "parent"
OTHER_PARENT = "other"
FAILURE = ErrorInfo("Boom", "it broke", "boom", "Traceback: line 1")
DEADLINE = T0 + 60_000
TIMED_OUT = ErrorInfo("DeadlineExceeded", "the run's deadline passed", "timed_out")

End = Literal["finish", "fail", "cancel"]
ENDS: list[End] = ["finish", "fail", "cancel"]


def kid(n: int | str, parent: str = PARENT) -> str:
    """A child id every store accepts: ``<parent's placement>@<suffix>``."""
    return f"{parent}@c{n}"


def parent_ended(parent_run_id: str, status: str) -> ErrorInfo:
    return ErrorInfo("ParentEnded", f"parent run {parent_run_id} ended {status}", "cancelled")


def child_entry(
    parent_run_id: str,
    child_run_id: str,
    status: RunStatus,
    now: int,
    *,
    output: JSON = None,
    error: ErrorInfo | None = None,
    consumed: bool = False,
) -> InboxEntry:
    """The entry a child's end writes to its parent's inbox (the error without its
    traceback)."""
    return InboxEntry(
        run_id=parent_run_id,
        kind=InboxKind.CHILD,
        key=child_run_id,
        name=None,
        step_id=None,
        payload={
            "status": status.value,
            "output": output,
            "error": None
            if error is None
            else {"type": error.type, "message": error.message, "code": error.code},
        },
        meta=None,
        received_at=now,
        consumed=consumed,
    )


async def child(
    store: ExecutionStore,
    run_id: str,
    parent: str = PARENT,
    policy: ParentPolicy = ParentPolicy.CANCEL,
    *,
    now: int = T0,
    deadline_at: int | None = None,
) -> Run:
    made = await store.create_run(
        run_id,
        "child-wf",
        None,
        {"of": parent},
        now,
        parent_run_id=parent,
        parent_policy=policy,
        deadline_at=deadline_at,
    )
    assert isinstance(made, Created), made
    return made.run


async def claimed(store: ExecutionStore, run_id: str, now: int = T0) -> Lease:
    claim = await store.claim_run(run_id, "worker-a", LEASE_MS, now)
    assert isinstance(claim, Claimed), claim
    return claim.lease


async def pause(store: ExecutionStore, run_id: str, wait: Wait, now: int = T0) -> Run:
    """Claim ``run_id`` and settle it paused on ``wait``."""
    lease = await claimed(store, run_id, now)
    run = await store.settle_run(run_id, lease, 0, [], Pause(wait), now)
    return run


async def end(store: ExecutionStore, run_id: str, how: End, now: int) -> tuple[Run, InboxEntry]:
    """End a queued run ``how`` at ``now``; returns it and the entry its parent should
    get."""
    before = await loaded(store, run_id)
    assert before.parent_run_id is not None
    if how == "cancel":
        result = await store.cancel_run(run_id, "stop", now)
        assert isinstance(result, Cancelled), result
        error = ErrorInfo("Cancelled", "stop", "cancelled")
        return result.run, child_entry(
            before.parent_run_id, run_id, RunStatus.CANCELLED, now, error=error
        )
    lease = await claimed(store, run_id, now)
    outcome: Outcome = Finish({"done": run_id}) if how == "finish" else Fail(FAILURE)
    run = await store.settle_run(run_id, lease, 0, [event(1)], outcome, now)
    if how == "finish":
        expected = child_entry(
            before.parent_run_id, run_id, RunStatus.FINISHED, now, output={"done": run_id}
        )
    else:
        expected = child_entry(before.parent_run_id, run_id, RunStatus.ERRORED, now, error=FAILURE)
    return run, expected


async def inbox(store: ExecutionStore, run_id: str) -> list[InboxEntry]:
    return await store.read_inbox(run_id, include_consumed=True)


class ChildCases:
    # -- the declaration -------------------------------------------------------------------
    async def test_a_store_without_children_refuses_parent_run_id(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        if Capability.CHILDREN in store.capabilities:
            made = await store.create_run(kid(1), "wf", None, None, T0, parent_run_id=PARENT)
            assert isinstance(made, Created)
            page = await store.list_runs(parent_run_id=PARENT)
            assert [r.run_id for r in page.items] == [kid(1)]
            return
        with pytest.raises(InvalidArgumentError, match="parent_run_id"):
            await store.create_run(kid(1), "wf", None, None, T0, parent_run_id=PARENT)
        assert await store.load_run(kid(1)) is None
        with pytest.raises(InvalidArgumentError, match="parent_run_id"):
            await store.list_runs(parent_run_id=PARENT)

    # -- create_run with a parent ------------------------------------------------------------
    @requires(Capability.CHILDREN)
    async def test_create_child_reads_back_its_parent_and_policy(
        self, store: ExecutionStore
    ) -> None:
        parent = await create(store, PARENT)
        assert (parent.parent_run_id, parent.parent_policy) == (None, None)
        made = await store.create_run(
            kid(1), "child-wf", "v1", {"x": 1}, T0 + 1, parent_run_id=PARENT
        )
        assert isinstance(made, Created), made
        assert made.run.parent_run_id == PARENT
        assert made.run.parent_policy is ParentPolicy.CANCEL  # the default
        assert (made.run.status, made.run.ready_at, made.run.input) == (
            RunStatus.QUEUED,
            T0 + 1,
            {"x": 1},
        )
        assert await loaded(store, kid(1)) == made.run
        abandoned = await child(store, kid(2), policy=ParentPolicy.ABANDON)
        assert (abandoned.parent_run_id, abandoned.parent_policy) == (
            PARENT,
            ParentPolicy.ABANDON,
        )
        assert await loaded(store, kid(2)) == abandoned
        # A grandchild names its own parent (and shares the root's placement).
        grandchild = await child(store, kid("g1"), kid(1))
        assert grandchild.parent_run_id == kid(1)
        assert (await loaded(store, PARENT)) == parent

    @requires(Capability.CHILDREN)
    async def test_create_child_of_an_unknown_parent_is_refused_and_writes_nothing(
        self, store: ExecutionStore
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="parent_run_id"):
            await store.create_run(kid(1), "wf", None, None, T0, parent_run_id=PARENT)
        assert await store.load_run(kid(1)) is None
        await create(store, PARENT)
        await store.delete_run(PARENT)
        with pytest.raises(InvalidArgumentError, match="parent_run_id"):
            await store.create_run(kid(1), "wf", None, None, T0, parent_run_id=PARENT)
        assert await store.load_run(kid(1)) is None
        assert (await store.list_runs()).items == []

    @requires(Capability.CHILDREN)
    async def test_a_run_cannot_be_its_own_parent(self, store: ExecutionStore) -> None:
        with pytest.raises(InvalidArgumentError, match="parent_run_id"):
            await store.create_run(PARENT, "wf", None, None, T0, parent_run_id=PARENT)
        assert await store.load_run(PARENT) is None
        # Bad input before anything else: also when the id exists.
        run = await create(store, PARENT)
        with pytest.raises(InvalidArgumentError, match="parent_run_id"):
            await store.create_run(PARENT, "wf", None, None, T0, parent_run_id=PARENT)
        assert await loaded(store, PARENT) == run

    @pytest.mark.parametrize(
        ("parent_run_id", "parent_policy", "named"),
        [
            ("", ParentPolicy.CANCEL, "parent_run_id"),
            ("p" * 256, ParentPolicy.CANCEL, "parent_run_id"),
            ("a\x00b", ParentPolicy.CANCEL, "parent_run_id"),
            (7, ParentPolicy.CANCEL, "parent_run_id"),
            (PARENT, "cancel", "parent_policy"),
            (PARENT, None, "parent_policy"),
            (PARENT, 1, "parent_policy"),
            (None, "abandon", "parent_policy"),
        ],
    )
    @requires(Capability.CHILDREN)
    async def test_bad_parent_arguments_are_refused_before_anything_is_written(
        self, store: ExecutionStore, parent_run_id: object, parent_policy: object, named: str
    ) -> None:
        await create(store, PARENT)
        with pytest.raises(InvalidArgumentError, match=named):
            await store.create_run(
                kid(1),
                "wf",
                None,
                None,
                T0,
                parent_run_id=parent_run_id,  # type: ignore[arg-type]
                parent_policy=parent_policy,  # type: ignore[arg-type]
            )
        assert await store.load_run(kid(1)) is None
        assert await store.read_inbox(PARENT) == []

    @requires(Capability.CHILDREN)
    async def test_create_child_answers_existing_or_conflict_before_checking_the_parent(
        self, store: ExecutionStore
    ) -> None:
        plain = await create(store, kid(1), workflow_id="child-wf")
        again = await store.create_run(
            kid(1), "child-wf", None, None, T0 + 1, parent_run_id="nobody"
        )
        assert again == Existing(plain)
        other = await store.create_run(kid(1), "else", None, None, T0 + 1, parent_run_id="nobody")
        assert other == Conflict(plain)
        # An existing child keeps its own link whatever a later create names.
        await create(store, PARENT)
        await create(store, OTHER_PARENT)
        first = await child(store, kid(2))
        second = await store.create_run(
            kid(2), "child-wf", None, None, T0 + 2, parent_run_id=OTHER_PARENT
        )
        assert second == Existing(first)
        assert await loaded(store, kid(2)) == first

    @requires(Capability.CHILDREN)
    async def test_children_keep_their_links_after_the_parent_is_deleted_or_purged(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        live = await child(store, kid(1))
        abandoned = await child(store, kid(2), policy=ParentPolicy.ABANDON)
        assert await store.delete_run(PARENT)
        assert await loaded(store, kid(1)) == live
        assert await loaded(store, kid(2)) == abandoned
        page = await store.list_runs(parent_run_id=PARENT)
        assert [r.run_id for r in page.items] == [kid(2), kid(1)]
        # Purged (terminal) parents likewise.
        await create(store, OTHER_PARENT)
        other = await child(store, kid(1, OTHER_PARENT), OTHER_PARENT)
        lease = await claimed(store, OTHER_PARENT)
        await store.settle_run(OTHER_PARENT, lease, 0, [], Finish(None), T0 + 1)
        assert await store.purge_runs(T0 + 2, 10) == 1
        assert await store.load_run(OTHER_PARENT) is None
        assert await loaded(store, kid(1, OTHER_PARENT)) == other

    # -- list_runs(parent_run_id=) -----------------------------------------------------------
    @requires(Capability.CHILDREN)
    async def test_list_runs_by_parent_pages_through_that_runs_children_only(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        await create(store, OTHER_PARENT)
        # Ties on created_at are broken by run id (descending), as in every listing.
        mine = [await child(store, kid(n), now=T0 + (n // 2)) for n in range(7)]
        await child(store, kid(1, OTHER_PARENT), OTHER_PARENT)
        await child(store, kid("g1"), kid(1))  # a grandchild is not a child
        expected = sorted(mine, key=lambda r: (r.created_at, r.run_id), reverse=True)
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await store.list_runs(parent_run_id=PARENT, limit=3, cursor=cursor)
            assert len(page.items) <= 3
            seen += [r.run_id for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [r.run_id for r in expected]
        # With the other filters.
        lease = await claimed(store, kid(3))
        await store.settle_run(kid(3), lease, 0, [], Finish(None), T0 + 10)
        done = await store.list_runs(parent_run_id=PARENT, status=RunStatus.FINISHED)
        assert [r.run_id for r in done.items] == [kid(3)]
        wrong_wf = await store.list_runs(parent_run_id=PARENT, workflow_id="wf")
        assert wrong_wf.items == []
        assert (await store.list_runs(parent_run_id="nobody")).items == []
        with pytest.raises(InvalidArgumentError, match="parent_run_id"):
            await store.list_runs(parent_run_id="")

    # -- a child's end reaches its parent -----------------------------------------------------
    @pytest.mark.parametrize("how", ENDS)
    @pytest.mark.parametrize("parent_state", ["queued", "running", "paused"])
    @requires(Capability.CHILDREN)
    async def test_child_end_writes_a_child_entry_to_its_live_parent(
        self, store: ExecutionStore, how: End, parent_state: str
    ) -> None:
        await create(store, PARENT)
        if parent_state != "queued":
            lease = await claimed(store, PARENT)
            if parent_state == "paused":
                await store.settle_run(PARENT, lease, 0, [], Pause(Wait.signal("s1", "go")), T0)
        await child(store, kid(1))
        parent = await loaded(store, PARENT)
        ended, expected = await end(store, kid(1), how, T0 + 5)
        assert ended.status.terminal
        assert await inbox(store, PARENT) == [expected]
        # Not waiting on that child: the parent itself is unchanged (a running parent's
        # lease still holds).
        assert await loaded(store, PARENT) == parent
        # The child's own inbox gets nothing.
        assert await inbox(store, kid(1)) == []

    @requires(Capability.CHILDREN)
    async def test_child_entry_carries_the_output_and_the_error_without_traceback(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1))
        await child(store, kid(2))
        out: JSON = {"nested": [1, 2.5, "x", None, {"k": True}], "big": 2**62}
        lease = await claimed(store, kid(1))
        await store.settle_run(kid(1), lease, 0, [], Finish(out), T0 + 1)
        lease = await claimed(store, kid(2))
        await store.settle_run(kid(2), lease, 0, [], Fail(FAILURE), T0 + 2)
        assert await inbox(store, PARENT) == [
            child_entry(PARENT, kid(1), RunStatus.FINISHED, T0 + 1, output=out),
            child_entry(PARENT, kid(2), RunStatus.ERRORED, T0 + 2, error=FAILURE),
        ]

    @requires(Capability.DEADLINES)
    @requires(Capability.CHILDREN)
    async def test_child_timed_out_by_its_deadline_writes_a_child_entry(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1), deadline_at=DEADLINE)
        fired = await store.fire_due_timers(DEADLINE + 1, 10)
        assert [(e.run_id, e.kind) for e in fired] == [(kid(1), InboxKind.DEADLINE)]
        assert await inbox(store, PARENT) == [
            child_entry(PARENT, kid(1), RunStatus.TIMED_OUT, DEADLINE + 1, error=TIMED_OUT)
        ]
        assert (await loaded(store, PARENT)).status is RunStatus.QUEUED

    @pytest.mark.parametrize("how", ENDS)
    @requires(Capability.CHILDREN)
    async def test_child_end_queues_a_parent_paused_on_that_child_and_its_timer_is_gone(
        self, store: ExecutionStore, how: End
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1))
        wait = Wait.child("await-c1", kid(1), timeout_at=T0 + 10_000, meta={"m": 1})
        paused = await pause(store, PARENT, wait)
        assert paused.status is RunStatus.PAUSED
        assert paused.wait == wait
        _, expected = await end(store, kid(1), how, T0 + 5)
        after = await loaded(store, PARENT)
        assert (after.status, after.wait, after.ready_at, after.updated_at, after.lease) == (
            RunStatus.QUEUED,
            None,
            T0 + 5,
            T0 + 5,
            None,
        )
        assert await inbox(store, PARENT) == [expected]
        # The wait was resolved: its timer cannot fire any more.
        assert await store.fire_due_timers(T0 + 20_000, 10) == []
        claim = await store.claim_run(PARENT, "worker-b", LEASE_MS, T0 + 6)
        assert isinstance(claim, Claimed)
        assert claim.inbox == [expected]

    @requires(Capability.CHILDREN)
    async def test_child_end_leaves_a_parent_paused_on_another_child_or_a_signal(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        await create(store, OTHER_PARENT)
        await child(store, kid(1))
        await child(store, kid(2))
        await child(store, kid(1, OTHER_PARENT), OTHER_PARENT)
        on_other = await pause(store, PARENT, Wait.child("await-c2", kid(2)))
        on_signal = await pause(store, OTHER_PARENT, Wait.signal("s", kid(1, OTHER_PARENT)))
        _, first = await end(store, kid(1), "finish", T0 + 5)
        _, second = await end(store, kid(1, OTHER_PARENT), "finish", T0 + 5)
        assert await loaded(store, PARENT) == on_other
        assert await loaded(store, OTHER_PARENT) == on_signal
        assert await inbox(store, PARENT) == [first]
        assert await inbox(store, OTHER_PARENT) == [second]
        # The awaited child's end then wakes it, with both entries unconsumed.
        _, third = await end(store, kid(2), "fail", T0 + 6)
        claim = await store.claim_run(PARENT, "worker-b", LEASE_MS, T0 + 7)
        assert isinstance(claim, Claimed)
        assert claim.inbox == [first, third]

    @requires(Capability.CHILDREN)
    async def test_pause_on_a_child_that_already_ended_queues_the_parent_at_once(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1))
        await child(store, kid(2))
        lease = await claimed(store, PARENT)
        _, first = await end(store, kid(1), "finish", T0 + 1)
        _, second = await end(store, kid(2), "finish", T0 + 1)
        run = await store.settle_run(
            PARENT, lease, 0, [event(1)], Pause(Wait.child("await-c1", kid(1))), T0 + 2
        )
        assert (run.status, run.wait, run.ready_at, run.updated_at) == (
            RunStatus.QUEUED,
            None,
            T0 + 2,
            T0 + 2,
        )
        # An entry consumed by this very settle no longer satisfies the wait.
        lease = await claimed(store, PARENT, T0 + 3)
        wait = Wait.child("await-c2", kid(2))
        run = await store.settle_run(
            PARENT,
            lease,
            1,
            [],
            Pause(wait),
            T0 + 4,
            consume=[InboxRef(InboxKind.CHILD, kid(2))],
        )
        assert (run.status, run.wait) == (RunStatus.PAUSED, wait)
        assert await inbox(store, PARENT) == [first, replace(second, consumed=True)]

    @pytest.mark.parametrize(
        ("wait", "named"),
        [
            (Wait(WaitKind.CHILD, "s"), "wait.name"),
            (Wait.child("s", ""), "wait.name"),
            (Wait.child("s", "p" * 256), "wait.name"),
            (Wait(WaitKind.CHILD, "s", name=kid(1), approval_id="a"), "approval_id"),
            (Wait.child("", kid(1)), "wait.step_id"),
        ],
    )
    @requires(Capability.CHILDREN)
    async def test_a_bad_child_wait_is_refused_before_anything_is_written(
        self, store: ExecutionStore, wait: Wait, named: str
    ) -> None:
        await create(store, PARENT)
        lease = await claimed(store, PARENT)
        before = await loaded(store, PARENT)
        with pytest.raises(InvalidArgumentError, match=named):
            await store.settle_run(PARENT, lease, 0, [event(1)], Pause(wait), T0 + 1)
        assert await loaded(store, PARENT) == before
        assert await store.read_events(PARENT) == []

    @requires(Capability.CHILDREN)
    async def test_child_wait_with_a_timeout_fires_a_timer_and_the_later_end_is_buffered(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1))
        await pause(store, PARENT, Wait.child("await-c1", kid(1), timeout_at=T0 + 1_000))
        assert await store.fire_due_timers(T0 + 999, 10) == []
        fired = await store.fire_due_timers(T0 + 1_000, 10)
        timer = InboxEntry(
            run_id=PARENT,
            kind=InboxKind.TIMER,
            key="await-c1",
            name=None,
            step_id="await-c1",
            payload={"wake_at": T0 + 1_000},
            meta=None,
            received_at=T0 + 1_000,
            consumed=False,
        )
        assert fired == [timer]
        queued = await loaded(store, PARENT)
        assert (queued.status, queued.wait, queued.ready_at) == (RunStatus.QUEUED, None, T0 + 1_000)
        _, expected = await end(store, kid(1), "finish", T0 + 2_000)
        assert await loaded(store, PARENT) == queued
        assert await inbox(store, PARENT) == [timer, expected]

    @requires(Capability.CHILDREN)
    async def test_child_entry_already_there_is_kept_and_still_wakes_the_parent(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1))
        _, first = await end(store, kid(1), "finish", T0 + 1)
        # The parent takes the entry, then waits on that child id again.
        lease = await claimed(store, PARENT, T0 + 2)
        wait = Wait.child("again", kid(1))
        run = await store.settle_run(PARENT, lease, 0, [], Pause(wait), T0 + 3, consume=[first.ref])
        assert run.status is RunStatus.PAUSED
        # The child id is used again: deleted, created anew under the same parent, ended.
        assert await store.delete_run(kid(1))
        await child(store, kid(1), now=T0 + 4)
        await end(store, kid(1), "fail", T0 + 5)
        kept = replace(first, consumed=True)
        assert await inbox(store, PARENT) == [kept]
        after = await loaded(store, PARENT)
        assert (after.status, after.wait, after.ready_at, after.updated_at) == (
            RunStatus.QUEUED,
            None,
            T0 + 5,
            T0 + 5,
        )

    @pytest.mark.parametrize(
        "parent_end",
        [
            "finish",
            "fail",
            "cancel",
            pytest.param("time_out", marks=requires(Capability.DEADLINES)),
            "delete",
        ],
    )
    @requires(Capability.CHILDREN)
    async def test_a_parent_that_ended_or_is_gone_gets_nothing(
        self, store: ExecutionStore, parent_end: str
    ) -> None:
        deadline = T0 + 1 if parent_end == "time_out" else None
        made = await store.create_run(PARENT, "wf", None, None, T0, deadline_at=deadline)
        assert isinstance(made, Created)
        # abandon: a cancelled parent would otherwise have cancelled it.
        await child(store, kid(1), policy=ParentPolicy.ABANDON)
        if parent_end == "time_out":
            await store.fire_due_timers(T0 + 1, 10)
        elif parent_end == "delete":
            await store.delete_run(PARENT)
        elif parent_end == "cancel":
            await store.cancel_run(PARENT, "stop", T0 + 1)
        else:
            lease = await claimed(store, PARENT)
            outcome: Outcome = Finish(None) if parent_end == "finish" else Fail(FAILURE)
            await store.settle_run(PARENT, lease, 0, [], outcome, T0 + 1)
        parent = await store.load_run(PARENT)
        entries = await inbox(store, PARENT)
        ended, _ = await end(store, kid(1), "finish", T0 + 5)
        assert ended.status is RunStatus.FINISHED
        assert await store.load_run(PARENT) == parent
        assert await inbox(store, PARENT) == entries
        assert all(e.kind is not InboxKind.CHILD for e in entries)

    # -- a parent's cancellation or time-out reaches its children --------------------------------
    @requires(Capability.CHILDREN)
    async def test_cancel_cascades_to_cancel_policy_children_transitively(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        # Tree under PARENT (all ids share the placement "parent"):
        #   c1 cancel (running)   -> g1 cancel (queued) -> gg1 cancel (paused, timer)
        #                         -> g2 abandon (queued)
        #   c2 abandon (queued)   -> g3 cancel (queued)   (an abandoned subtree)
        #   c3 cancel (paused on a signal with a timeout)
        #   c4 cancel (finished before)
        await child(store, kid(1))
        await child(store, kid(2), policy=ParentPolicy.ABANDON)
        await child(store, kid(3))
        await child(store, kid(4))
        await child(store, kid("g1"), kid(1))
        await child(store, kid("g2"), kid(1), ParentPolicy.ABANDON)
        await child(store, kid("g3"), kid(2))
        await child(store, kid("gg1"), kid("g1"))
        c1_lease = await claimed(store, kid(1))
        await pause(store, kid(3), Wait.signal("s", "go", timeout_at=T0 + 9_000))
        await pause(store, kid("gg1"), Wait.sleep("nap", T0 + 9_000))
        _, c4_entry = await end(store, kid(4), "finish", T0 + 1)
        untouched = {r: await loaded(store, r) for r in (kid(2), kid(4), kid("g2"), kid("g3"))}
        before = await loaded(store, PARENT)
        result = await store.cancel_run(PARENT, "stop", T0 + 10)
        # The answer is as without children.
        expected_parent = replace(
            before,
            status=RunStatus.CANCELLED,
            error=ErrorInfo("Cancelled", "stop", "cancelled"),
            wait=None,
            lease=None,
            ready_at=None,
            updated_at=T0 + 10,
        )
        assert result == Cancelled(expected_parent)
        cascaded = [
            (kid(1), PARENT),
            (kid(3), PARENT),
            (kid("g1"), kid(1)),
            (kid("gg1"), kid("g1")),
        ]
        for run_id, up in cascaded:
            run = await loaded(store, run_id)
            assert (run.status, run.error, run.lease, run.wait, run.ready_at, run.updated_at) == (
                RunStatus.CANCELLED,
                parent_ended(up, "cancelled"),
                None,
                None,
                None,
                T0 + 10,
            ), run_id
            # They end with no child entries: their parents have ended.
            assert await inbox(store, run_id) == [], run_id
        for run_id, run in untouched.items():
            assert await loaded(store, run_id) == run, run_id
        assert await inbox(store, PARENT) == [c4_entry]
        # No timer of a cascaded run is left.
        assert await store.fire_due_timers(T0 + 10_000, 10) == []
        # The cascaded runs are terminal for every operation.
        with pytest.raises(RunCancelledError):
            await store.heartbeat(kid(1), c1_lease, LEASE_MS, T0 + 11)
        assert isinstance(await store.claim_run(kid("g1"), "w", LEASE_MS, T0 + 11), NotClaimable)
        assert isinstance(await store.cancel_run(kid(3), "again", T0 + 11), AlreadyTerminal)

    @requires(Capability.CHILDREN)
    async def test_a_cancelled_child_reaches_its_live_parent_and_cascades_below_itself(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1))
        await child(store, kid("g1"), kid(1))
        await child(store, kid("g2"), kid(1))
        result = await store.cancel_run(kid(1), "enough", T0 + 3)
        assert isinstance(result, Cancelled)
        # Exactly one entry: the cancelled child's; its cascaded children write none.
        assert await inbox(store, PARENT) == [
            child_entry(
                PARENT,
                kid(1),
                RunStatus.CANCELLED,
                T0 + 3,
                error=ErrorInfo("Cancelled", "enough", "cancelled"),
            )
        ]
        for run_id in (kid("g1"), kid("g2")):
            run = await loaded(store, run_id)
            expected = (RunStatus.CANCELLED, parent_ended(kid(1), "cancelled"))
            assert (run.status, run.error) == expected
        assert await inbox(store, kid(1)) == []
        assert (await loaded(store, PARENT)).status is RunStatus.QUEUED

    @pytest.mark.parametrize("op", HOLDER_WRITES)
    @requires(Capability.CHILDREN)
    async def test_cascade_revokes_the_childs_lease_so_holder_writes_raise_cancelled(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1))
        lease = await claimed(store, kid(1))
        await store.append_events(kid(1), lease, 0, [event(1)], T0 + 1)
        await store.cancel_run(PARENT, "stop", T0 + 2)
        after = await loaded(store, kid(1))
        with pytest.raises(RunCancelledError) as caught:
            await holder_write(store, op, kid(1), lease, 1, T0 + 3)
        assert not isinstance(caught.value, RunTimedOutError)
        assert caught.value.run_id == kid(1)
        assert await loaded(store, kid(1)) == after
        assert len(await store.read_events(kid(1))) == 1

    @requires(Capability.DEADLINES)
    @requires(Capability.CHILDREN)
    async def test_parent_timing_out_cancels_its_children_and_only_its_deadline_is_returned(
        self, store: ExecutionStore
    ) -> None:
        made = await store.create_run(PARENT, "wf", None, None, T0, deadline_at=DEADLINE)
        assert isinstance(made, Created)
        await child(store, kid(1))
        await child(store, kid(2), policy=ParentPolicy.ABANDON)
        await child(store, kid("g1"), kid(1))
        lease = await claimed(store, kid(1))
        abandoned = await loaded(store, kid(2))
        fired = await store.fire_due_timers(DEADLINE, 10)
        assert [(e.run_id, e.kind) for e in fired] == [(PARENT, InboxKind.DEADLINE)]
        assert (await loaded(store, PARENT)).status is RunStatus.TIMED_OUT
        c1, g1 = await loaded(store, kid(1)), await loaded(store, kid("g1"))
        assert (c1.status, c1.error, c1.updated_at) == (
            RunStatus.CANCELLED,
            parent_ended(PARENT, "timed_out"),
            DEADLINE,
        )
        assert (g1.status, g1.error) == (RunStatus.CANCELLED, parent_ended(kid(1), "cancelled"))
        assert await loaded(store, kid(2)) == abandoned
        with pytest.raises(RunCancelledError) as caught:
            await store.heartbeat(kid(1), lease, LEASE_MS, DEADLINE + 1)
        assert not isinstance(caught.value, RunTimedOutError)
        assert [e.kind for e in await inbox(store, PARENT)] == [InboxKind.DEADLINE]

    @pytest.mark.parametrize("how", ["finish", "fail"])
    @requires(Capability.CHILDREN)
    async def test_a_parent_that_finished_or_errored_leaves_its_children(
        self, store: ExecutionStore, how: str
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1))
        lease = await claimed(store, kid(1))
        await child(store, kid(2))
        before = [await loaded(store, kid(1)), await loaded(store, kid(2))]
        parent_lease = await claimed(store, PARENT)
        outcome: Outcome = Finish("done") if how == "finish" else Fail(FAILURE)
        await store.settle_run(PARENT, parent_lease, 0, [], outcome, T0 + 1)
        assert [await loaded(store, kid(1)), await loaded(store, kid(2))] == before
        await store.heartbeat(kid(1), lease, LEASE_MS, T0 + 2)

    @pytest.mark.parametrize(
        "parent_end",
        ["cancelled", pytest.param("timed_out", marks=requires(Capability.DEADLINES))],
    )
    @requires(Capability.CHILDREN)
    async def test_a_new_child_of_a_cancelled_or_timed_out_parent_is_created_cancelled(
        self, store: ExecutionStore, parent_end: str
    ) -> None:
        if parent_end == "cancelled":
            await create(store, PARENT)
            await store.cancel_run(PARENT, "stop", T0 + 1)
        else:
            await store.create_run(PARENT, "wf", None, None, T0, deadline_at=T0 + 1)
            await store.fire_due_timers(T0 + 1, 10)
        parent = await loaded(store, PARENT)
        made = await store.create_run(
            kid(1), "child-wf", None, {"x": 1}, T0 + 5, parent_run_id=PARENT
        )
        assert isinstance(made, Created), made
        assert made.lease is None
        run = made.run
        assert (run.status, run.error, run.ready_at, run.lease, run.created_at, run.updated_at) == (
            RunStatus.CANCELLED,
            parent_ended(PARENT, parent_end),
            None,
            None,
            T0 + 5,
            T0 + 5,
        )
        assert (run.parent_run_id, run.parent_policy, run.input) == (
            PARENT,
            ParentPolicy.CANCEL,
            {"x": 1},
        )
        assert await loaded(store, kid(1)) == run
        assert isinstance(await store.claim_run(kid(1), "w", LEASE_MS, T0 + 6), NotClaimable)
        assert await store.claim_runnable("w", LEASE_MS, 10, T0 + 6) == []
        assert await loaded(store, PARENT) == parent
        assert [e for e in await inbox(store, PARENT) if e.kind is InboxKind.CHILD] == []
        # abandon: created as usual.
        free = await child(store, kid(2), policy=ParentPolicy.ABANDON, now=T0 + 5)
        assert (free.status, free.ready_at, free.error) == (RunStatus.QUEUED, T0 + 5, None)

    @requires(Capability.CLAIM_ON_CREATE)
    @requires(Capability.CHILDREN)
    async def test_a_new_child_of_a_cancelled_parent_is_not_claimed_even_with_an_owner(
        self, store: ExecutionStore
    ) -> None:
        await create(store, PARENT)
        await store.cancel_run(PARENT, "stop", T0 + 1)
        made = await store.create_run(
            kid(1), "wf", None, None, T0 + 2, parent_run_id=PARENT, owner="w", lease_ms=LEASE_MS
        )
        assert isinstance(made, Created), made
        assert made.lease is None
        assert (made.run.status, made.run.lease, made.run.error) == (
            RunStatus.CANCELLED,
            None,
            parent_ended(PARENT, "cancelled"),
        )
        # Under a parent that finished, a claimed create works as usual.
        await create(store, OTHER_PARENT)
        lease = await claimed(store, OTHER_PARENT)
        await store.settle_run(OTHER_PARENT, lease, 0, [], Finish(None), T0 + 1)
        usual = await store.create_run(
            kid(1, OTHER_PARENT),
            "wf",
            None,
            None,
            T0 + 2,
            parent_run_id=OTHER_PARENT,
            owner="w",
            lease_ms=LEASE_MS,
        )
        assert isinstance(usual, Created)
        assert usual.lease == Lease("w", 1, T0 + 2 + LEASE_MS)
        assert usual.run.status is RunStatus.RUNNING

    @pytest.mark.parametrize("how", ["delete", "purge"])
    @requires(Capability.CHILDREN)
    async def test_deleting_or_purging_a_parent_leaves_its_children_as_they_are(
        self, store: ExecutionStore, how: str
    ) -> None:
        await create(store, PARENT)
        await child(store, kid(1))
        lease = await claimed(store, kid(1))
        await child(store, kid(2))
        await pause(store, kid(2), Wait.child("w", kid("x")))
        if how == "purge":
            parent_lease = await claimed(store, PARENT)
            await store.settle_run(PARENT, parent_lease, 0, [], Finish(None), T0 + 1)
        before = [await loaded(store, kid(1)), await loaded(store, kid(2))]
        if how == "purge":
            assert await store.purge_runs(T0 + 2, 10) == 1
        else:
            assert await store.delete_run(PARENT)
        assert await store.load_run(PARENT) is None
        assert [await loaded(store, kid(1)), await loaded(store, kid(2))] == before
        # They go on: the end of one reaches nobody.
        await store.settle_run(kid(1), lease, 0, [], Finish(None), T0 + 3)
        assert (await loaded(store, kid(1))).status is RunStatus.FINISHED
        assert await inbox(store, PARENT) == []

    # -- deadlines of a parent and its child in one call ---------------------------------------
    @requires(Capability.DEADLINES)
    @requires(Capability.CHILDREN)
    async def test_parent_and_child_due_together_fire_one_after_another_in_order(
        self, store: ExecutionStore
    ) -> None:
        """Firings in one call happen one after another in ``(deadline_at, run_id)``
        order, each seeing the ones before: the parent (``parent`` sorts before
        ``parent@c1``) times out first and its cascade cancels the child, which then has
        no deadline left: it is neither returned nor counted in ``limit``."""
        await store.create_run(PARENT, "wf", None, None, T0, deadline_at=DEADLINE)
        await child(store, kid(1), deadline_at=DEADLINE)
        await child(store, kid(2), policy=ParentPolicy.ABANDON, deadline_at=DEADLINE)
        await store.create_run("zz", "wf", None, None, T0, deadline_at=DEADLINE + 1)
        now = DEADLINE + 1
        fired = await store.fire_due_timers(now, 3)
        assert [(e.run_id, e.kind) for e in fired] == [
            (PARENT, InboxKind.DEADLINE),
            (kid(2), InboxKind.DEADLINE),
            ("zz", InboxKind.DEADLINE),
        ]
        c1 = await loaded(store, kid(1))
        assert (c1.status, c1.error) == (RunStatus.CANCELLED, parent_ended(PARENT, "timed_out"))
        assert await inbox(store, kid(1)) == []
        assert (await loaded(store, kid(2))).status is RunStatus.TIMED_OUT
        # The abandoned child timed out after its parent: the parent got nothing.
        assert [e.kind for e in await inbox(store, PARENT)] == [InboxKind.DEADLINE]

    @requires(Capability.DEADLINES)
    @requires(Capability.CHILDREN)
    async def test_child_due_before_its_parent_reaches_it_before_the_parent_times_out(
        self, store: ExecutionStore
    ) -> None:
        await store.create_run(PARENT, "wf", None, None, T0, deadline_at=DEADLINE)
        await child(store, kid(1), deadline_at=DEADLINE - 1)
        await pause(store, PARENT, Wait.child("await", kid(1)))
        now = DEADLINE + 5
        fired = await store.fire_due_timers(now, 10)
        assert [(e.run_id, e.kind) for e in fired] == [
            (kid(1), InboxKind.DEADLINE),
            (PARENT, InboxKind.DEADLINE),
        ]
        assert (await loaded(store, kid(1))).status is RunStatus.TIMED_OUT
        parent = await loaded(store, PARENT)
        assert parent.status is RunStatus.TIMED_OUT
        assert await inbox(store, PARENT) == [
            child_entry(PARENT, kid(1), RunStatus.TIMED_OUT, now, error=TIMED_OUT),
            InboxEntry(
                run_id=PARENT,
                kind=InboxKind.DEADLINE,
                key="deadline",
                name=None,
                step_id=None,
                payload={"deadline_at": DEADLINE},
                meta=None,
                received_at=now,
                consumed=False,
            ),
        ]

    @requires(Capability.DEADLINES)
    @requires(Capability.CHILDREN)
    async def test_child_deadline_queues_its_parent_before_the_parents_timer_would_fire(
        self, store: ExecutionStore
    ) -> None:
        """Deadlines fire before timers in one call: the child's firing queues the parent
        paused on it, so the parent's timeout (due too) has no wait left to fire."""
        await create(store, PARENT)
        await child(store, kid(1), deadline_at=T0 + 5)
        await pause(store, PARENT, Wait.child("await", kid(1), timeout_at=T0 + 5))
        fired = await store.fire_due_timers(T0 + 10, 10)
        assert [(e.run_id, e.kind) for e in fired] == [(kid(1), InboxKind.DEADLINE)]
        parent = await loaded(store, PARENT)
        assert (parent.status, parent.wait, parent.ready_at) == (RunStatus.QUEUED, None, T0 + 10)
        assert await inbox(store, PARENT) == [
            child_entry(PARENT, kid(1), RunStatus.TIMED_OUT, T0 + 10, error=TIMED_OUT)
        ]

    @requires(Capability.CHILDREN)
    async def test_cascade_ends_on_a_cycle_made_by_recreating_an_id(
        self, store: ExecutionStore
    ) -> None:
        """Links are kept after a delete, so re-creating an id under its own descendant
        makes a cycle (``a`` -> ``a@b`` -> ``a``); a cascade stops at runs that ended.
        The cancelled run's end reaches its parent (alive at that point) before the
        cascade ends that parent."""
        await create(store, "a")
        await child(store, "a@b", "a")
        assert await store.delete_run("a")
        await child(store, "a", "a@b")
        result = await store.cancel_run("a", "stop", T0 + 1)
        assert isinstance(result, Cancelled)
        b = await loaded(store, "a@b")
        assert (b.status, b.error) == (RunStatus.CANCELLED, parent_ended("a", "cancelled"))
        a = await loaded(store, "a")
        assert (a.status, a.error) == (
            RunStatus.CANCELLED,
            ErrorInfo("Cancelled", "stop", "cancelled"),
        )
        assert await inbox(store, "a") == []
        assert await inbox(store, "a@b") == [
            child_entry(
                "a@b",
                "a",
                RunStatus.CANCELLED,
                T0 + 1,
                error=ErrorInfo("Cancelled", "stop", "cancelled"),
            )
        ]

    # -- wake-up hints ----------------------------------------------------------------------------
    @pytest.mark.parametrize("how", ENDS)
    @requires(Capability.NOTIFY_RUNNABLE)
    @requires(Capability.CHILDREN)
    async def test_watch_runnable_yields_when_a_child_end_queues_its_parent(
        self, store: ExecutionStore, store_factory: StoreFactory, how: End
    ) -> None:
        other = await store_factory()
        await create(other, PARENT)
        await child(other, kid(1))
        await pause(other, PARENT, Wait.child("await-c1", kid(1)))
        lease = await claimed(other, kid(1))  # before listening: a claim need not yield
        async with _watching(store) as watcher:
            if how == "cancel":
                assert isinstance(await other.cancel_run(kid(1), "stop", T0 + 1), Cancelled)
            else:
                outcome: Outcome = Finish(1) if how == "finish" else Fail(FAILURE)
                await other.settle_run(kid(1), lease, 0, [], outcome, T0 + 1)
            assert (await loaded(other, PARENT)).status is RunStatus.QUEUED
            await _next(watcher, f"a child's end ({how}) queued its parent")
