"""The SyncClient cases (workflow.contract_tests.sync_client) on Redis: one key prefix
for the module, every client on it, called from plain threads."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

from workflow.contract_tests.servers import require_server
from workflow.contract_tests.sync_client import SyncClientTests
from workflow.runtime import ExecutionStore
from workflow.runtime.sync_client import StoreOpener
from workflow.store.redis.store import RedisStore

URL = os.environ.get("WORKFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _set_up(prefix: str) -> None:
    store = RedisStore.from_url(URL, prefix=prefix)
    try:
        await store.create_schema()
    finally:
        await store.close()


async def _drop(prefix: str) -> None:
    store = RedisStore.from_url(URL, prefix=prefix)
    try:
        async for key in store.client.scan_iter(match=store.keys.pattern):
            await store.client.unlink(key)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    require_server(URL, "Redis", default_port=6379)
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    asyncio.run(_set_up(prefix))
    try:
        yield prefix
    finally:
        asyncio.run(_drop(prefix))


class TestSyncClient(SyncClientTests):
    @pytest.fixture
    def store_opener(self, prefix: str) -> StoreOpener:
        async def opened() -> ExecutionStore:
            return RedisStore.from_url(URL, prefix=prefix)

        return opened
