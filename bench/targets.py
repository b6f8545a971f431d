"""The stores under test, each opened on fresh storage and removed afterwards:
the memory store, a SQLite file in a temporary directory, PostgreSQL in its own new
schema (twice: without and with server-side prepared statements), MariaDB/MySQL in
its own new database, Redis under its own key prefix, and Redis Cluster (3 masters the
target starts, bench.redis_cluster) under its own key prefix."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from workflow.runtime import ExecutionStore, InMemoryStore
from workflow.store.mysql.store import MySQLStore
from workflow.store.postgres.store import PostgresStore
from workflow.store.redis.store import RedisStore
from workflow.store.sql import SQLStore
from workflow.store.sqlite.store import SQLiteStore

from .counting import Recorder, redis_round_trips, sql_recorder, thread_hops
from .cpu import MySQLCpu, PostgresCpu, RedisCpu, ServerCpu
from .raw_floor import MySQLFloor, PostgresFloor, RawFloor, SQLiteFloor
from .raw_floor_redis import RedisFloor
from .redis_cluster import ClusterMissing
from .redis_cluster import cluster_url as redis_cluster_url
from .redis_layout import Layout

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


SERVER_SETUP = 4
"""Setup calls in flight on a server store's helper handle."""


class ServerMissing(Exception):
    """The store's server does not accept connections: the store is skipped."""


@dataclass
class Target:
    name: str
    where: str
    fresh: Callable[[], Awaitable[ExecutionStore]]
    """Empty the store (or make a new one) and return it: each operation starts clean."""
    sql: SQLStore | None = None
    floor: RawFloor | None = None
    helper: ExecutionStore | None = None
    """A second handle (own connection pool) for concurrent setup."""
    setup_concurrency: int = 1
    recorder: Recorder | None = None
    """Counts what one store call sends (SQL statements, Redis round trips)."""
    open_floor: Callable[[], Awaitable[RawFloor]] | None = None
    """Another raw floor on its own connection (the concurrent mode opens several)."""
    url: str | None = None
    """The server URL the store was opened from (e2e opens more handles on it)."""
    store: ExecutionStore | None = None
    """The store handle itself (``fresh()`` empties it and returns it)."""
    unit: str = "stmts"
    """What ``recorder`` counts: SQL statements, Redis round trips or SQLite "hops"
    (hops to the connection's thread)."""
    open_handle: Callable[[], ExecutionStore] | None = None
    """Another handle on the same data with its own connection pool (what another
    worker process would have); None for the in-process store, which is shared."""
    server_cpu: ServerCpu | None = None
    """Samples the server CPU of this process's connections (None: no server, or
    its processes are not on this machine); on Redis, the whole server's."""


TargetOpener = Callable[[], contextlib.AbstractAsyncContextManager[Target]]


@contextlib.asynccontextmanager
async def memory() -> AsyncIterator[Target]:
    async def fresh() -> ExecutionStore:
        return InMemoryStore()

    yield Target("memory", "in-process InMemoryStore", fresh)


def _delete_all(store: SQLStore) -> None:
    """On the store's synchronous admin engine (autocommit; the schema is mapped)."""
    t = store.tables
    with store.engine.connect() as conn:
        # Children first: MySQL will not delete rows other rows still reference.
        for table in (t.events, t.inbox, t.schedules, t.runs, t.queues):
            conn.execute(sa.delete(table))


async def _emptied(store: SQLStore) -> ExecutionStore:
    await asyncio.to_thread(_delete_all, store)
    return store


def _drop(store: SQLStore, statement: str) -> None:
    with store.engine.connect() as conn:
        conn.execute(sa.text(statement))
    store.engine.dispose()


@contextlib.asynccontextmanager
async def sqlite() -> AsyncIterator[Target]:
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as tmp:
        path = os.path.join(tmp, "bench.db")
        store = SQLiteStore.from_path(path)
        try:
            await store.create_schema()
            floor = await SQLiteFloor.connect(path, store.tables.runs.name)
            try:
                yield Target(
                    "sqlite",
                    path,
                    lambda: _emptied(store),
                    store,
                    floor,
                    recorder=thread_hops,
                    unit="hops",
                    open_floor=lambda: SQLiteFloor.connect(path, store.tables.runs.name),
                    url=f"sqlite:///{path}",
                    store=store,
                    open_handle=lambda: SQLiteStore.from_path(path),
                )
            finally:
                await floor.close()
        finally:
            await store.close()


