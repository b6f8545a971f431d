"""Counting the SQL statements each hot operation sends (tests and ``bench/``).

One round trip per hot operation is the target; the tests pin today's counts so that
a change that adds a statement fails loudly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine.interfaces import CacheStats

from workflow.runtime import Claimed, IntervalSpec, NewEvent, Pause, Wait

from .execution import STORE_TAG
from .store import SQLStore

Seen = Callable[[Any], bool]
"""Whether a statement's execution context counts."""


@contextlib.contextmanager
def _statements(store: SQLStore, counts: Seen) -> Iterator[list[str]]:
    """The first word of every statement of ``store`` whose context ``counts``.

    Listened for on the Engine class: the statements run on the store's engine and on
    the engines over aiosqlite's threads, all tagged with the store's STORE_TAG."""
    seen: list[str] = []
    tag = store.engine.sync_engine.get_execution_options()[STORE_TAG]

    def statement(conn: sa.Connection, _c: Any, text: str, _p: Any, context: Any, _m: Any) -> None:
        if conn.get_execution_options().get(STORE_TAG) is tag and counts(context):
            seen.append(text.split(None, 1)[0].upper())

    event.listen(sa.Engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(sa.Engine, "before_cursor_execute", statement)


def recording(store: SQLStore) -> contextlib.AbstractContextManager[list[str]]:
    """Collect the first word of every statement the store sends.

    On the engines the stores make for themselves (``OWNED_ENGINE``: autocommit
    throughout, transactions spelled out as ``BEGIN``…``COMMIT``) that is every round
    trip an operation makes on a server; nothing is sent besides. (On SQLite the
    statements of one operation run together in one hop to the driver's thread: see
    :mod:`workflow.store.sql.execution`.)"""
    return _statements(store, lambda _context: True)


def compilations(store: SQLStore) -> contextlib.AbstractContextManager[list[str]]:
    """Collect the first word of every statement the store had to compile: not found
    in SQLAlchemy's compiled cache, or not cacheable at all (``BEGIN`` and ``COMMIT``
    are not compiled)."""
    return _statements(
        store,
        lambda context: (
            getattr(context, "compiled", None) is not None
            and context.cache_hit is not CacheStats.CACHE_HIT
        ),
    )


Recorder = Callable[[SQLStore], contextlib.AbstractContextManager[list[str]]]


async def hot_operation_statements(
    store: SQLStore, now: int = 1_000_000, *, record: Recorder = recording, tag: str = ""
) -> dict[str, list[str]]:
    """Run each hot operation once on an empty store (``tag`` is appended to every
    id, for another pass on the same store); what ``record`` saw of each (by default
    its statements)."""
    out: dict[str, list[str]] = {}

    async def run(name: str, call: Any) -> Any:
        with record(store) as seen:
            result = await call
        out[name] = list(seen)
        return result

    r1 = f"r1{tag}"
    await run("create_run", store.create_run(r1, "wf", None, {"a": 1}, now))
    claim = await run("claim_run", store.claim_run(r1, "w", 1000, now))
    assert isinstance(claim, Claimed)
    await run("heartbeat", store.heartbeat(r1, claim.lease, 1000, now + 1))
    await run("append_events_1", store.append_events(r1, claim.lease, 0, [NewEvent("E")], now))
    ten = [NewEvent("E", i) for i in range(10)]
    await run("append_events_10", store.append_events(r1, claim.lease, 1, ten, now))
    wait = Wait.signal("s", "go", timeout_at=now + 50)
    await run("settle_run", store.settle_run(r1, claim.lease, 11, [], Pause(wait), now + 2))
    await run("fire_due_timers", store.fire_due_timers(now + 100, 10))
    claim = await store.claim_run(r1, "w", 1000, now + 101)
    assert isinstance(claim, Claimed)
    await store.settle_run(r1, claim.lease, 11, [], Pause(Wait.signal("t", "go")), now + 102)
    await run("deliver_signal", store.deliver_signal(r1, f"sig{tag}", "go", None, now + 103))
    for i in range(3):
        await store.create_run(f"q{i}{tag}", "wf", None, None, now)
    await run("claim_runnable", store.claim_runnable("w2", 1000, 3, now + 104))
    await store.upsert_schedule(f"s1{tag}", "wf", IntervalSpec(every_ms=1000), now)
    await store.upsert_schedule(f"s2{tag}", "wf", IntervalSpec(every_ms=1000), now)
    await run("fire_due_schedules", store.fire_due_schedules(now + 5000, 10))
    await run("list_runs", store.list_runs(limit=2))
    await run("load_run", store.load_run(r1))
    return out


async def recompiled(store: SQLStore) -> dict[str, list[str]]:
    """The hot operations that compile a statement although they ran before (on an
    empty store): once warm, an operation should compile nothing."""
    await hot_operation_statements(store, tag="warm")
    seen = await hot_operation_statements(store, record=compilations, tag="again")
    return {op: compiled for op, compiled in seen.items() if compiled}
