"""The same three-step workflow on DBOS, in a process of its own (DBOS keeps global
state and background threads): ``python -m bench.dbos_side --runs N --rounds R
--inflight 8,64``. Prints one line ``BENCH_RESULT {json}`` with runs/s per round for
each in-flight level and each round's CPU seconds (``cpu``: ``[process, server]``
pairs, server ``null`` when its backends' CPU cannot be read), with ``--latency N`` the
seconds from start to result of N runs made one at a time (``latency``), or
``{"error": ...}``.

CPU is measured as for the runtime (``bench.cpu``): this process's CPU time (every
thread, DBOS's background threads included) and the on-CPU time of the PostgreSQL
backends serving this process's connections, sampled before and after each round.

DBOS runs on the same PostgreSQL as the benchmark's PostgreSQL store, in a new
database of its own (dropped at the end). Runs are started with DBOS's documented
``DBOS.start_workflow_async`` and awaited with ``handle.get_result()``; ``inflight``
callers do that one run after another, so at most ``inflight`` runs are in flight —
as many as the runtime's drive slots (8 per worker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import traceback
import uuid
from importlib import metadata
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from bench.cpu import Meter, PostgresCpu

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
MARK = "BENCH_RESULT "


def _conninfo(url: str) -> dict[str, Any]:
    u = make_url(url)
    info: dict[str, Any] = {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "root",
        "dbname": u.database or "postgres",
    }
    if u.password:
        info["password"] = u.password
    return info


def _drop_database(name: str) -> None:
    with psycopg.connect(autocommit=True, **_conninfo(POSTGRES_URL)) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


async def _measure(
    runs: int, rounds: int, inflight: list[int], database: str, latency_runs: int = 0
) -> dict[str, Any]:
    from dbos import DBOS, DBOSConfig  # imported here: the parent never imports dbos

    url = make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)
    config: DBOSConfig = {
        "name": "wf-bench",
        "system_database_url": url,
        "log_level": "WARNING",
    }
    DBOS(config=config)

    @DBOS.step()
    async def add_one(value: int) -> int:
        return value + 1

    @DBOS.workflow()
    async def three_steps(start: int) -> dict[str, int]:
        value = start
        for _ in range(3):
            value = await add_one(value)
        return {"total": value}

    DBOS.launch()
    server = await PostgresCpu.open(_conninfo(POSTGRES_URL))
    try:

        async def caller(count: int) -> None:
            for _ in range(count):
                handle = await DBOS.start_workflow_async(three_steps, 0)
                result = await handle.get_result()
                assert result == {"total": 3}, result

        async def one_round(level: int, n: int) -> tuple[float, tuple[float, float | None]]:
            shares = [n // level + (1 if k < n % level else 0) for k in range(level)]
            meter = Meter(server)
            await meter.start()
            began = time.perf_counter()
            await asyncio.gather(*(caller(s) for s in shares if s))
            rate = n / (time.perf_counter() - began)
            return rate, await meter.stop()

        latency: list[float] = []
        if latency_runs:
            for i in range(3 + latency_runs):  # three warm-up runs first
                began = time.perf_counter()
                handle = await DBOS.start_workflow_async(three_steps, 0)
                result = await handle.get_result()
                assert result == {"total": 3}, result
                if i >= 3:
                    latency.append(time.perf_counter() - began)

        rates: dict[str, list[float]] = {}
        cpu: dict[str, list[tuple[float, float | None]]] = {}
        for level in inflight:
            await one_round(level, level)  # warm-up
            done = [await one_round(level, runs) for _ in range(rounds)]
            rates[str(level)] = [rate for rate, _ in done]
            cpu[str(level)] = [spent for _, spent in done]
        return {
            "rates": rates,
            "cpu": cpu,
            "version": metadata.version("dbos"),
            "latency": latency,
            "database": database,
        }
    finally:
        if server is not None:
            await server.close()
        DBOS.destroy()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.dbos_side")
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--inflight", default="8")
    ap.add_argument(
        "--latency", type=int, default=0, help="runs one at a time for start-to-finish latency"
    )
    args = ap.parse_args()
    inflight = [int(x) for x in args.inflight.split(",")]
    database = f"wf_bench_dbos_{uuid.uuid4().hex[:10]}"
    try:
        out = asyncio.run(_measure(args.runs, args.rounds, inflight, database, args.latency))
    except BaseException as exc:  # reported to the parent, which keeps the other results
        out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    finally:
        try:
            _drop_database(database)
        except Exception as exc:
            print(f"could not drop {database}: {exc}")
    print(MARK + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
