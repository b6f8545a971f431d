"""Driver errors against the real MySQL/MariaDB server: each becomes the contract's error.

Unreachable or lost servers are retryable (``StoreUnavailableError``); a missing
database, user, privilege or table is the deployment's to fix
(``StoreConfigurationError``); a deadlock is retried inside the operation. Every case
uses this module's own database (and a user named after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shlex
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any, cast

import pymysql  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from mysql_server import SERVER, URL

from workflow.contract_tests import network, worker_stop
from workflow.contract_tests.faults import FaultProxy, fault_proxy
from workflow.contract_tests.sql import poll
from workflow.runtime import (
    RunStatus,
    StoreConfigurationError,
    StoreOperationError,
    StoreUnavailableError,
)
from workflow.runtime.results import Claimed
from workflow.store.mysql.store import MySQLStore, open_store
from workflow.store.sql.driver import Body
from workflow.store.sql.failures import RETRIES, operation

NO_GRANTS_USER = f"wf_nogrants_{uuid.uuid4().hex[:10]}"
T0 = 1_700_000_000_000
PATIENCE = 30.0  # seconds of polling: generous on a loaded machine, never an assertion
# InnoDB refreshes information_schema.innodb_trx only after 100 ms without a reader:
# polling faster would read the same stale snapshot forever.
POLL = 0.25


def _driver_error(error: BaseException) -> BaseException | None:
    """The PyMySQL error behind a store error (raised by PyMySQL itself on the
    operations' path, wrapped by SQLAlchemy on the migrations' path)."""
    cause = error.__cause__
    return getattr(cause, "orig", cause)


def _errno(error: BaseException) -> Any:
    args = getattr(_driver_error(error), "args", ())
    return args[0] if args else None


@pytest.fixture(scope="module")
def server_schema() -> Iterator[str]:
    yield from SERVER.schema(
        "wf_fail",
        setup=[f"CREATE USER '{NO_GRANTS_USER}'@'%'"],
        teardown=[f"DROP USER IF EXISTS '{NO_GRANTS_USER}'@'%'"],
    )


@pytest.fixture
async def store(server_schema: str) -> AsyncIterator[MySQLStore]:
    store = MySQLStore.from_url(URL, schema=server_schema)
    yield store
    await store.close()


class Session:
    """A connection of another session (not the store's), its blocking calls on a
    thread of their own, so the event loop (and the store) run meanwhile."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    async def execute(self, sql: str, values: dict[str, Any] | None = None) -> Any:
        """Run ``sql``; its first value, if it returns rows."""

        def run() -> Any:
            result = self.connection.execute(sa.text(sql), values or {})
            return result.scalar() if result.returns_rows else None

        return await asyncio.to_thread(run)

    async def begin(self) -> None:
        await asyncio.to_thread(self.connection.begin)

    async def commit(self) -> None:
        await asyncio.to_thread(self.connection.commit)

    async def rollback(self) -> None:
        await asyncio.to_thread(self.connection.rollback)


class Outsider:
    """Connections of other sessions, at READ COMMITTED like the store's."""

    def __init__(self) -> None:
        self.engine = sa.create_engine(
            SERVER.driver_url(), isolation_level="READ COMMITTED", poolclass=sa.pool.NullPool
        )

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Session]:
        connection = await asyncio.to_thread(self.engine.connect)
        try:
            yield Session(connection)
        finally:
            await asyncio.to_thread(connection.close)


@pytest.fixture
def outsider() -> Iterator[Outsider]:
    """Raw connections of other sessions (not the store's)."""
    outsider = Outsider()
    yield outsider
    outsider.engine.dispose()


def _run_id() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


# -- the server cannot be reached ------------------------------------------------------
async def test_connection_refused_is_unavailable_and_retryable() -> None:
    store = MySQLStore.from_url(SERVER.with_parts(port=1))
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert caught.value.retryable is True
    assert "retryable" in str(caught.value)
    assert _errno(caught.value) == 2003  # CR_CONN_HOST_ERROR


