"""Queues on Redis beyond the contract: how far a claim reads past runs of full queues,
and a cluster's reservations (docs/stores/redis.md, Queues)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from local_cluster import (  # noqa: F401  (fixture redis_cluster_url)
    cluster_fixture,
    standalone_or_cluster,
)

from workflow.runtime import Capability, Claimed, Finish, NotClaimable, RateLimit
from workflow.runtime.errors import StoreUnavailableError
from workflow.store.redis.keys import escape
from workflow.store.redis.store import RedisStore

T0 = 1_700_000_000_000
LEASE_MS = 30_000
SKIP_SCAN = 1000
"""Runs of full queues one claim passes over at most (lua.CLAIM_RUNNABLE)."""


@pytest.fixture(params=["standalone"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    async for handle in standalone_or_cluster(request, create=True):
        yield handle


@pytest.fixture(params=["cluster"])
async def cluster_store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    async for handle in standalone_or_cluster(request, create=True):
        yield handle


async def _full_queue_ahead(store: RedisStore, n: int) -> None:
    """``n`` runs of the full queue "slow" ahead (by priority) of one run of "fast"."""
    await store.upsert_queue("slow", T0, concurrency=1)
    await store.create_run("slow-held", "wf", None, None, T0, queue="slow", priority=9)
    held = await store.claim_runnable("w", LEASE_MS, 1, T0)
    assert [c.run.run_id for c in held] == ["slow-held"]
    for start in range(0, n, 100):
        await asyncio.gather(
            *(
                store.create_run(f"slow-{i:04d}", "wf", None, None, T0, queue="slow", priority=5)
                for i in range(start, min(n, start + 100))
            )
        )
    await store.create_run("fast", "wf", None, None, T0, queue="fast")


async def test_a_claim_reads_past_many_pages_of_runs_whose_queue_is_full(
    store: RedisStore,
) -> None:
    # Far more passed-over runs than one page of any bucket (limit=1): the claim pages
    # on through the buckets' claim order to the first run that has room.
    await _full_queue_ahead(store, 600)
    claims = await store.claim_runnable("w", LEASE_MS, 1, T0 + 1)
    assert [c.run.run_id for c in claims] == ["fast"]


async def test_past_the_bound_a_run_waits_for_a_claim_that_names_its_queue(
    store: RedisStore,
) -> None:
    # Bounded work: past SKIP_SCAN passed-over runs a claim of every queue stops; one
    # naming the free queue reads that queue's own claim order and finds the run.
    await _full_queue_ahead(store, SKIP_SCAN + 10)
    assert await store.claim_runnable("w", LEASE_MS, 1, T0 + 1) == []
    claims = await store.claim_runnable("w", LEASE_MS, 1, T0 + 1, queues=["fast"])
    assert [c.run.run_id for c in claims] == ["fast"]


async def test_a_cluster_reserves_a_place_per_lease_and_gives_it_back(
    cluster_store: RedisStore,
) -> None:
    store = cluster_store
    assert Capability.QUEUES in store.capabilities
    await store.upsert_queue("q", T0, concurrency=1, per_key_concurrency=1)
    await store.create_run("a", "wf", None, None, T0, queue="q", partition_key="k")
    await store.create_run("b", "wf", None, None, T0 + 1, queue="q", partition_key="k")
    (a,) = await store.claim_runnable("w", LEASE_MS, 10, T0 + 2)
    reserved = store.keys.meta(f"qres:{escape('q')}")
    keyed = f"{reserved}:{escape('k')}"
    assert await store.client.zrange(reserved, 0, -1, withscores=True) == [
        (escape("a"), T0 + 2 + LEASE_MS)
    ]
    assert await store.client.zcard(keyed) == 1
    # A heartbeat extends the reservation before the lease: never less than the lease.
    lease = await store.heartbeat("a", a.lease, LEASE_MS, T0 + 3)
    assert await store.client.zscore(reserved, escape("a")) == lease.expires_at
    assert isinstance(await store.claim_run("b", "w", LEASE_MS, T0 + 4), NotClaimable)
    # The settle gives the place back at once (no wait for the lease's expiry).
    await store.settle_run("a", lease, 0, [], Finish(None), T0 + 5)
    assert await store.client.zcard(reserved) == 0
    assert await store.client.zcard(keyed) == 0
    b = await store.claim_run("b", "w", LEASE_MS, T0 + 6)
    assert isinstance(b, Claimed), b
    # A cancel gives it back too.
    await store.cancel_run("b", "stop", T0 + 7)
    assert await store.client.hlen(store.keys.meta("qhold")) == 0


async def test_a_claim_a_cluster_refuses_reserves_nothing(
    cluster_store: RedisStore,
) -> None:
    # The reservation is the check: refused, it writes neither a place nor a rate claim.
    store = cluster_store
    await store.upsert_queue("q", T0, concurrency=1, rate_limit=RateLimit(5, 1000))
    await store.create_run("a", "wf", None, None, T0, queue="q")
    await store.create_run("b", "wf", None, None, T0, queue="q")
    assert isinstance(await store.claim_run("a", "w", LEASE_MS, T0), Claimed)
    assert isinstance(await store.claim_run("b", "w", LEASE_MS, T0 + 1), NotClaimable)
    assert await store.claim_runnable("w", LEASE_MS, 10, T0 + 2) == []
    queue = await store.client.hgetall(store.keys.queue("q"))
    assert queue["wu"] == "1"
    assert list(await store.client.hgetall(store.keys.meta("qhold"))) == [escape("a")]


async def test_a_run_that_times_out_or_is_deleted_frees_its_place_at_once_on_a_cluster(
    cluster_store: RedisStore,
) -> None:
    # Its lease ended without a settle: the reservation goes with it, not at the
    # lease's expiry.
    store = cluster_store
    await store.upsert_queue("q", T0, concurrency=1)
    await store.create_run("late", "wf", None, None, T0, queue="q", deadline_at=T0 + 10)
    for run_id in ("next", "last"):
        await store.create_run(run_id, "wf", None, None, T0 + 1, queue="q")
    assert isinstance(await store.claim_run("late", "w", LEASE_MS, T0), Claimed)
    assert [e.run_id for e in await store.fire_due_timers(T0 + 10, 10)] == ["late"]
    taken = await store.claim_run("next", "w", LEASE_MS, T0 + 11)
    assert isinstance(taken, Claimed), taken
    assert await store.delete_run("next")
    assert isinstance(await store.claim_run("last", "w", LEASE_MS, T0 + 12), Claimed)


async def test_a_cluster_claim_that_fails_between_rounds_gives_its_places_back(
    cluster_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Round 1 reserves a00's place (k1 is full then); the cluster fails as round 2 reads
    # on. The call raises, and the place goes back at once: otherwise k1 would stay full
    # until the lease it was reserved for would have expired.
    store = cluster_store
    await store.upsert_queue("q", T0, per_key_concurrency=1)
    for i in range(40):
        await store.create_run(f"a{i:02d}", "wf", None, None, T0, queue="q", partition_key="k1")
    await store.create_run("b", "wf", None, None, T0, queue="q", partition_key="k2")
    real = store._pipelined
    calls = 0

    async def failing_second(calls_: Any) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StoreUnavailableError("injected: the cluster failed between rounds")
        return await real(calls_)

    monkeypatch.setattr(store, "_pipelined", failing_second)
    with pytest.raises(StoreUnavailableError, match="injected"):
        await store.claim_runnable("w", LEASE_MS, 2, T0 + 10)
    assert calls == 2
    assert await store.client.hlen(store.keys.meta("qhold")) == 0
    assert isinstance(await store.claim_run("a01", "w", LEASE_MS, T0 + 11), Claimed)
