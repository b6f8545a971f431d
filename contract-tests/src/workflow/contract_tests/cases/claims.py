"""Contract cases: claims and leases (claim_run, claim_runnable, heartbeat).

A claim takes a ``queued`` run, or a ``running`` one whose lease expired
(``expires_at <= now``), and hands out a lease whose token strictly increases with
every claim of the run. A heartbeat extends the lease it is given, and only while
that lease is still the run's current one.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from workflow.runtime import (
    Claimed,
    ExecutionStore,
    InboxKind,
    InboxRef,
    Lease,
    LeaseLostError,
    NotClaimable,
    NotFound,
    RunCancelledError,
    RunStatus,
    StoredEvent,
    Yield,
)
from workflow.runtime.validation import MAX_MS

from ..support import LEASE_MS, T0, create, event, started
from .runs import HOLDER_WRITES, TERMINAL, HolderWrite, holder_write, loaded, make_run


class ClaimCases:
    # -- claim_run -----------------------------------------------------------------------
    async def test_claim_run_on_queued_run_returns_claimed_with_first_lease(
        self, store: ExecutionStore
    ) -> None:
        created = await create(store, input={"x": 1}, now=T0)
        claim = await store.claim_run("run-1", "worker-a", LEASE_MS, T0 + 7)
        assert isinstance(claim, Claimed)
        assert claim.lease == Lease("worker-a", 1, T0 + 7 + LEASE_MS)
        assert claim.run.status is RunStatus.RUNNING
        assert claim.run.lease == claim.lease
        assert claim.run.updated_at == T0 + 7
        assert claim.run.ready_at == T0
        assert claim.run.created_at == T0
        assert claim.run.input == created.input
        assert claim.run.next_event_index == 0
        assert claim.run.wait is None
        assert claim.inbox == []
        assert claim.events is None
        assert await store.load_run("run-1") == claim.run

    async def test_claim_run_unknown_returns_not_found(self, store: ExecutionStore) -> None:
        result = await store.claim_run("missing", "worker-a", LEASE_MS, T0)
        assert isinstance(result, NotFound)
        assert result.run_id == "missing"
        assert await store.load_run("missing") is None

    async def test_claim_run_honours_lease_ms(self, store: ExecutionStore) -> None:
        await create(store)
        claim = await store.claim_run("run-1", "worker-a", 1, T0)
        assert isinstance(claim, Claimed)
        assert claim.lease.expires_at == T0 + 1
        # One ms later the lease is up for grabs.
        again = await store.claim_run("run-1", "worker-b", 5, T0 + 1)
        assert isinstance(again, Claimed)
        assert again.lease == Lease("worker-b", 2, T0 + 6)

    async def test_a_lease_ending_exactly_at_max_ms_is_handed_out_and_usable(
        self, store: ExecutionStore
    ) -> None:
        # now + lease_ms == MAX_MS is the latest lease there is; one ms more is refused
        # (bad_input). What a claim or heartbeat hands out, every fenced write accepts.
        await create(store, now=MAX_MS - 100)
        claim = await store.claim_run("run-1", "worker-a", 60, MAX_MS - 60)
        assert isinstance(claim, Claimed)
        assert claim.lease.expires_at == MAX_MS
        renewed = await store.heartbeat("run-1", claim.lease, 10, MAX_MS - 10)
        assert renewed == replace(claim.lease, expires_at=MAX_MS)
        assert await store.append_events("run-1", renewed, 0, [event(1)], MAX_MS - 5) == 1
        run = await store.settle_run("run-1", renewed, 1, [], Yield(), MAX_MS - 1)
        assert run.status is RunStatus.QUEUED
        again = await store.claim_runnable("worker-b", 1, 10, MAX_MS - 1)
        assert [(c.run.run_id, c.lease.expires_at) for c in again] == [("run-1", MAX_MS)]

    async def test_claim_run_carries_only_unconsumed_inbox_entries_in_arrival_order(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        await store.deliver_signal("run-1", "sig-b", "go", {"v": "b"}, T0 + 2)
        await store.deliver_signal("run-1", "sig-a", "go", {"v": "a"}, T0 + 3)
        await store.deliver_approval("run-1", "appr-1", True, T0 + 1, feedback="ok")
        await store.deliver_signal("run-1", "sig-c", "other", 5, T0 + 4)
        first = await store.claim_run("run-1", "worker-a", LEASE_MS, T0 + 5)
        assert isinstance(first, Claimed)
        assert [(e.kind, e.key) for e in first.inbox] == [
            (InboxKind.APPROVAL, "appr-1"),
            (InboxKind.SIGNAL, "sig-b"),
            (InboxKind.SIGNAL, "sig-a"),
            (InboxKind.SIGNAL, "sig-c"),
        ]
        assert first.inbox == await store.read_inbox("run-1")
        assert first.inbox[0].payload == {"approved": True, "feedback": "ok"}
        assert all(not e.consumed for e in first.inbox)

        consumed = [InboxRef(InboxKind.SIGNAL, "sig-b"), InboxRef(InboxKind.APPROVAL, "appr-1")]
        await store.settle_run("run-1", first.lease, 0, [], Yield(), T0 + 6, consume=consumed)
        second = await store.claim_run("run-1", "worker-a", LEASE_MS, T0 + 7)
        assert isinstance(second, Claimed)
        assert [e.key for e in second.inbox] == ["sig-a", "sig-c"]
        assert second.inbox[0].payload == {"v": "a"}
        assert second.inbox[1].payload == 5

    async def test_claim_run_with_history_returns_all_events(self, store: ExecutionStore) -> None:
        first = await started(store)
        await store.append_events("run-1", first.lease, 0, [event(0), event(1, "s1")], T0 + 1)
        await store.settle_run("run-1", first.lease, 2, [event(2)], Yield(), T0 + 2)
        claim = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + 3, with_history=True)
        assert isinstance(claim, Claimed)
        assert claim.events == [
            StoredEvent("run-1", 0, "CUSTOM", None, {"n": 0}, T0 + 1),
            StoredEvent("run-1", 1, "CUSTOM", "s1", {"n": 1}, T0 + 1),
            StoredEvent("run-1", 2, "CUSTOM", None, {"n": 2}, T0 + 2),
        ]
        assert claim.run.next_event_index == 3

    async def test_claim_run_with_history_on_empty_log_returns_empty_list(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        claim = await store.claim_run("run-1", "worker-a", LEASE_MS, T0, with_history=True)
        assert isinstance(claim, Claimed)
        assert claim.events == []

    async def test_claim_run_without_history_returns_events_none(
        self, store: ExecutionStore
    ) -> None:
        first = await started(store)
        await store.settle_run("run-1", first.lease, 0, [event(0)], Yield(), T0 + 1)
        claim = await store.claim_run("run-1", "worker-a", LEASE_MS, T0 + 2, with_history=False)
        assert isinstance(claim, Claimed)
        assert claim.events is None
        assert claim.run.next_event_index == 1

    @pytest.mark.parametrize("status", [RunStatus.PAUSED, *TERMINAL])
    async def test_claim_run_on_paused_or_terminal_run_is_not_claimable(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        before = await make_run(store, status, at=T0 + 1)
        result = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + 10**9)
        assert isinstance(result, NotClaimable)
        assert result.run == before
        assert await store.load_run("run-1") == before

    async def test_claim_run_on_running_run_with_live_lease_is_not_claimable(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        result = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + 1)
        assert isinstance(result, NotClaimable)
        assert result.run == claim.run
        assert await store.load_run("run-1") == claim.run

    async def test_claim_run_by_the_same_owner_is_not_reentrant(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, owner="worker-a")
        result = await store.claim_run("run-1", "worker-a", LEASE_MS, T0 + 1)
        assert isinstance(result, NotClaimable)
        assert result.run.lease == claim.lease
        # The original lease still works: nothing was superseded.
        assert await store.heartbeat("run-1", claim.lease, LEASE_MS, T0 + 2) == Lease(
            "worker-a", 1, T0 + 2 + LEASE_MS
        )

    async def test_claim_run_boundary_lease_expiring_one_ms_later_is_not_claimable(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        now = claim.lease.expires_at - 1
        result = await store.claim_run("run-1", "worker-b", LEASE_MS, now)
        assert isinstance(result, NotClaimable)
        assert await store.load_run("run-1") == claim.run

    async def test_claim_run_boundary_lease_expiring_now_is_claimable(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        now = claim.lease.expires_at
        result = await store.claim_run("run-1", "worker-b", LEASE_MS, now)
        assert isinstance(result, Claimed)
        assert result.lease == Lease("worker-b", 2, now + LEASE_MS)

    async def test_claim_run_on_expired_lease_takes_over_with_next_token(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, now=T0)
        await store.append_events("run-1", claim.lease, 0, [event(0)], T0 + 1)
        later = T0 + LEASE_MS + 500
        takeover = await store.claim_run("run-1", "worker-b", LEASE_MS, later, with_history=True)
        assert isinstance(takeover, Claimed)
        assert takeover.lease == Lease("worker-b", claim.lease.token + 1, later + LEASE_MS)
        assert takeover.run.status is RunStatus.RUNNING
        assert takeover.run.lease == takeover.lease
        # running -> running: not a status change, so updated_at and ready_at stay.
        assert takeover.run.updated_at == T0
        assert takeover.run.ready_at == T0
        assert takeover.events is not None
        assert [e.index for e in takeover.events] == [0]

    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_claim_run_takeover_fences_the_old_lease(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        claim = await started(store, now=T0)
        later = T0 + LEASE_MS
        takeover = await store.claim_run("run-1", "worker-b", LEASE_MS, later)
        assert isinstance(takeover, Claimed)
        with pytest.raises(LeaseLostError) as caught:
            await holder_write(store, op, "run-1", claim.lease, 0, later + 1)
        assert not isinstance(caught.value, RunCancelledError)
        assert await store.load_run("run-1") == takeover.run
        assert await store.read_events("run-1") == []

    async def test_claim_tokens_strictly_increase_over_claim_and_settle_cycles(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        tokens: list[int] = []
        now = T0
        for cycle in range(4):
            claim = await store.claim_run("run-1", f"worker-{cycle}", LEASE_MS, now)
            assert isinstance(claim, Claimed)
            tokens.append(claim.lease.token)
            await store.settle_run("run-1", claim.lease, cycle, [event(cycle)], Yield(), now + 1)
            now += 10
        # A stale takeover counts as a claim too.
        claim = await store.claim_run("run-1", "worker-x", LEASE_MS, now)
        assert isinstance(claim, Claimed)
        tokens.append(claim.lease.token)
        takeover = await store.claim_run("run-1", "worker-y", LEASE_MS, now + LEASE_MS)
        assert isinstance(takeover, Claimed)
        tokens.append(takeover.lease.token)
        assert tokens == [1, 2, 3, 4, 5, 6]

    async def test_claim_run_after_yield_is_claimable_again_with_new_ready_at(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, now=T0)
        settled = await store.settle_run("run-1", claim.lease, 0, [], Yield(), T0 + 50)
        assert settled.ready_at == T0 + 50
        again = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + 60)
        assert isinstance(again, Claimed)
        assert again.lease == Lease("worker-b", 2, T0 + 60 + LEASE_MS)
        assert again.run.ready_at == T0 + 50
        assert again.run.updated_at == T0 + 60

    # -- claim_runnable ------------------------------------------------------------------
    async def test_claim_runnable_returns_empty_list_when_nothing_is_claimable(
        self, store: ExecutionStore
    ) -> None:
        assert await store.claim_runnable("worker-a", LEASE_MS, 1000, T0) == []
        await started(store, "running")
        await make_run(store, RunStatus.PAUSED, "paused")
        await make_run(store, RunStatus.FINISHED, "finished")
        assert await store.claim_runnable("worker-b", LEASE_MS, 1000, T0 + 1) == []

    async def test_claim_runnable_orders_by_ready_at_then_run_id(
        self, store: ExecutionStore
    ) -> None:
        await create(store, "c", now=T0)
        await create(store, "a", now=T0 + 2)
        await create(store, "d", now=T0 + 1)
        await create(store, "b", now=T0 + 1)
        # Created first, but yielded later: it is ready last.
        early = await started(store, "0-early", now=T0 - 100)
        await store.settle_run("0-early", early.lease, 0, [], Yield(), T0 + 3)
        claims = await store.claim_runnable("worker-a", LEASE_MS, 1000, T0 + 10)
        assert [c.run.run_id for c in claims] == ["c", "b", "d", "a", "0-early"]
        assert [c.run.ready_at for c in claims] == [T0, T0 + 1, T0 + 1, T0 + 2, T0 + 3]

    async def test_claim_runnable_claims_each_run_with_a_full_lease(
        self, store: ExecutionStore
    ) -> None:
        await create(store, "r1", now=T0)
        await create(store, "r2", now=T0 + 1)
        await store.deliver_signal("r2", "sig-1", "go", {"v": 1}, T0 + 2)
        claims = await store.claim_runnable("worker-a", LEASE_MS, 1000, T0 + 5)
        assert [c.run.run_id for c in claims] == ["r1", "r2"]
        for claim in claims:
            assert claim.lease == Lease("worker-a", 1, T0 + 5 + LEASE_MS)
            assert claim.run.status is RunStatus.RUNNING
            assert claim.run.lease == claim.lease
            assert claim.run.updated_at == T0 + 5
            assert claim.events is None
            assert await store.load_run(claim.run.run_id) == claim.run
        assert claims[0].inbox == []
        assert [e.key for e in claims[1].inbox] == ["sig-1"]
        assert claims[1].inbox[0].payload == {"v": 1}

    @pytest.mark.parametrize("with_history", [True, False])
    async def test_claim_runnable_with_history_flag(
        self, store: ExecutionStore, with_history: bool
    ) -> None:
        first = await started(store)
        await store.settle_run("run-1", first.lease, 0, [event(0), event(1)], Yield(), T0 + 1)
        claims = await store.claim_runnable(
            "worker-b", LEASE_MS, 10, T0 + 2, with_history=with_history
        )
        assert len(claims) == 1
        if with_history:
            assert claims[0].events == await store.read_events("run-1")
            assert [e.index for e in claims[0].events or []] == [0, 1]
        else:
            assert claims[0].events is None

    async def test_claim_runnable_respects_limit_one(self, store: ExecutionStore) -> None:
        await create(store, "r2", now=T0 + 2)
        await create(store, "r1", now=T0 + 1)
        await create(store, "r3", now=T0 + 3)
        claims = await store.claim_runnable("worker-a", LEASE_MS, 1, T0 + 10)
        assert [c.run.run_id for c in claims] == ["r1"]
        assert (await loaded(store, "r2")).status is RunStatus.QUEUED
        assert (await loaded(store, "r3")).status is RunStatus.QUEUED
        claims = await store.claim_runnable("worker-b", LEASE_MS, 1, T0 + 11)
        assert [c.run.run_id for c in claims] == ["r2"]
        assert claims[0].lease.owner == "worker-b"

    async def test_claim_runnable_with_limit_1000_claims_everything_claimable(
        self, store: ExecutionStore
    ) -> None:
        for i in range(25):
            await create(store, f"run-{i:02d}", now=T0 + i)
        claims = await store.claim_runnable("worker-a", LEASE_MS, 1000, T0 + 100)
        assert [c.run.run_id for c in claims] == [f"run-{i:02d}" for i in range(25)]
        assert await store.claim_runnable("worker-b", LEASE_MS, 1000, T0 + 101) == []

    async def test_claim_runnable_recovers_stale_running_runs(self, store: ExecutionStore) -> None:
        stale = await started(store, "stale", now=T0)
        await create(store, "fresh", now=T0 + 1)
        now = stale.lease.expires_at
        claims = await store.claim_runnable("worker-b", LEASE_MS, 1000, now)
        # The stale run kept the ready_at from when it was first queued, so it goes first.
        assert [c.run.run_id for c in claims] == ["stale", "fresh"]
        assert claims[0].lease == Lease("worker-b", 2, now + LEASE_MS)
        assert claims[0].run.updated_at == T0
        assert claims[1].lease == Lease("worker-b", 1, now + LEASE_MS)
        with pytest.raises(LeaseLostError):
            await store.heartbeat("stale", stale.lease, LEASE_MS, now + 1)

    @pytest.mark.parametrize("ready", ["tied", "older"])
    async def test_stale_runs_are_claimed_by_ready_at_then_run_id_not_by_lease_expiry(
        self, store: ExecutionStore, ready: str
    ) -> None:
        # The runs that became ready first (or at the same ms and sort first by id) hold
        # the leases that expire last: claims of one stale run at a time must still go
        # in (ready_at, run_id) order. Forty runs, so that a store that shards its runs
        # (a Redis cluster once offered only each shard's earliest-expired leases) has
        # several in one shard.
        n = 40
        ids = [f"stale-{i:02d}" for i in range(n)]
        for i, run_id in enumerate(ids):
            ready_at = T0 if ready == "tied" else T0 + i
            await started(store, run_id, now=ready_at, lease_ms=LEASE_MS * 2 - i * 10)
        now = T0 + n + LEASE_MS * 2
        order = []
        for _ in ids:
            (claim,) = await store.claim_runnable("worker-b", LEASE_MS, 1, now)
            assert claim.lease.token == 2
            order.append(claim.run.run_id)
        assert order == ids

    async def test_claim_runnable_skips_paused_terminal_and_live_leased_runs(
        self, store: ExecutionStore
    ) -> None:
        await started(store, "live", now=T0)
        for i, status in enumerate([RunStatus.PAUSED, *TERMINAL]):
            await make_run(store, status, f"run-{status.value}", created_at=T0 + i)
        await create(store, "queued", now=T0 + 50)
        before = {r.run_id: r for r in (await store.list_runs(limit=1000)).items}
        claims = await store.claim_runnable("worker-b", LEASE_MS, 1000, T0 + 100)
        assert [c.run.run_id for c in claims] == ["queued"]
        for run_id, run in before.items():
            if run_id != "queued":
                assert await store.load_run(run_id) == run

    # -- heartbeat -----------------------------------------------------------------------
    async def test_heartbeat_extends_the_lease_with_the_same_token(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, now=T0)
        lease = await store.heartbeat("run-1", claim.lease, 45_000, T0 + 10_000)
        assert lease == Lease("worker-a", claim.lease.token, T0 + 10_000 + 45_000)
        assert (await loaded(store)).lease == lease
        # Both the old and the extended lease object carry the live token.
        again = await store.heartbeat("run-1", lease, LEASE_MS, T0 + 20_000)
        assert again == Lease("worker-a", claim.lease.token, T0 + 20_000 + LEASE_MS)
        again = await store.heartbeat("run-1", claim.lease, LEASE_MS, T0 + 21_000)
        assert again == Lease("worker-a", claim.lease.token, T0 + 21_000 + LEASE_MS)

    async def test_heartbeat_keeps_a_run_from_being_taken_over(self, store: ExecutionStore) -> None:
        claim = await started(store, now=T0)
        lease = await store.heartbeat("run-1", claim.lease, LEASE_MS, T0 + 20_000)
        original_expiry = claim.lease.expires_at
        result = await store.claim_run("run-1", "worker-b", LEASE_MS, original_expiry)
        assert isinstance(result, NotClaimable)
        assert await store.claim_runnable("worker-b", LEASE_MS, 10, lease.expires_at - 1) == []
        takeover = await store.claim_run("run-1", "worker-b", LEASE_MS, lease.expires_at)
        assert isinstance(takeover, Claimed)
        assert takeover.lease.token == claim.lease.token + 1

    async def test_heartbeat_on_expired_lease_nobody_took_still_works(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, now=T0)
        late = claim.lease.expires_at + 5_000
        lease = await store.heartbeat("run-1", claim.lease, LEASE_MS, late)
        assert lease == Lease("worker-a", claim.lease.token, late + LEASE_MS)
        result = await store.claim_run("run-1", "worker-b", LEASE_MS, late)
        assert isinstance(result, NotClaimable)
        assert result.run.lease == lease

    async def test_heartbeat_after_takeover_raises_lease_lost(self, store: ExecutionStore) -> None:
        claim = await started(store, now=T0)
        takeover = await store.claim_run("run-1", "worker-b", LEASE_MS, claim.lease.expires_at)
        assert isinstance(takeover, Claimed)
        with pytest.raises(LeaseLostError) as caught:
            await store.heartbeat("run-1", claim.lease, LEASE_MS, claim.lease.expires_at + 1)
        assert not isinstance(caught.value, RunCancelledError)
        assert caught.value.run_id == "run-1"
        assert await store.load_run("run-1") == takeover.run

    async def test_heartbeat_after_settle_raises_lease_lost(self, store: ExecutionStore) -> None:
        claim = await started(store, now=T0)
        settled = await store.settle_run("run-1", claim.lease, 0, [], Yield(), T0 + 1)
        with pytest.raises(LeaseLostError) as caught:
            await store.heartbeat("run-1", claim.lease, LEASE_MS, T0 + 2)
        assert not isinstance(caught.value, RunCancelledError)
        assert await store.load_run("run-1") == settled

    async def test_heartbeat_does_not_change_updated_at_or_status(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, now=T0)
        await store.append_events("run-1", claim.lease, 0, [event(0)], T0 + 1)
        before = await loaded(store)
        lease = await store.heartbeat("run-1", claim.lease, LEASE_MS, T0 + 5_000)
        after = await loaded(store)
        assert after.updated_at == T0
        assert after.ready_at == T0
        assert after.status is RunStatus.RUNNING
        assert after.next_event_index == 1
        assert after == replace(before, lease=lease)

    async def test_heartbeat_on_unknown_run_raises_lease_lost(self, store: ExecutionStore) -> None:
        with pytest.raises(LeaseLostError) as caught:
            await store.heartbeat("missing", Lease("worker-a", 1, T0), LEASE_MS, T0)
        assert not isinstance(caught.value, RunCancelledError)
        assert await store.load_run("missing") is None

    async def test_heartbeat_with_a_lease_of_a_token_never_issued_raises_lease_lost(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, now=T0)
        future = Lease("worker-a", claim.lease.token + 1, claim.lease.expires_at)
        with pytest.raises(LeaseLostError):
            await store.heartbeat("run-1", future, LEASE_MS, T0 + 1)
        assert await store.load_run("run-1") == claim.run

    # Regression: SQLite rendered the claim's RETURNING subquery as `run_id = run_id`,
    # handing every claim the inbox and history of every run.
    async def test_claims_carry_only_their_own_runs_inbox_and_history(
        self, store: ExecutionStore
    ) -> None:
        other = await started(store, "other", now=T0)
        await store.append_events("other", other.lease, 0, [event(1)], T0)
        await store.deliver_signal("other", "sig-other", "go", {"for": "other"}, T0)
        await create(store, "mine", now=T0 + 1)
        await store.deliver_signal("mine", "sig-mine", "go", {"for": "mine"}, T0 + 1)

        claim = await store.claim_run("mine", "worker-b", LEASE_MS, T0 + 2, with_history=True)
        assert isinstance(claim, Claimed)
        assert [(e.run_id, e.key) for e in claim.inbox] == [("mine", "sig-mine")]
        assert claim.events == []

        await create(store, "third", now=T0 + 3)
        (batch,) = await store.claim_runnable("worker-c", LEASE_MS, 10, T0 + 4, with_history=True)
        assert batch.run.run_id == "third"
        assert batch.inbox == []
        assert batch.events == []
