"""SQLite as the SQL stores see it: statement spelling, errors, connection setup."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.dml import Insert

from workflow.store.sql.compiled import Statement, text_statement
from workflow.store.sql.dialect import Dialect
from workflow.store.sql.failures import Failure

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",  # ON DELETE CASCADE
    "PRAGMA synchronous=NORMAL",
)
"""Set on every connection (the store's and the migrations'), with a busy timeout."""

# sqlite3 names the result code (Python 3.11+); extended codes such as
# SQLITE_BUSY_SNAPSHOT or SQLITE_IOERR_SHORT_READ share their primary's meaning.
_CODES = {
    "SQLITE_BUSY": Failure.RETRY,  # the busy timeout ran out: nothing was written
    "SQLITE_LOCKED": Failure.RETRY,
    "SQLITE_CANTOPEN": Failure.NO_DATABASE,  # a directory that does not exist
    "SQLITE_NOTADB": Failure.NOT_A_DATABASE,
    "SQLITE_READONLY": Failure.PERMISSION,
    "SQLITE_PERM": Failure.PERMISSION,
    "SQLITE_AUTH": Failure.PERMISSION,
    "SQLITE_IOERR": Failure.UNAVAILABLE,
    "SQLITE_FULL": Failure.UNAVAILABLE,  # disk full
    "SQLITE_NOMEM": Failure.UNAVAILABLE,
}


def set_up(connection: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """WAL, foreign keys, a busy timeout; no sqlite3-managed transactions."""
    connection.isolation_level = None
    for pragma in (*PRAGMAS, f"PRAGMA busy_timeout={int(busy_timeout_ms)}"):
        connection.execute(pragma).close()


class SQLiteDialect(Dialect):
    name = "sqlite"
    sync_driver = "sqlite+pysqlite"
    # Multi-statement writes run in BEGIN IMMEDIATE: SQLite serializes writers per
    # database, and taking the write lock up front avoids the lock-upgrade deadlock of
    # a deferred BEGIN. Single statements run in autocommit and take no lock to read.
    begin: ClassVar[Statement] = text_statement("BEGIN IMMEDIATE")
    locks_rows = False
    render_as_batch = True

    def __init__(self, busy_timeout_ms: int = 10_000) -> None:
        self.busy_timeout_ms = busy_timeout_ms

    def compiler_dialect(self) -> sa.Dialect:
        return sqlite.pysqlite.dialect(paramstyle="named")

    def insert_ignore(self, table: sa.Table) -> Insert:
        return sqlite.insert(table).on_conflict_do_nothing()

    def upsert(self, table: sa.Table, update: Sequence[str]) -> Insert:
        stmt = sqlite.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={c: stmt.excluded[c] for c in update},
        )

    def json_rows(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        return sa.func.json_group_array(sa.func.json_array(*columns))

    def outer_column(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        # SQLAlchemy renders RETURNING columns unqualified on SQLite, and a subquery's
        # `run_id = run_id` would then compare the inbox row with itself (matching
        # every run's entries); the explicit table name keeps the correlation.
        return sa.literal_column(f"{column.table.name}.{column.name}")

    def is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(exc)

    def classify(self, exc: BaseException) -> Failure | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        name: str = getattr(exc, "sqlite_errorname", None) or ""
        failure = _CODES.get("_".join(name.split("_")[:2]))
        if failure is not None:
            return failure
        text = str(exc).lower()
        if "no such table" in text or "no such column" in text:
            return Failure.NO_TABLES
        if "database is locked" in text or "database is busy" in text:
            return Failure.RETRY
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in text:
            return Failure.UNAVAILABLE
        return Failure.FAILED

    def fix(self, failure: Failure, url: str) -> str | None:
        return {
            Failure.NO_DATABASE: "the file cannot be opened (does its directory exist?): "
            f"correct the path in {url}",
            Failure.PERMISSION: "the process may not write the file or its directory: "
            f"fix their permissions ({url})",
            Failure.NOT_A_DATABASE: f"the file is not a SQLite database: correct the path in {url}",
        }.get(failure)

    def configure_engine(self, engine: sa.Engine, *, autocommit: bool) -> None:
        """Set up the engine's connections; on an engine that is not in autocommit,
        open each transaction SQLAlchemy begins with ``BEGIN IMMEDIATE``, so a
        migration run from ``alembic.ini`` holds the database-wide write lock
        throughout (the store's own Migrator writes that BEGIN itself)."""
        busy = self.busy_timeout_ms

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            set_up(dbapi_connection, busy)

        if not autocommit:

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
