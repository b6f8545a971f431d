"""Counting the SQL statements each hot operation sends (tests and ``bench/``).

One round trip per hot operation is the target; the tests pin today's counts so that
a change that adds a statement fails loudly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from workflow.runtime import Claimed, Finish, IntervalSpec, NewEvent, Pause, Wait

from .store import SQLStore


@contextlib.contextmanager
def recording(store: SQLStore) -> Iterator[list[str]]:
    """Collect the first word of every statement the store sends.

    Connections are in autocommit, transactions spelled out as ``BEGIN``…``COMMIT``:
    on a server this is every round trip an operation makes; nothing is sent besides.
    (On SQLite and MySQL the statements of one operation run together in one hop to
    the connection's thread: see :mod:`workflow.store.sql.driver`.)"""
    seen: list[str] = []
    driver = store.driver
    previous, driver.seen = driver.seen, seen
    try:
        yield seen
    finally:
        driver.seen = previous


@contextlib.contextmanager
def texts(store: SQLStore) -> Iterator[list[str]]:
    """Collect the text of every statement the store sends, as sent."""
    seen: list[str] = []
    driver = store.driver
    previous, driver.texts = driver.texts, seen
    try:
        yield seen
    finally:
        driver.texts = previous


@contextlib.contextmanager
def compilations(store: SQLStore) -> Iterator[list[str]]:
    """Collect the first word of every statement the store had to compile: not
    compiled before (a new shape) or compiled for one call only."""
    seen: list[str] = []
    compiler = store.compiler
    previous, compiler.compiled = compiler.compiled, seen
    try:
        yield seen
    finally:
        compiler.compiled = previous


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
    await run(
        "create_run_claimed",
        store.create_run(f"c1{tag}", "wf", None, None, now, owner="w", lease_ms=1000),
    )
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


async def hot_operation_sql(store: SQLStore) -> str:
    """The SQL each hot operation sends on an empty store, as one readable text: a
    ``-- operation`` heading, then each statement on its own, ``;``-terminated. The
    store's schema, if any, is written ``{schema}`` so the text does not depend on it
    (the golden files each dialect package's tests compare with)."""
    seen = await hot_operation_statements(store, record=texts)
    out: list[str] = []
    for op, statements in seen.items():
        out.append(f"-- {op}: {len(statements)} round trip(s)")
        for sql in statements:
            if store.schema is not None:
                sql = sql.replace(store.schema, "{schema}")
            out.append(sql.strip() + ";")
        out.append("")
    return "\n".join(out)


async def child_operation_statements(
    store: SQLStore, now: int = 1_000_000, *, record: Recorder = recording
) -> dict[str, list[str]]:
    """What a run's end and a parent's cancellation send, without a parent and with one
    (docs/sql-stores.md, Children: the cost table), on an empty store; what ``record``
    saw of each (by default its statements)."""
    out: dict[str, list[str]] = {}

    async def run(name: str, call: Any) -> Any:
        with record(store) as seen:
            result = await call
        out[name] = list(seen)
        return result

    async def claimed(run_id: str, **options: Any) -> Claimed:
        await store.create_run(run_id, "wf", None, None, now, **options)
        claim = await store.claim_run(run_id, "w", 1000, now)
        assert isinstance(claim, Claimed)
        return claim

    alone = await claimed("alone")
    await run("settle_finish", store.settle_run("alone", alone.lease, 0, [], Finish(1), now + 1))
    parent = await claimed("p")
    await store.settle_run("p", parent.lease, 0, [], Pause(Wait.child("s", "p@c")), now + 1)
    await run("create_child", store.create_run("p@c", "wf", None, None, now, parent_run_id="p"))
    child = await store.claim_run("p@c", "w", 1000, now + 2)
    assert isinstance(child, Claimed)
    await run(
        "settle_finish_child",
        store.settle_run("p@c", child.lease, 0, [], Finish(2), now + 3),
    )
    await store.create_run("lone", "wf", None, None, now)
    await run("cancel_run", store.cancel_run("lone", "stop", now + 4))
    await store.create_run("p@d", "wf", None, None, now, parent_run_id="p")
    await run("cancel_child", store.cancel_run("p@d", "stop", now + 5))
    return out
