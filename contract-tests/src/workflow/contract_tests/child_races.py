"""Contract cases: child runs under concurrent callers on separate handles.

A child's end and its parent's cancellation are each one atomic step, so however they
interleave the result is one of the serial orders: the child ended first (its parent
got its entry, then was cancelled) or the cascade came first (the child was cancelled
with ``ParentEnded`` and its holder's settle raised ``RunCancelledError``). Never a
``cancel``-policy child left going under a cancelled parent, never an entry lost or
written twice. As in :mod:`.concurrency`, racers yield between operations so the
in-memory store's racers interleave too; the SQL and Redis racers are real
connections.
"""

from __future__ import annotations

import asyncio

from workflow.runtime import (
    Cancelled,
    Capability,
    Claimed,
    Created,
    ErrorInfo,
    ExecutionStore,
    Fail,
    Finish,
    InboxKind,
    Lease,
    ParentPolicy,
    Pause,
    Run,
    RunCancelledError,
    RunStatus,
    Wait,
)

from .cases.children import child_entry, parent_ended
from .support import LEASE_MS, T0, StoreFactory, create, requires

PAIRS = 24
CHILDREN = 60
RACERS = 6


async def _handles(store_factory: StoreFactory, n: int) -> list[ExecutionStore]:
    handles = [await store_factory() for _ in range(n)]
    for handle in handles:
        await handle.load_run("warm-up")  # connected before the race starts
    return handles


async def _child(store: ExecutionStore, run_id: str, parent: str, policy: ParentPolicy) -> None:
    made = await store.create_run(
        run_id, "child-wf", None, None, T0, parent_run_id=parent, parent_policy=policy
    )
    assert isinstance(made, Created), made


async def _lease(store: ExecutionStore, run_id: str) -> Lease:
    claim = await store.claim_run(run_id, "worker", LEASE_MS, T0)
    assert isinstance(claim, Claimed), claim
    return claim.lease


async def _run(store: ExecutionStore, run_id: str) -> Run:
    run = await store.load_run(run_id)
    assert run is not None, run_id
    return run


