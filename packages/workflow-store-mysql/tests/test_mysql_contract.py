"""The contract suite against MariaDB: one schema per test session, emptied
between tests, so runs cannot see each other and tests stay quick."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from mysql_server import SERVER, URL

from workflow.contract_tests.sql import SQLServerContract, assert_golden, poll
from workflow.runtime import Cancelled, Capability, Created, InvalidArgumentError, RunStatus
from workflow.store.mysql.batches import _slots
from workflow.store.mysql.driver import CLIENT_FLAGS, PyMySQLDriver, connect_arguments
from workflow.store.mysql.store import MySQLStore
from workflow.store.sql.compiled import text_statement
from workflow.store.sql.driver import Body, Query
from workflow.store.sql.queue_statements import (
    limited_claim_statements,
    limited_create_statements,
)
from workflow.store.sql.statements import (
    Recorder,
    child_operation_statements,
    hot_operation_sql,
    hot_operation_statements,
    recompiled,
    texts,
)
from workflow.store.sql.store import SQLStore


@pytest.fixture(scope="session")
def server_schema() -> Iterator[str]:
    yield from SERVER.schema("wf_test")


class TestMySQLStore(SQLServerContract):
    capabilities = frozenset(
        {
            Capability.SUBSCRIBE_EVENTS,
            Capability.DURABLE,
            Capability.MULTI_PROCESS,
            Capability.CLAIM_ON_CREATE,
            Capability.DEADLINES,
            Capability.QUEUES,
            Capability.CHILDREN,
        }
    )
    server = SERVER


# Round trips per hot operation (workflow.store.sql.statements.recording). Each hot
# operation is one multi-statement batch (BEGIN … COMMIT inside it); the schedules'
# firing is two, because the next fire time comes from the cron library in Python.
# A change that adds one fails here.
STATEMENT_BUDGET = {
    "create_run": 1,
    "create_run_claimed": 1,
    "claim_run": 1,
    "heartbeat": 1,
    "append_events_1": 1,
    "append_events_10": 1,
    "settle_run": 1,
    "fire_due_timers": 2,  # 1 of them: the probe for due deadlines
    "deliver_signal": 1,
    "fire_due_schedules": 2,
    "claim_runnable": 1,
    "list_runs": 1,
    "load_run": 1,
}


async def test_hot_operations_send_the_budgeted_statements(server_schema: str) -> None:
    # Its own tables (prefix), so the contract cases' data cannot interfere.
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="stmt_")
    await store.create_schema()
    try:
        seen = await hot_operation_statements(store)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == STATEMENT_BUDGET, seen


def _wire(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A recorder of the commands PyMySQL writes to the server (each one a round trip),
    counted in PyMySQL itself, not by the store's driver: an ``executemany`` sent as
    more than one statement, or a command the driver does not know it sends (``SET
    AUTOCOMMIT``, a ping, a rollback on return), is caught."""
    seen: list[str] | None = None
    original: Callable[..., Any] = pymysql.connections.Connection._execute_command

    def counted(self: Any, command: int, sql: Any) -> Any:
        if seen is not None:
            text = sql.decode() if isinstance(sql, bytes) else str(sql)
            seen.append(text.split(None, 1)[0].upper() if text.strip() else str(command))
        return original(self, command, sql)

    monkeypatch.setattr(pymysql.connections.Connection, "_execute_command", counted)

    @contextlib.contextmanager
    def record(_store: SQLStore) -> Iterator[list[str]]:
        nonlocal seen
        seen = []
        try:
            yield seen
        finally:
            seen = None

    return record


async def test_every_statement_is_one_command_on_the_wire(
    server_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The budget above counts what the store hands its driver; this counts what PyMySQL
    # sends. Warm first: a new connection's session setup is its own, once.
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="wire_")
    await store.create_schema()
    try:
        await hot_operation_statements(store, tag="warm")
        seen = await hot_operation_statements(store, record=_wire(monkeypatch), tag="again")
    finally:
        await store.close()
    assert {op: len(commands) for op, commands in seen.items()} == STATEMENT_BUDGET, seen


