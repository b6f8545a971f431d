"""psycopg 3 async connections from a ``psycopg_pool`` pool.

Each statement is sent as it is compiled (``%(p_name)s`` placeholders, a dict of
values): no SQLAlchemy code between the store and psycopg. Connections are in
autocommit; a transaction is the store's explicit ``BEGIN`` … ``COMMIT``.

Server-side prepared statements are off unless asked for (``prepare=True``):
PgBouncer in transaction mode before 1.21 hands consecutive transactions of one client
to different server connections, where a statement prepared on one is unknown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from workflow.store.sql.compiled import Rows
from workflow.store.sql.driver import AsyncDriver, Query

from .dialect import PostgresDialect

Connection = psycopg.AsyncConnection[TupleRow]

DEFAULT_POOL_SIZE = 10
"""Connections a store opens at most (per process)."""
DEFAULT_POOL_TIMEOUT_S = 30.0
"""How long an operation waits for a free connection before it is unavailable."""


def connection_options(prepare: bool) -> dict[str, Any]:
    """What every connection of the store is opened with."""
    # prepare_threshold=None: never prepare; 0: prepare every statement at first use
    # (the store's statements are few and all hot).
    return {"autocommit": True, "prepare_threshold": 0 if prepare else None}


class PsycopgDriver(AsyncDriver[Connection]):
    """Runs bodies on the connections of a :class:`psycopg_pool.AsyncConnectionPool`.

    The store's own pool is opened on first use. Before it opens, one direct connect
    checks the configuration: a pool only logs a failing connect and keeps retrying,
    so a wrong password would otherwise surface as a timeout 30 s later. An
    application may pass its own pool (``pool=``, opened, with ``autocommit=True``
    connections): the store then neither opens nor closes it.
    """

    def __init__(
        self,
        conninfo: str,
        dialect: PostgresDialect,
        *,
        size: int = DEFAULT_POOL_SIZE,
        timeout: float = DEFAULT_POOL_TIMEOUT_S,
        prepare: bool = False,
        pool: psycopg_pool.AsyncConnectionPool[Connection] | None = None,
    ) -> None:
        super().__init__(dialect.is_duplicate)
        self._conninfo = conninfo
        self._options = connection_options(prepare)
        self._owned = pool is None
        self._pool = pool
        self._size = size
        self._timeout = timeout

    async def _opened(self) -> psycopg_pool.AsyncConnectionPool[Connection]:
        if self._pool is None:
            await self._probe()
            pool: psycopg_pool.AsyncConnectionPool[Connection] = psycopg_pool.AsyncConnectionPool(
                self._conninfo,
                min_size=1,
                max_size=self._size,
                kwargs=self._options,
                timeout=self._timeout,
                open=False,
                name="workflow-store",
            )
            if self._pool is None:  # another operation may have opened one meanwhile
                self._pool = pool
                await pool.open()
        return self._pool

    async def _probe(self) -> None:
        """Connect once, directly: raises the server's own error (authentication,
        missing database, refused) instead of the pool's timeout."""
        conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._options)
        await conn.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        pool = await self._opened()
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg_pool.PoolTimeout:
            # No connection in time: if the server is down, say so with its own error.
            await self._probe()
            raise

    async def execute(self, raw: Connection, query: Query) -> Rows:
        statement = query.statement
        async with raw.cursor() as cursor:
            if query.many:
                params = query.params()
                assert isinstance(params, list)
                await cursor.executemany(statement.sql, params)
                return Rows((), [], cursor.rowcount)
            await cursor.execute(statement.sql, query.params())
            description = cursor.description
            if description is None:
                return Rows((), [], cursor.rowcount)
            return Rows([d.name for d in description], await cursor.fetchall(), cursor.rowcount)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        pool, self._pool = self._pool, None
        if pool is not None and self._owned:
            await pool.close()
