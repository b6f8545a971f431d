"""Queues on Redis beyond the contract: how far a claim reads past runs of full queues,
and what a cluster (which does not declare queues) answers (docs/stores/redis.md,
Queues)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from local_cluster import (  # noqa: F401  (fixture redis_cluster_url)
    cluster_fixture,
    standalone_or_cluster,
)

from workflow.runtime import Capability, InvalidArgumentError
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


async def test_a_cluster_does_not_declare_queues_and_refuses_their_configuration(
    cluster_store: RedisStore,
) -> None:
    assert Capability.QUEUES not in cluster_store.capabilities
    for call in (
        lambda: cluster_store.upsert_queue("q", T0, concurrency=1),
        lambda: cluster_store.get_queue("q"),
        lambda: cluster_store.list_queues(),
    ):
        with pytest.raises(InvalidArgumentError, match=r"Capability\.QUEUES"):
            await call()
    with pytest.raises(InvalidArgumentError, match="queue"):
        await cluster_store.create_run("r", "wf", None, None, T0, queue="q")
    assert await cluster_store.load_run("r") is None