# claim_runnable(limit=1) with queue limits off and on (statements.limited_claim_statements):
# the limited claim is one batch (BEGIN, the lock of the limited queues, the decision,
# the claim, the rate windows, the read, COMMIT). The first limited claim also ran the
# one-statement claim, which found a limit. claim_run of a run in a limited queue: its
# one batch (which reads the run back), then the limited claim for that run.
LIMITED_CLAIM_BUDGET = {
    "unlimited": 1,
    "limited_first": 2,
    "limited": 1,
    "rate_limited": 1,
    "claim_run": 2,
}


async def test_a_limited_claim_is_one_round_trip(
    server_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, list[str]] = {}
    wire: dict[str, list[str]] = {}
    for prefix in ("limstmt_", "limwire_"):
        store = MySQLStore.from_url(URL, schema=server_schema, table_prefix=prefix)
        await store.create_schema()
        try:
            if prefix == "limstmt_":
                seen = await limited_claim_statements(store)
            else:
                await store.load_run("warm")  # the connection's own session setup
                wire = await limited_claim_statements(store, record=_wire(monkeypatch))
        finally:
            await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == LIMITED_CLAIM_BUDGET, seen
    assert {op: len(commands) for op, commands in wire.items()} == LIMITED_CLAIM_BUDGET, wire


# create_run(..., owner=) in a queue with limits (limited_create_statements): one batch
# (BEGIN, the lock of the queue's row, the deciding INSERT, the rate window, the read of
# the run's status, COMMIT). The first create in a queue after a limit appeared also ran
# the one-statement insert, which inserted nothing; an id that exists fails the batch
# and a read answers. Before (the LimitGate path): 7 round trips (8 with a rate limit).
LIMITED_CREATE_BUDGET = {
    "unlimited": 1,
    "limited_first": 2,
    "limited": 1,
    "rate_limited": 1,
    "full": 1,
    "existing": 2,
}


async def test_a_limited_create_is_one_round_trip(
    server_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, list[str]] = {}
    wire: dict[str, list[str]] = {}
    batch: list[str] = []
    for prefix in ("limcstmt_", "limcwire_"):
        store = MySQLStore.from_url(URL, schema=server_schema, table_prefix=prefix)
        await store.create_schema()
        try:
            if prefix == "limcstmt_":
                seen = await limited_create_statements(store)
                batch = [s.sql for _, s in store.compiler.items() if "INTO @wf_limited" in s.sql]
            else:
                await store.load_run("warm")  # the connection's own session setup
                wire = await limited_create_statements(store, record=_wire(monkeypatch))
        finally:
            await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == LIMITED_CREATE_BUDGET, seen
    # On the wire, a batch that fails (the id exists) is followed by the driver's
    # ROLLBACK: its BEGIN left a transaction open.
    wire_budget = {**LIMITED_CREATE_BUDGET, "existing": 3}
    assert {op: len(commands) for op, commands in wire.items()} == wire_budget, wire
    (text,) = batch
    verbs = [part.split(None, 1)[0] for part in text.split(";\n")]
    assert verbs == ["BEGIN", "SELECT", "INSERT", "UPDATE", "SELECT", "COMMIT"], verbs


async def test_a_limited_claim_batch_answers_with_one_result(
    server_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limited claim's batch: BEGIN, the lock (counted INTO @wf_limited), the
    # count of the leases (INTO @wf_lim, @wf_keyed), the decision (INTO @wf_takes,
    # @wf_taken), the claim, the rate windows, the read, COMMIT. Only the read
    # answers with rows (PyMySQL parses a column description per column of every
    # answer with rows); the others answer with an OK packet.
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="limres_")
    await store.create_schema()
    described = 0
    describe = pymysql.connections.MySQLResult._get_descriptions

    def counted(result: Any) -> None:
        nonlocal described
        described += 1
        describe(result)

    try:
        await store.upsert_queue("q", 0, concurrency=10)
        for run_id in ("r1", "r2"):
            await store.create_run(run_id, "wf", None, None, 0, queue="q")
        assert len(await store.claim_runnable("w", 60_000, 1, 1)) == 1  # finds the limit
        monkeypatch.setattr(pymysql.connections.MySQLResult, "_get_descriptions", counted)
        with texts(store) as sent:
            got = await store.claim_runnable("w", 60_000, 1, 1)
    finally:
        await store.close()
    assert [c.run.run_id for c in got] == ["r2"]
    assert len(sent) == 1, sent
    verbs = [part.split(None, 1)[0] for part in sent[0].split(";\n")]
    assert verbs == [
        "BEGIN",
        "SELECT",
        "SELECT",
        "WITH",
        "UPDATE",
        "UPDATE",
        "SELECT",
        "COMMIT",
    ], verbs
    assert described == 1


