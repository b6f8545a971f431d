"""Explicit transactions on connections that are in autocommit at the driver.

The stores' engines keep every connection in autocommit (see ``SQLStore._tx``), so a
transaction is spelled out: the dialect's BEGIN, the statements, COMMIT. Nothing else
reaches the server: no isolation-level switching on checkout, no rollback on return.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection


@contextlib.asynccontextmanager
async def explicit_transaction(conn: AsyncConnection, begin: str) -> AsyncIterator[None]:
    """``begin`` (e.g. ``BEGIN IMMEDIATE``), then COMMIT, or ROLLBACK if the body raises."""
    await conn.exec_driver_sql(begin)
    try:
        yield
        await conn.exec_driver_sql("COMMIT")
    except BaseException:
        await roll_back(conn)
        raise


async def roll_back(conn: AsyncConnection) -> None:
    """ROLLBACK; a connection that cannot even do that is thrown away, so the pool never
    hands out one with a transaction still open."""
    try:
        await conn.exec_driver_sql("ROLLBACK")
    except BaseException:
        await conn.invalidate()
