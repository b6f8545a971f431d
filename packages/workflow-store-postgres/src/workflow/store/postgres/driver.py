"""psycopg 3 async connections from a ``psycopg_pool`` pool.

Each statement is sent as it is compiled (``%(p_name)s`` placeholders, a dict of
values): no SQLAlchemy code between the store and psycopg. Connections are in
autocommit; a transaction is the store's explicit ``BEGIN`` … ``COMMIT``.

Server-side prepared statements are off unless asked for (``prepare=True``):
PgBouncer in transaction mode before 1.21 hands consecutive transactions of one client
to different server connections, where a statement prepared on one is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg_pool
from psycopg import pq
from psycopg.rows import TupleRow

from workflow.store.sql.compiled import Rows
from workflow.store.sql.driver import AsyncDriver, OperationTimedOut, Query
from workflow.store.sql.sockets import closed_by_peer

from .dialect import PostgresDialect

Connection = psycopg.AsyncConnection[TupleRow]

DEFAULT_POOL_SIZE = 10
"""Connections a store opens at most (per process)."""
DEFAULT_POOL_TIMEOUT_S = 30.0
"""How long an operation waits for a free connection before it is unavailable."""


def network_parameters(operation_timeout: float) -> dict[str, str]:
    """libpq's parameters that let the kernel find a dead peer within about
    ``operation_timeout`` (a URL's own values win): a connect that gets no answer,
    unacknowledged bytes (``tcp_user_timeout``), and an idle connection whose peer
    went away (keepalives). They bound what the driver waits for on its own; the
    store's deadline bounds the rest (a server that acknowledges but never replies)."""
    seconds = max(1, math.ceil(operation_timeout))
    return {
        "connect_timeout": str(max(2, seconds)),  # libpq's minimum is 2
        "tcp_user_timeout": str(max(1, round(operation_timeout * 1000))),
        "keepalives": "1",
        "keepalives_idle": str(seconds),
        "keepalives_interval": str(max(1, seconds // 3)),
        "keepalives_count": "3",
    }


def connection_options(prepare: bool) -> dict[str, Any]:
    """What every connection of the store is opened with."""
    # prepare_threshold=None: never prepare; 0: prepare every statement at first use
    # (the store's statements are few and all hot).
    return {"autocommit": True, "prepare_threshold": 0 if prepare else None}


def _closed_while_idle(conn: Connection) -> bool:
    if conn.closed or conn.broken:
        return True
    try:
        fd = conn.pgconn.socket
    except psycopg.OperationalError:  # no socket: the connection is gone
        return True
    return closed_by_peer(fd)


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
        # No longer than the operation has left (the pool's own timeout otherwise).
        left = self.deadline() - asyncio.get_running_loop().time()
        try:
            conn = await self._checkout(pool, max(0.0, min(self._timeout, left)))
        except psycopg_pool.PoolTimeout:
            # No connection in time: if the server is down, say so with its own error.
            await self._probe()
            raise
        try:
            yield conn
        except (OperationTimedOut, asyncio.CancelledError):
            # Its state is unknown (a statement may still be running, a reply may
            # arrive late): closed, the pool drops it instead of reusing it.
            await conn.close()
            raise
        finally:
            await pool.putconn(conn)

    async def _checkout(
        self, pool: psycopg_pool.AsyncConnectionPool[Connection], wait_s: float
    ) -> Connection:
        """A pooled connection that was not closed by the server (or a proxy, a
        failover) while it sat idle: psycopg_pool finds that out only when the next
        operation fails on it, which a worker counts as a failed poll. One ``poll()``
        of its socket tells (no round trip); a dead one is closed, so the pool drops
        it and opens a new one, and the next is taken. Up to a pool's worth."""
        for _ in range(self._size):
            conn = await pool.getconn(timeout=wait_s)
            if not _closed_while_idle(conn):
                return conn
            await conn.close()
            await pool.putconn(conn)
        return await pool.getconn(timeout=wait_s)

    def abort(self, raw: Connection) -> None:
        # Shut the socket down under libpq: the read it waits on returns at once
        # ("server closed the connection"), instead of a query cancellation that would
        # itself wait on a network that does not answer.
        with contextlib.suppress(OSError, psycopg.Error):
            fd = os.dup(raw.pgconn.socket)
            with socket.socket(fileno=fd) as sock:
                sock.shutdown(socket.SHUT_RDWR)

    async def execute(self, raw: Connection, query: Query) -> Rows:
        statement = query.statement
        if statement.parts:
            return await self._execute_pipeline(raw, query)
        if statement.verb == "BATCH":
            return await self._execute_batch(raw, query)
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

    async def _execute_batch(self, raw: Connection, query: Query) -> Rows:
        """Several statements in one text, one round trip: the simple query protocol
        (a client-side binding cursor: the values are quoted by psycopg, never by the
        store), which runs them in order as one implicit transaction, each statement
        with a snapshot of its own (READ COMMITTED), and rolls all of them back if one
        fails. The rows are those of the last statement that returns rows."""
        async with psycopg.AsyncClientCursor(raw) as cursor:
            await cursor.execute(query.statement.sql, query.params())
            found = Rows((), [], cursor.rowcount)
            while True:
                description = cursor.description  # built anew at each access
                if description is not None:
                    names = [d.name for d in description]
                    found = Rows(names, await cursor.fetchall(), cursor.rowcount)
                if not cursor.nextset():
                    return found

    async def _execute_pipeline(self, raw: Connection, query: Query) -> Rows:
        """A :func:`~workflow.store.sql.compiled.pipeline` in psycopg's pipeline mode:
        every statement is sent before any reply is read, one Sync at the end, so one
        round trip. Each is an extended-protocol statement of its own (prepared where
        the connection prepares: ``prepare=True``), so each takes its own snapshot at
        READ COMMITTED. The pipeline spells its transaction out (``BEGIN`` …
        ``COMMIT``); if a statement fails, the server skips the rest up to the Sync
        (the ``COMMIT`` too) and psycopg raises its error when the pipeline ends: the
        transaction, left failed, is rolled back here (a second round trip, on that
        path only). The rows are those of the last statement that returns rows."""
        values = query.values
        assert isinstance(values, dict)
        cursors = [raw.cursor() for _ in query.statement.parts]
        try:
            async with raw.pipeline():
                for cursor, part in zip(cursors, query.statement.parts, strict=True):
                    await cursor.execute(part.sql, part.bind(values))
            found = Rows((), [], -1)
            for cursor in cursors:
                description = cursor.description
                if description is not None:
                    names = [d.name for d in description]
                    found = Rows(names, await cursor.fetchall(), cursor.rowcount)
            return found
        except psycopg.Error:
            if raw.info.transaction_status != pq.TransactionStatus.IDLE and not raw.broken:
                with contextlib.suppress(psycopg.Error):
                    await raw.execute("ROLLBACK")
            raise
        finally:
            for cursor in cursors:
                await cursor.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        pool, self._pool = self._pool, None
        if pool is not None and self._owned:
            await pool.close()