async def _probe(url: str, what: str, default_port: int) -> dict[str, Any]:
    """The URL's connection parameters, once its host accepts TCP connections."""
    parsed = make_url(url)
    host, port = parsed.host or "127.0.0.1", parsed.port or default_port
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=3)
    except (OSError, TimeoutError) as exc:
        raise ServerMissing(f"{what} not reachable at {host}:{port} ({exc!r})") from None
    writer.close()
    await writer.wait_closed()
    params: dict[str, Any] = {"host": host, "port": port, "user": parsed.username or "root"}
    if parsed.password:
        params["password"] = parsed.password
    return params


def _schema_name() -> str:
    return f"wf_bench_{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def _sql_server(
    name: str,
    url: str,
    open_store: Callable[..., SQLStore],
    open_floor: Callable[[str, str], Awaitable[RawFloor]],
    where: str,
    drop: str,
    open_cpu: Callable[[], Awaitable[ServerCpu | None]],
) -> AsyncIterator[Target]:
    """A SQL store on its own new schema (``drop`` removes it, ``{}`` its name), with
    a helper handle, the raw floor on the same tables and the server CPU meter."""
    schema = _schema_name()
    store = open_store(url, schema=schema)
    helper = open_store(url, schema=schema)
    server_cpu: ServerCpu | None = None
    try:
        await store.create_schema()
        runs = store.tables.runs.name
        server_cpu = await open_cpu()
        floor = await open_floor(schema, runs)
        try:
            yield Target(
                name,
                where.format(schema),
                lambda: _emptied(store),
                store,
                floor,
                helper,
                SERVER_SETUP,
                recorder=sql_recorder(store),
                open_floor=lambda: open_floor(schema, runs),
                url=url,
                store=store,
                open_handle=lambda: open_store(url, schema=schema),
                server_cpu=server_cpu,
            )
        finally:
            await floor.close()
    finally:
        try:
            if server_cpu is not None:
                await server_cpu.close()
            await helper.close()
            await store.close()
        finally:
            await asyncio.to_thread(_drop, store, drop.format(schema))


@contextlib.asynccontextmanager
async def _postgres(name: str, prepare: bool, notify: bool = True) -> AsyncIterator[Target]:
    """``prepare``: server-side prepared statements, on the store's connections and
    on the raw floor's alike (psycopg ``prepare_threshold=0`` against ``None``).
    ``notify``: the store's wake-up NOTIFYs (``notify=false`` measures their cost)."""
    params = await _probe(POSTGRES_URL, "PostgreSQL", 5432)
    dbname = make_url(POSTGRES_URL).database
    conninfo = {**params, "dbname": dbname}
    prepared = ", prepared statements" if prepare else ""
    prepared += "" if notify else ", notify=false"
    async with _sql_server(
        name,
        POSTGRES_URL,
        functools.partial(PostgresStore.from_url, prepare=prepare, notify=notify),
        lambda schema, runs: PostgresFloor.connect(conninfo, schema, runs, prepare=prepare),
        f"{params['host']}:{params['port']}/{dbname}, schema {{}}{prepared}",
        'DROP SCHEMA IF EXISTS "{}" CASCADE',
        lambda: PostgresCpu.open(conninfo),
    ) as target:
        yield target


def postgres() -> contextlib.AbstractAsyncContextManager[Target]:
    return _postgres("postgres", prepare=False)


def postgres_prepared() -> contextlib.AbstractAsyncContextManager[Target]:
    return _postgres("postgres-prepared", prepare=True)


def postgres_quiet() -> contextlib.AbstractAsyncContextManager[Target]:
    return _postgres("postgres-quiet", prepare=False, notify=False)


@contextlib.asynccontextmanager
async def mysql() -> AsyncIterator[Target]:
    params = await _probe(MYSQL_URL, "MySQL/MariaDB", 3306)
    async with _sql_server(
        "mysql",
        MYSQL_URL,
        MySQLStore.from_url,
        lambda schema, runs: MySQLFloor.connect(params, schema, runs),
        f"{params['host']}:{params['port']}, database {{}}",
        "DROP DATABASE IF EXISTS `{}`",
        lambda: MySQLCpu.open(params),
    ) as target:
        yield target


