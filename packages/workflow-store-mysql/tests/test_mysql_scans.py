"""The batches find the runs they picked (``@wf_ids``) or took (``@wf_taken``) by
primary key: the claim of many, limited or not, and the timers' firing read a handful
of rows, not every run in the table.

Counted by the server, on the store's own session: ``Handler_read_rnd_next`` is the
rows a scan read (a full scan of ``runs`` adds one per run, finished runs included);
``Handler_read_key`` and ``_next`` the index look-ups and steps of a limited claim.
A plan, not a time: nothing here depends on the machine's speed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from mysql_server import SERVER, URL

from workflow.contract_tests.sql_plans import insert_queued
from workflow.runtime.records import RunStatus, WaitKind
from workflow.store.mysql.store import MySQLStore
from workflow.store.sql.compiled import text_statement
from workflow.store.sql.driver import Body, Query

FINISHED = 3000
"""Finished runs in the table: what a scan of ``runs`` would read."""
READ_AT_MOST = 100
"""Rows the operation may read by scan (temporary tables, the JSON_TABLE): far below
:data:`FINISHED`, which a scan of ``runs`` would add (three times: every statement
that joined the picked ids scanned)."""


@pytest.fixture(scope="module")
def server_schema() -> Iterator[str]:
    yield from SERVER.schema("wf_scan")


@pytest.fixture
async def store(server_schema: str) -> AsyncIterator[MySQLStore]:
    # One connection: the session counters read are those of the operation's session.
    store = MySQLStore.from_url(URL, schema=server_schema, table_prefix="scan_", connections=1)
    await store.create_schema()
    runs = f"{server_schema}.{store.tables.runs.name}"
    finished = ", ".join(
        f"('done{i:05d}', 'wf', '{RunStatus.FINISHED.value}', 0, 0, 0, 0, 0)"
        for i in range(FINISHED)
    )
    await _run_sql(
        store,
        f"INSERT INTO {runs} (run_id, workflow_id, status, lease_token, next_event_index, "
        f"created_at, updated_at, finished_at) VALUES {finished}",
    )
    yield store
    await _run_sql(store, f"DELETE FROM {runs}")
    await store.close()


async def _run_sql(store: MySQLStore, sql: str) -> None:
    def body() -> Body[None]:
        yield Query(text_statement(sql), {})

    await store.driver.run(body())


async def _handler(store: MySQLStore, name: str) -> int:
    """The session's ``Handler_read_<name>`` so far."""

    def body() -> Body[int]:
        # %% : the driver formats the text with the (no) parameters.
        found = yield Query(
            text_statement(f"SHOW SESSION STATUS LIKE 'Handler_read_{name}'".replace("%", "%%")),
            {},
        )
        return int(found.rows[0][1])

    return await store.driver.run(body())


async def _scanned(store: MySQLStore) -> int:
    """The session's ``Handler_read_rnd_next`` so far."""
    return await _handler(store, "rnd_next")


async def _probes(store: MySQLStore) -> tuple[int, int]:
    """The session's index look-ups (``Handler_read_key``: a probe, or the start of a
    range) and steps along an index (``Handler_read_next``) so far, less those of
    this reading (two ``SHOW`` statements, which count none of either)."""
    return await _handler(store, "key"), await _handler(store, "next")


async def test_the_claim_of_many_reads_the_picked_runs_by_primary_key(store: MySQLStore) -> None:
    await store.create_run("q1", "wf", None, None, 0)
    await store.create_run("q2", "wf", None, None, 0)
    before = await _scanned(store)
    got = await store.claim_runnable("w", 60_000, 1, 1)
    scanned = await _scanned(store) - before
    assert [c.run.run_id for c in got] == ["q1"]
    assert scanned < READ_AT_MOST, scanned
    # The whole page: both queued runs, claimed and read back.
    await store.create_run("q3", "wf", None, None, 0)
    before = await _scanned(store)
    got = await store.claim_runnable("w", 60_000, 10, 1)
    scanned = await _scanned(store) - before
    assert sorted(c.run.run_id for c in got) == ["q2", "q3"]
    assert scanned < READ_AT_MOST, scanned


INDEX_READS = ("first", "key", "last", "next", "prev")


async def _index_reads(store: MySQLStore) -> int:
    """The session's index reads so far: look-ups (``Handler_read_key``: a probe, or
    the start of a range) and steps along an index (``_next``, ``_prev``...)."""

    def body() -> Body[int]:
        found = yield Query(
            text_statement("SHOW SESSION STATUS LIKE 'Handler_read%'".replace("%", "%%")), {}
        )
        counts = {str(name): int(value) for name, value in found.rows}
        return sum(counts[f"Handler_read_{r}"] for r in INDEX_READS)

    return await store.driver.run(body())


QUEUED = 3000
"""Queued runs behind the ones a claim takes: what reading every ready run would add."""


