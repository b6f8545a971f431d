"""A claim reads the queued runs it takes, not every ready run (docs/sql-stores.md,
Queues): with thousands of runs queued, PostgreSQL's executed plan of the pick
(``EXPLAIN ANALYZE``: rows each scan returned or filtered out) reads about ``limit``
index entries of ``ix_runs_claim``. Counted rows, not a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest
from postgres_server import SERVER, URL

from workflow.contract_tests.sql import empty_tables
from workflow.contract_tests.sql_plans import execute, explain, insert_queued, plan_nodes
from workflow.store.postgres.store import PostgresStore

QUEUED = 3000
READ_AT_MOST = 100
"""Rows the pick may read (10 claimed, a page of 26 for the limited claim): far below
:data:`QUEUED`, which reading every ready run adds."""


@pytest.fixture(scope="module")
def server_schema() -> Iterator[str]:
    yield from SERVER.schema("wf_plans")


@pytest.fixture
async def store(server_schema: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore.from_url(URL, schema=server_schema, table_prefix="plan_")
    await store.create_schema()
    await insert_queued(store, QUEUED)
    # As after autovacuum: the planner knows how many runs there are.
    await execute(store, f"ANALYZE {server_schema}.{store.tables.runs.name}")
    try:
        yield store
    finally:
        await empty_tables(store)
        await store.close()


async def _rows_read(store: PostgresStore, statement: Any, values: Mapping[str, Any]) -> int:
    """Rows the scans of the executed plan returned or filtered out, over all loops;
    and the claim index is among the indexes they read."""
    found = await explain(store, statement, values, "EXPLAIN (ANALYZE, FORMAT JSON)")
    (plan,) = found.rows[0][0]
    scans = [n for n in plan_nodes(plan["Plan"]) if str(n["Node Type"]).endswith("Scan")]
    indexes = {n.get("Index Name") for n in scans}
    assert f"ix_{store.tables.prefix}runs_claim" in indexes, indexes
    return sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
        for n in scans
        if n.get("Relation Name") == store.tables.runs.name
    )


async def test_the_claim_of_many_reads_about_limit_queued_runs(store: PostgresStore) -> None:
    read = await _rows_read(store, store._claim_candidates(), {"p_now": 1, "p_limit": 10})
    assert read < READ_AT_MOST, read
    claims = await store.claim_runnable("w", 60_000, 10, 1)
    assert [c.run.run_id for c in claims] == [f"queued{i:05d}" for i in range(10)]


async def test_the_limited_claim_reads_about_a_page_of_queued_runs(store: PostgresStore) -> None:
    await store.upsert_queue("q", 0, concurrency=5)
    takes = store._limited_takes(0, False, False)
    read = await _rows_read(store, takes, {"p_now": 1, "p_limit": 10, "p_page": 26})
    assert read < READ_AT_MOST, read


async def test_the_limited_claim_does_not_read_the_leases_of_other_queues(
    store: PostgresStore, server_schema: str
) -> None:
    # 2,000 of the runs leased (their queue has no limit), 20,000 more queued in the
    # limited queue: the limited claim counts the limited queue's leases (none) and,
    # per key, those of queues with a per-key limit (none). The per-key count read
    # all 2,000 leases and threw them away.
    for _ in range(2):
        await store.claim_runnable("busy", 10**9, 1000, 1)
    await insert_queued(store, 20_000, prefix="limited", at=10**6)
    runs = f"{server_schema}.{store.tables.runs.name}"
    await execute(store, f"UPDATE {runs} SET queue = 'q' WHERE starts_with(run_id, 'limited')")
    await execute(store, f"ANALYZE {runs}")
    await store.upsert_queue("q", 2, concurrency=5)
    takes = store._limited_takes(0, False, False)
    read = await _rows_read(store, takes, {"p_now": 3, "p_limit": 10, "p_page": 26})
    assert read < READ_AT_MOST, read
