"""The store seam as a type checker sees it: the payload limit is part of every store,
a schema and its migrations are part of the stores that own one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_type

from workflow.runtime import (
    ExecutionStore,
    InMemoryStore,
    SchemaMigrator,
    SchemaOwner,
    SchemaRevision,
    open_store,
)
from workflow.store.d1 import D1Store
from workflow.store.mysql import MySQLStore
from workflow.store.postgres import PostgresStore
from workflow.store.redis import RedisStore
from workflow.store.sqlite import SQLiteStore


def every_store_declares_its_payload_limit(store: ExecutionStore) -> int:
    return assert_type(store.max_payload_bytes, int)


def stores(
    sqlite: SQLiteStore, postgres: PostgresStore, mysql: MySQLStore, redis: RedisStore, d1: D1Store
) -> list[ExecutionStore]:
    return [sqlite, postgres, mysql, redis, d1, InMemoryStore()]


def schema_owners(
    sqlite: SQLiteStore, postgres: PostgresStore, mysql: MySQLStore, redis: RedisStore, d1: D1Store
) -> list[SchemaOwner]:
    return [sqlite, postgres, mysql, redis, d1]


def the_memory_store_owns_no_schema() -> SchemaOwner:
    return InMemoryStore()  # type: ignore[return-value]  # pyright: ignore[reportReturnType]


async def set_up(url: str) -> str | None:
    store = await open_store(url, verify_schema=False)
    # What open_store returns is only an ExecutionStore ...
    await store.create_schema()  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
    # ... until the seam is checked.
    if isinstance(store, SchemaOwner):
        await store.create_schema()
        migrator = assert_type(store.migrator, SchemaMigrator)
        assert_type(migrator.head, str)
        assert_type(migrator.history(), Sequence[SchemaRevision])
        return await migrator.current()
    return None
