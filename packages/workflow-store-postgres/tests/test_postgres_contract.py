"""The contract suite against PostgreSQL: one schema per test session, emptied
between tests, so runs cannot see each other and tests stay quick."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import SERVER, URL, RawConnection, raw_connection, scalar

from workflow.contract_tests import WatchKiller
from workflow.contract_tests.cases.queues import QueueCases
from workflow.contract_tests.sql import SQLServerContract, assert_golden
from workflow.runtime import (
    JSON,
    Buffered,
    Capability,
    Claimed,
    Context,
    Created,
    ExecutionStore,
    Pause,
    RunStatus,
    Runtime,
    Wait,
    workflow,
)
from workflow.runtime.errors import StoreOperationError, StoreUnavailableError
from workflow.runtime.wakeups import Watch
from workflow.runtime.worker import Worker
from workflow.store.postgres.listener import listen_statement
from workflow.store.postgres.store import PostgresStore
from workflow.store.sql.compiled import text_statement
from workflow.store.sql.driver import Body, Query
from workflow.store.sql.queue_statements import (
    limited_claim_statements,
    limited_create_statements,
)
from workflow.store.sql.statements import (
    child_operation_statements,
    hot_operation_sql,
    hot_operation_statements,
    recompiled,
    recording,
    texts,
)

T0 = 1_700_000_000_000
WORKERS = 8


@workflow("echo")
async def echo(ctx: Context, input: JSON) -> JSON:
    return await ctx.step("echo", lambda: input)


@pytest.fixture(scope="session")
def server_schema() -> Iterator[str]:
    yield from SERVER.schema("wf_test")


class TestPostgresStore(SQLServerContract):
    capabilities = frozenset(
        {
            Capability.SUBSCRIBE_EVENTS,
            Capability.DURABLE,
            Capability.MULTI_PROCESS,
            Capability.CLAIM_ON_CREATE,
            Capability.DEADLINES,
            Capability.QUEUES,
            Capability.CHILDREN,
            Capability.NOTIFY_RUNNABLE,
        }
    )
    server = SERVER

    @pytest.fixture
    def kill_watch_connections(self) -> WatchKiller:
        return kill_listeners


PREPARED = dataclasses.replace(
    SERVER, from_url=functools.partial(PostgresStore.from_url, prepare=True)
)


class TestPreparedPostgresQueues(QueueCases):
    """The queue cases again on stores that prepare (``prepare=True``): their limited
    claim is another path, a pipeline of prepared statements instead of one text.

    Not the queue races (32 handles, a connection or two each): TestPostgresStore runs
    them, and beside CI's floor environment doing the same on one server they took it
    past ``max_connections`` (100). The prepared path's own race, a claim that waits
    for the lock while another commits a lease, is forced below
    (``test_a_limited_claim_counts_the_leases_committed_while_it_waited_for_the_lock``,
    prepared and not)."""

    capabilities = TestPostgresStore.capabilities
    max_payload_bytes = TestPostgresStore.max_payload_bytes
    server = PREPARED
    store = SQLServerContract.store
    store_factory = SQLServerContract.store_factory
    store_url = SQLServerContract.store_url


async def kill_listeners(store: ExecutionStore) -> int:
    """pg_terminate_backend of every session that LISTENs on ``store``'s channel (the
    channel names the test schema, so no other test run's listener is touched)."""
    assert isinstance(store, PostgresStore)
    async with raw_connection() as conn:
        listen = listen_statement(store.wake_channel).as_string(conn)
        killed = await scalar(
            conn,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query = %s",
            (listen,),
        )
    assert killed, f"no session found listening with {listen!r}"
    return int(killed)


# Round trips per hot operation (workflow.store.sql.statements.recording): the stores
# run in autocommit, so a transaction shows as BEGIN ... COMMIT and nothing else is sent.
# A change that adds one fails here; one that removes one updates the table.
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
    store = PostgresStore.from_url(URL, schema=server_schema, table_prefix="stmt_")
    await store.create_schema()
    try:
        seen = await hot_operation_statements(store)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == STATEMENT_BUDGET, seen