async def test_a_limited_claim_counts_the_leases_committed_while_it_waited_for_the_lock(
    server_schema: str,
) -> None:
    # Another claimer holds the queue's row lock, leases a run and commits while the
    # claim waits for that lock: the claim counts the leases in a statement after the
    # lock's (its own read view at READ COMMITTED), so it counts that lease.
    # Time enough to wait for the lock on a loaded machine (nothing is timed).
    store = MySQLStore.from_url(
        URL, schema=server_schema, table_prefix="limrace_", operation_timeout=120
    )
    await store.create_schema()
    table = f"`{server_schema}`.limrace_"
    holder = pymysql.connect(**connect_arguments(sa.make_url(URL)))
    watcher = pymysql.connect(**connect_arguments(sa.make_url(URL)))

    def run(conn: Any, sql: str, *args: Any) -> Any:
        with conn.cursor() as cursor:
            cursor.execute(sql, args or None)
            return cursor.fetchone()

    try:
        await store.upsert_queue("q", 0, concurrency=1)
        for run_id in ("r1", "r2"):
            await store.create_run(run_id, "wf", None, None, 0, queue="q")
        await asyncio.to_thread(run, holder, "BEGIN")
        await asyncio.to_thread(
            run, holder, f"SELECT 1 FROM {table}queues WHERE name = 'q' FOR UPDATE"
        )
        claim = asyncio.create_task(store.claim_runnable("w", 60_000, 5, 1))
        # The claim's lock statement running while the holder holds the lock is the
        # claim waiting for it (innodb_trx does not always list the waiting
        # transaction on MariaDB; the process list shows the statement of a batch that
        # is running). Not the watcher's own statement, whose text holds the pattern.
        waiting = (
            "SELECT count(*) FROM information_schema.processlist "
            "WHERE info LIKE %s AND id <> CONNECTION_ID()"
        )
        lock = "SELECT count(*)%limrace_queues%FOR UPDATE INTO @wf_limited"
        for _ in range(1200):  # no assertion on time: until the claim waits
            found = await asyncio.to_thread(run, watcher, waiting, lock)
            if found and found[0]:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the claim never waited for the queue's lock")
        await asyncio.to_thread(
            run,
            holder,
            f"UPDATE {table}runs SET status = 'running', lease_owner = 'other', "
            "lease_token = lease_token + 1, lease_expires_at = 60000 WHERE run_id = 'r1'",
        )
        await asyncio.to_thread(run, holder, "COMMIT")
        got = await claim
        assert got == [], got
    finally:
        holder.close()
        watcher.close()
        await store.close()


