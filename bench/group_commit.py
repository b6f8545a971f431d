"""A prototype to size a group commit on PostgreSQL (issue 13's next step), bench only.

Not the store: the writes a 3-step run makes on a durable store, sent raw over
psycopg's async connections to tables of the same shape (a run row, an event per
write), so that the only difference between the modes is how many runs share a
COMMIT:

* ``each`` (what every store does today): every write its own transaction, four
  commits per run (create claimed, step 1 with its event, step 2, step 3 with the
  settle), each one statement (a data-modifying CTE, as the store's).
* ``group K``: K runs in flight on one connection advance in lockstep, and the K
  writes of one phase go in one transaction (one pipeline, one COMMIT): four commits
  per K runs. What the runtime would need for it: a writer that collects the writes of
  the runs its drives make within a moment and sends them together (the contract
  unchanged, each write still checked against its lease).

Both modes keep ``CONNS`` connections busy with ``CONNS * K`` runs in flight
(``each``: that many runs, one statement at a time per connection). Reports runs/s and
client + server CPU per run, rounds interleaved.

``python -m bench.group_commit [--runs 400] [--rounds 3] [--groups 8,32]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .cpu import Meter, PostgresCpu, Spent, per_unit

CONNS = 8
URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")

SCHEMA_SQL = """
CREATE TABLE {s}.runs (run_id text PRIMARY KEY, status text NOT NULL, owner text,
  next_index int NOT NULL, updated_at bigint NOT NULL, output jsonb);
CREATE TABLE {s}.events (run_id text NOT NULL, idx int NOT NULL, type text NOT NULL,
  payload jsonb, PRIMARY KEY (run_id, idx));
"""

CREATE = "INSERT INTO {s}.runs VALUES (%s, 'running', 'w', 0, %s, NULL)"
STEP = (
    "WITH r AS (UPDATE {s}.runs SET next_index = %s, updated_at = %s "
    "WHERE run_id = %s AND owner = 'w' AND next_index = %s RETURNING run_id) "
    "INSERT INTO {s}.events SELECT run_id, %s, 'step_completed', %s::jsonb FROM r"
)
SETTLE = (
    "WITH r AS (UPDATE {s}.runs SET next_index = %s, updated_at = %s, status = 'finished', "
    "owner = NULL, output = %s::jsonb WHERE run_id = %s AND owner = 'w' AND next_index = %s "
    "RETURNING run_id) INSERT INTO {s}.events SELECT run_id, %s, 'run_finished', %s::jsonb FROM r"
)


def _phases(schema: str, run_id: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The four writes of one 3-step run (the last step's event rides with the settle)."""
    now = int(time.time() * 1000)
    step, settle = STEP.format(s=schema), SETTLE.format(s=schema)
    return [
        (CREATE.format(s=schema), (run_id, now)),
        (step, (1, now, run_id, 0, 0, '{"result": 1}')),
        (step, (2, now, run_id, 1, 1, '{"result": 2}')),
        (settle, (3, now, '"done"', run_id, 2, 2, '{"result": 3}')),
    ]


async def _each(conn: psycopg.AsyncConnection[Any], schema: str, ids: Sequence[str]) -> None:
    for run_id in ids:
        for query, params in _phases(schema, run_id):
            await conn.execute(query, params)  # autocommit: one COMMIT each


async def _grouped(
    conn: psycopg.AsyncConnection[Any], schema: str, ids: Sequence[str], k: int
) -> None:
    for start in range(0, len(ids), k):
        runs = [_phases(schema, run_id) for run_id in ids[start : start + k]]
        for phase in range(4):
            async with conn.transaction(), conn.pipeline():
                for writes in runs:
                    query, params = writes[phase]
                    await conn.execute(query, params)


async def _round(
    conns: Sequence[psycopg.AsyncConnection[Any]],
    schema: str,
    runs: int,
    k: int,
    server: PostgresCpu | None,
) -> tuple[float, Spent]:
    ids = [f"r-{uuid.uuid4().hex}" for _ in range(runs)]
    shares = [ids[i :: len(conns)] for i in range(len(conns))]
    meter = Meter(server)
    await meter.start()
    began = time.perf_counter()
    if k == 1:
        await asyncio.gather(*(_each(c, schema, s) for c, s in zip(conns, shares, strict=True)))
    else:
        await asyncio.gather(
            *(_grouped(c, schema, s, k) for c, s in zip(conns, shares, strict=True))
        )
    elapsed = time.perf_counter() - began
    return runs / elapsed, per_unit(await meter.stop(), runs)


async def main(runs: int, rounds: int, groups: Sequence[int]) -> None:
    schema = f"wf_bench_group_{uuid.uuid4().hex[:8]}"
    admin = await psycopg.AsyncConnection.connect(URL, autocommit=True)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    await admin.execute(SCHEMA_SQL.format(s=schema))
    conns = [await psycopg.AsyncConnection.connect(URL, autocommit=True) for _ in range(CONNS)]
    params = conninfo_to_dict(URL)
    server = await PostgresCpu.open({k: v for k, v in params.items() if v is not None})
    modes = [1, *groups]
    seen: dict[int, list[tuple[float, Spent]]] = {k: [] for k in modes}
    try:
        for _ in range(rounds):
            for k in modes:  # interleaved: each round runs every mode once
                seen[k].append(await _round(conns, schema, runs, k, server))
    finally:
        for c in conns:
            await c.close()
        if server is not None:
            await server.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
    base = statistics.median(rate for rate, _ in seen[1])
    print(f"{CONNS} connections, {runs} runs per round, {rounds} rounds (medians)")
    print("mode          in flight  runs/s   x each  commits/run  client ms/run  server ms/run")
    for k in modes:
        rate = statistics.median(r for r, _ in seen[k])
        client = statistics.median(c for _, (c, _) in seen[k]) * 1000
        servers = [s for _, (_, s) in seen[k] if s is not None]
        server_ms = f"{statistics.median(servers) * 1000:.2f}" if servers else "—"
        name = "each" if k == 1 else f"group {k}"
        print(
            f"{name:<12}  {CONNS * k:>9}  {rate:>7,.0f}  {rate / base:>6.2f}"
            f"  {4 / k:>11.2f}  {client:>13.2f}  {server_ms:>13}"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m bench.group_commit")
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--groups", default="8,32")
    args = ap.parse_args()
    asyncio.run(main(args.runs, args.rounds, [int(g) for g in args.groups.split(",")]))
