"""sqlite3 connections, each on its own thread (one hop per operation)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

from workflow.store.sql.compiled import Rows
from workflow.store.sql.driver import Query, ThreadDriver

from .dialect import SQLiteDialect, set_up


class SQLiteDriver(ThreadDriver[sqlite3.Connection]):
    """Connections to one database file. Readers run side by side (WAL); writers
    take the database's write lock in turn (``BEGIN IMMEDIATE``), waiting up to the
    busy timeout on their own thread, never on the event loop."""

    def __init__(
        self,
        path: str,
        dialect: SQLiteDialect,
        size: int = 8,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        super().__init__(dialect.is_duplicate, size)
        self.path = path
        self._busy_timeout_ms = dialect.busy_timeout_ms
        self._on_connect = on_connect

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,  # opened on its thread, used there, closed there
        )
        try:
            set_up(connection, self._busy_timeout_ms)
            if self._on_connect is not None:
                self._on_connect(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def execute(self, raw: sqlite3.Connection, query: Query) -> Rows:
        params = query.params()
        sql = query.statement.sql
        cursor = raw.executemany(sql, params) if query.many else raw.execute(sql, params)
        try:
            description = cursor.description
            if description is None:
                return Rows((), [], cursor.rowcount)
            found = cursor.fetchall()  # RETURNING: the row count is known after this
            return Rows([d[0] for d in description], found, cursor.rowcount)
        finally:
            cursor.close()

    def abort(self, raw: sqlite3.Connection) -> None:
        # sqlite3_interrupt is safe from another thread: the statement running on the
        # connection's thread stops at its next step ("interrupted"). A wait for the
        # write lock is bounded by the busy timeout instead.
        raw.interrupt()

    def close_raw(self, raw: sqlite3.Connection) -> None:
        with contextlib.suppress(Exception):
            raw.close()
