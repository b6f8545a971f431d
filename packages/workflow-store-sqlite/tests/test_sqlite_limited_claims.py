"""What a claim costs on SQLite while queues have limits (docs/sql-stores.md, Queues)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from workflow.store.sql.queue_statements import limited_claim_statements
from workflow.store.sql.store import SQLStore
from workflow.store.sqlite.store import SQLiteStore

# claim_runnable(limit=1) with queue limits off and on (limited_claim_statements): the
# limited claim is one transaction (BEGIN IMMEDIATE serialises the writers, so nothing
# is locked): the decision, the claim, the rate windows when the queue has a rate
# limit. The first limited claim also ran the one-statement claim, which found a limit
# (then the store starts with the limited claim). claim_run of a run in a limited
# queue: the one-statement claim and its read, then the limited claim for that run.
LIMITED_CLAIM_BUDGET = {
    "unlimited": 1,
    "limited_first": 5,
    "limited": 4,
    "rate_limited": 5,
    "claim_run": 7,
}
HOPS = {"unlimited": 1, "limited_first": 2, "limited": 1, "rate_limited": 1, "claim_run": 2}
"""Hops to the connection's thread (test_sqlite_contract counts every operation's hops
at the thread pool; here the driver's own count)."""


@contextlib.contextmanager
def _hops(store: SQLStore) -> Iterator[list[str]]:
    seen: list[str] = []
    before = store.driver.hops
    try:
        yield seen
    finally:
        seen.extend(["hop"] * (store.driver.hops - before))


async def test_a_limited_claim_is_one_hop_and_its_budgeted_statements(tmp_path: Path) -> None:
    found: dict[str, dict[str, list[str]]] = {}
    for name in ("statements", "hops"):
        store = SQLiteStore.from_path(tmp_path / f"{name}.db")
        await store.create_schema()
        try:
            if name == "statements":
                found[name] = await limited_claim_statements(store)
            else:
                found[name] = await limited_claim_statements(store, record=_hops)
        finally:
            await store.close()
    seen, hops = found["statements"], found["hops"]
    assert {op: len(statements) for op, statements in seen.items()} == LIMITED_CLAIM_BUDGET, seen
    assert {op: len(h) for op, h in hops.items()} == HOPS, hops
