"""Finding and killing the pub/sub connections of a RedisStore's watchers (the
contract's ``kill_watch_connections``), on a server or on every node of a cluster."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from workflow.runtime import ExecutionStore
from workflow.store.redis.store import RedisStore
from workflow.store.redis.subscriber import client_name


def _nodes(store: RedisStore) -> list[tuple[str, int]]:
    client = store.client
    if isinstance(client, RedisCluster):
        return [(node.host, int(node.port)) for node in client.get_nodes()]
    kwargs = client.connection_pool.connection_kwargs
    return [(kwargs["host"], kwargs["port"])]


async def watch_clients(store: RedisStore) -> dict[tuple[str, int], list[int]]:
    """The client ids of the store's watcher connections, by node (the prefix makes
    the name unique to the test)."""
    name = client_name(store.keys.prefix)
    found: dict[tuple[str, int], list[int]] = {}
    for host, port in _nodes(store):
        admin = aioredis.Redis(host=host, port=port, decode_responses=True)
        try:
            clients = await admin.client_list()
        finally:
            await admin.aclose()
        ids = [int(c["id"]) for c in clients if c.get("name") == name]
        if ids:
            found[(host, port)] = ids
    return found


async def kill_watchers(store: ExecutionStore) -> int:
    """CLIENT KILL ID of every watcher connection of ``store``; how many it killed."""
    assert isinstance(store, RedisStore)
    killed = 0
    for (host, port), ids in (await watch_clients(store)).items():
        admin = aioredis.Redis(host=host, port=port, decode_responses=True)
        try:
            for client_id in ids:
                killed += int(await admin.client_kill_filter(_id=str(client_id)))
        finally:
            await admin.aclose()
    assert killed, f"no connection named {client_name(store.keys.prefix)!r} found"
    return killed
