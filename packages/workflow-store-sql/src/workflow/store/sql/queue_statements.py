"""Counting what ``claim_runnable``, ``claim_run`` and ``create_run(..., owner=)`` send
while queues have limits (tests and ``bench/``; ``docs/sql-stores.md``, Queues): the
limited claim's round trips are pinned per store, as the hot operations' are
(:mod:`.statements`)."""

from __future__ import annotations

from workflow.runtime import Claimed, Created, RateLimit

from .statements import Recorder, recording
from .store import SQLStore


async def limited_claim_statements(
    store: SQLStore, now: int = 1_000_000, *, record: Recorder = recording
) -> dict[str, list[str]]:
    """What ``claim_runnable(limit=1)`` sends with queue limits off and on, on an empty
    store: ``unlimited`` (no queue has limits), ``limited_first`` (the first claim
    after a limit appeared: the one-statement claim finds it, then the limited claim),
    ``limited`` (the next ones start with the limited claim), ``rate_limited`` (a
    queue with a rate limit: the claim also counts in its window); and ``claim_run``
    of a run in that queue (the one-statement claim leaves it to the limited claim)."""
    out: dict[str, list[str]] = {}
    for i in range(5):
        await store.create_run(f"lim{i}", "wf", None, None, now, queue="q")

    async def run(name: str) -> None:
        with record(store) as seen:
            got = await store.claim_runnable("w", 1000, 1, now + 1)
        assert len(got) == 1, (name, got)
        out[name] = list(seen)

    await run("unlimited")
    await store.upsert_queue("q", now, concurrency=100)
    await run("limited_first")
    await run("limited")
    await store.upsert_queue("q", now, concurrency=100, rate_limit=RateLimit(100, 60_000))
    await run("rate_limited")
    await store.create_run("one", "wf", None, None, now, queue="q")
    with record(store) as seen:
        claim = await store.claim_run("one", "w", 1000, now + 1)
    assert isinstance(claim, Claimed), claim
    out["claim_run"] = list(seen)
    return out


async def limited_create_statements(
    store: SQLStore, now: int = 1_000_000, *, record: Recorder = recording
) -> dict[str, list[str]]:
    """What ``create_run(..., owner=)`` sends in a queue with limits, on an empty store:
    ``unlimited`` (no limits: the one-statement insert), ``limited_first`` (the first
    create in a queue after a limit appeared: the one-statement insert inserts
    nothing, then the limited create), ``limited`` (the next ones in that queue start
    with the limited create), ``rate_limited`` (a queue with a rate limit: the claim
    also counts in its window), ``full`` (no room: created queued), ``existing`` (the
    id is taken: the limited create fails on it, a read answers)."""
    out: dict[str, list[str]] = {}

    async def run(name: str, run_id: str, claimed: bool) -> None:
        with record(store) as seen:
            got = await store.create_run(
                run_id, "wf", None, None, now, owner="w", lease_ms=1000, queue="q"
            )
        assert isinstance(got, Created), (name, got)
        assert (got.lease is not None) is claimed, (name, got)
        out[name] = list(seen)

    await run("unlimited", "c0", True)
    await store.upsert_queue("q", now, concurrency=4)
    await run("limited_first", "c1", True)
    await run("limited", "c2", True)
    await store.upsert_queue("q", now, concurrency=4, rate_limit=RateLimit(100, 60_000))
    await run("rate_limited", "c3", True)
    await run("full", "c4", False)
    with record(store) as seen:
        again = await store.create_run(
            "c4", "wf", None, None, now, owner="w", lease_ms=1000, queue="q"
        )
    assert not isinstance(again, Created), again
    out["existing"] = list(seen)
    return out
