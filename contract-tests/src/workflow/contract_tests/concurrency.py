"""Contract cases: concurrent callers on separate handles of the same data.

Every racer uses its own handle from the ``store_factory`` fixture, so on SQL and Redis
stores these are separate connections and true races. The in-memory store runs each
operation without awaiting, so its racers interleave between operations; the batch
loops yield (``asyncio.sleep(0)``) between calls so that every racer takes turns.
Each case asserts the guarantee that makes the race safe: one winner, nothing lost,
nothing done twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from workflow.runtime import (
    AlreadyTerminal,
    Buffered,
    Cancelled,
    Claimed,
    Created,
    Delivered,
    DeliveryResult,
    Duplicate,
    ExecutionStore,
    Existing,
    Finish,
    InboxEntry,
    InboxKind,
    IntervalSpec,
    LeaseLostError,
    LogConflictError,
    NotClaimable,
    Pause,
    Run,
    RunCancelledError,
    RunStatus,
    ScheduleTick,
    TickOutcome,
    Wait,
    next_fire_at,
)

from .support import LEASE_MS, T0, StoreFactory, create, event, paused_on, started

_T = TypeVar("_T")

MANY = 500
"""Items behind the batch races: enough that every racer gets several batches."""
BATCH = 37
"""Batch size of the batch races: does not divide MANY, so the last batch is partial."""
RACERS = 8


async def _handles(store_factory: StoreFactory, n: int) -> list[ExecutionStore]:
    return [await store_factory() for _ in range(n)]


async def _drain(
    handles: list[ExecutionStore], take: Callable[[int, ExecutionStore], Awaitable[list[_T]]]
) -> list[list[_T]]:
    """Racer ``i`` calls ``take(i, handle)`` until it returns ``[]``; returns each racer's
    items."""

    async def racer(i: int, handle: ExecutionStore) -> list[_T]:
        got: list[_T] = []
        # Bounded: a store that hands the same items out again must fail, not hang.
        for _ in range(MANY):
            batch = await take(i, handle)
            if not batch:
                return got
            got.extend(batch)
            # Let the other racers in between batches (the in-memory store never
            # suspends inside an operation).
            await asyncio.sleep(0)
        pytest.fail(f"racer {i} was still getting items after {MANY} batches")

    return list(await asyncio.gather(*(racer(i, h) for i, h in enumerate(handles))))


async def _queued_runs(store: ExecutionStore, n: int, now: int) -> list[str]:
    ids = [f"run-{i:03d}" for i in range(n)]
    for run_id in ids:
        await create(store, run_id, input={"i": run_id}, now=now)
    return ids


async def _one_of_settle_and_cancel_won(
    store: ExecutionStore, n: int, settled: object, cancelled: object
) -> None:
    """Run ``run-<n>`` was settled (finished, with event ``n``) by a settle that raced a
    cancel: exactly one of them won, and the run is what the winner returned."""
    run_id = f"run-{n}"
    loaded = await store.load_run(run_id)
    assert loaded is not None
    if isinstance(settled, Run):
        assert settled.status is RunStatus.FINISHED
        assert isinstance(cancelled, AlreadyTerminal), cancelled
        assert cancelled.run == settled
        assert loaded == settled
        assert loaded.output == {"n": n}
        assert [e.data for e in await store.read_events(run_id)] == [{"n": n}]
    else:
        assert isinstance(settled, RunCancelledError), settled
        assert isinstance(cancelled, Cancelled), cancelled
        assert loaded == cancelled.run
        assert (loaded.status, loaded.output, loaded.next_event_index) == (
            RunStatus.CANCELLED,
            None,
            0,
        )
        assert await store.read_events(run_id) == []


class ConcurrencyCases:
    # -- claims --------------------------------------------------------------------
    async def test_claim_run_race_has_one_winner_per_lease_window(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        await create(store, "run-1")
        handles = await _handles(store_factory, 32)

        first = await asyncio.gather(
            *(h.claim_run("run-1", f"worker-{i}", LEASE_MS, T0) for i, h in enumerate(handles))
        )
        winners = [r for r in first if isinstance(r, Claimed)]
        assert len(winners) == 1, first
        lease = winners[0].lease
        assert lease.token == 1
        assert lease.expires_at == T0 + LEASE_MS
        assert winners[0].run.status is RunStatus.RUNNING
        losers = [r for r in first if not isinstance(r, Claimed)]
        assert len(losers) == 31
        for loser in losers:
            assert isinstance(loser, NotClaimable), loser
            assert loser.run.status is RunStatus.RUNNING
            assert loser.run.lease == lease

        # The lease expires at exactly expires_at: one of 32 new claimers takes over.
        expired = T0 + LEASE_MS
        second = await asyncio.gather(
            *(h.claim_run("run-1", f"late-{i}", LEASE_MS, expired) for i, h in enumerate(handles))
        )
        takeovers = [r for r in second if isinstance(r, Claimed)]
        assert len(takeovers) == 1, second
        new_lease = takeovers[0].lease
        assert new_lease.token == 2
        assert new_lease.owner.startswith("late-")
        assert new_lease.expires_at == expired + LEASE_MS
        assert len(second) == 32
        for result in second:
            if result is not takeovers[0]:
                assert isinstance(result, NotClaimable), result
                assert result.run.lease == new_lease

        loaded = await store.load_run("run-1")
        assert loaded is not None
        assert loaded.status is RunStatus.RUNNING
        assert loaded.lease == new_lease
        # The first winner was fenced off by the takeover.
        with pytest.raises(LeaseLostError) as lost:
            await store.heartbeat("run-1", lease, LEASE_MS, expired)
        assert type(lost.value) is LeaseLostError

    async def test_claim_runnable_race_claims_each_run_exactly_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        ids = await _queued_runs(store, MANY, T0)
        handles = await _handles(store_factory, RACERS)
        now = T0 + 10

        per_racer = await _drain(
            handles,
            lambda i, h: h.claim_runnable(f"worker-{i}", LEASE_MS, BATCH, now),
        )

        claimed = [c for got in per_racer for c in got]
        counts = Counter(c.run.run_id for c in claimed)
        assert sorted(counts) == ids
        assert set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1]
        for i, got in enumerate(per_racer):
            for claim in got:
                assert claim.lease.token == 1
                assert claim.lease.owner == f"worker-{i}"
                assert claim.lease.expires_at == now + LEASE_MS
                assert claim.run.status is RunStatus.RUNNING
                assert claim.run.lease == claim.lease
        assert await store.claim_runnable("late", LEASE_MS, 1000, now) == []
        by_id = {c.run.run_id: c.lease for c in claimed}
        for run_id in ids:
            loaded = await store.load_run(run_id)
            assert loaded is not None
            assert loaded.status is RunStatus.RUNNING
            assert loaded.lease == by_id[run_id]

    # -- the event log ---------------------------------------------------------------
    async def test_append_events_race_at_one_index_has_exactly_one_winner(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        claim = await started(store)
        handles = await _handles(store_factory, 16)

        results = await asyncio.gather(
            *(
                h.append_events("run-1", claim.lease, 0, [event(i), event(100 + i)], T0 + 1)
                for i, h in enumerate(handles)
            ),
            return_exceptions=True,
        )

        winners = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
        assert len(winners) == 1, results
        assert results[winners[0]] == 2
        for i, result in enumerate(results):
            if i != winners[0]:
                assert isinstance(result, LogConflictError), result
                assert (result.expected, result.current) == (0, 2)
        w = winners[0]
        events = await store.read_events("run-1")
        assert [(e.index, e.data) for e in events] == [(0, {"n": w}), (1, {"n": 100 + w})]
        loaded = await store.load_run("run-1")
        assert loaded is not None
        assert loaded.next_event_index == 2

    async def test_racing_appenders_retrying_at_current_index_build_a_dense_log(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        claim = await started(store)
        handles = await _handles(store_factory, 16)
        # Each appender knows the index it will try next; a loser learns the new one
        # from its LogConflictError, as an engine would.
        expected = dict.fromkeys(range(16), 0)
        now = T0

        for round_no in range(16):
            now += 1
            pending = sorted(expected)
            results = await asyncio.gather(
                *(
                    handles[i].append_events("run-1", claim.lease, expected[i], [event(i)], now)
                    for i in pending
                ),
                return_exceptions=True,
            )
            won = [i for i, r in zip(pending, results, strict=True) if r == round_no + 1]
            assert len(won) == 1, (round_no, results)
            del expected[won[0]]
            for i, result in zip(pending, results, strict=True):
                if i == won[0]:
                    continue
                assert isinstance(result, LogConflictError), (round_no, result)
                assert (result.expected, result.current) == (round_no, round_no + 1)
                expected[i] = result.current

        assert expected == {}
        events = await store.read_events("run-1")
        assert [e.index for e in events] == list(range(16))
        datas = [e.data for e in events]
        assert all({"n": i} in datas for i in range(16)), datas
        loaded = await store.load_run("run-1")
        assert loaded is not None
        assert loaded.next_event_index == 16

    # -- wake-ups --------------------------------------------------------------------
    async def test_fire_due_timers_race_fires_each_timer_exactly_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        ids = await _queued_runs(store, MANY, T0)
        wake = {run_id: T0 + 100 + i % 50 for i, run_id in enumerate(ids)}
        for run_id in ids:
            claim = await store.claim_run(run_id, "setup", LEASE_MS, T0)
            assert isinstance(claim, Claimed), claim
            run = await store.settle_run(
                run_id, claim.lease, 0, [], Pause(Wait.sleep("nap", wake[run_id])), T0
            )
            assert run.status is RunStatus.PAUSED
        handles = await _handles(store_factory, RACERS)
        now = T0 + 1000

        per_racer = await _drain(handles, lambda i, h: h.fire_due_timers(now, BATCH))

        fired: list[InboxEntry] = [e for got in per_racer for e in got]
        counts = Counter(e.run_id for e in fired)
        assert sorted(counts) == ids
        assert set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1]
        for entry in fired:
            assert entry.kind is InboxKind.TIMER
            assert entry.key == "nap"
            assert entry.step_id == "nap"
            assert entry.payload == {"wake_at": wake[entry.run_id]}
            assert entry.received_at == now
        assert await store.fire_due_timers(now, 1000) == []
        for run_id in ids:
            loaded = await store.load_run(run_id)
            assert loaded is not None
            assert (loaded.status, loaded.wait, loaded.ready_at) == (RunStatus.QUEUED, None, now)
            inbox = await store.read_inbox(run_id, include_consumed=True)
            assert [(e.kind, e.key) for e in inbox] == [(InboxKind.TIMER, "nap")]

    async def test_fire_due_schedules_race_fires_each_tick_exactly_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        spec = IntervalSpec(every_ms=60_000)
        schedule_ids = [f"sched-{i:03d}" for i in range(MANY)]
        for i, schedule_id in enumerate(schedule_ids):
            await store.upsert_schedule(schedule_id, "wf-sched", spec, T0, input={"i": i})
        first_tick = next_fire_at(spec, T0)
        # Two ticks are due; they collapse into one firing per schedule.
        now = first_tick + 60_000
        handles = await _handles(store_factory, RACERS)

        per_racer = await _drain(handles, lambda i, h: h.fire_due_schedules(now, BATCH))

        ticks: list[ScheduleTick] = [t for got in per_racer for t in got]
        counts = Counter(t.schedule_id for t in ticks)
        assert sorted(counts) == schedule_ids
        assert set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1]
        for tick in ticks:
            assert tick.outcome is TickOutcome.FIRED
            assert tick.fire_at == first_tick
            assert tick.run_id == f"{tick.schedule_id}@{first_tick}"
            assert tick.next_fire_at == now + 60_000
        assert await store.fire_due_schedules(now, 1000) == []
        page = await store.list_runs(workflow_id="wf-sched", limit=1000)
        assert page.next_cursor is None
        assert sorted(r.run_id for r in page.items) == sorted(
            f"{s}@{first_tick}" for s in schedule_ids
        )
        for i, schedule_id in enumerate(schedule_ids):
            run = await store.load_run(f"{schedule_id}@{first_tick}")
            assert run is not None
            assert (run.status, run.input, run.created_at) == (RunStatus.QUEUED, {"i": i}, now)
            schedule = await store.get_schedule(schedule_id)
            assert schedule is not None
            assert schedule.last_fired_at == first_tick
            assert schedule.next_fire_at == now + 60_000

    async def _race_signal(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> tuple[DeliveryResult, list[DeliveryResult]]:
        """16 handles deliver signal ``sig-1`` (each with its own payload) to run-1."""
        handles = await _handles(store_factory, 16)
        results = await asyncio.gather(
            *(
                h.deliver_signal("run-1", "sig-1", "go", {"from": i}, T0 + 5)
                for i, h in enumerate(handles)
            )
        )
        firsts = [r for r in results if not isinstance(r, Duplicate)]
        assert len(firsts) == 1, results
        return firsts[0], [r for r in results if isinstance(r, Duplicate)]

    async def test_same_signal_delivered_concurrently_wakes_the_run_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        await paused_on(store, Wait.signal("step-1", "go"))

        first, duplicates = await self._race_signal(store, store_factory)

        assert isinstance(first, Delivered), first
        assert first.run.status is RunStatus.QUEUED
        assert first.entry.key == "sig-1"
        assert isinstance(first.entry.payload, dict)
        assert len(duplicates) == 15
        for dup in duplicates:
            assert isinstance(dup, Duplicate)
            assert dup.entry == first.entry
        assert await store.read_inbox("run-1", include_consumed=True) == [first.entry]
        loaded = await store.load_run("run-1")
        assert loaded is not None
        assert (loaded.status, loaded.wait, loaded.ready_at) == (RunStatus.QUEUED, None, T0 + 5)

    async def test_same_signal_delivered_concurrently_is_buffered_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        before = await create(store)

        first, duplicates = await self._race_signal(store, store_factory)

        assert isinstance(first, Buffered), first
        assert first.run == before
        assert len(duplicates) == 15
        for dup in duplicates:
            assert isinstance(dup, Duplicate)
            assert dup.entry == first.entry
        assert await store.read_inbox("run-1", include_consumed=True) == [first.entry]
        assert await store.load_run("run-1") == before

    async def _race_approval(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> tuple[DeliveryResult, list[DeliveryResult]]:
        """16 handles deliver approval ``ap-1`` (alternating verdicts) to run-1."""
        handles = await _handles(store_factory, 16)
        results = await asyncio.gather(
            *(
                h.deliver_approval("run-1", "ap-1", i % 2 == 0, T0 + 5, feedback={"by": i})
                for i, h in enumerate(handles)
            )
        )
        firsts = [r for r in results if not isinstance(r, Duplicate)]
        assert len(firsts) == 1, results
        return firsts[0], [r for r in results if isinstance(r, Duplicate)]

    async def test_same_approval_delivered_concurrently_wakes_the_run_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        await paused_on(store, Wait.approval("step-1", "ap-1"))

        first, duplicates = await self._race_approval(store, store_factory)

        assert isinstance(first, Delivered), first
        assert first.run.status is RunStatus.QUEUED
        assert first.entry.kind is InboxKind.APPROVAL
        assert len(duplicates) == 15
        for dup in duplicates:
            assert isinstance(dup, Duplicate)
            assert dup.entry == first.entry
        assert await store.read_inbox("run-1", include_consumed=True) == [first.entry]
        loaded = await store.load_run("run-1")
        assert loaded is not None
        assert (loaded.status, loaded.wait) == (RunStatus.QUEUED, None)

    async def test_same_approval_delivered_concurrently_is_buffered_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        before = await create(store)

        first, duplicates = await self._race_approval(store, store_factory)

        assert isinstance(first, Buffered), first
        assert first.run == before
        assert len(duplicates) == 15
        for dup in duplicates:
            assert isinstance(dup, Duplicate)
            assert dup.entry == first.entry
        assert await store.read_inbox("run-1", include_consumed=True) == [first.entry]
        assert await store.load_run("run-1") == before

    # -- run lifecycle -----------------------------------------------------------------
    async def test_settle_racing_cancel_never_both_succeed(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        settler, canceller = await _handles(store_factory, 2)
        for n in range(16):
            run_id = f"run-{n}"
            claim = await started(store, run_id)
            settle = settler.settle_run(
                run_id, claim.lease, 0, [event(n)], Finish({"n": n}), T0 + 1
            )
            cancel = canceller.cancel_run(run_id, "stop", T0 + 1)
            # Alternate who is scheduled first so either side can win on any store.
            if n % 2:
                cancelled, settled = await asyncio.gather(cancel, settle, return_exceptions=True)
            else:
                settled, cancelled = await asyncio.gather(settle, cancel, return_exceptions=True)

            await _one_of_settle_and_cancel_won(store, n, settled, cancelled)

    async def test_many_settles_racing_cancels_at_once_never_both_succeed(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        # The race above, on 32 runs at once over several connections: a cancel whose
        # read and write are not one transaction (the write lands after a settle it
        # did not see) loses this race on some run, where one pair at a time rarely
        # does. (Kills the SQL cancel_run without its transaction: docs/contract.md,
        # "Mutation score".)
        settlers = await _handles(store_factory, 4)
        cancellers = await _handles(store_factory, 4)
        claims = [await started(store, f"run-{n}") for n in range(32)]
        racers: list[Awaitable[object]] = []
        for n, claim in enumerate(claims):
            settle = settlers[n % 4].settle_run(
                f"run-{n}", claim.lease, 0, [event(n)], Finish({"n": n}), T0 + 1
            )
            cancel = cancellers[n % 4].cancel_run(f"run-{n}", "stop", T0 + 1)
            racers += [settle, cancel] if n % 2 else [cancel, settle]
        outcomes = await asyncio.gather(*racers, return_exceptions=True)
        for n in range(32):
            pair = outcomes[2 * n : 2 * n + 2]
            settled, cancelled = pair if n % 2 else pair[::-1]
            await _one_of_settle_and_cancel_won(store, n, settled, cancelled)

    async def test_signal_racing_a_pausing_settle_is_never_lost(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        # Whichever lands first, the run ends queued: a delivery before the pause is
        # found by the settle, a delivery after it wakes the paused run.
        settler, deliverer = await _handles(store_factory, 2)
        for n in range(24):
            run_id = f"run-{n}"
            claim = await started(store, run_id)
            settle = settler.settle_run(
                run_id, claim.lease, 0, [], Pause(Wait.signal("step-1", "go")), T0 + 1
            )
            deliver = deliverer.deliver_signal(run_id, "sig-1", "go", {"n": n}, T0 + 1)
            if n % 2:
                delivered, settled = await asyncio.gather(deliver, settle)
            else:
                settled, delivered = await asyncio.gather(settle, deliver)

            assert isinstance(delivered, (Delivered, Buffered)), delivered
            if isinstance(delivered, Delivered):
                # The pause came first and this delivery woke it.
                assert settled.status is RunStatus.PAUSED, (settled, delivered)
            else:
                # The delivery came first; the settle found the entry and stayed queued.
                assert settled.status is RunStatus.QUEUED, (settled, delivered)
            loaded = await store.load_run(run_id)
            assert loaded is not None
            assert (loaded.status, loaded.wait, loaded.ready_at) == (
                RunStatus.QUEUED,
                None,
                T0 + 1,
            ), (n, settled, delivered)

    async def test_create_run_race_creates_once(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        handles = await _handles(store_factory, 16)

        results = await asyncio.gather(
            *(h.create_run("run-1", "wf", None, {"from": i}, T0 + i) for i, h in enumerate(handles))
        )

        created = [r for r in results if isinstance(r, Created)]
        assert len(created) == 1, results
        run = created[0].run
        assert run.status is RunStatus.QUEUED
        existing = [r for r in results if not isinstance(r, Created)]
        assert len(existing) == 15
        for result in existing:
            assert isinstance(result, Existing), result
            assert result.run == run
        # The winner's input is kept: created_at tells which racer won.
        assert run.input == {"from": run.created_at - T0}
        assert await store.load_run("run-1") == run
