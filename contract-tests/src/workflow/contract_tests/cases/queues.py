"""Contract cases: queues, priority and queue limits (``Capability.QUEUES``).

``docs/semantics.md`` (Queues): a run's queue, priority and partition key are fixed at
creation; claims go by ``(priority descending, ready_at, run_id)``; every way of
leasing keeps the queue's ``concurrency``, ``per_key_concurrency`` and ``rate_limit``
in the same atomic step, and a full queue never blocks the runs of other queues. A
store without the capability refuses a non-default placement (it must not accept a
limit or an order it would not keep): that case runs on every store.

The concurrent half (32 claimers against the limits) is
:mod:`workflow.contract_tests.queue_races`.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

from workflow.runtime import (
    Capability,
    Claimed,
    Conflict,
    Created,
    ExecutionStore,
    Existing,
    Finish,
    InvalidArgumentError,
    LeaseLostError,
    NotClaimable,
    Queue,
    QueueStore,
    RateLimit,
    Run,
    RunStatus,
    Yield,
)
from workflow.runtime.validation import MAX_MS

from ..support import LEASE_MS, T0, StoreFactory, create, requires
from .wakeups import _next, _watching


def queues_of(store: ExecutionStore) -> QueueStore:
    assert isinstance(store, QueueStore), (
        f"{type(store).__name__} declares 'queues' and must implement QueueStore"
    )
    return store


async def placed(
    store: ExecutionStore,
    run_id: str,
    queue: str = "default",
    *,
    priority: int = 0,
    key: str | None = None,
    now: int = T0,
) -> Run:
    result = await store.create_run(
        run_id, "wf", None, None, now, queue=queue, priority=priority, partition_key=key
    )
    assert isinstance(result, Created), result
    return result.run


async def claim_ids(
    store: ExecutionStore,
    now: int = T0,
    limit: int = 100,
    *,
    queues: list[str] | None = None,
) -> list[str]:
    claims = await store.claim_runnable("worker-a", LEASE_MS, limit, now, queues=queues)
    return [c.run.run_id for c in claims]


async def loaded_run(store: ExecutionStore, run_id: str) -> Run:
    run = await store.load_run(run_id)
    assert run is not None, run_id
    return run


async def finish(store: ExecutionStore, claim: Claimed, now: int = T0) -> None:
    await store.settle_run(claim.run.run_id, claim.lease, 0, [], Finish(None), now)


RACE_LIMITS: dict[str, int] = {"concurrency": 2, "per_key_concurrency": 1}
"""The limits of the queue that creates and claims race for."""
RACE_KEYS = ("k0", "k1", "k2", None)


class QueueCases:
    # -- placement -------------------------------------------------------------------
    async def test_a_run_is_in_the_default_queue_at_priority_0_without_a_key(
        self, store: ExecutionStore
    ) -> None:
        run = await create(store, "run-1")
        assert (run.queue, run.priority, run.partition_key) == ("default", 0, None)
        loaded = await store.load_run("run-1")
        assert loaded is not None
        assert (loaded.queue, loaded.priority, loaded.partition_key) == ("default", 0, None)

    @pytest.mark.parametrize(
        "placement",
        [{"queue": "emails"}, {"priority": 5}, {"priority": -1}, {"partition_key": "tenant-1"}],
        ids=["queue", "priority", "negative-priority", "partition_key"],
    )
    async def test_a_placement_is_kept_or_refused_by_a_store_without_queues(
        self, store: ExecutionStore, placement: dict[str, Any]
    ) -> None:
        if Capability.QUEUES in store.capabilities:
            result = await store.create_run("run-1", "wf", None, None, T0, **placement)
            assert isinstance(result, Created), result
            stored = await store.load_run("run-1")
            assert stored == result.run
            for name, value in placement.items():
                assert getattr(stored, name) == value
            return
        # Never accepted and ignored: the store would neither keep a limit nor the order.
        name = next(iter(placement))
        with pytest.raises(InvalidArgumentError, match=name):
            await store.create_run("run-1", "wf", None, None, T0, **placement)
        assert await store.load_run("run-1") is None

    async def test_claim_runnable_filters_by_queue(self, store: ExecutionStore) -> None:
        # On every store: a store without queues has every run in "default".
        await create(store, "run-1")
        assert await claim_ids(store, queues=["elsewhere"]) == []
        assert await claim_ids(store, queues=["elsewhere", "default"]) == ["run-1"]

    @pytest.mark.parametrize("queues", ["default", [], (), [""], ["default", 5], 7])
    async def test_claim_runnable_refuses_bad_queues(
        self, store: ExecutionStore, queues: Any
    ) -> None:
        await create(store, "run-1")
        with pytest.raises(InvalidArgumentError, match="queue"):
            await store.claim_runnable("worker-a", LEASE_MS, 10, T0, queues=queues)
        run = await store.load_run("run-1")
        assert run is not None
        assert run.status is RunStatus.QUEUED

    @pytest.mark.parametrize(
        "placement",
        [
            {"queue": ""},
            {"queue": 7},
            {"queue": "a\x00b"},
            {"priority": True},
            {"priority": 1.0},
            {"priority": 2**31},
            {"priority": -(2**31)},
            {"partition_key": ""},
            {"partition_key": 3},
        ],
    )
    async def test_create_run_refuses_a_bad_placement(
        self, store: ExecutionStore, placement: dict[str, Any]
    ) -> None:
        with pytest.raises(InvalidArgumentError, match=next(iter(placement))):
            await store.create_run("run-1", "wf", None, None, T0, **placement)
        assert await store.load_run("run-1") is None

    # -- configuration -------------------------------------------------------------
    @requires(Capability.QUEUES)
    async def test_upsert_get_and_list_queues(self, store: ExecutionStore) -> None:
        qs = queues_of(store)
        assert await qs.get_queue("emails") is None
        assert await qs.list_queues() == []
        made = await qs.upsert_queue(
            "emails", T0, concurrency=3, per_key_concurrency=1, rate_limit=RateLimit(10, 1000)
        )
        assert made == Queue("emails", 3, 1, RateLimit(10, 1000), T0)
        await qs.upsert_queue("batch", T0 + 1)
        assert await qs.get_queue("emails") == made
        replaced = await qs.upsert_queue("emails", T0 + 2, concurrency=5)
        assert replaced == Queue("emails", 5, None, None, T0 + 2)
        assert await qs.list_queues() == [Queue("batch", None, None, None, T0 + 1), replaced]

    @pytest.mark.parametrize(
        "limits",
        [
            {"concurrency": 0},
            {"concurrency": True},
            {"concurrency": 1_000_001},
            {"per_key_concurrency": -1},
            {"per_key_concurrency": "2"},
            {"rate_limit": (1, 1000)},
            {"rate_limit": RateLimit(0, 1000)},
            {"rate_limit": RateLimit(1, 0)},
            {"rate_limit": RateLimit(1, MAX_MS + 1)},
        ],
    )
    @requires(Capability.QUEUES)
    async def test_upsert_queue_refuses_bad_limits(
        self, store: ExecutionStore, limits: dict[str, Any]
    ) -> None:
        qs = queues_of(store)
        with pytest.raises(InvalidArgumentError, match=next(iter(limits))):
            await qs.upsert_queue("emails", T0, **limits)
        with pytest.raises(InvalidArgumentError, match="name"):
            await qs.upsert_queue("", T0)
        assert await qs.list_queues() == []

    # -- order -----------------------------------------------------------------------
    @requires(Capability.QUEUES)
    async def test_claims_go_by_priority_then_ready_at_then_run_id(
        self, store: ExecutionStore
    ) -> None:
        await placed(store, "low-old", priority=-1, now=T0)
        await placed(store, "mid-b", now=T0 + 2)
        await placed(store, "mid-a", now=T0 + 2)
        await placed(store, "mid-old", now=T0 + 1)
        await placed(store, "high", "other", priority=10, now=T0 + 3)
        assert await claim_ids(store, T0 + 10, 3) == ["high", "mid-old", "mid-a"]
        assert await claim_ids(store, T0 + 10) == ["mid-b", "low-old"]

    # -- concurrency -----------------------------------------------------------------
    @requires(Capability.QUEUES)
    async def test_concurrency_caps_the_leased_runs_of_a_queue(self, store: ExecutionStore) -> None:
        await queues_of(store).upsert_queue("q", T0, concurrency=2)
        for i in range(5):
            await placed(store, f"run-{i}", "q", now=T0 + i)
        first = await store.claim_runnable("worker-a", LEASE_MS, 10, T0 + 10)
        assert [c.run.run_id for c in first] == ["run-0", "run-1"]
        assert await claim_ids(store, T0 + 11) == []
        await finish(store, first[0], T0 + 12)
        assert await claim_ids(store, T0 + 13) == ["run-2"]
        # Giving a lease back (Yield) frees the place too.
        await store.settle_run("run-1", first[1].lease, 0, [], Yield(), T0 + 14)
        assert await claim_ids(store, T0 + 15) == ["run-3"]

    @requires(Capability.QUEUES)
    async def test_a_full_queue_does_not_block_other_queues(self, store: ExecutionStore) -> None:
        await queues_of(store).upsert_queue("slow", T0, concurrency=1)
        for i in range(3):
            await placed(store, f"slow-{i}", "slow", priority=5, now=T0)
        await placed(store, "fast-0", "fast", now=T0 + 1)
        await placed(store, "default-0", now=T0 + 2)
        assert await claim_ids(store, T0 + 5, 3) == ["slow-0", "fast-0", "default-0"]

    # A store reads its candidates in pages or rounds (SQL: a page of limit + 16 runs;
    # Redis Cluster: `limit` runs per bucket): 40 runs of a full key or queue are more
    # than one such page, and the call reads past them, within the same call, to the
    # run behind them.
    @requires(Capability.QUEUES)
    async def test_a_full_key_does_not_block_the_run_behind_a_page_of_its_runs(
        self, store: ExecutionStore
    ) -> None:
        await queues_of(store).upsert_queue("q", T0, per_key_concurrency=1)
        for i in range(40):
            await placed(store, f"a{i:02d}", "q", key="k1")
        await placed(store, "b", "q", key="k2")
        assert await claim_ids(store, T0 + 10, 2) == ["a00", "b"]

    @pytest.mark.parametrize(
        "limits",
        [{"concurrency": 1}, {"rate_limit": RateLimit(1, 60_000)}],
        ids=["concurrency", "rate_limit"],
    )
    @requires(Capability.QUEUES)
    async def test_a_full_queue_does_not_block_the_run_behind_a_page_of_its_runs(
        self, store: ExecutionStore, limits: dict[str, Any]
    ) -> None:
        await queues_of(store).upsert_queue("q", T0, **limits)
        for i in range(40):
            await placed(store, f"a{i:02d}", "q")
        await placed(store, "b", "other")
        assert await claim_ids(store, T0 + 10, 2) == ["a00", "b"]

    @requires(Capability.QUEUES)
    async def test_an_expired_lease_frees_its_place(self, store: ExecutionStore) -> None:
        await queues_of(store).upsert_queue("q", T0, concurrency=1)
        await placed(store, "run-a", "q")
        await placed(store, "run-b", "q", now=T0 + 1)
        assert await claim_ids(store, T0) == ["run-a"]
        assert isinstance(
            await store.claim_run("run-b", "worker-b", LEASE_MS, T0 + 1), NotClaimable
        )
        # At expires_at the lease is over: the place is free.
        taken = await store.claim_run("run-b", "worker-b", LEASE_MS, T0 + LEASE_MS)
        assert isinstance(taken, Claimed), taken
        # run-a is claimable again (stale) but its queue is full now.
        assert await claim_ids(store, T0 + LEASE_MS) == []

    @requires(Capability.QUEUES)
    async def test_claim_run_on_a_full_queue_is_not_claimable_and_changes_nothing(
        self, store: ExecutionStore
    ) -> None:
        await queues_of(store).upsert_queue("q", T0, concurrency=1)
        await placed(store, "run-a", "q")
        before = await placed(store, "run-b", "q")
        assert isinstance(await store.claim_run("run-a", "worker-a", LEASE_MS, T0), Claimed)
        answer = await store.claim_run("run-b", "worker-b", LEASE_MS, T0 + 1)
        assert isinstance(answer, NotClaimable), answer
        assert answer.run == before
        assert await store.load_run("run-b") == before

    @requires(Capability.QUEUES)
    @requires(Capability.CLAIM_ON_CREATE)
    async def test_create_run_on_a_full_queue_creates_it_queued_and_unclaimed(
        self, store: ExecutionStore
    ) -> None:
        await queues_of(store).upsert_queue("q", T0, concurrency=1)
        first = await store.create_run(
            "run-a", "wf", None, None, T0, owner="worker-a", lease_ms=LEASE_MS, queue="q"
        )
        assert isinstance(first, Created)
        assert first.lease is not None
        second = await store.create_run(
            "run-b", "wf", None, None, T0, owner="worker-a", lease_ms=LEASE_MS, queue="q"
        )
        assert isinstance(second, Created), second
        assert second.lease is None
        assert second.run.status is RunStatus.QUEUED
        assert second.run.lease is None
        assert await store.load_run("run-b") == second.run

    @requires(Capability.QUEUES)
    @requires(Capability.CLAIM_ON_CREATE)
    async def test_create_with_owner_of_an_existing_id_in_a_limited_queue_claims_nothing(
        self, store: ExecutionStore
    ) -> None:
        await queues_of(store).upsert_queue("q", T0, concurrency=5)
        first = await placed(store, "run-a", "q")
        again = await store.create_run(
            "run-a", "wf", None, None, T0 + 1, owner="worker-a", lease_ms=LEASE_MS, queue="q"
        )
        assert isinstance(again, Existing), again
        assert again.run == first
        other = await store.create_run(
            "run-a", "other-wf", None, None, T0 + 1, owner="w", lease_ms=LEASE_MS, queue="q"
        )
        assert isinstance(other, Conflict), other
        assert await store.load_run("run-a") == first

    @requires(Capability.QUEUES)
    @requires(Capability.CLAIM_ON_CREATE)
    async def test_create_run_with_owner_keeps_the_per_key_and_rate_limits(
        self, store: ExecutionStore
    ) -> None:
        assert T0 % 1000 == 0
        await queues_of(store).upsert_queue(
            "q", T0, per_key_concurrency=1, rate_limit=RateLimit(3, 1000)
        )

        async def owned(run_id: str, key: str | None, now: int = T0) -> Created:
            made = await store.create_run(
                run_id,
                "wf",
                None,
                None,
                now,
                owner="w",
                lease_ms=LEASE_MS,
                queue="q",
                partition_key=key,
            )
            assert isinstance(made, Created), made
            assert await store.load_run(run_id) == made.run
            return made

        assert (await owned("a-1", "a")).lease is not None
        assert (await owned("a-2", "a")).lease is None  # key a is full
        assert (await owned("b-1", "b")).lease is not None
        assert (await owned("none-1", None)).lease is not None  # the third claim
        # Three claims by create_run used the window up: a claim now takes nothing
        # and a create in a free key is created queued.
        assert await claim_ids(store, T0 + 1) == []
        assert (await owned("c-1", "c", T0 + 2)).lease is None
        # The next window: the creates' queued runs are claimable in claim order.
        assert await claim_ids(store, T0 + 1000) == ["c-1"]  # a-2's key is still full
        made = await owned("d-1", "d", T0 + 1001)
        assert made.lease is not None
        assert await claim_ids(store, T0 + 1002) == []  # window: c-1, d-1 and ...
        assert (await owned("e-1", "e", T0 + 1003)).lease is not None  # ... e-1
        assert (await owned("f-1", "f", T0 + 1004)).lease is None

    @requires(Capability.QUEUES)
    @requires(Capability.CLAIM_ON_CREATE)
    async def test_create_run_with_owner_claims_again_once_its_queue_has_no_limits(
        self, store: ExecutionStore
    ) -> None:
        # A store may remember that a queue had limits (to go straight to its limited
        # create): once they are gone, creates there are claimed whatever it remembers.
        qs = queues_of(store)
        await qs.upsert_queue("q", T0, concurrency=1)
        results = []
        for i in range(3):
            results.append(
                await store.create_run(
                    f"run-{i}", "wf", None, None, T0, owner="w", lease_ms=LEASE_MS, queue="q"
                )
            )
        assert [isinstance(r, Created) and r.lease is not None for r in results] == [
            True,
            False,
            False,
        ]
        await qs.upsert_queue("q", T0 + 1)
        again = await store.create_run(
            "run-3", "wf", None, None, T0 + 1, owner="w", lease_ms=LEASE_MS, queue="q"
        )
        assert isinstance(again, Created), again
        assert again.lease is not None

    @requires(Capability.QUEUES)
    @requires(Capability.CLAIM_ON_CREATE)
    @requires(Capability.CHILDREN)
    async def test_a_child_created_with_owner_keeps_its_queues_limits(
        self, store: ExecutionStore
    ) -> None:
        await queues_of(store).upsert_queue("q", T0, concurrency=1, rate_limit=RateLimit(2, 1000))
        await create(store, "parent")
        # Ids of the form parent@…: a clustered store keeps a child beside its parent.

        async def child(run_id: str, now: int = T0) -> Created:
            made = await store.create_run(
                run_id,
                "wf",
                None,
                None,
                now,
                owner="w",
                lease_ms=LEASE_MS,
                queue="q",
                parent_run_id="parent",
            )
            assert isinstance(made, Created), made
            assert made.run.parent_run_id == "parent"
            assert await store.load_run(run_id) == made.run
            return made

        first = await child("parent@kid-1")
        assert first.lease is not None
        assert (await child("parent@kid-2")).lease is None  # concurrency: full
        await finish(store, Claimed(first.run, first.lease), T0 + 1)
        # The window counted kid-1's claim: one more claim in it.
        assert await claim_ids(store, T0 + 2, queues=["q"]) == ["parent@kid-2"]
        assert (await child("parent@kid-3", T0 + 3)).lease is None  # window used up
        again = await store.create_run(
            "parent@kid-1",
            "wf",
            None,
            None,
            T0 + 4,
            owner="w",
            lease_ms=LEASE_MS,
            queue="q",
            parent_run_id="parent",
        )
        assert again == Existing(await loaded_run(store, "parent@kid-1")), again

    @pytest.mark.parametrize("parent", [None, "parent"], ids=["run", "child"])
    @requires(Capability.QUEUES)
    @requires(Capability.CLAIM_ON_CREATE)
    @requires(Capability.NOTIFY_RUNNABLE)
    async def test_a_create_with_owner_that_finds_its_queue_full_wakes_watchers(
        self, store: ExecutionStore, store_factory: StoreFactory, parent: str | None
    ) -> None:
        # Created queued, the run is claimable: a create of a claimable run yields.
        if parent is not None and Capability.CHILDREN not in store.capabilities:
            pytest.skip("the store does not declare 'children'")
        await queues_of(store).upsert_queue("q", T0, concurrency=1)
        if parent is not None:
            await create(store, parent)
        other = await store_factory()
        ids = [f"parent@run-{i}" for i in range(2)]
        first = await other.create_run(
            ids[0],
            "wf",
            None,
            None,
            T0,
            owner="w",
            lease_ms=LEASE_MS,
            queue="q",
            parent_run_id=parent,
        )
        assert isinstance(first, Created), first
        assert first.lease is not None, first
        async with _watching(store) as watcher:
            made = await other.create_run(
                ids[1],
                "wf",
                None,
                None,
                T0,
                owner="w",
                lease_ms=LEASE_MS,
                queue="q",
                parent_run_id=parent,
            )
            assert isinstance(made, Created), made
            assert made.lease is None, made
            await _next(watcher, "another handle created a run queued in a full queue")

    @requires(Capability.QUEUES)
    async def test_a_lowered_limit_keeps_leases_and_holds_new_claims(
        self, store: ExecutionStore
    ) -> None:
        qs = queues_of(store)
        for i in range(4):
            await placed(store, f"run-{i}", "q", now=T0 + i)
        held = await store.claim_runnable("worker-a", LEASE_MS, 3, T0 + 10)
        assert len(held) == 3
        await qs.upsert_queue("q", T0 + 11, concurrency=2)
        for claim in held:  # not revoked
            await store.heartbeat(claim.run.run_id, claim.lease, LEASE_MS, T0 + 12)
        await finish(store, held[0], T0 + 13)
        assert await claim_ids(store, T0 + 14) == []  # 2 leased: at the new limit
        await finish(store, held[1], T0 + 15)
        assert await claim_ids(store, T0 + 16) == ["run-3"]

    @requires(Capability.QUEUES)
    async def test_an_expired_lease_in_a_queue_that_limits_places_cannot_be_renewed(
        self, store: ExecutionStore
    ) -> None:
        await queues_of(store).upsert_queue("q", T0, concurrency=1)
        await placed(store, "run-a", "q")
        await placed(store, "run-b", "q", now=T0 + 1)
        a = await store.claim_run("run-a", "worker-a", LEASE_MS, T0)
        assert isinstance(a, Claimed)
        # Within its lease a heartbeat never fails for a limit.
        lease = await store.heartbeat("run-a", a.lease, LEASE_MS, T0 + 1)
        late = lease.expires_at
        # Expired: the place is given up, so the lease cannot come back (another run
        # may hold the place by now, as run-b does below).
        with pytest.raises(LeaseLostError):
            await store.heartbeat("run-a", lease, LEASE_MS, late)
        b = await store.claim_run("run-b", "worker-b", LEASE_MS, late)
        assert isinstance(b, Claimed), b
        with pytest.raises(LeaseLostError):
            await store.heartbeat("run-a", lease, LEASE_MS, late + 1)

    @requires(Capability.QUEUES)
    async def test_an_expired_lease_in_a_queue_without_place_limits_renews(
        self, store: ExecutionStore
    ) -> None:
        await queues_of(store).upsert_queue("q", T0, rate_limit=RateLimit(5, 1000))
        await placed(store, "run-a", "q")
        a = await store.claim_run("run-a", "worker-a", LEASE_MS, T0)
        assert isinstance(a, Claimed)
        lease = await store.heartbeat("run-a", a.lease, LEASE_MS, T0 + LEASE_MS)
        assert lease.expires_at == T0 + 2 * LEASE_MS

    # -- per key -----------------------------------------------------------------------
    @requires(Capability.QUEUES)
    async def test_per_key_concurrency_caps_each_key_and_not_keyless_runs(
        self, store: ExecutionStore
    ) -> None:
        await queues_of(store).upsert_queue("q", T0, per_key_concurrency=1)
        await placed(store, "a-1", "q", key="a", now=T0)
        await placed(store, "a-2", "q", key="a", now=T0 + 1)
        await placed(store, "b-1", "q", key="b", now=T0 + 2)
        await placed(store, "none-1", "q", now=T0 + 3)
        await placed(store, "none-2", "q", now=T0 + 4)
        await placed(store, "other-a", "other", key="a", now=T0 + 5)
        assert await claim_ids(store, T0 + 10) == ["a-1", "b-1", "none-1", "none-2", "other-a"]
        assert isinstance(await store.claim_run("a-2", "w", LEASE_MS, T0 + 11), NotClaimable)

    @requires(Capability.QUEUES)
    async def test_both_limits_apply_together(self, store: ExecutionStore) -> None:
        await queues_of(store).upsert_queue("q", T0, concurrency=2, per_key_concurrency=1)
        for i, key in enumerate(["a", "a", "b", "c"]):
            await placed(store, f"run-{i}", "q", key=key, now=T0 + i)
        assert await claim_ids(store, T0 + 10) == ["run-0", "run-2"]

    # -- rate ---------------------------------------------------------------------------
    @requires(Capability.QUEUES)
    async def test_rate_limit_counts_claims_in_fixed_windows(self, store: ExecutionStore) -> None:
        assert T0 % 1000 == 0
        await queues_of(store).upsert_queue("q", T0, rate_limit=RateLimit(2, 1000))
        for i in range(6):
            await placed(store, f"run-{i}", "q", now=T0 + i)
        first = await store.claim_runnable("worker-a", LEASE_MS, 10, T0 + 10)
        assert [c.run.run_id for c in first] == ["run-0", "run-1"]
        for claim in first:
            await finish(store, claim, T0 + 11)
        # Nothing is leased, yet the window's claims are used up until it ends.
        assert await claim_ids(store, T0 + 999) == []
        assert isinstance(await store.claim_run("run-2", "w", LEASE_MS, T0 + 999), NotClaimable)
        # The next window: two more, one by id.
        assert isinstance(await store.claim_run("run-5", "w", LEASE_MS, T0 + 1000), Claimed)
        assert await claim_ids(store, T0 + 1500) == ["run-2"]
        assert await claim_ids(store, T0 + 1999) == []
        assert await claim_ids(store, T0 + 2000) == ["run-3", "run-4"]

    @requires(Capability.QUEUES)
    async def test_a_clock_behind_counts_in_the_latest_window(self, store: ExecutionStore) -> None:
        await queues_of(store).upsert_queue("q", T0, rate_limit=RateLimit(1, 1000))
        for i in range(3):
            await placed(store, f"run-{i}", "q", now=T0)
        assert await claim_ids(store, T0 + 1000) == ["run-0"]
        # A caller whose clock is a window behind must not reopen its window.
        assert await claim_ids(store, T0 + 500) == []

    @requires(Capability.QUEUES)
    async def test_heartbeats_are_not_claims(self, store: ExecutionStore) -> None:
        await queues_of(store).upsert_queue("q", T0, rate_limit=RateLimit(1, 1000))
        await placed(store, "run-0", "q")
        await placed(store, "run-1", "q")
        held = await store.claim_runnable("worker-a", LEASE_MS, 10, T0)
        assert [c.run.run_id for c in held] == ["run-0"]
        lease = held[0].lease
        for t in range(1, 4):
            lease = await store.heartbeat("run-0", lease, LEASE_MS, T0 + 1000 * t)
        assert await claim_ids(store, T0 + 3000) == ["run-1"]

    # -- the race of creates and claims ------------------------------------------------
    # create_run(..., owner=) and claims at once, each on a handle of its own: the
    # leases either hands out never take the queue past its limits (small numbers:
    # the 32 claimers of workflow.contract_tests.queue_races race claims alone).
    @requires(Capability.QUEUES)
    @requires(Capability.CLAIM_ON_CREATE)
    async def test_creates_with_owner_and_claims_at_once_never_exceed_a_limit(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        await queues_of(store).upsert_queue(
            "q",
            T0,
            concurrency=RACE_LIMITS["concurrency"],
            per_key_concurrency=RACE_LIMITS["per_key_concurrency"],
        )
        for i, key in enumerate(("k0", "k1", "k0", None)):
            await placed(store, f"queued-{i}", "q", key=key)
        creators = [await store_factory() for _ in range(4)]
        claimers = [await store_factory() for _ in range(2)]
        per_creator = 8
        total = 4 + per_creator * len(creators)
        held: Counter[str] = Counter()
        settled: Counter[str] = Counter()

        def hold(claim: Claimed) -> None:
            key = claim.run.partition_key
            held["*"] += 1
            assert held["*"] <= RACE_LIMITS["concurrency"], dict(held)
            if key is not None:
                held[key] += 1
                assert held[key] <= RACE_LIMITS["per_key_concurrency"], dict(held)

        async def release(handle: ExecutionStore, claim: Claimed, pause: float) -> None:
            await asyncio.sleep(pause)
            held["*"] -= 1
            if claim.run.partition_key is not None:
                held[claim.run.partition_key] -= 1
            await finish(handle, claim)
            settled[claim.run.run_id] += 1

        # The race starts at the limits: the first creates find the queue full (a
        # create that ignored the limits would be caught at once).
        opening = await claimers[0].claim_runnable("claimer-0", LEASE_MS, 10, T0)
        for claim in opening:
            hold(claim)
        assert held["*"] == RACE_LIMITS["concurrency"], dict(held)

        async def creator(i: int, handle: ExecutionStore) -> None:
            rng = random.Random(i)
            for n in range(per_creator):
                made = await handle.create_run(
                    f"run-{i}-{n:02d}",
                    "wf",
                    None,
                    None,
                    T0,
                    owner=f"creator-{i}",
                    lease_ms=LEASE_MS,
                    queue="q",
                    partition_key=RACE_KEYS[(i + n) % len(RACE_KEYS)],
                )
                assert isinstance(made, Created), made
                if made.lease is not None:
                    claim = Claimed(made.run, made.lease)
                    hold(claim)
                    await release(handle, claim, rng.random() * 0.003)

        async def claimer(i: int, handle: ExecutionStore) -> None:
            rng = random.Random(100 + i)
            if i == 0:
                for claim in opening:
                    await release(handle, claim, 0.01)
            idle = 0
            while len(settled) < total:
                claims = await handle.claim_runnable(
                    f"claimer-{i}", LEASE_MS, rng.randint(1, 2), T0
                )
                if not claims:
                    idle += 1
                    # Bounded: a store that strands runs must fail, not hang.
                    assert idle < 20_000, f"claimer {i} found nothing {idle} times in a row"
                    await asyncio.sleep(0.001)
                    continue
                idle = 0
                for claim in claims:
                    hold(claim)
                for claim in claims:
                    await release(handle, claim, rng.random() * 0.003)

        await asyncio.gather(
            *(creator(i, h) for i, h in enumerate(creators)),
            *(claimer(i, h) for i, h in enumerate(claimers)),
        )
        assert len(settled) == total
        assert set(settled.values()) == {1}
