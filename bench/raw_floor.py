"""The raw-driver floor: one single statement on the store's own runs table, sent
over the same kind of connection the store uses (aiosqlite, psycopg, aiomysql) with
no SQLAlchemy in between. A store operation can hardly beat one such round trip, so
``store / raw`` says how close to the floor the operation is.

The statements touch only the ``FLOOR_RUN`` row, a finished run no operation reads.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Protocol

import aiomysql  # type: ignore[import-untyped]
import aiosqlite
import psycopg
from psycopg import sql

from workflow.store.sql.rows import RUN_COLUMNS

from .hot_ops import Call, Floor

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


class SQLiteFloor:
    driver = "aiosqlite"

    def __init__(self, conn: aiosqlite.Connection, runs_table: str) -> None:
        self._conn = conn
        self._sql = _templates('"', f'"{runs_table}"', "?", returning=True)
        self._stamps = itertools.count(1)
        self.run_id = FLOOR_RUN

    @classmethod
    async def connect(cls, path: str, runs_table: str) -> SQLiteFloor:
        # Autocommit and the pragmas the store sets on its own connections.
        conn = await aiosqlite.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
            await conn.execute(f"PRAGMA {pragma}")
        return cls(conn, runs_table)

    def statement(self, floor: Floor) -> str:
        return self._sql[floor]

    def call(self, floor: Floor) -> Call:
        text = self._sql[floor]

        async def run(i: int) -> object:
            async with self._conn.execute(text, _params(floor, self._stamps, self.run_id)) as cur:
                return await cur.fetchall()

        return run

    async def server_version(self) -> str:
        return f"SQLite {aiosqlite.sqlite_version}"

    async def close(self) -> None:
        await self._conn.close()


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
    async def connect(cls, url: Mapping[str, Any], schema: str, runs_table: str) -> PostgresFloor:
        # As the store connects: autocommit single statements, no server-side prepares.
        conn = await psycopg.AsyncConnection.connect(autocommit=True, prepare_threshold=None, **url)
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
    driver = "aiomysql"

    def __init__(self, conn: Any, runs_table: str) -> None:
        self._conn = conn
        # No UPDATE ... RETURNING on MySQL/MariaDB: the floor write is the bare UPDATE.
        self._sql = _templates("`", f"`{runs_table}`", "%s", returning=False)
        self._stamps = itertools.count(1)
        self.run_id = FLOOR_RUN

    @classmethod
    async def connect(cls, url: Mapping[str, Any], schema: str, runs_table: str) -> MySQLFloor:
        conn = await aiomysql.connect(db=schema, autocommit=True, charset="utf8mb4", **url)
        return cls(conn, runs_table)

    def statement(self, floor: Floor) -> str:
        return self._sql[floor]

    def call(self, floor: Floor) -> Call:
        text = self._sql[floor]

        async def run(i: int) -> object:
            async with self._conn.cursor() as cur:
                await cur.execute(text, _params(floor, self._stamps, self.run_id))
                return await cur.fetchall()

        return run

    async def server_version(self) -> str:
        async with self._conn.cursor() as cur:
            await cur.execute("SELECT VERSION()")
            row = await cur.fetchone()
        return f"MySQL/MariaDB {row[0]}"

    async def close(self) -> None:
        self._conn.close()
