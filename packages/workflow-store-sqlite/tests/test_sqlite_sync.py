"""The SyncClient cases (workflow.contract_tests.sync_client) on a SQLite file: every
client of a test opens the same file, from plain threads."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow.contract_tests import sync_client as cases
from workflow.runtime import ExecutionStore
from workflow.runtime.sync_client import StoreOpener, SyncClient
from workflow.store.sqlite.store import SQLiteStore


class TestSyncClient(cases.SyncClientTests):
    @pytest.fixture
    def store_opener(self, tmp_path: Path) -> StoreOpener:
        url = f"sqlite:///{tmp_path / 'sync.db'}"

        async def opened() -> ExecutionStore:
            store = SQLiteStore.from_url(url)
            await store.create_schema()
            return store

        return opened


def test_sync_client_opens_a_store_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'url.db'}"

    async def migrate() -> ExecutionStore:
        store = SQLiteStore.from_url(url)
        await store.create_schema()
        return store

    SyncClient(migrate).close()
    with SyncClient(url, [cases.double]) as client:
        client.run_worker(poll_interval=0.05)
        assert client.result(client.start("sync-double", 21).run_id, wait=cases.GUARD_S) == 42
