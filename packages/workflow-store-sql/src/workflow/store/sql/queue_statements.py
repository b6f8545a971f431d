"""Counting what ``claim_runnable`` and ``claim_run`` send while queues have limits
(tests and ``bench/``; ``docs/sql-stores.md``, Queues): the limited claim's round
trips are pinned per store, as the hot operations' are (:mod:`.statements`)."""

from __future__ import annotations

from workflow.runtime import Claimed, RateLimit

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
