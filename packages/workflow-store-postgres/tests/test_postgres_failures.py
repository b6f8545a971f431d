"""Driver errors against the real PostgreSQL server: each becomes the contract's error.

Unreachable or lost servers are retryable (``StoreUnavailableError``); a missing
database, role, privilege or table is the deployment's to fix
(``StoreConfigurationError``); a deadlock is retried inside the operation. Every case
uses this module's own schema (and roles named after it).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import cast

import psycopg
import pytest
import sqlalchemy as sa
from postgres_server import SERVER, URL, RawConnection, raw_connection, scalar

from workflow.contract_tests import network, worker_stop
from workflow.contract_tests.faults import FaultProxy, fault_proxy
from workflow.contract_tests.sql import poll
from workflow.runtime import (
    RunStatus,
    StoreConfigurationError,
    StoreOperationError,
    StoreUnavailableError,
    WorkflowStoreError,
)
from workflow.runtime.results import Claimed
from workflow.store.postgres.driver import PsycopgDriver
from workflow.store.postgres.store import PostgresStore, open_store
from workflow.store.sql.driver import Body
from workflow.store.sql.failures import RETRIES, operation

NO_GRANTS_ROLE = f"wf_nogrants_{uuid.uuid4().hex[:10]}"
T0 = 1_700_000_000_000
PATIENCE = 30.0  # seconds of polling: generous on a loaded machine, never an assertion
POLL = 0.05


@pytest.fixture(scope="module")
def server_schema() -> Iterator[str]:
    yield from SERVER.schema(
        "wf_fail",
        setup=[f'CREATE ROLE "{NO_GRANTS_ROLE}" LOGIN'],
        teardown=[f'DROP ROLE IF EXISTS "{NO_GRANTS_ROLE}"'],
    )


@pytest.fixture
async def store(server_schema: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore.from_url(URL, schema=server_schema)
    yield store
    await store.close()


def _driver_error(error: BaseException) -> BaseException | None:
    """The psycopg error behind a store error (raised by psycopg itself on the
    operations' path, wrapped by SQLAlchemy on the migrations' path)."""
    cause = error.__cause__
    return getattr(cause, "orig", cause)


def _sqlstate(error: BaseException) -> str | None:
    return getattr(_driver_error(error), "sqlstate", None)


def _run_id() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


# -- the server cannot be reached ------------------------------------------------------
async def test_connection_refused_is_unavailable_and_retryable() -> None:
    store = PostgresStore.from_url(SERVER.with_parts(port=1))
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert caught.value.retryable is True
    assert "retryable" in str(caught.value)
    assert "Connection refused" in str(caught.value)
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)


async def test_open_store_on_a_refused_port_is_unavailable() -> None:
    with pytest.raises(StoreUnavailableError):
        await open_store(SERVER.with_parts(port=1))


# -- the deployment is wrong -----------------------------------------------------------
async def test_missing_database_is_a_configuration_error(server_schema: str) -> None:
    url = SERVER.with_parts(database=f"{server_schema}_missing")
    with pytest.raises(StoreConfigurationError) as caught:
        await open_store(url)
    error = caught.value
    assert error.retryable is False
    assert not isinstance(error, StoreUnavailableError)
    assert f'database "{server_schema}_missing" does not exist' in str(error)
    assert "create it, or correct the URL" in str(error)
    assert isinstance(_driver_error(error), psycopg.OperationalError)


async def test_unknown_role_is_a_configuration_error(server_schema: str) -> None:
    # Trust authentication accepts any existing role: only a missing one fails (28000).
    store = PostgresStore.from_url(
        SERVER.with_parts(username=f"{server_schema}_nobody"), schema=server_schema
    )
    try:
        with pytest.raises(StoreConfigurationError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert caught.value.retryable is False
    assert "authentication failed: correct the user or password" in str(caught.value)


async def test_missing_privilege_is_a_configuration_error(server_schema: str) -> None:
    # A role that may log in but was granted nothing on the schema (42501).
    store = PostgresStore.from_url(SERVER.with_parts(username=NO_GRANTS_ROLE), schema=server_schema)
    try:
        with pytest.raises(StoreConfigurationError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert "permission denied" in str(caught.value)
    assert _sqlstate(caught.value) == "42501"


@pytest.mark.parametrize("where", ["unmigrated prefix", "missing schema"])
async def test_missing_tables_name_the_migration_command(server_schema: str, where: str) -> None:
    if where == "unmigrated prefix":
        store = PostgresStore.from_url(URL, schema=server_schema, table_prefix="never_migrated_")
    else:
        store = PostgresStore.from_url(URL, schema=f"{server_schema}_absent")
    try:
        with pytest.raises(StoreConfigurationError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert caught.value.retryable is False
    assert f"`workflow migrate upgrade --url {shlex.quote(store.url_hint)}`" in str(caught.value)
    assert _sqlstate(caught.value) == "42P01"


class _BuggyStore(PostgresStore):
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
    assert "SyntaxError" in str(caught.value)


# -- the server goes away mid-operation ------------------------------------------------
async def _blocked_by(conn: RawConnection, holder: int) -> int | None:
    """The backend waiting on a lock that backend ``holder`` holds."""
    pid = await scalar(
        conn, "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (holder,)
    )
    return None if pid is None else int(pid)


async def test_backend_killed_mid_operation_is_unavailable_then_recovers(
    store: PostgresStore,
) -> None:
    run_id = _run_id()
    await store.create_run(run_id, "wf", None, None, T0)
    runs = f'"{store.schema}".{store.tables.runs.name}'
    async with raw_connection() as holder, raw_connection() as watcher:
        await holder.execute("BEGIN")
        holder_pid = int(await scalar(holder, "SELECT pg_backend_pid()"))
        await holder.execute(f"SELECT 1 FROM {runs} WHERE run_id = %s FOR UPDATE", (run_id,))
        claim = asyncio.create_task(store.claim_run(run_id, "worker", 30_000, T0))
        victim = await poll(partial(_blocked_by, watcher, holder_pid), "the claim to block")
        await watcher.execute("SELECT pg_terminate_backend(%s)", (victim,))
        with pytest.raises(StoreUnavailableError) as caught:
            await asyncio.wait_for(claim, PATIENCE)
        await holder.execute("ROLLBACK")
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    # The dead connection left the pool: the next operation works, and the
    # interrupted claim changed nothing.
    run = await store.load_run(run_id)
    assert run is not None
    assert run.status is RunStatus.QUEUED
    assert isinstance(await store.claim_run(run_id, "worker", 30_000, T0), Claimed)


# -- deadlocks are retried inside the operation ----------------------------------------
class _DeadlockingStore(PostgresStore):
    """One extra operation that takes two row locks, A then B; its first ``deadlocks``
    attempts wait (``go``) until another session holds B and waits for A."""

    deadlocks = 0
    attempts = 0

    def rendezvous(self) -> tuple[asyncio.Queue[int], asyncio.Queue[None]]:
        self.holding_a: asyncio.Queue[int] = asyncio.Queue()
        self.go: asyncio.Queue[None] = asyncio.Queue()
        return self.holding_a, self.go

    @operation
    async def touch_a_then_b(self, a: str, b: str) -> int:
        self.attempts += 1
        runs = f'"{self.schema}".{self.tables.runs.name}'
        touch = f"UPDATE {runs} SET updated_at = updated_at + 1 WHERE run_id = %s"
        # On a connection of the store's own pool, with an explicit transaction as the
        # store's operations have: the wait in the middle needs the event loop.
        assert isinstance(self.driver, PsycopgDriver)
        async with self.driver.connection() as conn:
            await conn.execute("BEGIN")
            try:
                # The shortest deadlock_timeout in the cycle decides who checks first
                # and is rolled back: this side, so the retry is what the test sees.
                await conn.execute("SET LOCAL deadlock_timeout = '50ms'")
                await conn.execute(touch, (a,))
                if self.attempts <= self.deadlocks:
                    pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone() or [0])[
                        0
                    ]
                    await self.holding_a.put(pid)
                    await asyncio.wait_for(self.go.get(), PATIENCE)
                await conn.execute(touch, (b,))
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        return self.attempts


async def _lock_b_then_wait_for_a(store: _DeadlockingStore, a: str, b: str, times: int) -> None:
    """The other side of each deadlock: hold B, wait for A (first, so the store's
    later wait closes the cycle and its own short deadlock_timeout detects it)."""
    holding_a, go = store.holding_a, store.go
    runs = f'"{store.schema}".{store.tables.runs.name}'
    touch = f"UPDATE {runs} SET updated_at = updated_at + 1 WHERE run_id = %s"
    async with raw_connection() as watcher:
        for _ in range(times):
            store_pid = await asyncio.wait_for(holding_a.get(), PATIENCE)
            async with raw_connection() as other:
                await other.execute("BEGIN")
                await other.execute("SET LOCAL deadlock_timeout = '60s'")
                await other.execute(touch, (b,))
                other_pid = int(await scalar(other, "SELECT pg_backend_pid()"))
                waiting = asyncio.create_task(other.execute(touch, (a,)))
                await poll(partial(_blocked_by, watcher, store_pid), "the other side to wait")
                assert await _blocked_by(watcher, store_pid) == other_pid
                await go.put(None)
                await asyncio.wait_for(waiting, PATIENCE)
                await other.execute("COMMIT")


async def _superuser() -> bool:
    async with raw_connection() as conn:
        return bool(
            await scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        )


@pytest.mark.parametrize("deadlocks", [1, RETRIES])
async def test_deadlock_is_retried_then_reported_unavailable(
    server_schema: str, deadlocks: int
) -> None:
    if not await _superuser():
        # deadlock_timeout is a superuser setting. A local run under a plain role skips
        # loudly; under CI=true the contract plugin fails the run on this skip (only
        # capability declarations may skip there), and CI's role is a superuser.
        pytest.skip("ROLE NOT SUPERUSER: setting deadlock_timeout per transaction needs one")
    store = cast(_DeadlockingStore, _DeadlockingStore.from_url(URL, schema=server_schema))
    store.deadlocks = deadlocks
    store.rendezvous()
    a, b = _run_id(), _run_id()
    try:
        for run_id in (a, b):
            await store.create_run(run_id, "wf", None, None, T0)
        # Both sides at once; each waits for the other with a bound, so a failure on
        # one side surfaces instead of hanging the other.
        result, other = await asyncio.gather(
            store.touch_a_then_b(a, b),
            _lock_b_then_wait_for_a(store, a, b, deadlocks),
            return_exceptions=True,
        )
        assert other is None, other
        if deadlocks < RETRIES:
            assert result == deadlocks + 1
        else:
            assert isinstance(result, StoreUnavailableError), result
            assert store.attempts == RETRIES
            assert "contention" in str(result)
            assert _sqlstate(result) == "40P01"
    finally:
        await store.close()


# -- PgBouncer (transaction pooling) -----------------------------------------------------
async def test_connections_never_prepare_server_side_by_default(store: PostgresStore) -> None:
    assert isinstance(store.driver, PsycopgDriver)
    async with store.driver.connection() as conn:
        assert conn.prepare_threshold is None
        assert conn.autocommit is True


async def test_prepare_true_prepares_every_statement(server_schema: str) -> None:
    # One connection, so every statement ran on the one inspected afterwards.
    store = PostgresStore.from_url(f"{URL}?prepare=true&pool_size=1", schema=server_schema)
    try:
        run_id = _run_id()
        await store.create_run(run_id, "wf", None, None, T0)
        for _ in range(2):
            assert await store.load_run(run_id) is not None
        assert isinstance(store.driver, PsycopgDriver)
        async with store.driver.connection() as conn:
            assert conn.prepare_threshold == 0
            prepared = await (
                await conn.execute("SELECT statement FROM pg_prepared_statements")
            ).fetchall()
        # The pool has one connection here: it ran both statements, prepared.
        texts = " ".join(row[0] for row in prepared)
        assert "INSERT INTO" in texts, prepared
        assert "SELECT" in texts, prepared
    finally:
        await store.close()


# PgBouncer is not a store server: .ci/run installs it (apt). Locally its absence is a
# loud skip; under CI=true that skip fails the run, like every skip that is not a
# declared capability, so CI never passes without having run this case.
PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer") if Path(p).exists()), None
)
_NO_PGBOUNCER = "install pgbouncer (apt-get install pgbouncer) to run the transaction-mode case"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def pgbouncer_url() -> Iterator[str]:
    """A PgBouncer in transaction mode in front of the test server (2 server
    connections, so consecutive transactions of one client land on different ones)."""
    if PGBOUNCER is None:
        pytest.skip(f"PGBOUNCER MISSING: {_NO_PGBOUNCER}")
    server = sa.make_url(URL)
    port = _free_port()
    # Not tmp_path: PgBouncer refuses to run as root and must read its files as nobody.
    workdir = Path(tempfile.mkdtemp(prefix="wf-pgbouncer-"))
    workdir.chmod(0o755)
    (workdir / "users.txt").write_text(f'"{server.username}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"[databases]\n{server.database} = host={server.host} port={server.port or 5432} "
        f"dbname={server.database}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir / 'users.txt'}\npool_mode = transaction\n"
        "default_pool_size = 2\n"
    )
    for path in workdir.iterdir():
        path.chmod(0o644)
    command = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    with (workdir / "log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(int(PATIENCE / POLL)):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"pgbouncer exited: {(workdir / 'log').read_text()}")
                time.sleep(POLL)
        yield SERVER.with_parts(host="127.0.0.1", port=port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


async def test_store_works_behind_pgbouncer_in_transaction_mode(
    server_schema: str, pgbouncer_url: str
) -> None:
    # Two stores through two server connections: with server-side prepared statements
    # a statement prepared on one would be missing on the other within a few rounds.
    stores = [PostgresStore.from_url(pgbouncer_url, schema=server_schema) for _ in range(2)]
    try:
        await stores[0].verify_schema()

        async def work(store: PostgresStore, worker: str) -> None:
            for _ in range(8):
                run_id = _run_id()
                await store.create_run(run_id, "wf", None, {"n": 1}, T0)
                claimed = await store.claim_run(run_id, worker, 30_000, T0)
                assert isinstance(claimed, Claimed)
                loaded = await store.load_run(run_id)
                assert loaded is not None
                assert loaded.status is RunStatus.RUNNING
                await store.list_runs(limit=5)

        await asyncio.gather(*(work(s, f"w{i}") for i, s in enumerate(stores)))
    except WorkflowStoreError as exc:
        pytest.fail(f"through PgBouncer: {exc!r} (cause {exc.__cause__!r})")
    finally:
        for store in stores:
            await store.close()


# -- the network stops answering (a black hole, a half-open connection) ---------------
BOUND = 1.0  # operation_timeout of the stores below: the store's bound ends each call


@pytest.fixture
async def proxied(server_schema: str) -> AsyncIterator[tuple[PostgresStore, FaultProxy]]:
    async with fault_proxy("127.0.0.1", sa.make_url(URL).port or 5432) as proxy:
        store = PostgresStore.from_url(
            SERVER.with_parts(host="127.0.0.1", port=proxy.port),
            schema=server_schema,
            operation_timeout=BOUND,
        )
        try:
            yield store, proxy
        finally:
            await store.close()


async def test_a_call_in_a_black_hole_fails_within_its_bound(
    proxied: tuple[PostgresStore, FaultProxy],
) -> None:
    store, proxy = proxied
    await network.black_holed_call_fails_within_its_bound(store, proxy, BOUND, _run_id())


async def test_a_connect_into_a_black_hole_fails_within_its_bound(
    proxied: tuple[PostgresStore, FaultProxy],
) -> None:
    store, proxy = proxied
    await network.black_hole_on_connect_fails_within_its_bound(store, proxy, BOUND)


async def test_pooled_connections_cut_while_idle_are_replaced_not_failed(
    proxied: tuple[PostgresStore, FaultProxy],
) -> None:
    store, proxy = proxied
    await network.cut_idle_connections_are_replaced(store, proxy)


def test_libpq_gets_keepalives_and_tcp_user_timeout_from_the_bound() -> None:
    store = PostgresStore.from_url(URL, operation_timeout=4)
    query = sa.make_url(store._migration_url).query
    assert query["tcp_user_timeout"] == "4000"
    assert query["keepalives"] == "1"
    assert query["connect_timeout"] == "4"
    # The URL's own value wins.
    store = PostgresStore.from_url(f"{URL}?tcp_user_timeout=0", operation_timeout=4)
    assert sa.make_url(store._migration_url).query["tcp_user_timeout"] == "0"


# -- stop means stop: a worker whose store calls hang in a black hole -----------------
async def _hung_worker(
    server_schema: str, tmp_path: Path, *, signals: int, grace_period: float
) -> worker_stop.StoppedWorker:
    run_id = _run_id()
    direct = PostgresStore.from_url(URL, schema=server_schema)
    try:
        await worker_stop.start_hang(direct, run_id)
    finally:
        await direct.close()
    async with fault_proxy("127.0.0.1", sa.make_url(URL).port or 5432) as proxy:
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
    # It used to exit 1 at once; now it logs and backs off as a running worker does,
    # and SIGTERM while it waits is a clean stop (exit 0), not a kill (-15).
    run_id = _run_id()
    direct = PostgresStore.from_url(URL, schema=server_schema)
    try:
        await worker_stop.start_hang(direct, run_id)
    finally:
        await direct.close()
    async with fault_proxy("127.0.0.1", sa.make_url(URL).port or 5432) as proxy:
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
) -> AsyncIterator[tuple[PostgresStore, PostgresStore, FaultProxy]]:
    async with fault_proxy("127.0.0.1", sa.make_url(URL).port or 5432) as proxy:
        # The store's bound is far beyond the lease: only the lease ends the slice.
        proxied = PostgresStore.from_url(
            SERVER.with_parts(host="127.0.0.1", port=proxy.port),
            schema=server_schema,
            operation_timeout=30,
        )
        direct = PostgresStore.from_url(URL, schema=server_schema)
        try:
            yield proxied, direct, proxy
        finally:
            await proxied.close()
            await direct.close()


async def test_a_partitioned_workers_step_is_cancelled_once_its_lease_is_gone(
    partitioned: tuple[PostgresStore, PostgresStore, FaultProxy],
) -> None:
    await network.partitioned_step_is_cancelled(*partitioned, _run_id())


async def test_a_partitioned_workers_sync_step_result_is_discarded(
    partitioned: tuple[PostgresStore, PostgresStore, FaultProxy],
) -> None:
    await network.late_sync_step_result_is_discarded(*partitioned, _run_id())


async def test_a_partitioned_worker_recovers_by_itself_after_a_heal(
    partitioned: tuple[PostgresStore, PostgresStore, FaultProxy],
) -> None:
    await network.worker_recovers_after_a_heal(*partitioned, _run_id())


async def test_lost_replies_have_the_documented_answers(server_schema: str) -> None:
    async with fault_proxy("127.0.0.1", sa.make_url(URL).port or 5432) as proxy:
        # One connection: the pool never opens another in the background, whose
        # startup reply the staged fault would drop instead of the call's.
        store = PostgresStore.from_url(
            SERVER.with_parts(host="127.0.0.1", port=proxy.port),
            schema=server_schema,
            operation_timeout=30,
            pool_size=1,
        )
        try:
            await network.lost_replies_have_the_documented_answers(store, proxy, _run_id())
        finally:
            await store.close()
