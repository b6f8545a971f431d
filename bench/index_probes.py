"""Index probes a store's statements cost, from the server's own counters (not from
EXPLAIN): what the queue-limit bench reports per claim (``bench.queue_limits``).

- PostgreSQL: ``pg_stat_user_indexes.idx_scan`` per index of the store's schema (one
  per index scan started, so one per probe: a nested loop's inner scan counts once per
  outer row) and ``pg_stat_user_tables.seq_scan`` per table. A backend sends its
  counters to the shared statistics when a transaction ends, at most once a second
  (``PGSTAT_MIN_INTERVAL``), and an idle backend within that second: a snapshot asks
  every connection of the store's pool to flush now (``pg_stat_force_next_flush()``),
  then reads from a connection of its own until the counters have not moved for longer
  than that interval. (Without the forced flush, an idle connection's counters arrive
  up to 10 s later: with two pooled connections taking turns, half the claims.)
- MySQL/MariaDB: ``SHOW SESSION STATUS`` of the store's own connection (the store runs
  it like one of its operations; a sequential caller gets the same pooled connection
  back, which ``CONNECTION_ID()`` checks): ``Handler_read_key`` (index lookups: a
  probe, or the start of a range), ``Handler_read_next``/``_prev``/``_first``/``_last``
  (steps along an index) and ``Handler_read_rnd_next`` (rows of a table scan). The
  snapshot's own statement is counted once per snapshot and taken off (calibrated on
  two snapshots back to back).
- SQLite: no index counters, but where the library was built with
  ``SQLITE_ENABLE_STMTVTAB`` (Debian's is), the ``sqlite_stmt`` table gives the counters
  of every statement a connection holds prepared: ``nstep`` (virtual machine steps: the
  work), ``nscan`` (steps of full table scans), ``nsort`` (sorts) and ``naidx`` (rows
  put in automatic indexes). The store's connection is the one a sequential caller
  gets back (a marker in its ``temp`` schema checks that); Python's statement cache
  keeps the store's statements prepared between snapshots, so their counters add up.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping
from typing import Any

import psycopg

from workflow.store.sql import SQLStore
from workflow.store.sql.compiled import Rows, text_statement
from workflow.store.sql.driver import Body, Query

Counters = dict[str, int]

FLUSH_QUIET_S = 1.3
"""How long PostgreSQL's counters must stay put before a snapshot is taken: longer
than a backend's flush interval (1 s)."""


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> Counters:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after.keys() | before.keys()}


def _one(query: Query) -> Body[Rows]:
    return (yield query)


class Probes(abc.ABC):
    """Snapshots of a server's counters for one store."""

    source: str
    """Where the counters come from (printed with the figures)."""

    @abc.abstractmethod
    async def snapshot(self) -> Counters: ...

    async def close(self) -> None:  # noqa: B027 (nothing to close is a valid default)
        """Release what the snapshots use."""


