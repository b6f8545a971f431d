"""The contract suite against MariaDB: one schema per test session, emptied
between tests (TRUNCATE), so runs cannot see each other and tests stay quick."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from workflow.contract_tests import StoreContract, StoreFactory
from workflow.contract_tests.servers import require_server
from workflow.runtime import Capability, ExecutionStore
from workflow.store.mysql.store import MySQLStore
from workflow.store.sql.statements import hot_operation_statements

URL = os.environ.get("WORKFLOW_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
SCHEMA = f"wf_test_{uuid.uuid4().hex[:10]}"


async def _create() -> None:
    store = MySQLStore.from_url(URL, schema=SCHEMA)
    await store.create_schema()
    await store.close()


async def _drop() -> None:
    engine = create_async_engine(URL.replace("mysql://", "mysql+aiomysql://"))
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{SCHEMA}`"))
    await engine.dispose()


@pytest.fixture(scope="session")
def my_schema() -> Iterator[str]:
    # Sync on purpose: a session-wide async fixture would pin every test to one loop.
    require_server(URL, "MySQL/MariaDB", default_port=3306)
    asyncio.run(_create())
    yield SCHEMA
    asyncio.run(_drop())


class TestMySQLStore(StoreContract):
    capabilities = frozenset(
        {Capability.SUBSCRIBE_EVENTS, Capability.DURABLE, Capability.MULTI_PROCESS}
    )

    @pytest.fixture
    def store_url(self, my_schema: str) -> str:
        # What open_store() opens on the same data as `store` (multi-process cases).
        return f"{URL}{'&' if '?' in URL else '?'}schema={my_schema}"

    @pytest.fixture
    async def store(self, my_schema: str) -> AsyncIterator[ExecutionStore]:
        store = MySQLStore.from_url(URL, schema=my_schema, max_payload_bytes=self.max_payload_bytes)
        t = store.tables
        async with store.engine.begin() as conn:
            # Children first: MySQL will not TRUNCATE a table other tables reference.
            for table in (t.events, t.inbox, t.schedules, t.runs):
                await conn.execute(sa.text(f"DELETE FROM `{my_schema}`.{table.name}"))
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(self, my_schema: str) -> AsyncIterator[StoreFactory]:
        opened: list[MySQLStore] = []

        async def open_handle() -> ExecutionStore:
            handle = MySQLStore.from_url(
                URL, schema=my_schema, max_payload_bytes=self.max_payload_bytes
            )
            opened.append(handle)
            return handle

        yield open_handle
        for handle in opened:
            await handle.close()


# Statements per hot operation (no UPDATE ... RETURNING: claims lock, update, read).
# A change that adds one fails here; one that removes one updates the table.
STATEMENT_BUDGET = {
    "create_run": 1,
    "claim_run": 3,
    "heartbeat": 1,
    "append_events_1": 2,
    "append_events_10": 2,
    "settle_run": 3,
    "fire_due_timers": 4,
    "deliver_signal": 4,
    "claim_runnable": 3,
    "list_runs": 1,
    "load_run": 1,
}


async def test_hot_operations_send_the_budgeted_statements(my_schema: str) -> None:
    # Its own tables (prefix), so the contract cases' data cannot interfere.
    store = MySQLStore.from_url(URL, schema=my_schema, table_prefix="stmt_")
    await store.create_schema()
    try:
        seen = await hot_operation_statements(store)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == STATEMENT_BUDGET, seen
