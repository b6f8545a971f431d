"""The contract suite against PostgreSQL: one schema per test session, emptied
between tests (TRUNCATE), so runs cannot see each other and tests stay quick."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workflow.contract_tests import StoreContract, StoreFactory
from workflow.contract_tests.servers import require_server
from workflow.runtime import Buffered, Capability, Claimed, ExecutionStore, Pause, RunStatus, Wait
from workflow.store.postgres.store import PostgresStore
from workflow.store.sql.statements import hot_operation_statements, recording

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


# Round trips per hot operation (workflow.store.sql.statements.recording): the stores
# run in autocommit, so a transaction shows as BEGIN ... COMMIT and nothing else is sent.
# A change that adds one fails here; one that removes one updates the table.
STATEMENT_BUDGET = {
    "create_run": 1,
    "claim_run": 1,
    "heartbeat": 1,
    "append_events_1": 1,
    "append_events_10": 1,
    "settle_run": 1,
    "fire_due_timers": 1,
    "deliver_signal": 1,
    "fire_due_schedules": 2,
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


async def _blocked_on_lock(engine: AsyncEngine, table: str, count: int) -> None:
    """Wait (no assertion on time) until ``count`` statements on ``table`` wait for a lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND position(:table in query) > 0"
    )
    for _ in range(1200):
        async with engine.connect() as conn:
            if (await conn.execute(query, {"table": table})).scalar() == count:
                return
        await asyncio.sleep(0.05)
    pytest.fail(f"{count} statements never queued for the lock on {table}")


async def test_one_statement_settle_sees_a_delivery_that_committed_while_it_waited(
    pg_schema: str,
) -> None:
    # The race single_statement.py guards against, forced: a delivery commits after the
    # settle took its snapshot but before it got the run's row lock. The settle's own
    # snapshot cannot see the entry; inbox_seq tells it to look again.
    store = PostgresStore.from_url(URL, schema=pg_schema, table_prefix="race_")
    await store.create_schema()
    runs = f'"{pg_schema}".race_runs'
    # The lock holder and the watcher use their own engine: `recording` sees only the store.
    other = create_async_engine(URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        await store.create_run("r", "wf", None, None, 1_000)
        claim = await store.claim_run("r", "w", 60_000, 1_000)
        assert isinstance(claim, Claimed)
        async with other.connect() as holder:
            await holder.execute(sa.text(f"SELECT 1 FROM {runs} WHERE run_id = 'r' FOR UPDATE"))
            deliver = asyncio.create_task(store.deliver_signal("r", "s1", "go", None, 1_001))
            await _blocked_on_lock(other, "race_runs", 1)
            with recording(store) as seen:
                settle = asyncio.create_task(
                    store.settle_run("r", claim.lease, 0, [], Pause(Wait.signal("st", "go")), 1_002)
                )
                await _blocked_on_lock(other, "race_runs", 2)
                await holder.commit()
                delivered, settled = await deliver, await settle
        # Row locks queue in order: the delivery went first and found the run running.
        assert isinstance(delivered, Buffered), delivered
        assert settled.status is RunStatus.QUEUED, settled
        assert seen == ["WITH", "UPDATE"], seen  # the settle, then its second look
        loaded = await store.load_run("r")
        assert loaded is not None
        assert loaded.status is RunStatus.QUEUED
    finally:
        await store.close()
        await other.dispose()