async def test_notify_false_sends_no_notify_and_the_same_round_trips(server_schema: str) -> None:
    store = PostgresStore.from_url(URL, schema=server_schema, table_prefix="quiet_", notify=False)
    await store.create_schema()
    try:
        seen = await hot_operation_statements(store, record=texts)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == STATEMENT_BUDGET, seen
    assert not [sql for statements in seen.values() for sql in statements if "pg_notify" in sql]


GOLDEN = Path(__file__).parent / "golden" / "hot_operations.sql"


@pytest.mark.parametrize("prepare", [False, True], ids=["unprepared", "prepared"])
async def test_hot_operations_send_the_golden_sql(server_schema: str, prepare: bool) -> None:
    # What each hot operation sends, as SQL a reviewer reads (tests/golden/); the same
    # text whether psycopg prepares it on the server or not.
    store = PostgresStore.from_url(
        URL, schema=server_schema, table_prefix=f"golden{int(prepare)}_", prepare=prepare
    )
    await store.create_schema()
    try:
        text = await hot_operation_sql(store)
    finally:
        await store.close()
    assert_golden(GOLDEN, text.replace(f"golden{int(prepare)}_", "workflow_"))


async def test_hot_operations_run_from_the_compiled_cache(server_schema: str) -> None:
    # Building and compiling statements costs more CPU than running them: once warm,
    # no hot operation compiles anything (a statement SQLAlchemy cannot cache, such
    # as one with a VALUES list, would show here on every call).
    store = PostgresStore.from_url(URL, schema=server_schema, table_prefix="cache_")
    await store.create_schema()
    try:
        # Every SQLAlchemy version: the store compiles its statements itself, once.
        assert await recompiled(store) == {}
    finally:
        await store.close()


