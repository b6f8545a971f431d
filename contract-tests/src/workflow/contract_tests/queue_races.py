"""Contract cases: 32 claimers on separate handles against queue limits.

500 runs in three queues (a global limit; a global and a per-key limit; no limit)
are claimed by 32 racers, each on its own handle (a connection of its own on SQL and
Redis stores). A racer holds each lease a random short while, then settles. A shared
tracker counts the leases held per queue and per (queue, key): a racer counts its
lease once the claim has returned and uncounts it before it asks to settle, so the
tracker never counts more than the store has leased; if it ever sees more than a
limit, two claims were granted past the limit at once. At the end every run is
finished (none stranded) and each was settled exactly once. Before the race one wide
claim fills every limit (3 of "global", 6 of "keyed", 2 of some key), so the racers
start at the limits on any machine.

``now`` stays fixed while leases are held (no lease expires, so "held" is exactly
"leased" in the store), which also makes the race independent of the machine's speed.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

from workflow.runtime import (
    Capability,
    Claimed,
    Created,
    ExecutionStore,
    Finish,
    RunStatus,
)

from .cases.queues import queues_of
from .support import LEASE_MS, T0, StoreFactory, requires

RUNS = 500
CLAIMERS = 32
LIMITS: dict[str, tuple[int | None, int | None]] = {
    "global": (3, None),
    "keyed": (6, 2),
    "free": (None, None),
}
"""queue -> (concurrency, per_key_concurrency)."""
KEYS = ("k0", "k1", "k2", "k3", "k4")


@dataclass
class _Tracker:
    held: Counter[str] = field(default_factory=Counter)
    keyed: Counter[tuple[str, str]] = field(default_factory=Counter)
    settled: Counter[str] = field(default_factory=Counter)

    def hold(self, claim: Claimed) -> None:
        run = claim.run
        concurrency, per_key = LIMITS[run.queue]
        self.held[run.queue] += 1
        if concurrency is not None:
            assert self.held[run.queue] <= concurrency, (run.queue, dict(self.held))
        if run.partition_key is not None:
            slot = (run.queue, run.partition_key)
            self.keyed[slot] += 1
            if per_key is not None:
                assert self.keyed[slot] <= per_key, (slot, dict(self.keyed))

    def release(self, claim: Claimed) -> None:
        run = claim.run
        self.held[run.queue] -= 1
        if run.partition_key is not None:
            self.keyed[(run.queue, run.partition_key)] -= 1


class QueueRaceCases:
    @requires(Capability.QUEUES)
    async def test_32_claimers_over_500_runs_never_exceed_a_limit_nor_strand_a_run(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        qs = queues_of(store)
        for name, (concurrency, per_key) in LIMITS.items():
            await qs.upsert_queue(name, T0, concurrency=concurrency, per_key_concurrency=per_key)
        names = list(LIMITS)
        for i in range(RUNS):
            queue = names[i % len(names)]
            key = None if i % 7 == 0 else KEYS[i % len(KEYS)]
            made = await store.create_run(
                f"run-{i:03d}", "wf", None, None, T0, queue=queue, priority=i % 3, partition_key=key
            )
            assert isinstance(made, Created), made
        handles = [await store_factory() for _ in range(CLAIMERS)]
        tracker = _Tracker()
        done = asyncio.Event()
        # One wide claim before the race fills every limit at once, so the race starts
        # at the limits whatever the machine's speed (how many leases the racers hold
        # at once later depends on scheduling, which a loaded machine flattens).
        opening = await handles[0].claim_runnable(
            "claimer-0", LEASE_MS, 50, T0, queues=("global", "keyed")
        )
        for claim in opening:
            tracker.hold(claim)
        assert tracker.held["global"] == 3, dict(tracker.held)
        assert tracker.held["keyed"] == 6, dict(tracker.held)
        assert max(tracker.keyed.values()) == 2, dict(tracker.keyed)

        async def settle(i: int, handle: ExecutionStore, claim: Claimed) -> None:
            tracker.release(claim)
            await handle.settle_run(claim.run.run_id, claim.lease, 0, [], Finish(i), T0)
            tracker.settled[claim.run.run_id] += 1

        async def claimer(i: int, handle: ExecutionStore) -> None:
            rng = random.Random(i)
            idle = 0
            if i == 0:
                for claim in opening:
                    await asyncio.sleep(rng.random() * 0.003)
                    await settle(i, handle, claim)
            while not done.is_set():
                claims = await handle.claim_runnable(
                    f"claimer-{i}", LEASE_MS, rng.randint(1, 3), T0
                )
                if not claims:
                    idle += 1
                    # Bounded: a store that strands runs must fail, not hang.
                    if idle > 20_000:
                        pytest.fail(f"claimer {i} found nothing to claim {idle} times in a row")
                    await asyncio.sleep(0.001)
                    continue
                idle = 0
                for claim in claims:
                    tracker.hold(claim)
                for claim in claims:
                    await asyncio.sleep(rng.random() * 0.003)
                    await settle(i, handle, claim)
                if len(tracker.settled) == RUNS:
                    done.set()

        await asyncio.gather(*(claimer(i, h) for i, h in enumerate(handles)))

        assert len(tracker.settled) == RUNS
        assert set(tracker.settled.values()) == {1}
        finished = 0
        cursor: str | None = None
        while True:
            page = await store.list_runs(status=RunStatus.FINISHED, limit=1000, cursor=cursor)
            finished += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert finished == RUNS