async def test_a_limited_create_counts_the_leases_committed_while_it_waited_for_the_lock(
    server_schema: str,
) -> None:
    # As for the limited claim: another session holds the queue's row lock, leases a
    # run and commits while create_run(owner=) waits for that lock; the deciding
    # INSERT, a statement after the lock, counts that lease: the run is created queued.
    store = MySQLStore.from_url(
        URL, schema=server_schema, table_prefix="limcrace_", operation_timeout=120
    )
    await store.create_schema()
    table = f"`{server_schema}`.limcrace_"
    holder = pymysql.connect(**connect_arguments(sa.make_url(URL)))
    watcher = pymysql.connect(**connect_arguments(sa.make_url(URL)))

    def run(conn: Any, sql: str, *args: Any) -> Any:
        with conn.cursor() as cursor:
            cursor.execute(sql, args or None)
            return cursor.fetchone()

    try:
        await store.upsert_queue("q", 0, concurrency=1)
        await store.create_run("r1", "wf", None, None, 0, queue="q")
        await asyncio.to_thread(run, holder, "BEGIN")
        await asyncio.to_thread(
            run, holder, f"SELECT 1 FROM {table}queues WHERE name = 'q' FOR UPDATE"
        )
        create = asyncio.create_task(
            store.create_run("r2", "wf", None, None, 1, owner="w", lease_ms=60_000, queue="q")
        )
        waiting = (
            "SELECT count(*) FROM information_schema.processlist "
            "WHERE info LIKE %s AND id <> CONNECTION_ID()"
        )
        lock = "SELECT count(*)%limcrace_queues%FOR UPDATE INTO @wf_limited"
        for _ in range(1200):  # no assertion on time: until the create waits
            found = await asyncio.to_thread(run, watcher, waiting, lock)
            if found and found[0]:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the create never waited for the queue's lock")
        await asyncio.to_thread(
            run,
            holder,
            f"UPDATE {table}runs SET status = 'running', lease_owner = 'other', "
            "lease_token = lease_token + 1, lease_expires_at = 60000 WHERE run_id = 'r1'",
        )
        await asyncio.to_thread(run, holder, "COMMIT")
        made = await create
        assert isinstance(made, Created), made
        assert made.lease is None, made
        assert made.run.status is RunStatus.QUEUED
    finally:
        holder.close()
        watcher.close()
        await store.close()


async def test_a_cascade_locks_only_the_children_not_every_run_it_could_read(
    server_schema: str,
) -> None:
    # InnoDB's locking read waits for every row it reads that another transaction
    # holds, matching or not: a cascade that read runs in primary-key order (what the
    # optimizer picks on a small table) waited for the row lock of an unrelated run,
    # and deadlocked with settles under load. It reads the parent's children by index.
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="cascade_")
    await store.create_schema()
    holder = pymysql.connect(**connect_arguments(sa.make_url(URL)))

    def run(sql: str) -> None:
        with holder.cursor() as cursor:
            cursor.execute(sql)

    try:
        for i in range(20):
            await store.create_run(f"a{i:02d}", "wf", None, None, 0)
        await store.create_run("p", "wf", None, None, 0)
        # A quarter of the table: MariaDB 10.11 reads it in primary-key order then.
        for i in range(10):
            await store.create_run(f"p@c{i}", "wf", None, None, 0, parent_run_id="p")
        await asyncio.to_thread(run, "BEGIN")
        # An unrelated run, held by another transaction (a settle, a claim) meanwhile.
        await asyncio.to_thread(
            run,
            f"SELECT 1 FROM `{server_schema}`.cascade_runs WHERE run_id = 'a10' FOR UPDATE",
        )
        # A failure guard, not a timing: the cascade must not wait for a10 at all
        # (InnoDB's lock wait is 50 s).
        result = await asyncio.wait_for(store.cancel_run("p", "stop", 1), 20)
        assert isinstance(result, Cancelled), result
        for i in range(10):
            child = await store.load_run(f"p@c{i}")
            assert child is not None
            assert child.status.value == "cancelled", child
    finally:
        with contextlib.suppress(pymysql.Error):
            holder.rollback()
        holder.close()
        await store.close()


async def test_a_limited_claim_of_many_lists_no_ids_past_its_slots(server_schema: str) -> None:
    # The batch lists the ids taken one by one up to MAX_SLOTS (limit + 1 rounded up
    # to a power of two); a larger limit joins the JSON to the runs as a table.
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="limmany_")
    await store.create_schema()
    try:
        await store.upsert_queue("q", 0, concurrency=45)
        for i in range(50):
            await store.create_run(f"r{i:02d}", "wf", None, None, 0, queue="q")
        first = await store.claim_runnable("w", 60_000, 40, 1, queues=["q"])  # no slots
        second = await store.claim_runnable("w", 60_000, 3, 1, queues=["q"])  # 4 slots
        third = await store.claim_runnable("w", 60_000, 40, 1, queues=["q"])
    finally:
        await store.close()
    assert _slots(40) == 0
    assert _slots(3) == 4
    assert [c.run.run_id for c in first] == [f"r{i:02d}" for i in range(40)]
    assert [c.run.run_id for c in second] == ["r40", "r41", "r42"]
    assert [c.run.run_id for c in third] == ["r43", "r44"]


