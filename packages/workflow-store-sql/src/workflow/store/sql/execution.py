"""Running an operation's statements: a synchronous body, handed to the driver whole.

Every store operation is written once, as a plain function of a synchronous
SQLAlchemy ``Connection`` (its *body*), and run by :func:`run_body`:

- on a server (PostgreSQL, MySQL) through ``AsyncConnection.run_sync``: each statement
  is one round trip to the server, awaited on the event loop as usual;
- on SQLite, in aiosqlite's own connection thread, in **one** hop. aiosqlite runs every
  call (cursor, execute, fetch, close) on that thread and each call is a hop there and
  back; a four-statement transaction was about fifteen hops, which cost more than the
  statements. Here the whole body runs on the thread, on a synchronous SQLAlchemy
  ``Connection`` over the very ``sqlite3`` connection aiosqlite opened, so the loop
  waits once per operation and never blocks (the busy timeout is spent on that thread).

The one-hop path uses aiosqlite's ``Connection._execute`` (queue a function for its
thread), the primitive behind all of aiosqlite's public calls; should a release remove
it, :func:`run_body` falls back to ``run_sync`` (correct, more hops), and
``test_sqlite_operations_are_one_hop`` fails so that it is noticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import StaticPool

T = TypeVar("T")
Body = Callable[[sa.Connection], T]

STORE_TAG = "workflow_store"
"""Execution option naming the store a statement belongs to (its value is unique per
store): the engines on aiosqlite's threads are not the store's engine, so statement
counting (:func:`workflow.store.sql.statements.recording`) goes by this tag."""
_THREAD_ENGINE = "workflow_thread_engine"
"""Key, in a pooled connection's ``info``, of the engine over its ``sqlite3`` connection."""


def in_transaction(conn: sa.Connection, begin: str, body: Body[T]) -> T:
    """``begin`` (the dialect's BEGIN), the body, COMMIT; ROLLBACK if the body raises.

    The connections are in autocommit at the driver, so this is exactly what reaches
    the database; a connection that cannot even roll back is invalidated, so the pool
    never hands out one with a transaction still open."""
    conn.exec_driver_sql(begin)
    try:
        result = body(conn)
        conn.exec_driver_sql("COMMIT")
    except BaseException:
        try:
            conn.exec_driver_sql("ROLLBACK")
        except BaseException:
            conn.invalidate()
        raise
    return result


def thread_options(engine: AsyncEngine) -> dict[str, Any]:
    """The execution options of ``engine`` (schema map, the store's tag, ...) that the
    engines on aiosqlite's threads take over: all but the isolation level, which those
    engines set themselves. Computed once per store."""
    return {
        k: v
        for k, v in engine.sync_engine.get_execution_options().items()
        if k != "isolation_level"
    }


async def run_body(conn: AsyncConnection, body: Body[T], options: dict[str, Any]) -> T:
    """Run ``body`` on ``conn``: in one hop on aiosqlite (with ``options``, from
    :func:`thread_options`), else through ``run_sync``."""
    if conn.dialect.driver == "aiosqlite":
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        submit = getattr(driver, "_execute", None)
        if submit is not None:
            engine = raw.info.get(_THREAD_ENGINE)
            if engine is None:
                engine = raw.info[_THREAD_ENGINE] = _engine_over(driver)
            result: T = await submit(_on_thread, engine, options, body)
            return result
    return await conn.run_sync(body)


def _engine_over(driver: Any) -> sa.Engine:
    """A synchronous engine whose one connection is aiosqlite's ``sqlite3`` connection
    (fetched on first use, on aiosqlite's thread). Autocommit as the store's own
    connections are; nothing on return (the body leaves no transaction open). Never
    disposed: the connection belongs to aiosqlite, which closes it."""
    return sa.create_engine(
        "sqlite://",
        creator=lambda: driver._conn,
        poolclass=StaticPool,
        isolation_level="AUTOCOMMIT",
        skip_autocommit_rollback=True,
    )


def _on_thread(engine: sa.Engine, options: dict[str, Any], body: Body[T]) -> T:
    with engine.connect() as conn:
        return body(conn.execution_options(**options) if options else conn)