class PostgresProbes(Probes):
    source = (
        "pg_stat_user_indexes.idx_scan (index scans started) and "
        "pg_stat_user_tables.seq_scan, flushed and read from a separate connection"
    )

    def __init__(self, store: SQLStore, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
        self._store = store
        self._conn = conn

    @classmethod
    async def open(cls, store: SQLStore, conninfo: str) -> PostgresProbes:
        conn = await psycopg.AsyncConnection.connect(
            conninfo, autocommit=True, application_name="wf-bench-probes"
        )
        return cls(store, conn)

    async def _read(self) -> Counters:
        # Autocommit: each read is a transaction of its own, so a fresh stats snapshot.
        cur = await self._conn.execute(
            "SELECT 'idx ' || indexrelname, idx_scan FROM pg_stat_user_indexes "
            "WHERE schemaname = %(s)s "
            "UNION ALL SELECT 'seq ' || relname, seq_scan FROM pg_stat_user_tables "
            "WHERE schemaname = %(s)s",
            {"s": self._store.schema},
        )
        return {str(name): int(n or 0) for name, n in await cur.fetchall()}

    async def _flush(self) -> None:
        """Every connection of the store's pool flushes its counters: a flush through
        the store's driver until the pool hands back a backend already flushed (the
        pool cycles through its idle connections, or keeps handing out one)."""
        flush = text_statement("SELECT pg_backend_pid(), pg_stat_force_next_flush()")
        flushed: set[int] = set()
        for _ in range(64):
            pid = int((await self._store.driver.run(_one(Query(flush, {})))).scalar())
            if pid in flushed:
                return
            flushed.add(pid)
        raise RuntimeError("the store's pool never handed back a connection it had flushed")

    async def snapshot(self) -> Counters:
        await self._flush()
        loop = asyncio.get_running_loop()
        seen, since = await self._read(), loop.time()
        while loop.time() - since < FLUSH_QUIET_S:
            await asyncio.sleep(0.2)
            now = await self._read()
            if now != seen:
                seen, since = now, loop.time()
        return seen

    async def close(self) -> None:
        await self._conn.close()


HANDLERS = (
    "Handler_read_key",
    "Handler_read_next",
    "Handler_read_prev",
    "Handler_read_first",
    "Handler_read_last",
    "Handler_read_rnd_next",
)


class MySQLProbes(Probes):
    source = "SHOW SESSION STATUS Handler_read_* of the store's own connection"

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self._connection: int | None = None
        self._own: Counters = {}
        self._reads = 0

    @classmethod
    async def open(cls, store: SQLStore) -> MySQLProbes:
        probes = cls(store)
        first = await probes._read()
        probes._own = delta(first, await probes._read())
        return probes

    async def _read(self) -> Counters:
        names = ", ".join(f"'{h}'" for h in HANDLERS)  # constants, not user values

        def show() -> Body[tuple[int, Counters]]:
            conn = yield Query(text_statement("SELECT CONNECTION_ID()"), {})
            found = yield Query(
                text_statement(f"SHOW SESSION STATUS WHERE Variable_name IN ({names})"), {}
            )
            return int(conn.scalar()), {str(k): int(v) for k, v in found.rows}

        self._reads += 1

        connection, counters = await self._store.driver.run(show())
        if self._connection is not None and connection != self._connection:
            raise RuntimeError(
                f"the store's pool handed out connection {connection}, not "
                f"{self._connection}: session counters would not add up"
            )
        self._connection = connection
        return counters

    async def snapshot(self) -> Counters:
        # What every read so far cost itself is taken off, so the delta of two
        # snapshots is the work between them.
        found = await self._read()
        return {k: v - self._reads * self._own.get(k, 0) for k, v in found.items()}


SQLITE_COUNTERS = ("nstep", "nscan", "nsort", "naidx")
SQLITE_MARK = "wf_bench_probes"


class SQLiteProbes(Probes):
    source = (
        "sqlite_stmt of the store's connection (nstep: VM steps, nscan: full-scan "
        "steps, nsort: sorts, naidx: automatic-index rows)"
    )

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self._marked = False

    @staticmethod
    async def available(store: SQLStore) -> bool:
        """Whether this SQLite library has the ``sqlite_stmt`` table."""

        def ask() -> Body[Rows]:
            return (yield Query(text_statement("PRAGMA compile_options"), {}))

        return any(r[0] == "ENABLE_STMTVTAB" for r in (await store.driver.run(ask())).rows)

    async def snapshot(self) -> Counters:
        marked = self._marked
        fields = ", ".join(f"sum({c})" for c in SQLITE_COUNTERS)  # constants only

        def read() -> Body[Counters]:
            found = yield Query(
                text_statement(
                    f"SELECT count(*) FROM temp.sqlite_master WHERE name = '{SQLITE_MARK}'"
                ),
                {},
            )
            if int(found.scalar()) == 0:
                if marked:
                    raise RuntimeError(
                        "the store's pool handed out another connection: its counters "
                        "would not add up"
                    )
                yield Query(text_statement(f"CREATE TEMP TABLE {SQLITE_MARK} (x)"), {})
            counted = yield Query(
                text_statement(
                    f"SELECT {fields} FROM sqlite_stmt WHERE sql NOT LIKE '%sqlite_stmt%' "
                    f"AND sql NOT LIKE '%{SQLITE_MARK}%'"
                ),
                {},
            )
            row = counted.rows[0]
            return {c: int(v or 0) for c, v in zip(SQLITE_COUNTERS, row, strict=True)}

        counters = await self._store.driver.run(read())
        self._marked = True
        return counters