GOLDEN = Path(__file__).parent / "golden" / "hot_operations.sql"


async def test_hot_operations_send_the_golden_sql(server_schema: str) -> None:
    # What each hot operation sends, as SQL a reviewer reads (tests/golden/).
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="golden_")
    await store.create_schema()
    try:
        text = await hot_operation_sql(store)
    finally:
        await store.close()
    assert_golden(GOLDEN, text.replace("golden_", "workflow_"))


async def test_hot_operations_run_from_the_compiled_cache(server_schema: str) -> None:
    # Building and compiling statements costs more CPU than running them: once warm,
    # no hot operation compiles anything (a statement compiled per call, such as one
    # with a VALUES list, would show here on every call).
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="cache_")
    await store.create_schema()
    try:
        # Every SQLAlchemy version (2.0's INSERT … ON DUPLICATE KEY UPDATE has no
        # cache key, but the store compiles its statements itself, once).
        assert await recompiled(store) == {}
    finally:
        await store.close()


# -- connections ------------------------------------------------------------------------
def _session_settings() -> Body[dict[str, Any]]:
    """The store connection's own session settings (the isolation level is
    transaction_isolation on MySQL 8, tx_isolation on MariaDB before 11.1)."""
    found = yield Query(
        text_statement(
            "SHOW SESSION VARIABLES WHERE Variable_name IN ('autocommit', "
            "'character_set_client', 'group_concat_max_len', 'tx_isolation', "
            "'transaction_isolation')"
        ),
        {},
    )
    values = {name.lower(): value for name, value in found.rows}
    values["isolation"] = values.get("transaction_isolation", values.get("tx_isolation"))
    return values


def _expect_set_up(settings: dict[str, Any]) -> None:
    # InnoDB's default is REPEATABLE READ; the store's locking model is written for
    # READ COMMITTED. MariaDB caps group_concat_max_len at 1 GiB.
    assert settings["isolation"] == "READ-COMMITTED", settings
    assert int(settings["group_concat_max_len"]) >= 1 << 30, settings
    assert settings["autocommit"] == "ON", settings
    assert settings["character_set_client"] == "utf8mb4", settings


async def test_the_store_sets_up_its_own_connections(server_schema: str) -> None:
    store = MySQLStore.from_url(URL, schema=server_schema)
    try:
        _expect_set_up(await store.driver.run(_session_settings()))
    finally:
        await store.close()


async def test_a_connection_the_application_opens_is_set_up_for_the_store(
    server_schema: str,
) -> None:
    # The application's own connections (connect=): at the server's REPEATABLE READ
    # default, not in autocommit, in another character set. The store puts each in the
    # state it relies on before its first operation, so it never writes at another
    # isolation level.
    opened: list[Any] = []
    options = connect_arguments(sa.make_url(SERVER.driver_url()))
    options.update(autocommit=False, charset="latin1", client_flag=CLIENT_FLAGS)

    def connect() -> Any:
        connection = pymysql.connect(**options)
        opened.append(connection)
        return connection

    store = MySQLStore(
        SERVER.driver_url(), schema=server_schema, table_prefix="own_", connect=connect
    )
    try:
        await store.create_schema()
        await store.create_run("r", "wf", None, None, 1_000)
        assert isinstance(await store.cancel_run("r", "stop", 1_001), Cancelled)
        _expect_set_up(await store.driver.run(_session_settings()))
        assert opened, "the store opened connections of its own"
        run = await store.load_run("r")
        assert run is not None
        assert run.error is not None
    finally:
        await store.close()

    async def all_closed() -> bool:
        # Each connection is closed on its own thread, after close() returns.
        return all(not c.open for c in opened)

    await poll(all_closed, "the store to close the connections it was given")


async def test_a_connection_without_found_rows_is_refused(server_schema: str) -> None:
    # Row counts of *matched* rows (CLIENT_FOUND_ROWS) are agreed when a connection
    # opens; without them renewing a lease to the same expiry would look lost.
    options = connect_arguments(sa.make_url(SERVER.driver_url()))
    options.update(client_flag=0)
    store = MySQLStore(
        SERVER.driver_url(), schema=server_schema, connect=lambda: pymysql.connect(**options)
    )
    try:
        with pytest.raises(InvalidArgumentError, match="CLIENT_FLAGS"):
            await store.load_run("r")
    finally:
        await store.close()


