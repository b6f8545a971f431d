"""The contract suite against a real Redis and a real 3-master Redis Cluster (started by
``conftest.redis_cluster_url``): every test gets its own key prefix, and its keys are
deleted at teardown."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis
from local_cluster import cluster_fixture  # noqa: F401  (fixture redis_cluster_url)
from watch_connections import kill_watchers

from workflow.contract_tests import StoreContract, StoreFactory, WatchKiller
from workflow.contract_tests.servers import require_server
from workflow.runtime import Capability, ExecutionStore
from workflow.store.redis.keys import Keyspace
from workflow.store.redis.store import RedisStore

URL = os.environ.get("WORKFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _drop(prefix: str) -> None:
    client = aioredis.Redis.from_url(URL)
    try:
        keys = [k async for k in client.scan_iter(match=Keyspace(prefix).pattern, count=1000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


class TestRedisStore(StoreContract):
    capabilities = frozenset(
        {
            Capability.SUBSCRIBE_EVENTS,
            Capability.DURABLE,
            Capability.MULTI_PROCESS,
            Capability.CLAIM_ON_CREATE,
            Capability.DEADLINES,
            Capability.QUEUES,
            Capability.NOTIFY_RUNNABLE,
        }
    )

    @pytest.fixture
    def kill_watch_connections(self) -> WatchKiller:
        return kill_watchers

    @pytest.fixture
    async def prefix(self) -> AsyncIterator[str]:
        require_server(URL, "Redis", default_port=6379)
        prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
        yield prefix
        await _drop(prefix)

    @pytest.fixture
    def store_url(self, prefix: str) -> str:
        # What open_store() opens on the same data as `store` (multi-process cases).
        return f"{URL}?prefix={prefix}"

    @pytest.fixture
    async def store(self, prefix: str) -> AsyncIterator[ExecutionStore]:
        store = RedisStore.from_url(URL, prefix=prefix, max_payload_bytes=self.max_payload_bytes)
        await store.create_schema()
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(self, prefix: str) -> AsyncIterator[StoreFactory]:
        opened: list[RedisStore] = []

        async def open_handle() -> ExecutionStore:
            handle = RedisStore.from_url(
                URL, prefix=prefix, max_payload_bytes=self.max_payload_bytes
            )
            opened.append(handle)
            return handle

        yield open_handle
        for handle in opened:
            await handle.close()


_CLUSTER_ADMIN: dict[str, redis.RedisCluster] = {}
"""One blocking cluster client per cluster for the whole test process: opening a
cluster client (a connection to every node, its slot map) for every test's cleanup
was most of the cluster class's fixture time, several times more on the floor's
redis-py. A blocking client is not tied to any test's event loop."""


def _drop_cluster(url: str, prefix: str) -> None:
    client = _CLUSTER_ADMIN.get(url)
    if client is None:
        client = _CLUSTER_ADMIN[url] = redis.RedisCluster.from_url(url)
    keys = list(client.scan_iter(match=Keyspace(prefix).pattern, count=1000))
    if keys:
        # The keys live in different slots: one UNLINK each, sent as one pipeline
        # (one round trip per node).
        pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for key in keys:
            pipe.unlink(key)
        pipe.execute()


class TestRedisClusterStore(StoreContract):
    capabilities = frozenset(
        {
            Capability.SUBSCRIBE_EVENTS,
            Capability.DURABLE,
            Capability.MULTI_PROCESS,
            Capability.CLAIM_ON_CREATE,
            Capability.DEADLINES,
            Capability.QUEUES,
            Capability.NOTIFY_RUNNABLE,
        }
    )

    @pytest.fixture
    def kill_watch_connections(self) -> WatchKiller:
        return kill_watchers

    @pytest.fixture
    async def prefix(self, redis_cluster_url: str) -> AsyncIterator[str]:
        prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
        yield prefix
        _drop_cluster(redis_cluster_url, prefix)

    @pytest.fixture
    def store_url(self, redis_cluster_url: str, prefix: str) -> str:
        return f"{redis_cluster_url}?prefix={prefix}&cluster=true"

    @pytest.fixture
    async def store(self, redis_cluster_url: str, prefix: str) -> AsyncIterator[ExecutionStore]:
        store = RedisStore.from_url(
            redis_cluster_url,
            prefix=prefix,
            max_payload_bytes=self.max_payload_bytes,
            cluster=True,
        )
        await store.create_schema()
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(
        self, redis_cluster_url: str, prefix: str
    ) -> AsyncIterator[StoreFactory]:
        opened: list[RedisStore] = []

        async def open_handle() -> ExecutionStore:
            handle = RedisStore.from_url(
                redis_cluster_url,
                prefix=prefix,
                max_payload_bytes=self.max_payload_bytes,
                cluster=True,
            )
            opened.append(handle)
            return handle

        yield open_handle
        for handle in opened:
            await handle.close()