async def drop_keys(store: RedisStore) -> None:
    """Every key of the store's prefix (and only those: see ``Keyspace.pattern``)."""
    client = store.client
    batch: list[str] = []
    async for key in client.scan_iter(match=store.keys.pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await client.unlink(*batch)
            batch.clear()
    if batch:
        await client.unlink(*batch)


async def _emptied_redis(store: RedisStore) -> ExecutionStore:
    await drop_keys(store)
    await store.create_schema()  # the keyspace revision key
    return store


@contextlib.asynccontextmanager
async def redis() -> AsyncIterator[Target]:
    params = await _probe(REDIS_URL, "Redis", 6379)
    prefix = f"{_schema_name()}:"
    store = RedisStore.from_url(REDIS_URL, prefix=prefix)
    helper = RedisStore.from_url(REDIS_URL, prefix=prefix)
    server_cpu = await RedisCpu.open(REDIS_URL)
    try:
        await store.create_schema()
        floor = await RedisFloor.connect(REDIS_URL, Layout(store.keys))
        try:
            yield Target(
                "redis",
                f"{params['host']}:{params['port']}, key prefix {prefix}",
                lambda: _emptied_redis(store),
                None,
                floor,
                helper,
                SERVER_SETUP,
                recorder=redis_round_trips,
                open_floor=lambda: RedisFloor.connect(REDIS_URL, Layout(store.keys)),
                url=REDIS_URL,
                store=store,
                unit="round trips",
                open_handle=lambda: RedisStore.from_url(REDIS_URL, prefix=prefix),
                server_cpu=server_cpu,
            )
        finally:
            await floor.close()
    finally:
        await server_cpu.close()
        await helper.close()
        await drop_keys(store)
        await store.close()


@contextlib.asynccontextmanager
async def redis_cluster() -> AsyncIterator[Target]:
    """The Redis store on a Redis Cluster (bench.redis_cluster: BENCH_REDIS_CLUSTER_URL,
    or 3 local masters started for the run). No raw floor (it speaks to one standalone
    server) and no server CPU (the cluster is several processes)."""
    try:
        opened = redis_cluster_url()
        url = await opened.__aenter__()
    except ClusterMissing as exc:
        raise ServerMissing(str(exc)) from None
    try:
        prefix = f"{_schema_name()}:"
        store = RedisStore.from_url(url, prefix=prefix, cluster=True)
        helper = RedisStore.from_url(url, prefix=prefix, cluster=True)
        try:
            await store.create_schema()
            yield Target(
                "redis-cluster",
                f"Redis Cluster at {url}, key prefix {prefix}",
                lambda: _emptied_redis(store),
                None,
                None,
                helper,
                SERVER_SETUP,
                recorder=redis_round_trips,
                url=f"{url}?cluster=true",
                store=store,
                unit="round trips",
                open_handle=lambda: RedisStore.from_url(url, prefix=prefix, cluster=True),
            )
        finally:
            await helper.close()
            await drop_keys(store)
            await store.close()
    finally:
        await opened.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def d1_local() -> AsyncIterator[Target]:
    # Imported here: the d1 package (and Node for the local D1) are optional, and the
    # default targets run without them (the bench tox env does not install them).
    from .d1_local import d1_local as opened

    async with opened() as target:
        yield target


TARGETS: dict[str, TargetOpener] = {
    "memory": memory,
    "sqlite": sqlite,
    "postgres": postgres,
    "postgres-prepared": postgres_prepared,
    "postgres-quiet": postgres_quiet,
    "mysql": mysql,
    "redis": redis,
    "redis-cluster": redis_cluster,
    "d1-local": d1_local,
}
OPT_IN = frozenset({"postgres-quiet", "d1-local"})
"""Targets run only when named (``--stores postgres,postgres-quiet``): PostgreSQL
without wake-up NOTIFYs, to measure what they cost; the D1 store against a local D1
(miniflare, from the d1 package's test tree: needs the d1 package and ``npm ci``).
``redis-cluster`` runs by default, in the quick run too (tox's bench env): it starts
its own 3 masters in a few seconds where ``redis-server`` is installed (CI installs it
for the Redis tests) and is skipped, as a server that does not answer is, where it is
not."""
OPS_ONLY = frozenset({"d1-local"})
"""Targets the ops suite alone measures: scale seeds SQL stores through their
SQLAlchemy engine, which a D1 store does not connect, and e2e was not run on D1."""
