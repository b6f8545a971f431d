"""The SyncClient cases (workflow.contract_tests.sync_client) on MySQL/MariaDB: one
migrated database for the module, every client on it, called from plain threads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mysql_server import SERVER

from workflow.contract_tests.sync_client import SyncClientTests
from workflow.runtime import ExecutionStore
from workflow.runtime.sync_client import StoreOpener


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    yield from SERVER.schema("wf_sync")


class TestSyncClient(SyncClientTests):
    @pytest.fixture
    def store_opener(self, schema: str) -> StoreOpener:
        async def opened() -> ExecutionStore:
            return SERVER.store(schema)

        return opened
