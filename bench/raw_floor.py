"""The raw-driver floor: one single statement on the store's own runs table, sent
over the same kind of connection the store uses with no store code or SQLAlchemy in
between: a ``sqlite3`` connection on its own single-thread executor (one
``run_in_executor`` per statement, as the store makes one per operation), psycopg's
async connection, and a PyMySQL connection on its own single-thread executor. A store
operation can hardly beat one such round trip, so ``store / raw`` says how close to
the floor the operation is.

The statements touch only the ``FLOOR_RUN`` row, a finished run no operation reads.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

import psycopg
import pymysql  # type: ignore[import-untyped]
from psycopg import sql

from workflow.store.sql.rows import RUN_COLUMNS

from .hot_ops import Call, Floor

T = TypeVar("T")
C = TypeVar("C")
MySQLConnection = Any
"""A PyMySQL connection (PyMySQL ships no type hints)."""

FLOOR_RUN = "bench-floor"
PAGE_ROWS = 51
"""What ``list_runs(limit=50)`` fetches: one row more than the page, to know if
another page follows."""


class RawFloor(Protocol):
    driver: str
    run_id: str
    """The finished run the statements touch (``FLOOR_RUN`` unless the concurrent
    mode gives each connection its own, so that raw writes do not queue on one row)."""

    def statement(self, floor: Floor) -> str:
        """The SQL text, for the report."""
        ...

    def call(self, floor: Floor) -> Call: ...

    async def server_version(self) -> str: ...

    async def close(self) -> None: ...


def _templates(quote: str, table: str, mark: str, returning: bool) -> dict[Floor, str]:
    """The statements for SQLite and MySQL (identifiers are our own constants)."""
    cols = ", ".join(f"{quote}{c}{quote}" for c in RUN_COLUMNS)
    update = f"UPDATE {table} SET updated_at = {mark} WHERE run_id = {mark}"
    return {
        Floor.WRITE: f"{update} RETURNING {cols}" if returning else update,
        Floor.READ: f"SELECT {cols} FROM {table} WHERE run_id = {mark}",
        Floor.PAGE: (
            f"SELECT {cols} FROM {table} ORDER BY created_at DESC, run_id DESC LIMIT {PAGE_ROWS}"
        ),
    }


def _params(floor: Floor, stamps: itertools.count[int], run_id: str) -> tuple[Any, ...]:
    # A new updated_at each time: MySQL skips writing a row whose values are unchanged.
    if floor is Floor.WRITE:
        return (next(stamps), run_id)
    return (run_id,) if floor is Floor.READ else ()


class _OnThread(Generic[C]):
    """A blocking driver connection used on its own single-thread executor, as the
    store's ``ThreadDriver`` uses each of its connections: one hop per statement."""

    def __init__(self, executor: ThreadPoolExecutor, conn: C) -> None:
        self._executor = executor
        self.conn = conn

    @classmethod
    async def open(cls, connect: Callable[[], C]) -> _OnThread[C]:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-floor")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, conn)

    async def run(self, fn: Callable[[C], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self.conn)

    async def close(self, close: Callable[[C], object]) -> None:
        try:
            await self.run(close)
        finally:
            self._executor.shutdown(wait=True)


class SQLiteFloor:
    driver = "sqlite3 (one thread)"

    def __init__(self, on_thread: _OnThread[sqlite3.Connection], runs_table: str) -> None:
        self._thread = on_thread
        self._sql = _templates('"', f'"{runs_table}"', "?", returning=True)
        self._stamps = itertools.count(1)
        self.run_id = FLOOR_RUN

    @classmethod
    async def connect(cls, path: str, runs_table: str) -> SQLiteFloor:
        def connect() -> sqlite3.Connection:
            # Autocommit and the pragmas the store sets on its own connections.
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
                conn.execute(f"PRAGMA {pragma}").close()
            return conn

        return cls(await _OnThread.open(connect), runs_table)

    def statement(self, floor: Floor) -> str:
        return self._sql[floor]

    def call(self, floor: Floor) -> Call:
        text = self._sql[floor]

        def execute(conn: sqlite3.Connection, params: tuple[Any, ...]) -> list[Any]:
            cur = conn.execute(text, params)
            try:
                return cur.fetchall()
            finally:
                cur.close()

        async def run(i: int) -> object:
            params = _params(floor, self._stamps, self.run_id)
            return await self._thread.run(lambda conn: execute(conn, params))

        return run

    async def server_version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    async def close(self) -> None:
        await self._thread.close(sqlite3.Connection.close)


class PostgresFloor:
    driver = "psycopg"

    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str, runs_table: str) -> None:
        self._conn = conn
        table = sql.Identifier(schema, runs_table)
        cols = sql.SQL(", ").join(map(sql.Identifier, RUN_COLUMNS))
        self._sql: Mapping[Floor, sql.Composed] = {
            Floor.WRITE: sql.SQL(
                "UPDATE {} SET updated_at = %s WHERE run_id = %s RETURNING {}"
            ).format(table, cols),
            Floor.READ: sql.SQL("SELECT {} FROM {} WHERE run_id = %s").format(cols, table),
            Floor.PAGE: sql.SQL(
                "SELECT {} FROM {} ORDER BY created_at DESC, run_id DESC LIMIT {}"
            ).format(cols, table, sql.Literal(PAGE_ROWS)),
        }
        self._stamps = itertools.count(1)
        self.run_id = FLOOR_RUN

    @classmethod
    async def connect(
        cls, url: Mapping[str, Any], schema: str, runs_table: str, *, prepare: bool = False
    ) -> PostgresFloor:
        # As the store connects: autocommit single statements; server-side prepared
        # statements only when the store has them too (prepared at first use).
        conn = await psycopg.AsyncConnection.connect(
            autocommit=True, prepare_threshold=0 if prepare else None, **url
        )
        return cls(conn, schema, runs_table)

    def statement(self, floor: Floor) -> str:
        return self._sql[floor].as_string(self._conn)

    def call(self, floor: Floor) -> Call:
        query = self._sql[floor]

        async def run(i: int) -> object:
            cur = await self._conn.execute(query, _params(floor, self._stamps, self.run_id))
            return await cur.fetchall()

        return run

    async def server_version(self) -> str:
        cur = await self._conn.execute("SHOW server_version")
        row = await cur.fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"

    async def close(self) -> None:
        await self._conn.close()


