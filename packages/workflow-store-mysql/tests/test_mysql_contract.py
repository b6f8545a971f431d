"""The contract suite against MariaDB: one schema per test session, emptied
between tests, so runs cannot see each other and tests stay quick."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from mysql_server import SERVER, URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workflow.contract_tests.sql import SQLServerContract
from workflow.runtime import (
    Cancelled,
    Capability,
    RunStatus,
    StoreConfigurationError,
)
from workflow.store.mysql.store import MySQLStore
from workflow.store.sql.statements import hot_operation_statements, recompiled


@pytest.fixture(scope="session")
def server_schema() -> Iterator[str]:
    yield from SERVER.schema("wf_test")


class TestMySQLStore(SQLServerContract):
    capabilities = frozenset(
        {Capability.SUBSCRIBE_EVENTS, Capability.DURABLE, Capability.MULTI_PROCESS}
    )
    server = SERVER


# Round trips per hot operation (workflow.store.sql.statements.recording): the stores
# run in autocommit, so a transaction shows as BEGIN ... COMMIT and nothing else is sent.
# A change that adds one fails here; one that removes one updates the table.
STATEMENT_BUDGET = {
    "create_run": 1,
    "claim_run": 5,
    "heartbeat": 1,
    "append_events_1": 4,
    "append_events_10": 4,
    "settle_run": 5,
    "fire_due_timers": 5,
    "deliver_signal": 5,
    "fire_due_schedules": 5,
    "claim_runnable": 5,
    "list_runs": 1,
    "load_run": 1,
}


async def test_hot_operations_send_the_budgeted_statements(server_schema: str) -> None:
    # Its own tables (prefix), so the contract cases' data cannot interfere.
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="stmt_")
    await store.create_schema()
    try:
        seen = await hot_operation_statements(store)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == STATEMENT_BUDGET, seen


async def test_hot_operations_run_from_the_compiled_cache(server_schema: str) -> None:
    # Building and compiling statements costs more CPU than running them: once warm,
    # no hot operation compiles anything (a statement SQLAlchemy cannot cache, such
    # as one with a VALUES list, would show here on every call).
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="cache_")
    await store.create_schema()
    try:
        expected: dict[str, list[str]] = {}
        if sa.__version__.startswith("2.0."):
            # SQLAlchemy 2.0's INSERT ... ON DUPLICATE KEY UPDATE has no cache key (2.1's
            # has): the two firings compile their upsert on every call there
            # (docs/stores/mysql.md). Nothing else may.
            expected = {"fire_due_timers": ["INSERT"], "fire_due_schedules": ["INSERT"]}
        assert await recompiled(store) == expected
    finally:
        await store.close()


def _engine(**options: Any) -> AsyncEngine:
    return create_async_engine(SERVER.driver_url() + "?charset=utf8mb4", **options)


async def test_a_store_on_an_engine_at_repeatable_read_refuses_to_write(server_schema: str) -> None:
    # InnoDB's default; the store's locking model is written for READ COMMITTED.
    engine = _engine()
    store = MySQLStore(engine, schema=server_schema, table_prefix="iso_")
    try:
        await store.create_schema()
        await store.create_run("r", "wf", None, None, 1_000)  # autocommit: no isolation
        with pytest.raises(StoreConfigurationError, match="READ COMMITTED"):
            await store.cancel_run("r", "stop", 1_001)
        run = await store.load_run("r")
        assert run is not None
        assert run.status is RunStatus.QUEUED
    finally:
        await store.close()
        await engine.dispose()


async def test_a_store_on_an_engine_the_application_made_works(server_schema: str) -> None:
    # An engine that pooled connections before the store existed: the session setup
    # (group_concat_max_len) still reaches them on checkout.
    engine = _engine(isolation_level="READ COMMITTED")
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
    store = MySQLStore(engine, schema=server_schema, table_prefix="own_")
    try:
        await store.create_schema()
        await store.create_run("r", "wf", None, None, 1_000)
        assert isinstance(await store.cancel_run("r", "stop", 1_001), Cancelled)
        async with engine.connect() as conn:
            limit = (await conn.execute(sa.text("SELECT @@SESSION.group_concat_max_len"))).scalar()
        assert limit is not None
        assert int(limit) >= 1 << 30  # MariaDB caps the requested maximum at 1 GiB
    finally:
        await store.close()
        await engine.dispose()
