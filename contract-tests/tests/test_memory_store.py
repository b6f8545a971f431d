"""The suite's self-test: the whole contract against the in-memory reference store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from workflow.contract_tests import StoreContract, StoreFactory, WatchKiller
from workflow.runtime import Capability, ExecutionStore, InMemoryStore


class TestInMemoryStore(StoreContract):
    capabilities = frozenset(
        {
            Capability.SUBSCRIBE_EVENTS,
            Capability.NOTIFY_RUNNABLE,
            Capability.CLAIM_ON_CREATE,
            Capability.DEADLINES,
            Capability.QUEUES,
            Capability.CHILDREN,
        }
    )

    @pytest.fixture
    def kill_watch_connections(self) -> WatchKiller:
        async def kill(store: ExecutionStore) -> int:
            return 0  # its watchers are rung in process: no connection to lose

        return kill

    @pytest.fixture
    async def store(self) -> AsyncIterator[ExecutionStore]:
        store = InMemoryStore(max_payload_bytes=self.max_payload_bytes)
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(self, store: InMemoryStore) -> StoreFactory:
        async def open_handle() -> ExecutionStore:
            return store.handle()

        return open_handle
