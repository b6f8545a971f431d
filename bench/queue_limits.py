"""What a queue limit costs a claim: ``claim_runnable`` latency and client CPU with the
runs' queue limited (``concurrency`` set, never reached) against the same claims with
no limit, on each store declaring ``Capability.QUEUES``. A measurement, not a test.

    python -m bench.queue_limits [--stores memory,sqlite,postgres,mysql,redis,redis-cluster]
        [--claims 200] [--rounds 5]

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
"""

from __future__ import annotations

import argparse
import asyncio
import time

from workflow.runtime import ExecutionStore, QueueStore

from .stats import Spread, ratios
from .targets import TARGETS, ServerMissing

QUEUE = "bench"
T0 = 1_700_000_000_000


async def claims(store: ExecutionStore, n: int, limited: bool) -> tuple[float, float]:
    """Seconds of wall time and of process CPU per claim."""
    if limited:
        assert isinstance(store, QueueStore)
        await store.upsert_queue(QUEUE, T0, concurrency=1_000_000)
    for i in range(n):
        await store.create_run(f"r{i}", "wf", None, None, T0, queue=QUEUE)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        got = await store.claim_runnable("bench", 60_000, 1, T0 + 1)
        assert len(got) == 1, got
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


async def measure(name: str, n: int, rounds: int) -> None:
    try:
        async with TARGETS[name]() as target:
            wall: dict[bool, list[float]] = {False: [], True: []}
            cpu: dict[bool, list[float]] = {False: [], True: []}
            for r in range(rounds):
                for limited in (False, True) if r % 2 == 0 else (True, False):
                    w, c = await claims(await target.fresh(), n, limited)
                    wall[limited].append(w)
                    cpu[limited].append(c)
    except ServerMissing as missing:
        print(f"{name}: skipped ({missing})")
        return
    for what, seconds in (("latency", wall), ("client CPU", cpu)):
        off, on = Spread.of(seconds[False]), Spread.of(seconds[True])
        ratio = ratios(seconds[True], seconds[False])
        print(
            f"{name:<9} {what:<10} off {off.median * 1e6:7.0f} µs  on {on.median * 1e6:7.0f} µs"
            f"  on/off {ratio.median:.2f} (min {ratio.low:.2f}, max {ratio.high:.2f})"
        )


async def main(stores: list[str], n: int, rounds: int) -> None:
    print(f"claim_runnable(limit=1), {n} claims per mode and round, median of {rounds} rounds")
    for name in stores:
        await measure(name, n, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="memory,sqlite,postgres,mysql,redis,redis-cluster")
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.stores.split(","), args.claims, args.rounds))
