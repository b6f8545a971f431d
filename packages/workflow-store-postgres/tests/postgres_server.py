"""The PostgreSQL server these tests run against (``WORKFLOW_TEST_POSTGRES_URL``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import sqlalchemy as sa

from workflow.contract_tests.sql import SQLServer
from workflow.store.postgres.store import PostgresStore, _conninfo

SERVER = SQLServer(
    PostgresStore.from_url,
    os.environ.get("WORKFLOW_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test"),
    driver="postgresql+psycopg",
    name="PostgreSQL",
    default_port=5432,
)
URL = SERVER.url

RawConnection = psycopg.AsyncConnection[tuple[Any, ...]]


@asynccontextmanager
async def raw_connection() -> AsyncIterator[RawConnection]:
    """A session of its own on the server (not one of a store's), on psycopg alone, in
    autocommit: every statement is its own transaction unless the test sends ``BEGIN``
    (and then ``COMMIT`` or ``ROLLBACK``). Closing it rolls back what is still open."""
    conn = await psycopg.AsyncConnection.connect(_conninfo(sa.make_url(URL)), autocommit=True)
    try:
        yield conn
    finally:
        await conn.close()


async def scalar(conn: RawConnection, query: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row ``query`` returns, or None without a row."""
    row = await (await conn.execute(query, params)).fetchone()
    return None if row is None else row[0]
