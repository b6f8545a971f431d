"""A cluster acts on exactly the runs a standalone server acts on.

On a cluster the many-run operations ask every bucket what it would act on (dry),
merge, then act bucket by bucket; the acting step must act on the merge's winners,
not on whatever its own (smaller) window of the bucket shows. Every test runs on the
standalone server and on the test cluster, with the same expected result."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from local_cluster import (  # noqa: F401  (fixture redis_cluster_url)
    cluster_fixture,
    standalone_or_cluster,
)

from workflow.runtime import Claimed
from workflow.store.redis.keys import Keyspace
from workflow.store.redis.store import RedisStore


@pytest.fixture(params=["standalone", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    async for handle in standalone_or_cluster(request, create=True):
        yield handle


def _ids_in(keys: Keyspace, bucket: int, count: int, stem: str) -> list[str]:
    found: list[str] = []
    i = 0
    while len(found) < count:
        run_id = f"{stem}{i}"
        i += 1
        if keys.run_bucket(run_id) == bucket:
            found.append(run_id)
    return found


async def _lease_until(store: RedisStore, run_id: str, ready_at: int, expires_at: int) -> None:
    await store.create_run(run_id, "wf", None, None, ready_at)
    claimed = await store.claim_run(run_id, "w0", expires_at - ready_at, ready_at)
    assert isinstance(claimed, Claimed)


async def test_claim_runnable_claims_the_merges_winners_not_the_earliest_expired(
    store: RedisStore,
) -> None:
    # Bucket 0 holds two expired leases, R1 (ready 10, expires 50) and R2 (ready 5,
    # expires 60), and a queued Q (ready 100); bucket 1 a queued X (ready 7). The two
    # oldest claimable runs are R2 and X. A cluster's acting step that re-scanned
    # bucket 0 for its one winner saw only the earliest-expired lease, R1, and claimed
    # it instead of R2.
    keys = await store._ks()
    r1, r2, q = _ids_in(keys, 0, 3, "a")
    (x,) = _ids_in(keys, 1, 1, "b")
    await _lease_until(store, r2, 5, 60)
    await store.create_run(x, "wf", None, None, 7)
    await _lease_until(store, r1, 10, 50)
    await store.create_run(q, "wf", None, None, 100)

    claims = await store.claim_runnable("w1", 1000, 2, 1000)
    assert [c.run.run_id for c in claims] == [r2, x]
    # Then the rest, oldest first.
    claims = await store.claim_runnable("w1", 1000, 2, 1000)
    assert [c.run.run_id for c in claims] == [r1, q]