async def test_an_old_connection_is_replaced_before_its_next_operation(
    server_schema: str,
) -> None:
    # Servers drop connections idle for longer than wait_timeout: the driver replaces
    # its connections after recycle_s, before the server does.
    store = MySQLStore.from_url(URL, schema=server_schema, connections=1)
    assert isinstance(store.driver, PyMySQLDriver)
    try:
        ids = []

        def connection_id() -> Body[int]:
            found = yield Query(text_statement("SELECT CONNECTION_ID()"), {})
            return int(found.scalar())

        ids.append(await store.driver.run(connection_id()))
        ids.append(await store.driver.run(connection_id()))
        store.driver._recycle_s = 0.0
        ids.append(await store.driver.run(connection_id()))
        assert ids[0] == ids[1] != ids[2], ids
    finally:
        await store.close()


async def test_the_migration_engine_sessions_are_set_up_too(server_schema: str) -> None:
    store = MySQLStore.from_url(URL, schema=server_schema)
    try:
        with store.engine.connect() as conn:
            limit = conn.execute(sa.text("SELECT @@SESSION.group_concat_max_len")).scalar()
        assert limit is not None
        assert int(limit) >= 1 << 30
    finally:
        await store.close()


# -- URLs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "mariadb://u@h/db",
        "mysql+pymysql://u@h/db",
        "mysql+aiomysql://u@h/db",
        "mysql://u@h/db?charset=latin1",
    ],
)
def test_urls_of_either_name_open_a_pymysql_store_in_utf8mb4(url: str) -> None:
    store = MySQLStore.from_url(url)
    assert store.url_hint == "mysql://u@h/db"
    assert store.engine.url.drivername == "mysql+pymysql"
    assert store.engine.url.query["charset"] == "utf8mb4"


def test_store_and_driver_options_come_from_the_url() -> None:
    store = MySQLStore.from_url(
        "mysql://u:secret@h:3307/db?schema=wf&table_prefix=app_&connections=3"
        "&unix_socket=/run/mysqld.sock&connect_timeout=4&ssl_ca=/ca.pem"
    )
    assert store.schema == "wf"
    assert store.tables.prefix == "app_"
    assert isinstance(store.driver, PyMySQLDriver)
    assert store.driver._size == 3
    options = store.driver._arguments
    assert options["unix_socket"] == "/run/mysqld.sock"
    assert options["connect_timeout"] == 4
    assert options["ssl"] == {"ca": "/ca.pem"}
    assert (options["host"], options["port"], options["database"]) == ("h", 3307, "db")
    assert options["charset"] == "utf8mb4"
    assert options["autocommit"] is True
    assert options["client_flag"] & CLIENT_FLAGS == CLIENT_FLAGS
    assert "secret" not in store.url_hint


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db?pool_size=3", "unknown MySQL store URL option: 'pool_size'; valid"),
        ("mysql://u@h/db?connections=0", "connections"),
        ("mysql://u@h/db?connections=many", "connections must be an integer"),
        ("mysql://u@h/db?connect_timeout=soon", "bad MySQL store URL option"),
        ("postgresql://u@h/db", "does not name a mysql/mariadb database"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        MySQLStore.from_url(url)


def test_a_url_of_another_database_is_refused_by_the_constructor() -> None:
    with pytest.raises(InvalidArgumentError, match="mysql:// or mariadb://"):
        MySQLStore("sqlite:///x.db")


# A run without a parent settles in one batch as before; a child's settle finds the
# batch's guard refusing it (no-parent clause), reads why, then settles in a
# transaction that locks its parent first.
CHILD_BUDGET = {
    "settle_finish": 1,
    "create_child": 5,
    "settle_finish_child": 9,
    "cancel_run": 5,
    "cancel_child": 9,
}


async def test_runs_with_and_without_a_parent_send_the_budgeted_statements(
    server_schema: str,
) -> None:
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="kids_")
    await store.create_schema()
    try:
        seen = await child_operation_statements(store)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == CHILD_BUDGET, seen