async def _blocked_on_lock(conn: RawConnection, schema: str, table: str, count: int) -> None:
    """Wait (no assertion on time) until ``count`` statements on ``table`` of ``schema``
    wait for a lock (the schema too: another test run on the server, CI's floor
    environment beside the main one, runs the same test on a table of the same name).
    ``conn`` is in autocommit: each look is a new transaction, so a fresh view of
    pg_stat_activity."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND position(%s in query) > 0 AND position(%s in query) > 0"
    )
    for _ in range(1200):
        if await scalar(conn, query, (table, schema)) == count:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{count} statements never queued for the lock on {table}")


async def test_one_statement_settle_sees_a_delivery_that_committed_while_it_waited(
    server_schema: str,
) -> None:
    # The race one_statement.py guards against, forced: a delivery commits after the
    # settle took its snapshot but before it got the run's row lock. The settle's own
    # snapshot cannot see the entry; inbox_seq tells it to look again.
    store = PostgresStore.from_url(URL, schema=server_schema, table_prefix="race_")
    await store.create_schema()
    runs = f'"{server_schema}".race_runs'
    # The lock holder and the watcher are sessions of their own: `recording` sees only
    # the store.
    try:
        await store.create_run("r", "wf", None, None, 1_000)
        claim = await store.claim_run("r", "w", 60_000, 1_000)
        assert isinstance(claim, Claimed)
        async with raw_connection() as holder, raw_connection() as watcher:
            await holder.execute("BEGIN")
            await holder.execute(f"SELECT 1 FROM {runs} WHERE run_id = 'r' FOR UPDATE")
            deliver = asyncio.create_task(store.deliver_signal("r", "s1", "go", None, 1_001))
            await _blocked_on_lock(watcher, server_schema, "race_runs", 1)
            with recording(store) as seen:
                settle = asyncio.create_task(
                    store.settle_run("r", claim.lease, 0, [], Pause(Wait.signal("st", "go")), 1_002)
                )
                await _blocked_on_lock(watcher, server_schema, "race_runs", 2)
                await holder.execute("COMMIT")
                delivered, settled = await deliver, await settle
        # Row locks queue in order: the delivery went first and found the run running.
        assert isinstance(delivered, Buffered), delivered
        assert settled.status is RunStatus.QUEUED, settled
        assert seen == ["WITH", "UPDATE"], seen  # the settle, then its second look
        loaded = await store.load_run("r")
        assert loaded is not None
        assert loaded.status is RunStatus.QUEUED
    finally:
        await store.close()


# claim_runnable(limit=1) with queue limits off and on (statements.limited_claim_statements):
# the limited claim is one round trip, two statements in one text (BATCH): the lock of
# the limited queues, then the decision, claim and rate windows in one statement. The
# first limited claim also ran the one-statement claim, which found a limit. claim_run of
# a run in a limited queue: the one-statement claim and its read, then the limited claim.
LIMITED_CLAIM_BUDGET = {
    "unlimited": 1,
    "limited_first": 2,
    "limited": 1,
    "rate_limited": 1,
    "claim_run": 3,
}


@pytest.mark.parametrize("prepare", [False, True], ids=["unprepared", "prepared"])
async def test_a_limited_claim_is_one_round_trip(server_schema: str, prepare: bool) -> None:
    store = PostgresStore.from_url(
        URL, schema=server_schema, table_prefix=f"limstmt{int(prepare)}_", prepare=prepare
    )
    await store.create_schema()
    try:
        seen = await limited_claim_statements(store)
        sent = [s for _, s in store.compiler.items() if s.verb in ("BATCH", "PIPELINE")]
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == LIMITED_CLAIM_BUDGET, seen
    # Prepared: a pipeline (BEGIN, the lock, the decision and claim, COMMIT), each
    # statement prepared; else the lock and the decision as one text.
    assert seen["limited"] == ["PIPELINE" if prepare else "BATCH"], seen
    if prepare:
        assert {tuple(p.verb for p in s.parts) for s in sent} == {
            ("BEGIN", "SELECT", "WITH", "COMMIT")
        }, sent
    else:
        assert {s.sql.count(";") for s in sent} == {1}, sent


# create_run(..., owner=) in a queue with limits (limited_create_statements): one round
# trip, the lock of the queue's row and one statement (decide, insert, count the claim
# in the rate window) as one text or, prepared, a pipeline. The first create in a queue
# after a limit appeared also ran the one-statement insert, which inserted nothing; an
# id that exists fails the statement and a read answers. Before (the LimitGate path):
# 7 round trips (8 with a rate limit).
LIMITED_CREATE_BUDGET = {
    "unlimited": 1,
    "limited_first": 2,
    "limited": 1,
    "rate_limited": 1,
    "full": 1,
    "existing": 2,
}


@pytest.mark.parametrize("prepare", [False, True], ids=["unprepared", "prepared"])
async def test_a_limited_create_is_one_round_trip(server_schema: str, prepare: bool) -> None:
    store = PostgresStore.from_url(
        URL, schema=server_schema, table_prefix=f"limcreate{int(prepare)}_", prepare=prepare
    )
    await store.create_schema()
    try:
        seen = await limited_create_statements(store)
        sent = [s for _, s in store.compiler.items() if s.verb in ("BATCH", "PIPELINE")]
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == LIMITED_CREATE_BUDGET, seen
    assert seen["limited"] == ["PIPELINE" if prepare else "BATCH"], seen
    if prepare:
        assert {tuple(p.verb for p in s.parts) for s in sent} == {
            ("BEGIN", "SELECT", "WITH", "COMMIT")
        }, sent
    else:
        assert {s.sql.count(";") for s in sent} == {1}, sent


async def test_a_prepared_limited_claim_reuses_its_prepared_statements(
    server_schema: str,
) -> None:
    # prepare=True (pool of one connection): the pipeline's statements are prepared
    # once and executed by name afterwards; a second claim prepares nothing new.
    store = PostgresStore.from_url(
        f"{URL}?pool_size=1", schema=server_schema, table_prefix="limprep_", prepare=True
    )
    await store.create_schema()
    try:
        await store.upsert_queue("q", T0, concurrency=100)
        for i in range(3):
            await store.create_run(f"r{i}", "wf", None, None, T0, queue="q")
        assert len(await store.claim_runnable("w", 60_000, 1, T0 + 1)) == 1

        def prepared() -> Body[list[str]]:
            found = yield Query(text_statement("SELECT statement FROM pg_prepared_statements"), {})
            return [str(r) for r in found.scalars()]

        before = await store.driver.run(prepared())
        assert len(await store.claim_runnable("w", 60_000, 1, T0 + 1)) == 1
        after = await store.driver.run(prepared())
    finally:
        await store.close()
    # The reading statement is prepared (and listed) before it runs, so it is in both.
    assert sum("takes" in s for s in before) == 1, before
    assert sorted(after) == sorted(before)


@pytest.mark.parametrize("prepare", [False, True], ids=["unprepared", "prepared"])
async def test_a_limited_claim_counts_the_leases_committed_while_it_waited_for_the_lock(
    server_schema: str, prepare: bool
) -> None:
    # The race the limited claim's two statements guard against, forced: another
    # claimer holds the queue's row lock, leases a run and commits while the claim
    # waits for that lock. The claim's counting statement starts once it holds the
    # lock, so it counts that lease; a count in the statement that waited would not
    # (its snapshot is older) and would lease a second run past concurrency=1.
    # Time enough to wait for the lock on a loaded machine (nothing is timed).
    prefix = f"limrace{int(prepare)}_"
    store = PostgresStore.from_url(
        URL, schema=server_schema, table_prefix=prefix, operation_timeout=120, prepare=prepare
    )
    await store.create_schema()
    table = f'"{server_schema}".{prefix}'
    try:
        await store.upsert_queue("q", T0, concurrency=1)
        for run_id in ("r1", "r2"):
            await store.create_run(run_id, "wf", None, None, T0, queue="q")
        async with raw_connection() as holder, raw_connection() as watcher:
            await holder.execute("BEGIN")
            await holder.execute(f"SELECT 1 FROM {table}queues WHERE name = 'q' FOR UPDATE")
            claim = asyncio.create_task(store.claim_runnable("w", 60_000, 5, T0 + 1))
            await _blocked_on_lock(watcher, server_schema, f"{prefix}queues", 1)
            await holder.execute(
                f"UPDATE {table}runs SET status = 'running', lease_owner = 'other', "
                "lease_token = lease_token + 1, lease_expires_at = %s WHERE run_id = 'r1'",
                (T0 + 60_000,),
            )
            await holder.execute("COMMIT")
            got = await claim
        assert got == [], got
    finally:
        await store.close()


@pytest.mark.parametrize("prepare", [False, True], ids=["unprepared", "prepared"])
async def test_a_limited_create_counts_the_leases_committed_while_it_waited_for_the_lock(
    server_schema: str, prepare: bool
) -> None:
    # As for the limited claim: another session holds the queue's row lock, leases a
    # run and commits while create_run(owner=) waits for that lock. The deciding
    # INSERT is a statement after the lock, so it counts that lease and creates the
    # run queued; a decision in the statement that waited would not (its snapshot is
    # older) and would create it claimed past concurrency=1.
    prefix = f"limcrace{int(prepare)}_"
    store = PostgresStore.from_url(
        URL, schema=server_schema, table_prefix=prefix, operation_timeout=120, prepare=prepare
    )
    await store.create_schema()
    table = f'"{server_schema}".{prefix}'
    try:
        await store.upsert_queue("q", T0, concurrency=1)
        await store.create_run("r1", "wf", None, None, T0, queue="q")
        async with raw_connection() as holder, raw_connection() as watcher:
            await holder.execute("BEGIN")
            await holder.execute(f"SELECT 1 FROM {table}queues WHERE name = 'q' FOR UPDATE")
            create = asyncio.create_task(
                store.create_run(
                    "r2", "wf", None, None, T0 + 1, owner="w", lease_ms=60_000, queue="q"
                )
            )
            await _blocked_on_lock(watcher, server_schema, f"{prefix}queues", 1)
            await holder.execute(
                f"UPDATE {table}runs SET status = 'running', lease_owner = 'other', "
                "lease_token = lease_token + 1, lease_expires_at = %s WHERE run_id = 'r1'",
                (T0 + 60_000,),
            )
            await holder.execute("COMMIT")
            made = await create
        assert isinstance(made, Created), made
        assert made.lease is None, made
        assert made.run.status is RunStatus.QUEUED
    finally:
        await store.close()


@pytest.mark.parametrize("prepare", [False, True], ids=["unprepared", "prepared"])
async def test_a_limited_claim_that_fails_after_its_lock_leaves_nothing_behind(
    server_schema: str, prepare: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # The deciding statement fails once the lock statement holds the queue's row (a
    # trigger refuses the claim's UPDATE): the store's typed error, nothing claimed,
    # the lock released (the transaction rolled back, not left open or failed on
    # the pooled connection), and the next claim on the same connection works.
    prefix = f"limfail{int(prepare)}_"
    store = PostgresStore.from_url(
        f"{URL}?pool_size=1", schema=server_schema, table_prefix=prefix, prepare=prepare
    )
    await store.create_schema()
    runs = f'"{server_schema}".{prefix}runs'
    refuse = f'"{server_schema}".{prefix}refuse'
    try:
        await store.upsert_queue("q", T0, concurrency=5)
        await store.create_run("r1", "wf", None, None, T0, queue="q")
        async with raw_connection() as admin:
            await admin.execute(
                f"CREATE FUNCTION {refuse}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN IF NEW.lease_owner = 'refused' THEN "
                "RAISE EXCEPTION 'claim refused'; END IF; RETURN NEW; END $$"
            )
            await admin.execute(
                f"CREATE TRIGGER {prefix}refuse BEFORE UPDATE ON {runs} "
                f"FOR EACH ROW EXECUTE FUNCTION {refuse}()"
            )
            with (
                caplog.at_level(logging.WARNING, logger="psycopg.pool"),
                pytest.raises(StoreOperationError, match="claim refused"),
            ):
                await store.claim_runnable("refused", 60_000, 1, T0 + 1)
            # The store rolled back itself: the pool got its connection back idle
            # (psycopg_pool would roll back a connection returned in a transaction,
            # with a warning).
            assert not [r for r in caplog.records if r.name == "psycopg.pool"], caplog.text
            # Nothing held: the queue's row can be locked at once by another session.
            await admin.execute("BEGIN")
            await admin.execute(
                f'SELECT 1 FROM "{server_schema}".{prefix}queues WHERE name = %s FOR UPDATE NOWAIT',
                ("q",),
            )
            await admin.execute("ROLLBACK")
        loaded = await store.load_run("r1")
        assert loaded is not None
        assert loaded.status is RunStatus.QUEUED, loaded
        got = await store.claim_runnable("w", 60_000, 1, T0 + 1)
        assert [c.run.run_id for c in got] == ["r1"], got
    finally:
        await store.close()


@pytest.mark.parametrize("prepare", [False, True], ids=["unprepared", "prepared"])
async def test_a_limited_claim_whose_lock_times_out_is_retried_then_unavailable(
    server_schema: str, prepare: bool
) -> None:
    # The lock statement fails (lock_timeout while another session holds the queue's
    # row): a contention failure, retried, then StoreUnavailableError; once the row
    # is free the same store claims.
    prefix = f"limlock{int(prepare)}_"
    store = PostgresStore.from_url(
        f"{URL}?pool_size=1&options=-c%20lock_timeout%3D50",
        schema=server_schema,
        table_prefix=prefix,
        prepare=prepare,
    )
    await store.create_schema()
    try:
        await store.upsert_queue("q", T0, concurrency=5)
        await store.create_run("r1", "wf", None, None, T0, queue="q")
        async with raw_connection() as holder:
            await holder.execute("BEGIN")
            await holder.execute(
                f'SELECT 1 FROM "{server_schema}".{prefix}queues WHERE name = %s FOR UPDATE',
                ("q",),
            )
            with pytest.raises(StoreUnavailableError, match="lock"):
                await store.claim_runnable("w", 60_000, 1, T0 + 1)
            await holder.execute("ROLLBACK")
        got = await store.claim_runnable("w", 60_000, 1, T0 + 1)
        assert [c.run.run_id for c in got] == ["r1"], got
    finally:
        await store.close()


async def _listening(store: PostgresStore, count: int) -> None:
    """Wait (no assertion on time) until ``count`` sessions LISTEN on the store's
    channel: a closed connection's backend leaves pg_stat_activity a moment later."""
    async with raw_connection() as conn:
        listen = listen_statement(store.wake_channel).as_string(conn)
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query = %s"
        )
        for _ in range(1200):
            if await scalar(conn, query, (listen,)) == count:
                return
            await asyncio.sleep(0.05)
    pytest.fail(f"never {count} sessions running {listen!r}")


