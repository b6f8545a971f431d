"""A cluster's failures map onto the contract's errors too: redis-py's cluster
exceptions (some of which are not ``RedisError``) never leak raw."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from local_cluster import cluster_fixture  # noqa: F401  (fixture redis_cluster_url)
from redis.asyncio.cluster import RedisCluster

from workflow.contract_tests.servers import require_server
from workflow.runtime import Created
from workflow.runtime.errors import StoreConfigurationError, StoreUnavailableError
from workflow.store.redis.store import RedisStore, open_store

URL = os.environ.get("WORKFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = 1_700_000_000_000


def _closed_port() -> int:
    # A port that was just free: nothing listens there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_cluster_raises_store_unavailable() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    store = RedisStore.from_url(url, cluster=True)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await store.load_run("r")
        assert caught.value.retryable
    finally:
        await store.close()
    with pytest.raises(StoreUnavailableError):
        await open_store(f"{url}?cluster=true")


async def test_cluster_true_on_a_standalone_server_names_the_fix() -> None:
    require_server(URL, "Redis", default_port=6379)
    store = RedisStore.from_url(URL, cluster=True)
    try:
        with pytest.raises(StoreConfigurationError, match=r"not a Redis Cluster.*cluster=true"):
            await store.load_run("r")
    finally:
        await store.close()
    # open_store's first call is verify_schema's.
    joint = "&" if "?" in URL else "?"
    with pytest.raises(StoreConfigurationError, match="not a Redis Cluster"):
        await open_store(f"{URL}{joint}cluster=true")


async def _cmd(node: aioredis.Redis, *args: object) -> Any:
    return await node.execute_command(*args)  # type: ignore[no-untyped-call]


async def _begin_move(slot: int, source: aioredis.Redis, target: aioredis.Redis) -> None:
    """Mark ``slot`` as moving from ``source`` to ``target`` (a reshard's first step)."""
    source_id = str(await _cmd(source, "CLUSTER", "MYID"))
    target_id = str(await _cmd(target, "CLUSTER", "MYID"))
    await _cmd(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    await _cmd(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)


async def _migrate(source: aioredis.Redis, target: aioredis.Redis, keys: list[str]) -> None:
    at = target.connection_pool.connection_kwargs
    await _cmd(source, "MIGRATE", at["host"], at["port"], "", 0, 5000, "KEYS", *keys)


async def _end_move(
    slot: int, source: aioredis.Redis, target: aioredis.Redis, everyone: list[aioredis.Redis]
) -> None:
    """Move the keys left in ``slot`` and give the slot to ``target`` on every node."""
    while keys := await _cmd(source, "CLUSTER", "GETKEYSINSLOT", slot, 100):
        await _migrate(source, target, keys)
    target_id = str(await _cmd(target, "CLUSTER", "MYID"))
    for node in everyone:
        await _cmd(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)


@pytest.fixture
async def cluster_store(redis_cluster_url: str) -> AsyncIterator[RedisStore]:
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    store = RedisStore.from_url(redis_cluster_url, prefix=prefix, cluster=True)
    await store.create_schema()
    yield store
    async for key in store.client.scan_iter(match=store.keys.pattern):
        await store.client.unlink(key)
    await store.close()


async def test_a_slot_being_migrated_raises_store_unavailable(cluster_store: RedisStore) -> None:
    # A live reshard: the run's slot is MIGRATING and its hash has already moved while
    # its indexes have not. A script needs all its keys on one node, so the cluster
    # answers TRYAGAIN until redis-py gives up ("TTL exhausted"): retryable.
    store = cluster_store
    client = store.client
    assert isinstance(client, RedisCluster)
    assert isinstance(await store.create_run("r", "wf", None, None, T0), Created)
    key = store.keys.run("r")
    slot = client.keyslot(key)
    home = client.get_node_from_key(key)
    assert home is not None
    nodes = {
        p.name: aioredis.Redis(host=p.host, port=int(p.port), decode_responses=True)
        for p in client.get_primaries()
    }
    source = nodes[home.name]
    target = next(n for name, n in nodes.items() if name != home.name)
    everyone = list(nodes.values())
    try:
        await _begin_move(slot, source, target)
        await _migrate(source, target, [key])
        with pytest.raises(StoreUnavailableError) as caught:
            await store.claim_run("r", "w", 60_000, T0)
        assert caught.value.retryable
        with pytest.raises(StoreUnavailableError):
            await store.claim_runnable("w", 60_000, 5, T0)
    finally:
        # Finish the move, then move the slot home, so the cluster is as it was.
        await _end_move(slot, source, target, everyone)
        await _begin_move(slot, target, source)
        await _end_move(slot, target, source, everyone)
        for node in everyone:
            await node.aclose()
    # The failed claim_run had reserved the run's queue place for token 1
    # (docs/stores/redis.md, Queues); the next claim of that token shares it.
    claims = await store.claim_runnable("w", 60_000, 5, T0)
    assert [c.run.run_id for c in claims] == ["r"]
