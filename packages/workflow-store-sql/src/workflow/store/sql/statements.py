"""Counting the SQL statements each hot operation sends (tests and ``bench/``).

One round trip per hot operation is the target; the tests pin today's counts so that
a change that adds a statement fails loudly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event

from workflow.runtime import Claimed, IntervalSpec, NewEvent, Pause, Wait

from .store import SQLStore


@contextlib.contextmanager
def recording(store: SQLStore) -> Iterator[list[str]]:
    """Collect the first word of every statement the store sends.

    On the engines the stores make for themselves (``OWNED_ENGINE``: autocommit
    throughout, transactions spelled out as ``BEGIN``…``COMMIT``) that is every round
    trip an operation makes; nothing is sent besides."""
    seen: list[str] = []

    def statement(conn: Any, cursor: Any, text: str, *_: Any) -> None:
        seen.append(text.split(None, 1)[0].upper())

    engine = store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)


async def hot_operation_statements(store: SQLStore, now: int = 1_000_000) -> dict[str, list[str]]:
    """Run each hot operation once on an empty store; statements per operation."""
    out: dict[str, list[str]] = {}

    async def run(name: str, call: Any) -> Any:
        with recording(store) as seen:
            result = await call
        out[name] = list(seen)
        return result

    await run("create_run", store.create_run("r1", "wf", None, {"a": 1}, now))
    claim = await run("claim_run", store.claim_run("r1", "w", 1000, now))
    assert isinstance(claim, Claimed)
    await run("heartbeat", store.heartbeat("r1", claim.lease, 1000, now + 1))
    await run("append_events_1", store.append_events("r1", claim.lease, 0, [NewEvent("E")], now))
    ten = [NewEvent("E", i) for i in range(10)]
    await run("append_events_10", store.append_events("r1", claim.lease, 1, ten, now))
    wait = Wait.signal("s", "go", timeout_at=now + 50)
    await run("settle_run", store.settle_run("r1", claim.lease, 11, [], Pause(wait), now + 2))
    await run("fire_due_timers", store.fire_due_timers(now + 100, 10))
    claim = await store.claim_run("r1", "w", 1000, now + 101)
    assert isinstance(claim, Claimed)
    await store.settle_run("r1", claim.lease, 11, [], Pause(Wait.signal("t", "go")), now + 102)
    await run("deliver_signal", store.deliver_signal("r1", "sig", "go", None, now + 103))
    for i in range(3):
        await store.create_run(f"q{i}", "wf", None, None, now)
    await run("claim_runnable", store.claim_runnable("w2", 1000, 3, now + 104))
    await store.upsert_schedule("s1", "wf", IntervalSpec(every_ms=1000), now)
    await store.upsert_schedule("s2", "wf", IntervalSpec(every_ms=1000), now)
    await run("fire_due_schedules", store.fire_due_schedules(now + 5000, 10))
    await run("list_runs", store.list_runs(limit=2))
    await run("load_run", store.load_run("r1"))
    return out
