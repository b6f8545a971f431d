"""The PyMySQL driver on the real server: what it hands the store back (text, not
bytes; the rows of a batch), and which errors cost it its connection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from mysql_server import SERVER, URL

from workflow.store.mysql.driver import PyMySQLDriver
from workflow.store.mysql.store import MySQLStore
from workflow.store.sql.compiled import batch, text_statement
from workflow.store.sql.driver import Body, Query
from workflow.store.sql.sockets import closed_by_peer
from workflow.store.sql.store import bound


@pytest.fixture(scope="module")
def server_schema() -> Iterator[str]:
    yield from SERVER.schema("wf_drv")


@pytest.fixture
async def store(server_schema: str) -> AsyncIterator[MySQLStore]:
    # One connection: every operation of a test runs on the same one, unless the
    # driver dropped it.
    store = MySQLStore.from_url(URL, schema=server_schema, connections=1)
    assert isinstance(store.driver, PyMySQLDriver)
    yield store
    await store.close()


def _sql(sql: str) -> Query:
    return Query(text_statement(sql), {})


def _connection_id() -> Body[int]:
    return int((yield _sql("SELECT CONNECTION_ID()")).scalar())


async def test_binary_strings_come_back_as_text(store: MySQLStore) -> None:
    # Identifiers are VARBINARY (their UTF-8 bytes): the store deals in str.
    def body() -> Body[list[Any]]:
        found = yield _sql(
            "SELECT CAST('r\u00e9sum\u00e9' AS BINARY) AS b, 'text' AS t, 7 AS n, NULL AS z, "
            "JSON_ARRAY(CAST(CAST('\U0001f600' AS BINARY) AS CHAR CHARACTER SET utf8mb4)) AS j"
        )
        return list(found.rows[0])

    assert await store.driver.run(body()) == ["r\u00e9sum\u00e9", "text", 7, None, '["\U0001f600"]']


async def test_ids_are_bound_as_bytes_and_read_back_as_text(store: MySQLStore) -> None:
    run_id = f"run \u00e9 {uuid.uuid4().hex[:6]}"
    await store.create_run(run_id, "wf", None, None, 1_000)
    runs = store.tables.runs

    def body() -> Body[Any]:
        found = yield store._once(
            sa.select(runs.c.run_id, sa.func.length(runs.c.run_id).label("n")).where(
                runs.c.run_id == bound("id", runs.c.run_id.type)
            ),
            {"p_id": run_id},
        )
        return found.first()

    # LENGTH of a binary string counts bytes: the id was stored as its UTF-8.
    assert await store.driver.run(body()) == {"run_id": run_id, "n": len(run_id.encode())}


async def test_a_batch_answers_with_the_rows_of_its_last_select(store: MySQLStore) -> None:
    statement = batch(
        [
            text_statement("BEGIN"),
            text_statement("SELECT 1 AS first"),
            text_statement("SET @wf_x = 2"),
            text_statement("SELECT @wf_x AS last, 'x' AS other"),
            text_statement("COMMIT"),
        ]
    )

    def body() -> Body[Any]:
        return (yield Query(statement, {})).first()

    assert await store.driver.run(body()) == {"last": 2, "other": "x"}


async def test_a_failed_batch_is_rolled_back_and_its_connection_kept(
    store: MySQLStore,
) -> None:
    run_id = f"batch-{uuid.uuid4().hex[:8]}"
    insert = store.compiler.compile(
        sa.insert(store.tables.runs).values(
            run_id=bound("run_id", store.tables.runs.c.run_id.type),
            workflow_id="wf",
            status="queued",
            lease_token=0,
            next_event_index=0,
            created_at=1,
            updated_at=1,
        )
    )
    statement = batch(
        [text_statement("BEGIN"), insert, text_statement("SELEC 1"), text_statement("COMMIT")]
    )
    before = await store.driver.run(_connection_id())

    def body() -> Body[None]:
        yield Query(statement, {"p_run_id": run_id})

    with pytest.raises(pymysql.err.ProgrammingError):
        await store.driver.run(body())
    # The insert before the failure was undone, on the same connection, which is not
    # left in a transaction.
    assert await store.load_run(run_id) is None
    assert await store.driver.run(_connection_id()) == before

    def in_transaction() -> Body[Any]:
        found = yield _sql(
            "SELECT COUNT(*) FROM information_schema.innodb_trx "
            "WHERE trx_mysql_thread_id = CONNECTION_ID()"
        )
        return found.scalar()

    assert await store.driver.run(in_transaction()) == 0


async def test_a_statement_error_keeps_the_connection(store: MySQLStore) -> None:
    before = await store.driver.run(_connection_id())

    def broken() -> Body[None]:
        yield _sql("SELEC 1")

    with pytest.raises(pymysql.err.ProgrammingError):
        await store.driver.run(broken())
    assert await store.driver.run(_connection_id()) == before


async def test_a_connection_killed_while_idle_is_replaced_before_use(store: MySQLStore) -> None:
    before = await store.driver.run(_connection_id())
    await SERVER.admin(f"KILL {int(before)}")
    (idle,) = store.driver._idle  # type: ignore[attr-defined]
    sock = idle.raw._sock
    # Synchronise on the kill having reached this side (the socket turns readable).
    async with asyncio.timeout(30):
        while not closed_by_peer(sock.fileno()):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    # Found at checkout (no round trip): replaced, and the operation succeeds; before,
    # it failed with "Lost connection", and a worker counted that as a failed poll.
    after = await store.driver.run(_connection_id())
    assert after != before
