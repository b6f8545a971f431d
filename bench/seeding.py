"""Seeding many runs or schedules fast, for the scale suite.

One template is made through the store API (so its row is exactly what the store
writes), then cloned ``n`` times with new ids and times:

- SQL stores: the template row is read back and inserted again in chunks of
  ``CHUNK`` rows with one multi-row ``executemany`` per chunk (SQLAlchemy core, bound
  parameters; SQLAlchemy batches them into multi-row INSERTs where the driver allows);
- Redis: the template hash is read back and each clone is written with ``HSET``
  plus the index entries the store's scripts would add (``ZADD``), in pipelines of
  ``CHUNK`` commands without MULTI;
- the in-process store: through the API, ``CONCURRENCY`` calls at a time (there is
  no lower level to write to, and it is fast enough).

Clones differ from the template only in id and times; each scale measurement checks
that the operation then finds the seeded items (a claim returns 10 runs, etc.).

After a bulk load the SQL tables are ``ANALYZE``d: a table that grows over weeks has
current planner statistics, one filled in a second does not (MariaDB then chose a full
scan and filesort for ``list_runs`` page 1 at 100k runs, and an index scan once
analyzed), and the benchmark is about the first case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import sqlalchemy as sa

from workflow.runtime import (
    Claimed,
    ExecutionStore,
    IntervalSpec,
    Overlap,
    Pause,
    Wait,
)
from workflow.store.redis.keys import created_member, escape
from workflow.store.redis.store import RedisStore
from workflow.store.sql import SQLStore

from .redis_layout import Layout

CHUNK = 5_000
CONCURRENCY = 64
LEASE_MS = 10**9
FAR = 10**12
"""Schedule interval: a seeded schedule fires once and not again during the run."""

Vary = Callable[[int], Mapping[str, Any]]
"""Clone ``i``'s values that differ from the template (SQL column names)."""


async def _sql_clone(
    store: SQLStore, table: sa.Table, key: str, key_value: str, n: int, vary: Vary
) -> None:
    await asyncio.to_thread(_sql_clone_sync, store, table, key, key_value, n, vary)


def _sql_clone_sync(
    store: SQLStore, table: sa.Table, key: str, key_value: str, n: int, vary: Vary
) -> None:
    """On the store's synchronous admin engine (its schema is mapped already)."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c[key] == key_value)).one()
        template = dict(row._mapping)
        # The admin engine runs in autocommit: each executemany commits on its own;
        # commit() only ends SQLAlchemy's autobegun Transaction object.
        for start in range(0, n, CHUNK):
            rows = [{**template, **vary(i)} for i in range(start, min(n, start + CHUNK))]
            conn.execute(sa.insert(table), rows)
            conn.commit()
        _analyze(conn, store, table)


def _analyze(conn: sa.Connection, store: SQLStore, table: sa.Table) -> None:
    """Fresh planner statistics for ``table`` (a constant of ours, quoted by the
    dialect: no user value reaches this statement)."""
    dialect = store.engine.dialect
    preparer = dialect.identifier_preparer
    name = preparer.format_table(table, use_schema=False)
    if store.schema is not None:
        name = f"{preparer.quote_schema(store.schema)}.{name}"
    keyword = "ANALYZE TABLE" if dialect.name in ("mysql", "mariadb") else "ANALYZE"
    conn.exec_driver_sql(f"{keyword} {name}")
    conn.commit()


async def _redis_pipeline(store: RedisStore, commands: list[tuple[Any, ...]]) -> None:
    client = store.client
    for start in range(0, len(commands), CHUNK):
        pipe = client.pipeline(transaction=False)
        for command in commands[start : start + CHUNK]:
            pipe.execute_command(*command)
        await pipe.execute()


async def _redis_clone_runs(
    store: RedisStore, template_id: str, n: int, ids: Callable[[int], str], fields: Vary
) -> None:
    """Clone a run's hash; ``fields(i)`` are Redis field names (``ready``, ``w_wake``…).
    Index entries follow the template's status, as the scripts' ``sync`` does."""
    keys = Layout(store.keys)
    template = cast("dict[str, str]", await store.client.hgetall(keys.run(template_id)))
    status = template["status"]
    commands: list[tuple[Any, ...]] = []
    for i in range(n):
        run_id = ids(i)
        values = {**template, **{k: str(v) for k, v in fields(i).items()}, "id": run_id}
        member = created_member(int(values["created"]), run_id)
        values["cm"] = member
        flat = [x for kv in values.items() for x in kv]
        h = escape(run_id)
        commands.append(("HSET", keys.run(run_id), *flat))
        commands.append(("ZADD", keys.run_index("created", run_id), 0, member))
        commands.append(("ZADD", keys.created_by_workflow(values["wf"], run_id), 0, member))
        if status == "queued":
            commands.append(("ZADD", keys.run_index("queued", run_id), values["ready"], h))
            # The claim order (priority, ready_at, run_id), over all queues and per
            # queue, as the scripts' `sync` writes it (lua.py, ready_member).
            member = ready_member(values.get("po"), values["ready"], h)
            commands.append(("HSET", keys.run(run_id), "rm", member))
            commands.append(("ZADD", keys.run_index("ready", run_id), 0, member))
            queue = escape(values.get("q") or "default")
            commands.append(("ZADD", keys.run_index(f"qr:{queue}", run_id), 0, member))
        elif status == "paused" and values.get("w_wake"):
            commands.append(("ZADD", keys.run_index("timers", run_id), values["w_wake"], h))
    await _redis_pipeline(store, commands)


DEFAULT_PRIORITY_ORDER = "2147483647"
"""The inverted priority of priority 0 in a ready member (lua.py, ``DEFAULT_PO``)."""


def ready_member(priority_order: str | None, ready: str, escaped: str) -> str:
    """A queued run's member of the ``ready`` indexes, as lua.py's ``ready_member``
    spells it: inverted priority, ready_at in 15 digits, the run id's hex."""
    return f"{priority_order or DEFAULT_PRIORITY_ORDER}:{ready.zfill(15)}:{escaped}"


