"""The contract suite against SQLite files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from workflow.contract_tests import StoreContract, StoreFactory
from workflow.runtime import Capability, ExecutionStore
from workflow.store.sqlite.store import SQLiteStore


class TestSQLiteStore(StoreContract):
    capabilities = frozenset({Capability.SUBSCRIBE_EVENTS, Capability.DURABLE})

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[ExecutionStore]:
        store = SQLiteStore.from_path(
            str(tmp_path / "wf.db"), max_payload_bytes=self.max_payload_bytes
        )
        await store.create_schema()
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(self, tmp_path: Path) -> AsyncIterator[StoreFactory]:
        opened: list[SQLiteStore] = []

        async def open_handle() -> ExecutionStore:
            handle = SQLiteStore.from_path(
                str(tmp_path / "wf.db"), max_payload_bytes=self.max_payload_bytes
            )
            opened.append(handle)
            return handle

        yield open_handle
        for handle in opened:
            await handle.close()