class ChildRaceCases:
    @requires(Capability.CHILDREN)
    async def test_child_settling_while_its_parent_is_cancelled_concurrently_has_one_order(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        leases: dict[int, Lease] = {}
        for i in range(PAIRS):
            await create(store, f"p{i:02d}")
            await _child(store, f"p{i:02d}@c", f"p{i:02d}", ParentPolicy.CANCEL)
            await _child(store, f"p{i:02d}@g", f"p{i:02d}@c", ParentPolicy.CANCEL)
            leases[i] = await _lease(store, f"p{i:02d}@c")
        settler, canceller = await _handles(store_factory, 2)

        async def settle(i: int) -> str:
            await asyncio.sleep(0)
            try:
                await settler.settle_run(f"p{i:02d}@c", leases[i], 0, [], Finish(i), T0 + 1)
            except RunCancelledError:
                return "cascaded"
            return "finished"

        async def cancel(i: int) -> None:
            await asyncio.sleep(0)
            result = await canceller.cancel_run(f"p{i:02d}", "stop", T0 + 2)
            assert isinstance(result, Cancelled), result

        # Interleaved so that each pair's two operations start side by side.
        order = [
            settle(i) if k == 0 else cancel(i) for i in range(PAIRS) for k in (i % 2, 1 - i % 2)
        ]
        results = await asyncio.gather(*order)
        outcomes = [r for r in results if r is not None]
        assert len(outcomes) == PAIRS
        for i in range(PAIRS):
            parent, kid, grandchild = f"p{i:02d}", f"p{i:02d}@c", f"p{i:02d}@g"
            p, c, g = (
                await _run(store, parent),
                await _run(store, kid),
                await _run(store, grandchild),
            )
            assert p.status is RunStatus.CANCELLED
            entries = await store.read_inbox(parent, include_consumed=True)
            if c.status is RunStatus.FINISHED:
                # The child ended first: its parent was alive and got the entry; the
                # grandchild's parent finished, so the later cancel left it as it was.
                assert c.output == i
                assert entries == [child_entry(parent, kid, RunStatus.FINISHED, T0 + 1, output=i)]
                assert g.status is RunStatus.QUEUED
            else:
                # The cascade came first: the child never finished and wrote nothing.
                assert (c.status, c.error) == (
                    RunStatus.CANCELLED,
                    parent_ended(parent, "cancelled"),
                ), c
                assert entries == []
                assert (g.status, g.error) == (RunStatus.CANCELLED, parent_ended(kid, "cancelled"))

    @requires(Capability.CHILDREN)
    async def test_many_children_ending_at_once_reach_the_parent_inbox_exactly_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        await create(store, "parent")
        ids = [f"parent@c{i:02d}" for i in range(CHILDREN)]
        leases: dict[str, Lease] = {}
        for i, run_id in enumerate(ids):
            await _child(store, run_id, "parent", ParentPolicy.CANCEL)
            if i % 3 != 2:  # every third child is cancelled instead of settled
                leases[run_id] = await _lease(store, run_id)
        # The parent waits for the last child; every other end is buffered.
        parent_lease = await _lease(store, "parent")
        waited = ids[-1]
        await store.settle_run("parent", parent_lease, 0, [], Pause(Wait.child("join", waited)), T0)
        handles = await _handles(store_factory, RACERS)
        failure = ErrorInfo("Boom", "child failed", "boom")

        async def finish(handle: ExecutionStore, i: int, run_id: str) -> None:
            await asyncio.sleep(0)
            if run_id not in leases:
                result = await handle.cancel_run(run_id, "stop", T0 + 1)
                assert isinstance(result, Cancelled), result
            elif i % 3 == 0:
                await handle.settle_run(run_id, leases[run_id], 0, [], Finish(i), T0 + 1)
            else:
                await handle.settle_run(run_id, leases[run_id], 0, [], Fail(failure), T0 + 1)

        await asyncio.gather(
            *(finish(handles[i % RACERS], i, run_id) for i, run_id in enumerate(ids))
        )
        entries = await store.read_inbox("parent", include_consumed=True)
        assert all(e.kind is InboxKind.CHILD for e in entries)
        assert sorted(e.key for e in entries) == ids, "an entry was lost or written twice"
        by_key = {e.key: e for e in entries}
        for i, run_id in enumerate(ids):
            if run_id not in leases:
                expected = child_entry(
                    "parent",
                    run_id,
                    RunStatus.CANCELLED,
                    T0 + 1,
                    error=ErrorInfo("Cancelled", "stop", "cancelled"),
                )
            elif i % 3 == 0:
                expected = child_entry("parent", run_id, RunStatus.FINISHED, T0 + 1, output=i)
            else:
                expected = child_entry("parent", run_id, RunStatus.ERRORED, T0 + 1, error=failure)
            assert by_key[run_id] == expected
        parent = await _run(store, "parent")
        assert (parent.status, parent.wait, parent.ready_at) == (RunStatus.QUEUED, None, T0 + 1)

    @requires(Capability.CHILDREN)
    async def test_children_created_while_their_parent_is_cancelled_never_outlive_it(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        await create(store, "parent")
        creators = await _handles(store_factory, RACERS)
        canceller = (await _handles(store_factory, 1))[0]
        per_racer = 10

        async def creator(r: int, handle: ExecutionStore) -> None:
            for n in range(per_racer):
                await asyncio.sleep(0)
                policy = ParentPolicy.ABANDON if n % 4 == 3 else ParentPolicy.CANCEL
                await _child(handle, f"parent@r{r}n{n}", "parent", policy)

        async def cancel() -> None:
            for _ in range(per_racer // 2):
                await asyncio.sleep(0)
            result = await canceller.cancel_run("parent", "stop", T0 + 1)
            assert isinstance(result, Cancelled), result

        await asyncio.gather(cancel(), *(creator(r, h) for r, h in enumerate(creators)))
        listed: list[Run] = []
        cursor: str | None = None
        while True:
            page = await store.list_runs(parent_run_id="parent", limit=100, cursor=cursor)
            listed += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(listed) == RACERS * per_racer
        for run in listed:
            if run.parent_policy is ParentPolicy.ABANDON:
                assert run.status is RunStatus.QUEUED, run
            else:
                # Cascaded, or created cancelled after the cascade: the same end.
                assert (run.status, run.error, run.lease) == (
                    RunStatus.CANCELLED,
                    parent_ended("parent", "cancelled"),
                    None,
                ), run
        assert await store.read_inbox("parent", include_consumed=True) == []
