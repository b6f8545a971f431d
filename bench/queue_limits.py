"""What a queue limit costs a claim: ``claim_runnable`` latency and client CPU with the
runs' queue limited (``concurrency`` set, never reached) against the same claims with
no limit, on each store declaring ``Capability.QUEUES``. A measurement, not a test.

    python -m bench.queue_limits [--stores memory,sqlite,postgres,mysql,redis,redis-cluster]
        [--claims 200] [--rounds 5] [--no-probes]

Each round, per store, seeds ``--claims`` queued runs and claims them one call at a
time (``limit=1``), once with no limit ("off") and once with the queue limited ("on"),
the two back to back on fresh data, alternating which goes first; the ratios on/off
are taken round by round (:func:`bench.stats.ratios`), so a noisy moment slows both.
"off" on a SQL store is the one-statement claim; "on" is the limited claim (the lock
of the limited queues, then one statement that counts, decides and claims: one round
trip; docs/sql-stores.md, Queues). On Redis (standalone) both are the one claim
script; "on" also counts the queue's leases across the buckets in it
(docs/stores/redis.md, Queues). On Redis Cluster (``redis-cluster``: it starts 3 local
masters unless BENCH_REDIS_CLUSTER_URL names a cluster) every claim reserves its
place in the ``{g}`` slot with or without a limit; "on" also counts the queue's
reservations there.

Besides latency and client CPU: the server CPU of the store's connections per claim
(where the server runs on this machine), and on PostgreSQL and MySQL/MariaDB the
server's own counters of index use per claim, off, on and the difference
(:mod:`bench.index_probes`: PostgreSQL's ``idx_scan`` per index and ``seq_scan`` per
table; MySQL's ``Handler_read_*`` of the store's connection; SQLite's ``sqlite_stmt``
counters: no index probes there, but VM steps, full-scan steps and sorts). They are read around
the timed loop, never inside it; ``--no-probes`` skips them (each PostgreSQL snapshot
waits about 1.5 s for the statistics to settle).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from workflow.runtime import QueueStore
from workflow.store.sql import SQLStore

from .cpu import between
from .index_probes import MySQLProbes, PostgresProbes, Probes, SQLiteProbes, delta
from .stats import Spread, ratios
from .targets import TARGETS, ServerMissing, Target

QUEUE = "bench"
T0 = 1_700_000_000_000


@dataclass
class Round:
    """One mode's claims in one round, per claim."""

    wall: float
    cpu: float
    server_cpu: float | None
    probes: dict[str, float] | None
    """Counter deltas per claim (:mod:`bench.index_probes`), None where not read."""


async def claims(target: Target, n: int, limited: bool, probes: Probes | None) -> Round:
    """Seed ``n`` runs, claim them one call at a time: wall time, client and server
    CPU per claim (timed), and the server's counters per claim (read around the
    timed loop, outside it)."""
    store = await target.fresh()
    if limited:
        assert isinstance(store, QueueStore)
        await store.upsert_queue(QUEUE, T0, concurrency=1_000_000)
    for i in range(n):
        await store.create_run(f"r{i}", "wf", None, None, T0, queue=QUEUE)
    before = None if probes is None else await probes.snapshot()
    server = target.server_cpu
    server_before = None if server is None else await server.baseline()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        got = await store.claim_runnable("bench", 60_000, 1, T0 + 1)
        assert len(got) == 1, got
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_s = (
        None
        if server is None or server_before is None
        else between(server_before, await server.sample())
    )
    counted: dict[str, float] | None = None
    if probes is not None and before is not None:
        counted = {k: v / n for k, v in delta(before, await probes.snapshot()).items()}
    return Round(wall / n, cpu / n, None if server_s is None else server_s / n, counted)


@contextlib.asynccontextmanager
async def opened_probes(name: str, target: Target) -> AsyncIterator[Probes | None]:
    """The counters of PostgreSQL, MySQL/MariaDB and SQLite (where its library has
    ``sqlite_stmt``), None elsewhere."""
    store = target.store
    probes: Probes | None = None
    if isinstance(store, SQLStore) and name.startswith("postgres") and target.url:
        probes = await PostgresProbes.open(store, target.url)
    elif isinstance(store, SQLStore) and name == "mysql":
        probes = await MySQLProbes.open(store)
    elif isinstance(store, SQLStore) and name == "sqlite" and await SQLiteProbes.available(store):
        probes = SQLiteProbes(store)
    try:
        yield probes
    finally:
        if probes is not None:
            await probes.close()


async def measure(name: str, n: int, rounds: int, with_probes: bool) -> None:
    try:
        async with TARGETS[name]() as target:
            done: dict[bool, list[Round]] = {False: [], True: []}
            async with opened_probes(name, target) as probes:
                source = None if probes is None else probes.source
                for r in range(rounds):
                    for limited in (False, True) if r % 2 == 0 else (True, False):
                        got = await claims(target, n, limited, probes if with_probes else None)
                        done[limited].append(got)
    except ServerMissing as missing:
        print(f"{name}: skipped ({missing})")
        return
    report(name, done)
    if with_probes and source is not None:
        report_probes(name, source, done)


def report(name: str, done: dict[bool, list[Round]]) -> None:
    figures = {
        "latency": {m: [r.wall for r in done[m]] for m in done},
        "client CPU": {m: [r.cpu for r in done[m]] for m in done},
    }
    if all(r.server_cpu is not None for m in done for r in done[m]):
        figures["server CPU"] = {m: [r.server_cpu or 0.0 for r in done[m]] for m in done}
    for what, seconds in figures.items():
        off, on = Spread.of(seconds[False]), Spread.of(seconds[True])
        ratio = ratios(seconds[True], seconds[False])
        print(
            f"{name:<9} {what:<10} off {off.median * 1e6:7.0f} µs  on {on.median * 1e6:7.0f} µs"
            f"  on/off {ratio.median:.2f} (min {ratio.low:.2f}, max {ratio.high:.2f})"
        )


def _median(done: list[Round], key: str) -> float:
    return statistics.median((r.probes or {}).get(key, 0.0) for r in done)


def report_probes(name: str, source: str, done: dict[bool, list[Round]]) -> None:
    """Per claim, median of the rounds: every counter that moved, off, on and the
    difference; PostgreSQL's index scans also summed over the indexes."""
    keys = sorted({k for m in done for r in done[m] for k in (r.probes or {})})
    moved = [k for k in keys if _median(done[False], k) or _median(done[True], k)]
    rows = [(k, _median(done[False], k), _median(done[True], k)) for k in moved]
    indexes = [k for k in moved if k.startswith("idx ")]
    if indexes:
        total = [
            statistics.median(sum((r.probes or {}).get(k, 0.0) for k in indexes) for r in done[m])
            for m in (False, True)
        ]
        rows.append(("index scans, all indexes", total[0], total[1]))
    print(f"{name:<9} per claim, from {source}:")
    for k, off, on in rows:
        print(f"          {k:<40} off {off:7.2f}  on {on:7.2f}  on-off {on - off:+7.2f}")


async def main(stores: list[str], n: int, rounds: int, with_probes: bool) -> None:
    print(f"claim_runnable(limit=1), {n} claims per mode and round, median of {rounds} rounds")
    for name in stores:
        await measure(name, n, rounds, with_probes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="memory,sqlite,postgres,mysql,redis,redis-cluster")
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--no-probes",
        action="store_true",
        help="skip the servers' counters (each snapshot waits out PostgreSQL's stats flush)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.stores.split(","), args.claims, args.rounds, not args.no_probes))