@pytest.mark.parametrize("limited", [False, True], ids=["unlimited", "limited"])
async def test_a_claim_reads_about_limit_of_thousands_of_queued_runs(
    store: MySQLStore, limited: bool
) -> None:
    # ix_runs_claim (status, priority DESC, ready_at, run_id): the queued runs in claim
    # order, read from the first; the runs whose lease expired through ix_runs_expiry.
    # Before it, the pick read every ready run by ix_runs_ready and sorted them
    # (Handler_read_next: one per queued run). The rows of the limited claim's window
    # functions (Handler_read_rnd*: its sorts of the page) do not grow with the queue.
    await insert_queued(store, QUEUED)
    if limited:
        await store.upsert_queue("q", 0, concurrency=5)
    await store.claim_runnable("w", 60_000, 10, 1)  # the first compiles and warms up
    before = await _index_reads(store)
    got = await store.claim_runnable("w", 60_000, 10, 1)
    read = await _index_reads(store) - before
    assert [c.run.run_id for c in got] == [f"queued{i:05d}" for i in range(10, 20)]
    assert read < 2 * READ_AT_MOST, read


async def test_the_timers_firing_reads_the_due_runs_by_primary_key(
    store: MySQLStore, server_schema: str
) -> None:
    runs = f"{server_schema}.{store.tables.runs.name}"
    # Two runs asleep (as a settle with a sleep leaves them), one due at 10.
    asleep = ", ".join(
        f"('{run_id}', 'wf', '{RunStatus.PAUSED.value}', '{WaitKind.SLEEP.value}', 's1', "
        f"{wake_at}, 0, 0, 0, 0)"
        for run_id, wake_at in (("sleeper", 5), ("later", 50))
    )
    await _run_sql(
        store,
        f"INSERT INTO {runs} (run_id, workflow_id, status, wait_kind, wait_step_id, wake_at, "
        f"lease_token, next_event_index, created_at, updated_at) VALUES {asleep}",
    )
    before = await _scanned(store)
    fired = await store.fire_due_timers(10, 10)
    scanned = await _scanned(store) - before
    assert [(e.step_id, e.payload) for e in fired] == [("s1", {"wake_at": 5})]
    statuses = [await store.load_run(run_id) for run_id in ("sleeper", "later")]
    assert [r and r.status for r in statuses] == [RunStatus.QUEUED, RunStatus.PAUSED]
    assert scanned < READ_AT_MOST, scanned


@pytest.mark.parametrize("limit", [3, 40], ids=["slots", "past-the-slots"])
async def test_a_limited_claim_reads_the_runs_taken_by_primary_key(
    store: MySQLStore, limit: int
) -> None:
    # Up to MAX_SLOTS the batch lists the ids taken; past them it joins @wf_taken.
    await store.upsert_queue("q", 0, concurrency=100)
    for run_id in ("q1", "q2"):
        await store.create_run(run_id, "wf", None, None, 0, queue="q")
    before = await _scanned(store)
    got = await store.claim_runnable("w", 60_000, limit, 1, queues=["q"])
    scanned = await _scanned(store) - before
    assert [c.run.run_id for c in got] == ["q1", "q2"]
    assert scanned < READ_AT_MOST, scanned


LEASED = 20
"""Runs leased in the queue before the measured claims."""


async def test_a_limited_claim_costs_one_index_probe_more_and_reads_the_leases_once(
    store: MySQLStore,
) -> None:
    # docs/sql-stores.md, Queues: a queue's limit costs a claim one index look-up more
    # than the claim without limits (the start of the range of the queue's leases in
    # ix_runs_queue_leases), and that range is read once: a step per lease and one
    # past the last. Before, MariaDB 10.11 materialized the limit state once per
    # reference in the decision and looked candidates' queues up in it (per claim:
    # Handler_read_key 2 -> 7, Handler_read_next 2 per lease).
    for i in range(LEASED + 4):
        await store.create_run(f"q{i:02d}", "wf", None, None, 0, queue="q")
    # The queue has no row yet, so no limit: these are claims without one.
    assert len(await store.claim_runnable("w", 60_000, LEASED, 1)) == LEASED
    await store.claim_runnable("w", 60_000, 1, 1)  # warm: compiled
    unlimited = await _claim_one(store, f"q{LEASED + 1:02d}")
    await store.upsert_queue("q", 0, concurrency=100)
    # Warm: the store learns the queue has a limit (its next claims are limited ones).
    await store.claim_runnable("w", 60_000, 1, 1)
    limited = await _claim_one(store, f"q{LEASED + 3:02d}")
    leases = LEASED + 3
    # Index look-ups: the start of the leases' range.
    assert limited[0] - unlimited[0] <= 1, (limited, unlimited)
    # Steps: a step per lease and one past the last, and the pick's steps over the
    # two runs leased since the unlimited claim (the claimable runs' range holds the
    # running ones: an expired lease is claimable).
    assert limited[1] - unlimited[1] <= leases + 1 + 2, (limited, unlimited)


async def _claim_one(store: MySQLStore, expected: str) -> tuple[int, int]:
    """Claim one run (``expected``): the ``Handler_read_key`` and ``_next`` it cost."""
    key, next_ = await _probes(store)
    got = await store.claim_runnable("w", 60_000, 1, 1)
    key1, next1 = await _probes(store)
    assert [c.run.run_id for c in got] == [expected]
    return key1 - key, next1 - next_