class MySQLFloor:
    driver = "pymysql (one thread)"

    def __init__(self, on_thread: _OnThread[MySQLConnection], runs_table: str) -> None:
        self._thread = on_thread
        # No UPDATE ... RETURNING on MySQL/MariaDB: the floor write is the bare UPDATE.
        self._sql = _templates("`", f"`{runs_table}`", "%s", returning=False)
        self._stamps = itertools.count(1)
        self.run_id = FLOOR_RUN

    @classmethod
    async def connect(cls, url: Mapping[str, Any], schema: str, runs_table: str) -> MySQLFloor:
        def connect() -> MySQLConnection:
            return pymysql.connect(database=schema, autocommit=True, charset="utf8mb4", **url)

        return cls(await _OnThread.open(connect), runs_table)

    def statement(self, floor: Floor) -> str:
        return self._sql[floor]

    def call(self, floor: Floor) -> Call:
        text = self._sql[floor]

        def execute(conn: MySQLConnection, params: tuple[Any, ...]) -> object:
            with conn.cursor() as cur:
                cur.execute(text, params)
                return cur.fetchall()

        async def run(i: int) -> object:
            params = _params(floor, self._stamps, self.run_id)
            return await self._thread.run(lambda conn: execute(conn, params))

        return run

    async def server_version(self) -> str:
        def version(conn: MySQLConnection) -> object:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                row = cur.fetchone()
            return None if row is None else row[0]

        return f"MySQL/MariaDB {await self._thread.run(version)}"

    async def close(self) -> None:
        await self._thread.close(pymysql.connections.Connection.close)
