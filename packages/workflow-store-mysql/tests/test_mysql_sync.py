"""The SyncClient cases (workflow.contract_tests.sync_client) on MySQL/MariaDB: one
migrated database for the module, every client on it, called from plain threads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from mysql_server import SERVER

from workflow.contract_tests import sync_client as cases
from workflow.runtime import ExecutionStore, Workflow
from workflow.runtime.sync_client import SyncClient


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    yield from SERVER.schema("wf_sync")


@pytest.fixture
def open_client(schema: str) -> cases.OpenClient:
    async def opened() -> ExecutionStore:
        return SERVER.store(schema)

    def open_client(workflows: Iterable[Workflow[Any, Any]]) -> SyncClient:
        return SyncClient(opened, workflows)

    return open_client


@pytest.mark.parametrize("case", cases.ALL_CASES, ids=lambda case: case.__name__)
def test_sync_client(
    case: Callable[[cases.OpenClient], None], open_client: cases.OpenClient
) -> None:
    case(open_client)
