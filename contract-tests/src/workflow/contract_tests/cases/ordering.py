"""Contract cases: every documented order, with ties on its first sort key.

docs/semantics.md orders inbox entries by ``(received_at, kind, key)``, claims by
``(ready_at, run_id)``, timer firings by ``(wake_at, run_id)``, schedule ticks by
``(next_fire_at, schedule_id)`` and events by ``index``. A store that sorts by the
first key only, or breaks ties by insertion order, passes any case without ties; so
each case here has at least two items equal on the first key and differing only in
the tie-breaking field, inserted out of order, and reads them back through **every**
operation that returns them, in one batch and cut by ``limit``. Identifiers compare
in code-point order (``"B" < "a"``).

(``list_runs`` and ``purge_runs`` ties are in the listing and run lifecycle cases.)
"""

from __future__ import annotations

from collections.abc import Sequence

from workflow.runtime import (
    Buffered,
    Claimed,
    ExecutionStore,
    InboxEntry,
    InboxKind,
    InboxRef,
    IntervalSpec,
    Lease,
    RunStatus,
    TickOutcome,
    Wait,
    Yield,
)

from ..support import LEASE_MS, T0, create, event, paused_on, started

WAKE = T0 + 60_000


def keys(entries: Sequence[InboxEntry]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.key) for e in entries]


