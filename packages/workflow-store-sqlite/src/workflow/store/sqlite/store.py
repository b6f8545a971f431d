"""The SQLite store: the embedded default (a file, WAL mode, no server)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workflow.runtime import codec
from workflow.runtime.records import SchemaStatus
from workflow.store.sql import DEFAULT_TABLE_PREFIX, SQLStore


def _configure(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """Per-connection setup. pysqlite's own transaction handling is switched off so
    that every transaction is a ``BEGIN IMMEDIATE``: the write lock is taken up front,
    and two writers can never deadlock upgrading read locks."""
    sync = engine.sync_engine
    if getattr(sync, "_workflow_sqlite_configured", False):
        return

    @event.listens_for(sync, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    sync._workflow_sqlite_configured = True  # type: ignore[attr-defined]


class SQLiteStore(SQLStore):
    """An execution store in one SQLite database file."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        busy_timeout_ms: int = 10_000,
        owns_engine: bool = False,
    ) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError(f"SQLiteStore needs a sqlite engine, got {engine.dialect.name}")
        _configure(engine, busy_timeout_ms)
        super().__init__(
            engine,
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            owns_engine=owns_engine,
        )

    @classmethod
    def from_path(cls, path: str, **options: Any) -> SQLiteStore:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        return cls(engine, owns_engine=True, **options)

    async def create_schema(self) -> None:
        """Create the tables (tests and demos). TODO: run the migrations to head."""
        async with self._engine.begin() as conn:
            await conn.run_sync(self.tables.metadata.create_all)

    async def schema_status(self) -> SchemaStatus:
        return SchemaStatus("0001", "0001")
