"""The SyncClient cases (workflow.contract_tests.sync_client) on a SQLite file: every
client of a test opens the same file, from plain threads."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from workflow.contract_tests import sync_client as cases
from workflow.runtime import ExecutionStore, Workflow
from workflow.runtime.sync_client import SyncClient
from workflow.store.sqlite.store import SQLiteStore


@pytest.fixture
def open_client(tmp_path: Path) -> cases.OpenClient:
    url = f"sqlite:///{tmp_path / 'sync.db'}"

    async def opened() -> ExecutionStore:
        store = SQLiteStore.from_url(url)
        await store.create_schema()
        return store

    def open_client(workflows: Iterable[Workflow[Any, Any]]) -> SyncClient:
        return SyncClient(opened, workflows)

    return open_client


@pytest.mark.parametrize("case", cases.ALL_CASES, ids=lambda case: case.__name__)
def test_sync_client(
    case: Callable[[cases.OpenClient], None], open_client: cases.OpenClient
) -> None:
    case(open_client)


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
