"""Connection setup for SQLite engines (the store's and the migrations')."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine


def configure_sqlite(
    engine: Engine | AsyncEngine, *, busy_timeout_ms: int = 10_000, begin_immediate: bool = True
) -> None:
    """WAL, foreign keys (for ON DELETE CASCADE), a busy timeout, no pysqlite-managed
    transactions, and (``begin_immediate``) ``BEGIN IMMEDIATE`` whenever SQLAlchemy
    begins a transaction: the write lock is taken up front, two writers never deadlock
    upgrading read locks, and a migration holds the database-wide lock.

    The stores pass ``begin_immediate=False``: they run in autocommit and write their
    own ``BEGIN IMMEDIATE`` (``SQLStore._tx``). Idempotent per engine.
    """
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    if sync.dialect.name != "sqlite" or getattr(sync, "_workflow_sqlite_configured", False):
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

    if not begin_immediate:
        sync._workflow_sqlite_configured = True  # type: ignore[attr-defined]
        return

    @event.listens_for(sync, "begin")
    def _on_begin(conn: Any) -> None:
        # Autocommit connections run one statement, atomic on its own: no BEGIN, so a
        # read never takes the write lock and a claim is one statement.
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    sync._workflow_sqlite_configured = True  # type: ignore[attr-defined]
