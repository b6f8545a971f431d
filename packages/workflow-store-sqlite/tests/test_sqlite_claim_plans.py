"""A claim reads the queued runs it takes, not every ready run (docs/sql-stores.md,
Queues): SQLite's plan of the pick reads ``ix_runs_claim`` in claim order, with no
sort of the queued runs, however many are queued. A plan, not a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from workflow.contract_tests.sql_plans import explain, insert_queued
from workflow.store.sqlite.store import SQLiteStore

QUEUED = 3000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore.from_path(tmp_path / "plans.db")
    await store.create_schema()
    await insert_queued(store, QUEUED)
    try:
        yield store
    finally:
        await store.close()


def _steps(plan: Sequence[Sequence[Any]], name: str) -> list[str]:
    """The details of the ``EXPLAIN QUERY PLAN`` nodes right below the one that
    computes the subquery ``name``: its own reads and sorts, not those of the
    subqueries it runs (rows: id, parent, notused, detail)."""
    (top,) = [
        row[0] for row in plan if str(row[3]) in (f"CO-ROUTINE {name}", f"MATERIALIZE {name}")
    ]
    return [str(row[3]) for row in plan if row[1] == top]


def _reads_the_claim_index(store: SQLiteStore, half: list[str]) -> None:
    index = f"ix_{store.tables.prefix}runs_claim"
    assert any(f"INDEX {index} (status=?)" in step for step in half), half
    assert not any("TEMP B-TREE FOR ORDER BY" in step for step in half), half


async def test_the_claim_of_many_reads_the_queued_runs_in_claim_order(
    store: SQLiteStore,
) -> None:
    plan = await explain(
        store, store._claim_candidates(), {"p_now": 1, "p_limit": 10}, "EXPLAIN QUERY PLAN"
    )
    _reads_the_claim_index(store, _steps(plan.rows, "queued"))
    # The other half reads only the running runs whose lease expired.
    expired = _steps(plan.rows, "expired")
    assert any(f"ix_{store.tables.prefix}runs_expiry" in step for step in expired), expired
    claims = await store.claim_runnable("w", 60_000, 10, 1)
    assert [c.run.run_id for c in claims] == [f"queued{i:05d}" for i in range(10)]


async def _limited_claim_plan(store: SQLiteStore) -> Any:
    """``EXPLAIN QUERY PLAN`` of a limited claim's deciding statement (one queue with
    ``concurrency``): its rows."""
    await store.upsert_queue("q", 0, concurrency=5)
    takes = store._limited_takes(0, False, False)
    values = {"p_now": 1, "p_limit": 10, "p_page": 26}
    return (await explain(store, takes, values, "EXPLAIN QUERY PLAN")).rows


async def test_the_limited_claim_picks_the_queued_runs_in_claim_order(
    store: SQLiteStore,
) -> None:
    plan = await _limited_claim_plan(store)
    _reads_the_claim_index(store, _steps(plan, "queued"))


async def test_the_limited_claim_counts_only_the_leases_of_queues_with_a_key_limit(
    store: SQLiteStore,
) -> None:
    # Joined to ``lim``, the per-key count read every live lease of every queue
    # (``ix_runs_expiry``) and then looked for its queue: work that grew with the
    # leases of unlimited queues, at every limited claim.
    plan = await _limited_claim_plan(store)
    keyed = _steps(plan, "keyed")
    prefix = store.tables.prefix
    assert any(f"INDEX ix_{prefix}runs_queue_leases (queue=?" in step for step in keyed), keyed
    assert not any(f"ix_{prefix}runs_expiry" in step for step in keyed), keyed