async def test_open_store_on_a_refused_port_is_unavailable() -> None:
    with pytest.raises(StoreUnavailableError):
        await open_store(SERVER.with_parts(port=1))


# -- the deployment is wrong -----------------------------------------------------------
async def test_missing_database_is_a_configuration_error(server_schema: str) -> None:
    with pytest.raises(StoreConfigurationError) as caught:
        await open_store(SERVER.with_parts(database=f"{server_schema}_missing"))
    error = caught.value
    assert error.retryable is False
    assert not isinstance(error, StoreUnavailableError)
    assert _errno(error) == 1049  # ER_BAD_DB_ERROR
    assert "create it, or correct the URL" in str(error)


@pytest.mark.parametrize("password", [None, "secret"])
async def test_unknown_user_is_a_configuration_error(
    server_schema: str, password: str | None
) -> None:
    url = SERVER.with_parts(username=f"{server_schema}_nobody", password=password)
    store = MySQLStore.from_url(url, schema=server_schema)
    try:
        with pytest.raises(StoreConfigurationError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert caught.value.retryable is False
    # MariaDB 10.11 answers 1698 (ER_ACCESS_DENIED_NO_PASSWORD_ERROR) with or without a
    # password when it also has unix_socket users; MySQL 8 answers 1045.
    assert _errno(caught.value) in {1045, 1698}
    assert "authentication failed: correct the user or password" in str(caught.value)
    assert "secret" not in str(caught.value)


async def test_missing_privilege_is_a_configuration_error(server_schema: str) -> None:
    # A user that may log in but was granted nothing (1044 on the URL's database).
    store = MySQLStore.from_url(SERVER.with_parts(username=NO_GRANTS_USER), schema=server_schema)
    try:
        with pytest.raises(StoreConfigurationError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert _errno(caught.value) == 1044  # ER_DBACCESS_DENIED_ERROR
    assert "permission denied" in str(caught.value)


@pytest.mark.parametrize("where", ["unmigrated prefix", "missing schema"])
async def test_missing_tables_name_the_migration_command(server_schema: str, where: str) -> None:
    if where == "unmigrated prefix":
        store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="never_migrated_")
    else:
        store = MySQLStore.from_url(URL, schema=f"{server_schema}_absent")
    try:
        with pytest.raises(StoreConfigurationError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert caught.value.retryable is False
    assert f"`workflow migrate upgrade --url {shlex.quote(store.url_hint)}`" in str(caught.value)
    assert _errno(caught.value) == 1146  # ER_NO_SUCH_TABLE


class _BuggyStore(MySQLStore):
    @operation
    async def broken_query(self) -> None:
        def body() -> Body[None]:
            yield self._once(sa.text("SELEC 1"))

        await self._run(body())


async def test_a_bug_in_our_sql_is_not_retryable(server_schema: str) -> None:
    # from_url builds cls(...): the subclass, typed as its base.
    store = cast(_BuggyStore, _BuggyStore.from_url(URL, schema=server_schema))
    try:
        with pytest.raises(StoreOperationError) as caught:
            await store.broken_query()
    finally:
        await store.close()
    assert caught.value.retryable is False
    assert _errno(caught.value) == 1064  # ER_PARSE_ERROR


# -- the server goes away mid-operation ------------------------------------------------
async def _lock_waiter(conn: Session, marker: str) -> int | None:
    """The connection whose transaction waits on a lock, running a statement that
    mentions ``marker`` (InnoDB keeps the first 1024 characters of the statement)."""
    found: int | None = await conn.execute(
        "SELECT trx_mysql_thread_id FROM information_schema.innodb_trx "
        "WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE :pattern "
        "AND trx_mysql_thread_id <> CONNECTION_ID()",
        {"pattern": f"%{marker}%"},
    )
    return found


async def test_connection_killed_mid_operation_is_unavailable_then_recovers(
    store: MySQLStore, outsider: Outsider
) -> None:
    run_id = _run_id()
    await store.create_run(run_id, "wf", None, None, T0)
    runs = f"`{store.schema}`.{store.tables.runs.name}"
    async with outsider.connect() as holder, outsider.connect() as watcher:
        await holder.begin()
        await holder.execute(f"SELECT 1 FROM {runs} WHERE run_id = :r FOR UPDATE", {"r": run_id})
        claim = asyncio.create_task(store.claim_run(run_id, "worker", 30_000, T0))
        victim = await poll(
            partial(_lock_waiter, watcher, store.schema or ""), "the claim to block", interval=POLL
        )
        await watcher.execute(f"KILL {int(victim)}")
        with pytest.raises(StoreUnavailableError) as caught:
            await asyncio.wait_for(claim, PATIENCE)
        await holder.rollback()
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, pymysql.err.OperationalError)
    # The dead connection left the pool: the next operation works, and the
    # interrupted claim changed nothing.
    run = await store.load_run(run_id)
    assert run is not None
    assert run.status is RunStatus.QUEUED
    assert isinstance(await store.claim_run(run_id, "worker", 30_000, T0), Claimed)


# -- deadlocks are retried inside the operation ----------------------------------------
class _DeadlockingStore(MySQLStore):
    """One extra operation that takes two row locks, A then B; its first ``deadlocks``
    attempts wait (``go``) until another session holds B and waits for A.

    The operation is a body, as the store's own are: it runs on the connection's
    thread, so its rendezvous with the event loop are thread-safe queues."""

    deadlocks = 0
    attempts = 0

    def rendezvous(self) -> None:
        self.holding_a: queue.Queue[None] = queue.Queue()
        self.go: queue.Queue[None] = queue.Queue()

    @operation
    async def touch_a_then_b(self, a: str, b: str) -> int:
        self.attempts += 1
        attempt = self.attempts
        runs = self.tables.runs
        touch = sa.update(runs).values(updated_at=runs.c.updated_at + 1)

        def body() -> Body[None]:
            yield self._once(touch.where(runs.c.run_id == a))
            if attempt <= self.deadlocks:
                self.holding_a.put(None)
                self.go.get(timeout=PATIENCE)
            # Closes the cycle: InnoDB sees it at once and rolls back the transaction
            # that changed fewer rows, this one.
            yield self._once(touch.where(runs.c.run_id == b))

        await self._run(body(), transaction=True)
        return self.attempts


async def _lock_b_then_wait_for_a(
    store: _DeadlockingStore, outsider: Outsider, a: str, b: str, ballast: list[str]
) -> None:
    """The other side of each deadlock: change the ballast rows (so this transaction
    is the heavier one), hold B, then wait for A."""
    runs = f"`{store.schema}`.{store.tables.runs.name}"
    touch = f"UPDATE {runs} SET updated_at = updated_at + 1 WHERE run_id = :r"
    async with outsider.connect() as watcher:
        for _ in range(store.deadlocks):
            await asyncio.to_thread(store.holding_a.get, timeout=PATIENCE)
            async with outsider.connect() as other:
                await other.begin()
                thread = await other.execute("SELECT CONNECTION_ID()")
                for run_id in [*ballast, b]:
                    await other.execute(touch, {"r": run_id})
                waiting = asyncio.create_task(other.execute(touch, {"r": a}))

                async def waits(thread: int = thread) -> bool:
                    state = await watcher.execute(
                        "SELECT trx_state FROM information_schema.innodb_trx "
                        "WHERE trx_mysql_thread_id = :t",
                        {"t": thread},
                    )
                    return bool(state == "LOCK WAIT")

                await poll(waits, "the other side to wait", interval=POLL)
                store.go.put(None)
                await asyncio.wait_for(waiting, PATIENCE)
                await other.commit()


@pytest.mark.parametrize("deadlocks", [1, RETRIES])
async def test_deadlock_is_retried_then_reported_unavailable(
    server_schema: str, outsider: Outsider, deadlocks: int
) -> None:
    store = cast(_DeadlockingStore, _DeadlockingStore.from_url(URL, schema=server_schema))
    store.deadlocks = deadlocks
    store.rendezvous()
    a, b = _run_id(), _run_id()
    ballast = [_run_id() for _ in range(5)]
    try:
        for run_id in (a, b, *ballast):
            await store.create_run(run_id, "wf", None, None, T0)
        # Both sides at once; each waits for the other with a bound, so a failure on
        # one side surfaces instead of hanging the other.
        result, other = await asyncio.gather(
            store.touch_a_then_b(a, b),
            _lock_b_then_wait_for_a(store, outsider, a, b, ballast),
            return_exceptions=True,
        )
        assert other is None, other
        if deadlocks < RETRIES:
            assert result == deadlocks + 1
        else:
            assert isinstance(result, StoreUnavailableError), result
            assert store.attempts == RETRIES
            assert "contention" in str(result)
            assert _errno(result) == 1213  # ER_LOCK_DEADLOCK
    finally:
        await store.close()


# -- the network stops answering (a black hole, a half-open connection) ---------------
BOUND = 1.0  # operation_timeout of the stores below: the store's bound ends each call


@pytest.fixture
async def proxied(server_schema: str) -> AsyncIterator[tuple[MySQLStore, FaultProxy]]:
    async with fault_proxy("127.0.0.1", sa.make_url(URL).port or 3306) as proxy:
        store = MySQLStore.from_url(
            SERVER.with_parts(host="127.0.0.1", port=proxy.port),
            schema=server_schema,
            operation_timeout=BOUND,
        )
        try:
            yield store, proxy
        finally:
            await store.close()


async def test_a_call_in_a_black_hole_fails_within_its_bound(
    proxied: tuple[MySQLStore, FaultProxy],
) -> None:
    store, proxy = proxied
    await network.black_holed_call_fails_within_its_bound(store, proxy, BOUND, _run_id())


async def test_a_connect_into_a_black_hole_fails_within_its_bound(
    proxied: tuple[MySQLStore, FaultProxy],
) -> None:
    store, proxy = proxied
    await network.black_hole_on_connect_fails_within_its_bound(store, proxy, BOUND)


def test_pymysql_gets_read_and_write_timeouts_from_the_bound() -> None:
    store = MySQLStore.from_url(URL, operation_timeout=4)
    arguments = store.driver._arguments  # type: ignore[attr-defined]
    assert (arguments["read_timeout"], arguments["write_timeout"]) == (4, 4)
    assert arguments["connect_timeout"] == 4
    # The URL's own value wins.
    store = MySQLStore.from_url(f"{URL}?read_timeout=30", operation_timeout=4)
    assert store.driver._arguments["read_timeout"] == 30  # type: ignore[attr-defined]


# -- stop means stop: a worker whose store calls hang in a black hole -----------------
async def _hung_worker(
    server_schema: str, tmp_path: Path, *, signals: int, grace_period: float
) -> worker_stop.StoppedWorker:
    run_id = _run_id()
    direct = MySQLStore.from_url(URL, schema=server_schema)
    try:
        await worker_stop.start_hang(direct, run_id)
    finally:
        await direct.close()
    async with fault_proxy("127.0.0.1", sa.make_url(URL).port or 3306) as proxy:
        # A bound far beyond the test: only the stop can end the hung calls.
        return await worker_stop.stop_while_hung(
            SERVER.via(proxy.port, server_schema, operation_timeout="600"),
            proxy,
            tmp_path,
            signals=signals,
            grace_period=grace_period,
            run_id=run_id,
        )


async def test_sigterm_stops_a_worker_hung_in_a_black_hole_after_the_grace_period(
    server_schema: str, tmp_path: Path
) -> None:
    stopped = await _hung_worker(server_schema, tmp_path, signals=1, grace_period=1)
    worker_stop.assert_stopped_after_the_grace_period(stopped, 1)


async def test_a_second_sigterm_stops_a_hung_worker_at_once(
    server_schema: str, tmp_path: Path
) -> None:
    # The grace period is longer than the test's guard: only the second signal ends it.
    stopped = await _hung_worker(server_schema, tmp_path, signals=2, grace_period=3600)
    worker_stop.assert_stopped_hard(stopped)


# -- a worker started while its store is unreachable waits for it ---------------------
@pytest.mark.parametrize("comes_back", [True, False], ids=["store-comes-back", "stopped-first"])
async def test_a_worker_started_while_the_store_is_unreachable_waits_for_it(
    server_schema: str, tmp_path: Path, comes_back: bool
) -> None:
    # Logs and backs off as a running worker does (it used to exit 1 at once), and
    # SIGTERM while it waits is a clean stop (exit 0), not a kill (-15).
    run_id = _run_id()
    direct = MySQLStore.from_url(URL, schema=server_schema)
    try:
        await worker_stop.start_hang(direct, run_id)
    finally:
        await direct.close()
    async with fault_proxy("127.0.0.1", sa.make_url(URL).port or 3306) as proxy:
        # Each attempt in the black hole gives up after 1 s.
        stopped = await worker_stop.start_while_unreachable(
            SERVER.via(proxy.port, server_schema, operation_timeout="1"),
            proxy,
            tmp_path,
            run_id=run_id,
            comes_back=comes_back,
        )
    worker_stop.assert_waited_for_the_store(stopped, came_back=comes_back)


# -- a partitioned worker's lease runs out locally ------------------------------------
@pytest.fixture
async def partitioned(
    server_schema: str,
) -> AsyncIterator[tuple[MySQLStore, MySQLStore, FaultProxy]]:
    async with fault_proxy("127.0.0.1", sa.make_url(URL).port or 3306) as proxy:
        # The store's bound is far beyond the lease: only the lease ends the slice.
        proxied = MySQLStore.from_url(
            SERVER.with_parts(host="127.0.0.1", port=proxy.port),
            schema=server_schema,
            operation_timeout=30,
        )
        direct = MySQLStore.from_url(URL, schema=server_schema)
        try:
            yield proxied, direct, proxy
        finally:
            await proxied.close()
            await direct.close()


async def test_a_partitioned_workers_step_is_cancelled_once_its_lease_is_gone(
    partitioned: tuple[MySQLStore, MySQLStore, FaultProxy],
) -> None:
    await network.partitioned_step_is_cancelled(*partitioned, _run_id())


async def test_a_partitioned_workers_sync_step_result_is_discarded(
    partitioned: tuple[MySQLStore, MySQLStore, FaultProxy],
) -> None:
    await network.late_sync_step_result_is_discarded(*partitioned, _run_id())


async def test_pooled_connections_cut_while_idle_are_replaced_not_failed(
    partitioned: tuple[MySQLStore, MySQLStore, FaultProxy],
) -> None:
    proxied, _, proxy = partitioned
    await network.cut_idle_connections_are_replaced(proxied, proxy)


async def test_a_partitioned_worker_recovers_by_itself_after_a_heal(
    partitioned: tuple[MySQLStore, MySQLStore, FaultProxy],
) -> None:
    await network.worker_recovers_after_a_heal(*partitioned, _run_id())


async def test_lost_replies_have_the_documented_answers(
    partitioned: tuple[MySQLStore, MySQLStore, FaultProxy],
) -> None:
    proxied, _, proxy = partitioned
    await network.lost_replies_have_the_documented_answers(proxied, proxy, _run_id())
