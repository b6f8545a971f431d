"""What a claim costs on SQLite while queues have limits (docs/sql-stores.md, Queues)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from workflow.store.sql.queue_statements import limited_claim_statements, limited_create_statements
from workflow.store.sql.statements import recording
from workflow.store.sql.store import SQLStore
from workflow.store.sqlite.store import SQLiteStore

# claim_runnable(limit=1) with queue limits off and on (limited_claim_statements): the
# limited claim is one transaction (BEGIN IMMEDIATE serialises the writers, so nothing
# is locked) around one statement, the UPDATE … RETURNING whose WHERE is the decision,
# and the rate windows when the queue has a rate limit. The first limited claim also
# ran the one-statement claim, which found a limit (then the store starts with the
# limited claim). claim_run of a run in a limited queue: the one-statement claim and
# its read, then the limited claim for that run (its queue has a rate limit there).
LIMITED_CLAIM_BUDGET = {
    "unlimited": 1,
    "limited_first": 4,
    "limited": 3,
    "rate_limited": 4,
    "claim_run": 6,
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


async def _statements_and_hops(
    tmp_path: Path, measure: Callable[..., Awaitable[dict[str, list[str]]]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """What ``measure`` (limited_claim_statements or limited_create_statements) sees
    sent, and the hops it took, each on a fresh store."""
    found: list[dict[str, list[str]]] = []
    for name, record in (("statements", recording), ("hops", _hops)):
        store = SQLiteStore.from_path(tmp_path / f"{name}.db")
        await store.create_schema()
        try:
            found.append(await measure(store, record=record))
        finally:
            await store.close()
    return found[0], found[1]


async def test_a_limited_claim_is_one_hop_and_its_budgeted_statements(tmp_path: Path) -> None:
    seen, hops = await _statements_and_hops(tmp_path, limited_claim_statements)
    assert {op: len(statements) for op, statements in seen.items()} == LIMITED_CLAIM_BUDGET, seen
    assert seen["limited"] == ["BEGIN", "WITH", "COMMIT"]  # WITH: the deciding UPDATE
    assert {op: len(h) for op, h in hops.items()} == HOPS, hops


async def test_a_limited_claim_decides_again_only_for_runs_a_page_left(tmp_path: Path) -> None:
    # Each statement decides on a page of the runs still to take (limit 3: a0, a1, b0)
    # and claims what it takes; a1 is left (its key has room for one), so a second
    # statement, which counts a0 as leased and so no longer sees a1, takes c0. A claim
    # with nothing to take is one statement too.
    store = SQLiteStore.from_path(tmp_path / "rounds.db")
    await store.create_schema()
    try:
        await store.upsert_queue("q", 0, per_key_concurrency=1)
        for run_id, key in (("a0", "k1"), ("a1", "k1"), ("b0", "k2"), ("c0", "k3")):
            await store.create_run(run_id, "wf", None, None, 2, queue="q", partition_key=key)
        # A first claim finds the limit (the next ones start with the limited claim).
        await store.create_run("x", "wf", None, None, 0, queue="q", partition_key="k0")
        assert len(await store.claim_runnable("w", 60_000, 1, 1)) == 1
        with recording(store) as seen:
            got = await store.claim_runnable("w", 60_000, 3, 10)
        with recording(store) as idle:
            none = await store.claim_runnable("w", 60_000, 3, 10)
    finally:
        await store.close()
    assert sorted(c.run.run_id for c in got) == ["a0", "b0", "c0"]
    assert seen == ["BEGIN", "WITH", "WITH", "COMMIT"]
    assert none == []
    assert idle == ["BEGIN", "WITH", "COMMIT"]


# create_run(..., owner=) in a queue with limits (limited_create_statements): one
# transaction (BEGIN IMMEDIATE: nothing to lock) around the INSERT that decides
# (… RETURNING what it decided), and the rate window when the run was claimed in a
# queue with a rate limit. The first create in a queue after a limit appeared also ran
# the one-statement insert, which inserted nothing; an id that exists fails the
# INSERT (rolled back) and a read answers. Before (the LimitGate path): 2 hops, 7
# statements (8 with a rate limit) after the first INSERT.
LIMITED_CREATE_BUDGET = {
    "unlimited": 1,
    "limited_first": 4,
    "limited": 3,
    "rate_limited": 4,
    "full": 3,
    "existing": 4,
}
CREATE_HOPS = {
    "unlimited": 1,
    "limited_first": 2,
    "limited": 1,
    "rate_limited": 1,
    "full": 1,
    "existing": 2,
}


async def test_a_limited_create_is_one_hop_and_its_budgeted_statements(tmp_path: Path) -> None:
    seen, hops = await _statements_and_hops(tmp_path, limited_create_statements)
    assert {op: len(statements) for op, statements in seen.items()} == LIMITED_CREATE_BUDGET, seen
    assert seen["limited"] == ["BEGIN", "WITH", "COMMIT"]  # WITH: the deciding INSERT
    assert seen["rate_limited"] == ["BEGIN", "WITH", "UPDATE", "COMMIT"]
    assert {op: len(h) for op, h in hops.items()} == CREATE_HOPS, hops