async def test_the_watchers_of_a_process_share_one_connection_closed_with_the_last(
    server_schema: str,
) -> None:
    stores = [
        PostgresStore.from_url(URL, schema=server_schema, table_prefix="listen_")
        for _ in range(WORKERS)
    ]
    await stores[0].create_schema()
    watches = [store.watch_runnable() for store in stores] + [stores[0].watch_runnable()]
    try:
        for watch in watches:
            await asyncio.wait_for(anext(watch), 10)  # each listens from now on
        # One LISTEN session (outside the pool) for nine watchers on eight handles.
        await _listening(stores[0], 1)
        hubs = {id(watch.hub) for watch in watches if isinstance(watch, Watch)}
        assert len(hubs) == 1
        await watches[0].aclose()
        await stores[0].close()  # ends its other watcher; the other handles' go on
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(watches[-1]), 10)
        await stores[1].create_run("r", "wf", None, None, T0)
        for watch in watches[1:-1]:
            await asyncio.wait_for(anext(watch), 10)
        await _listening(stores[0], 1)
    finally:
        for store in stores:
            await store.close()
    await _listening(stores[0], 0)  # the last watcher out closed it


async def test_eight_workers_share_one_listener_and_finish_runs_started_elsewhere(
    server_schema: str,
) -> None:
    stores = [
        PostgresStore.from_url(URL, schema=server_schema, table_prefix="workers_")
        for _ in range(WORKERS + 1)
    ]
    await stores[0].create_schema()
    workers = [
        Worker(Runtime(store, [echo], concurrency=2), poll_interval=60, jitter=0)
        for store in stores[1:]
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        for _ in range(1200):
            if all(w.listening for w in workers):
                break
            await asyncio.sleep(0.01)
        await _listening(stores[0], 1)
        # Runs made by a handle without a worker (another process): only the hints
        # bring the workers (their next poll is a minute away).
        elsewhere = Runtime(stores[0], [echo])
        for i in range(20):
            await elsewhere.start("echo", i, run_id=f"r{i}")
        for i in range(20):
            assert await elsewhere.result(f"r{i}", wait=30, poll=0.01) == i
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
        for store in stores:
            await store.close()


# A run without a parent settles in one statement as before; a child's settle finds
# the one statement's guard refusing it (no-parent clause), reads why, then settles in
# a transaction that locks its parent first.
CHILD_BUDGET = {
    "settle_finish": 1,
    "create_child": 5,
    "settle_finish_child": 8,
    "cancel_run": 5,
    "cancel_child": 9,
}


async def test_runs_with_and_without_a_parent_send_the_budgeted_statements(
    server_schema: str,
) -> None:
    store = PostgresStore.from_url(URL, schema=server_schema, table_prefix="kids_")
    await store.create_schema()
    try:
        seen = await child_operation_statements(store)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == CHILD_BUDGET, seen