async def _api_each(n: int, call: Callable[[int], Awaitable[object]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    await asyncio.gather(*(one(i) for i in range(n)))


def queued_id(i: int) -> str:
    return f"q-{i:08d}"


def timer_id(i: int) -> str:
    return f"t-{i:08d}"


def schedule_id(i: int) -> str:
    return f"s-{i:08d}"


async def seed_queued(store: ExecutionStore, n: int, base: int) -> None:
    """``n`` queued runs, run ``i`` created and ready at ``base + i``."""
    if isinstance(store, SQLStore):
        await store.create_run("tpl-queued", "scale", None, {"x": 1}, base - 1)
        await _sql_clone(
            store,
            store.tables.runs,
            "run_id",
            "tpl-queued",
            n,
            lambda i: {
                "run_id": queued_id(i),
                "created_at": base + i,
                "updated_at": base + i,
                "ready_at": base + i,
            },
        )
    elif isinstance(store, RedisStore):
        await store.create_run("tpl-queued", "scale", None, {"x": 1}, base - 1)
        await _redis_clone_runs(
            store,
            "tpl-queued",
            n,
            queued_id,
            lambda i: {"created": base + i, "updated": base + i, "ready": base + i},
        )
    else:
        await _api_each(
            n, lambda i: store.create_run(queued_id(i), "scale", None, {"x": 1}, base + i)
        )


async def _paused_template(store: ExecutionStore, run_id: str, now: int) -> None:
    await store.create_run(run_id, "scale", None, {"x": 1}, now)
    claim = await store.claim_run(run_id, "seed", LEASE_MS, now)
    assert isinstance(claim, Claimed), claim
    await store.settle_run(run_id, claim.lease, 0, [], Pause(Wait.sleep("nap", now + 1)), now)


async def seed_timers(store: ExecutionStore, n: int, base: int) -> None:
    """``n`` paused runs whose sleep timer fell due at ``base + i``."""
    if isinstance(store, SQLStore):
        await _paused_template(store, "tpl-timer", base - 10)
        await _sql_clone(
            store,
            store.tables.runs,
            "run_id",
            "tpl-timer",
            n,
            lambda i: {
                "run_id": timer_id(i),
                "created_at": base + i,
                "updated_at": base + i,
                "wake_at": base + i,
            },
        )
    elif isinstance(store, RedisStore):
        await _paused_template(store, "tpl-timer", base - 10)
        await _redis_clone_runs(
            store,
            "tpl-timer",
            n,
            timer_id,
            lambda i: {"created": base + i, "updated": base + i, "w_wake": base + i},
        )
    else:

        async def one(i: int) -> None:
            await _paused_template(store, timer_id(i), base + i - 1)

        await _api_each(n, one)


async def seed_schedules(store: ExecutionStore, n: int, base: int) -> None:
    """``n`` enabled schedules, schedule ``i`` due at ``base + i``."""

    def declare(sid: str, first: int) -> Awaitable[object]:
        spec = IntervalSpec(every_ms=FAR, anchor_ms=first)
        return store.upsert_schedule(sid, "scale", spec, first - 1, overlap=Overlap.ALLOW)

    if isinstance(store, SQLStore):
        await declare("tpl-sched", base)
        await _sql_clone(
            store,
            store.tables.schedules,
            "schedule_id",
            "tpl-sched",
            n,
            lambda i: {"schedule_id": schedule_id(i), "next_fire_at": base + i},
        )
    elif isinstance(store, RedisStore):
        await declare("tpl-sched", base)
        keys = Layout(store.keys)
        template = cast("dict[str, str]", await store.client.hgetall(keys.schedule("tpl-sched")))
        commands: list[tuple[Any, ...]] = []
        for i in range(n):
            sid = schedule_id(i)
            values = {**template, "id": sid, "next": str(base + i)}
            flat = [x for kv in values.items() for x in kv]
            commands.append(("HSET", keys.schedule(sid), *flat))
            commands.append(("ZADD", keys.schedule_index("schedules", sid), 0, escape(sid)))
            commands.append(("ZADD", keys.schedule_index("sched_due", sid), base + i, escape(sid)))
        await _redis_pipeline(store, commands)
    else:
        await _api_each(n, lambda i: declare(schedule_id(i), base + i))