class TieBreakCases:
    # -- inbox: (received_at, kind, key) ---------------------------------------------------
    async def test_inbox_ties_on_received_at_break_by_kind_then_key_everywhere(
        self, store: ExecutionStore
    ) -> None:
        # Kind order is the kinds' values ("approval" < "signal" < "timer"), and the keys
        # are chosen against it: ordering by key alone, by kind declaration order or by
        # arrival would each come out different.
        await paused_on(store, Wait.signal("a-step", "never", timeout_at=WAKE))
        for signal_id in ("sig-b", "sig-a", "Sig-c"):
            result = await store.deliver_signal("run-1", signal_id, "go", signal_id, WAKE)
            assert isinstance(result, Buffered), result
        approval = await store.deliver_approval("run-1", "zz-approval", True, WAKE)
        assert isinstance(approval, Buffered), approval
        (timer,) = await store.fire_due_timers(WAKE, 10)
        assert (timer.key, timer.received_at) == ("a-step", WAKE)
        expected = [
            ("approval", "zz-approval"),
            ("signal", "Sig-c"),
            ("signal", "sig-a"),
            ("signal", "sig-b"),
            ("timer", "a-step"),
        ]
        assert keys(await store.read_inbox("run-1")) == expected
        assert keys(await store.read_inbox("run-1", include_consumed=True)) == expected

        (first,) = await store.claim_runnable("worker-a", LEASE_MS, 10, WAKE + 1)
        assert keys(first.inbox) == expected
        assert first.inbox == await store.read_inbox("run-1")
        # Consume one from the middle of the ties: the rest keep their order.
        consumed = [InboxRef(InboxKind.SIGNAL, "sig-a")]
        settled = await store.settle_run(
            "run-1", first.lease, 0, [], Yield(), WAKE + 2, consume=consumed
        )
        assert settled.status is RunStatus.QUEUED
        rest = [k for k in expected if k != ("signal", "sig-a")]
        assert keys(await store.read_inbox("run-1")) == rest
        everything = await store.read_inbox("run-1", include_consumed=True)
        assert keys(everything) == expected
        assert [e.consumed for e in everything] == [False, False, True, False, False]

        second = await store.claim_run("run-1", "worker-b", LEASE_MS, WAKE + 3)
        assert isinstance(second, Claimed), second
        assert keys(second.inbox) == rest

    # -- claims: (ready_at, run_id) ------------------------------------------------------
    async def test_claim_runnable_breaks_ready_at_ties_by_run_id_across_queued_and_stale_runs(
        self, store: ExecutionStore
    ) -> None:
        # Four runs ready at T0, each got there another way: created, created then
        # claimed (its lease runs out: stale), and yielded. Created out of order.
        await create(store, "c-queued", now=T0)
        stale = await started(store, "b-stale", now=T0)
        yielded = await started(store, "B-yielded", now=T0 - 100)
        await store.settle_run("B-yielded", yielded.lease, 0, [], Yield(), T0)
        await create(store, "a-queued", now=T0)
        later = await create(store, "0-later", now=T0 + 1)
        now = stale.lease.expires_at
        first = await store.claim_runnable("worker-x", LEASE_MS, 2, now)
        assert [c.run.run_id for c in first] == ["B-yielded", "a-queued"]
        rest = await store.claim_runnable("worker-y", LEASE_MS, 1000, now)
        assert [c.run.run_id for c in rest] == ["b-stale", "c-queued", later.run_id]
        assert [c.run.ready_at for c in first + rest] == [T0, T0, T0, T0, T0 + 1]
        assert rest[0].lease == Lease("worker-y", 2, now + LEASE_MS)

    async def test_claim_runnable_returns_a_batch_in_claim_order_with_history(
        self, store: ExecutionStore
    ) -> None:
        # The batch's own order, not only which runs it holds: each claim carries its
        # own run's history, in index order.
        for run_id in ("r-b", "r-a", "R-c"):
            claim = await started(store, run_id, now=T0)
            await store.append_events(run_id, claim.lease, 0, [event(0), event(1)], T0 + 1)
            await store.settle_run(run_id, claim.lease, 2, [], Yield(), T0 + 2)
        claims = await store.claim_runnable("worker-b", LEASE_MS, 10, T0 + 3, with_history=True)
        assert [c.run.run_id for c in claims] == ["R-c", "r-a", "r-b"]
        for claim in claims:
            assert claim.events is not None
            assert [(e.run_id, e.index) for e in claim.events] == [
                (claim.run.run_id, 0),
                (claim.run.run_id, 1),
            ]

    # -- timers: (wake_at, run_id) -------------------------------------------------------
    async def test_fire_due_timers_batch_breaks_wake_at_ties_by_run_id(
        self, store: ExecutionStore
    ) -> None:
        # Sleep waits and signal waits with a timeout share one order.
        await paused_on(store, Wait.sleep("s", WAKE + 10), run_id="a")
        await paused_on(store, Wait.signal("s", "never", timeout_at=WAKE), run_id="c")
        await paused_on(store, Wait.sleep("s", WAKE), run_id="b")
        await paused_on(store, Wait.approval("s", "ap", timeout_at=WAKE), run_id="B")
        await paused_on(store, Wait.sleep("s", WAKE + 10), run_id="A")
        now = WAKE + 100
        first = await store.fire_due_timers(now, 2)
        assert [e.run_id for e in first] == ["B", "b"]
        rest = await store.fire_due_timers(now, 1000)
        assert [e.run_id for e in rest] == ["c", "A", "a"]
        assert [e.payload for e in first + rest] == [{"wake_at": WAKE}] * 3 + [
            {"wake_at": WAKE + 10}
        ] * 2
        # The queued runs are then claimed in the order they were fired (same ready_at).
        claims = await store.claim_runnable("worker-a", LEASE_MS, 1000, now)
        assert [c.run.run_id for c in claims] == ["A", "B", "a", "b", "c"]

    # -- schedules: (next_fire_at, schedule_id) --------------------------------------------
    async def test_fire_due_schedules_batch_breaks_next_fire_at_ties_by_schedule_id(
        self, store: ExecutionStore
    ) -> None:
        hour = 3_600_000
        for schedule_id, offset in (("c", 10), ("a", 20), ("b", 10), ("B", 10), ("A", 20)):
            spec = IntervalSpec(hour, anchor_ms=T0 + offset)
            await store.upsert_schedule(schedule_id, "wf", spec, T0)
        now = T0 + 100
        first = await store.fire_due_schedules(now, 2)
        assert [(t.schedule_id, t.fire_at) for t in first] == [("B", T0 + 10), ("b", T0 + 10)]
        rest = await store.fire_due_schedules(now, 1000)
        assert [(t.schedule_id, t.fire_at) for t in rest] == [
            ("c", T0 + 10),
            ("A", T0 + 20),
            ("a", T0 + 20),
        ]
        assert all(t.outcome is TickOutcome.FIRED for t in first + rest)
        listed = await store.list_schedules()
        assert [s.schedule_id for s in listed] == ["A", "B", "a", "b", "c"]

    # -- events: index -------------------------------------------------------------------
    async def test_events_come_back_in_index_order_even_when_now_goes_back(
        self, store: ExecutionStore
    ) -> None:
        # Callers' clocks may step back (another worker's clock): created_at is not an
        # order, and events appended in one call share it.
        claim = await started(store, now=T0)
        await store.append_events("run-1", claim.lease, 0, [event(0, "z")], T0 + 10)
        await store.append_events("run-1", claim.lease, 1, [event(1, "b"), event(2, "a")], T0 + 5)
        await store.settle_run("run-1", claim.lease, 3, [event(3)], Yield(), T0 + 1)
        expected = [(0, T0 + 10), (1, T0 + 5), (2, T0 + 5), (3, T0 + 1)]
        events = await store.read_events("run-1")
        assert [(e.index, e.created_at) for e in events] == expected
        assert [e.data for e in events] == [{"n": n} for n in range(4)]
        assert await store.read_events("run-1", 1, 2) == events[1:3]
        timeline = await store.get_timeline("run-1", 2)
        assert timeline is not None
        assert timeline.events == events[2:]
        again = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + 20, with_history=True)
        assert isinstance(again, Claimed), again
        assert again.events == events
        await store.settle_run("run-1", again.lease, 4, [], Yield(), T0 + 21)
        (batch,) = await store.claim_runnable("worker-c", LEASE_MS, 10, T0 + 22, with_history=True)
        assert batch.events == events
