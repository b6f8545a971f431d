"""The contract suite against PostgreSQL: one schema per test session, emptied
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
from workflow.store.postgres.store import PostgresStore
from workflow.store.sql.statements import hot_operation_statements

URL = os.environ.get("WORKFLOW_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
SCHEMA = f"wf_test_{uuid.uuid4().hex[:10]}"


async def _create() -> None:
    store = PostgresStore.from_url(URL, schema=SCHEMA)
    await store.create_schema()
    await store.close()


async def _drop() -> None:
    engine = create_async_engine(URL.replace("postgresql://", "postgresql+psycopg://"))
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
    await engine.dispose()


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    # Sync on purpose: a session-wide async fixture would pin every test to one loop.
    require_server(URL, "PostgreSQL", default_port=5432)
    asyncio.run(_create())
    yield SCHEMA
    asyncio.run(_drop())


class TestPostgresStore(StoreContract):
    capabilities = frozenset(
        {Capability.SUBSCRIBE_EVENTS, Capability.DURABLE, Capability.MULTI_PROCESS}
    )

    @pytest.fixture
    def store_url(self, pg_schema: str) -> str:
        # What open_store() opens on the same data as `store` (multi-process cases).
        return f"{URL}{'&' if '?' in URL else '?'}schema={pg_schema}"

    @pytest.fixture
    async def store(self, pg_schema: str) -> AsyncIterator[ExecutionStore]:
        store = PostgresStore.from_url(
            URL, schema=pg_schema, max_payload_bytes=self.max_payload_bytes
        )
        t = store.tables
        async with store.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    f'TRUNCATE "{pg_schema}".{t.runs.name}, "{pg_schema}".{t.events.name}, '
                    f'"{pg_schema}".{t.inbox.name}, "{pg_schema}".{t.schedules.name}'
                )
            )
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(self, pg_schema: str) -> AsyncIterator[StoreFactory]:
        opened: list[PostgresStore] = []

        async def open_handle() -> ExecutionStore:
            handle = PostgresStore.from_url(
                URL, schema=pg_schema, max_payload_bytes=self.max_payload_bytes
            )
            opened.append(handle)
            return handle

        yield open_handle
        for handle in opened:
            await handle.close()


# Statements per hot operation; multi-statement ones also pay psycopg's BEGIN/COMMIT.
# A change that adds one fails here; one that removes one updates the table.
STATEMENT_BUDGET = {
    "create_run": 1,
    "claim_run": 1,
    "heartbeat": 1,
    "append_events_1": 2,
    "append_events_10": 2,
    "settle_run": 2,
    "fire_due_timers": 4,
    "deliver_signal": 4,
    "claim_runnable": 1,
    "list_runs": 1,
    "load_run": 1,
}


async def test_hot_operations_send_the_budgeted_statements(pg_schema: str) -> None:
    # Its own tables (prefix), so the contract cases' data cannot interfere.
    store = PostgresStore.from_url(URL, schema=pg_schema, table_prefix="stmt_")
    await store.create_schema()
    try:
        seen = await hot_operation_statements(store)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == STATEMENT_BUDGET, seen
