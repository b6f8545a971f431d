"""What a SQL store's statement reads, for the tests that bound it (plans and the
servers' counters, never times): bulk seeding of queued runs, and a store's own
statement run under ``EXPLAIN`` on the store's own connection (its schema, its
parameters, its dialect's rendering). Needs ``workflow-store-sql``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from workflow.runtime.records import RunStatus
from workflow.store.sql.compiled import Rows, text_statement
from workflow.store.sql.driver import Body, Query
from workflow.store.sql.store import SQLStore

__all__ = ["execute", "explain", "insert_queued", "plan_nodes"]

_QUEUED_COLUMNS = ("run_id", "workflow_id", "status", "created_at", "updated_at", "ready_at")


async def insert_queued(store: SQLStore, n: int, *, prefix: str = "queued", at: int = 0) -> None:
    """Insert ``n`` queued runs (``<prefix>00000``…, ready at ``at``, ``at + 1``…) in
    one statement per thousand, as ``create_run`` would leave them."""
    runs = store.tables.runs
    insert = store.compiler.compile(
        sa.insert(runs).values(
            {c: sa.bindparam(f"p_{c}", type_=runs.c[c].type) for c in _QUEUED_COLUMNS}
        )
    )
    values = [
        {
            "p_run_id": f"{prefix}{i:05d}",
            "p_workflow_id": "wf",
            "p_status": RunStatus.QUEUED.value,
            "p_created_at": at + i,
            "p_updated_at": at + i,
            "p_ready_at": at + i,
        }
        for i in range(n)
    ]

    def body() -> Body[None]:
        for start in range(0, n, 1000):
            yield Query(insert, values[start : start + 1000])

    await store.driver.run(body())


async def execute(store: SQLStore, sql: str) -> Rows:
    """Run ``sql``, a text without parameters, on the store's connection."""

    def body() -> Body[Rows]:
        return (yield Query(text_statement(sql), {}))

    return await store.driver.run(body())


async def explain(
    store: SQLStore, statement: sa.ClauseElement, values: Mapping[str, Any], prefix: str
) -> Rows:
    """The rows of ``prefix`` (``EXPLAIN QUERY PLAN``, ``EXPLAIN (ANALYZE, FORMAT
    JSON)``…) followed by ``statement`` as the store compiles it, with ``values``."""
    compiled = store.compiler.compile(statement)
    explained = dataclasses.replace(compiled, sql=f"{prefix} {compiled.sql}")

    def body() -> Body[Rows]:
        return (yield Query(explained, dict(values)))

    return await store.driver.run(body())


def plan_nodes(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every node of a PostgreSQL JSON plan (``Plan``, then its ``Plans``), depth first."""
    nodes = [plan]
    for child in plan.get("Plans", ()):
        nodes += plan_nodes(child)
    return nodes
