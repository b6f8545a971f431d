"""Wake-up hints on a Redis Cluster: a script PUBLISHes on the node that serves its
slot, and the cluster bus carries the message to a subscriber on another node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from local_cluster import (
    cluster_fixture,  # noqa: F401  (fixture redis_cluster_url)
    standalone_or_cluster,
)
from redis.asyncio.cluster import RedisCluster
from watch_connections import watch_clients

from workflow.store.redis.store import RedisStore

T0 = 1_700_000_000_000
GUARD_S = 10.0
"""A hang guard on waiting for a yield, not a check of its speed."""


@pytest.fixture(params=["cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    async for store in standalone_or_cluster(request, create=True):
        yield store


async def test_a_script_on_another_node_wakes_the_subscriber(
    store: RedisStore, redis_cluster_url: str
) -> None:
    client = store.client
    assert isinstance(client, RedisCluster)
    watcher = store.watch_runnable()
    other = RedisStore.from_url(redis_cluster_url, prefix=store.keys.prefix, cluster=True)
    try:
        await asyncio.wait_for(anext(watcher), GUARD_S)  # subscribed
        (listening,) = (await watch_clients(store)).keys()
        # A run whose bucket lives on another primary than the subscriber's.
        run_id = next(
            f"run-{i}"
            for i in range(10_000)
            if (node := client.get_node_from_key(store.keys.run(f"run-{i}"))) is not None
            and (node.host, node.port) != listening
        )
        await other.create_run(run_id, "wf", None, None, T0)
        await asyncio.wait_for(anext(watcher), GUARD_S)
    finally:
        await watcher.aclose()
        await other.close()
