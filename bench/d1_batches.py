"""Should the SQLite store use D1's batch forms? (issue 14, item 2)

The SQLite store runs an operation that writes several rows as one ``BEGIN IMMEDIATE``
transaction on its thread; the D1 store cannot (D1 has no interactive transactions), so
it sends each such operation as one atomic batch of guarded statements. This runs the
D1 store's batches on plain SQLite, through the D1 database interface implemented over
sqlite3 (a batch is its statements in one ``BEGIN IMMEDIATE ... COMMIT``, exactly D1's
all-or-nothing), against the SQLite store on a file of its own, with the same pragmas,
in interleaved rounds of the same workload: the fewest calls a durable three-step run
needs (create, claim, three appends, the settle; :func:`bench.three_steps.floor_run`).

    python -m bench.d1_batches [--runs 300] [--rounds 5]

Prints runs/s and CPU per run (``time.process_time``: every thread of this process,
the sqlite3 threads included) for each, and the ratio D1-batches / SQLite store per
round. Needs workflow-store-d1 installed. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from workflow.runtime import ExecutionStore
from workflow.store.d1.http import D1QueryError
from workflow.store.d1.interface import D1Meta, D1Result, Param, PreparedStatement
from workflow.store.d1.store import D1Store
from workflow.store.sqlite.dialect import PRAGMAS
from workflow.store.sqlite.store import SQLiteStore

from .three_steps import floor_run


class SQLiteAsD1:
    """The D1 database interface over one sqlite3 connection, used on one thread (as
    the SQLite store uses its connection): a statement alone runs in autocommit, a
    batch in one ``BEGIN IMMEDIATE ... COMMIT``, rolled back whole if one fails."""

    def __init__(self, path: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-as-d1")
        self._conn = self._pool.submit(self._connect, path).result()

    @staticmethod
    def _connect(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (*PRAGMAS, "PRAGMA busy_timeout=5000"):
            conn.execute(pragma).close()
        return conn

    def prepare(self, sql: str) -> _Statement:
        return _Statement(self, sql, ())

    async def batch(self, statements: Sequence[Any]) -> list[D1Result]:
        items = [(s.sql, s.params) for s in statements]
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._batch, items)

    async def run_one(self, sql: str, params: tuple[Param, ...]) -> D1Result:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._one, sql, params)

    def _execute(self, sql: str, params: tuple[Param, ...]) -> D1Result:
        cursor = self._conn.execute(sql, params)
        try:
            names = [d[0] for d in cursor.description or ()]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            return D1Result(rows, D1Meta(changes=max(cursor.rowcount, 0)))
        finally:
            cursor.close()

    def _one(self, sql: str, params: tuple[Param, ...]) -> D1Result:
        try:
            return self._execute(sql, params)
        except sqlite3.Error as exc:
            raise D1QueryError(None, str(exc)) from exc

    def _batch(self, items: list[tuple[str, tuple[Param, ...]]]) -> list[D1Result]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            results = [self._execute(sql, params) for sql, params in items]
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise D1QueryError(None, str(exc)) from exc
        self._conn.execute("COMMIT")
        return results

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._conn.close)
        self._pool.shutdown()


class _Statement(PreparedStatement):
    def __init__(self, db: SQLiteAsD1, sql: str, params: tuple[Param, ...]) -> None:
        super().__init__(sql, params)
        self._db = db

    def with_params(self, params: tuple[Param, ...]) -> _Statement:
        return _Statement(self._db, self.sql, params)

    async def all(self) -> D1Result:
        return await self._db.run_one(self.sql, self.params)


async def _round(store: ExecutionStore, prefix: str, runs: int) -> tuple[float, float]:
    """(runs/s, CPU ms per run) of ``runs`` floor runs."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(runs):
        await floor_run(store, f"{prefix}-{i}", "bench")
    return runs / (time.perf_counter() - wall), (time.process_time() - cpu) * 1000 / runs


async def main(runs: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="wf-d1-batches-") as tmp:
        d1_db = SQLiteAsD1(os.path.join(tmp, "d1.db"))
        d1 = D1Store(d1_db, close_database=True)
        sqlite = SQLiteStore.from_path(os.path.join(tmp, "sqlite.db"))
        await d1.create_schema()
        await sqlite.create_schema()
        stores: dict[str, ExecutionStore] = {"sqlite store": sqlite, "d1 batches": d1}
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in stores}
        try:
            await _round(sqlite, "warm", 20)
            await _round(d1, "warm", 20)
            for r in range(rounds):
                # Interleaved, the order alternating: the machine is shared and noisy.
                order = list(stores.items()) if r % 2 == 0 else list(stores.items())[::-1]
                for name, store in order:
                    figures[name].append(await _round(store, f"r{r}", runs))
        finally:
            await d1.close()
            await sqlite.close()
    print(f"{runs} floor runs (create, claim, 3 appends, settle) per round, {rounds} rounds")
    print(f"{'':14} {'runs/s (median)':>16} {'CPU ms/run (median)':>20}")
    for name, rows in figures.items():
        rate = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"{name:14} {rate:16,.0f} {cpu:20.3f}")
    rate_ratios = [
        d[0] / s[0] for d, s in zip(figures["d1 batches"], figures["sqlite store"], strict=True)
    ]
    cpu_ratios = [
        d[1] / s[1] for d, s in zip(figures["d1 batches"], figures["sqlite store"], strict=True)
    ]
    print(
        "d1 batches / sqlite store, per round: runs/s "
        + ", ".join(f"{x:.2f}" for x in rate_ratios)
        + "; CPU per run "
        + ", ".join(f"{x:.2f}" for x in cpu_ratios)
    )


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    asyncio.run(main(args.runs, args.rounds))


if __name__ == "__main__":
    cli()
