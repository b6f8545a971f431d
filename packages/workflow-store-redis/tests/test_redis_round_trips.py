"""Round trips per hot operation: each transition is one script call.

Counted client-side on real connections (every write to a socket is one round trip:
redis-py sends a pipeline or MULTI/EXEC in one write; a cluster pipeline writes once
per node it needs). A change that adds a round trip fails here; one that removes one
updates the table.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from local_cluster import (  # noqa: F401  (fixture redis_cluster_url)
    cluster_fixture,
    standalone_or_cluster,
)
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection

from workflow.contract_tests.servers import require_server
from workflow.runtime import Claimed, Finish, NewEvent, Pause, RateLimit, RunStatus, Wait
from workflow.store.redis.store import RedisStore, open_store

URL = os.environ.get("WORKFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = 1_700_000_000_000
LEASE_MS = 30_000

ONE_RUN = {
    "create_run": 1,
    "create_run_claimed": 1,
    "load_run": 1,
    "claim_run": 1,
    "heartbeat": 1,
    "append_events_1": 1,
    "append_events_10": 1,
    "settle_run": 1,
    "deliver_signal": 1,
    "read_events": 1,
    "get_timeline": 1,
    "read_inbox": 1,
}
# fire_due_timers: the deadlines script, then the timers script (deadlines come first
# within the limit, which one ranking by score could not keep across buckets).
STANDALONE = {**ONE_RUN, "claim_runnable": 1, "fire_due_timers": 2, "list_runs": 2}
MASTERS = 3
"""The test cluster's masters (local_cluster): its 16 buckets are spread over all of them."""
# Cluster: a dry script per bucket, all in one pipeline (written once to each master),
# then the acting script on the bucket that holds the winner; list_runs is two
# pipelines, each written once to every master or, for one run, its node. Queue limits
# span slots, so every claim reserves its place in the {g} slot first
# (docs/stores/redis.md, Queues): claim_runnable asks which queues are full in the
# buckets' pipeline (its {g} script shares a master's write), reserves, claims;
# claim_run reads the run's queue, reserves, claims; a heartbeat extends the
# reservation before the lease and a settle gives it back. (Until 2026-12-06 the dry
# scripts were one round trip per bucket: claim_runnable took 1 + 16 + 1 + 1 = 19,
# fire_due_timers 16 + 16 + 1 = 33.)
CLUSTER = {
    **ONE_RUN,
    "create_run_claimed": 2,
    "claim_run": 3,
    "heartbeat": 2,
    "settle_run": 2,
    "claim_runnable": MASTERS + 1 + 1,
    "fire_due_timers": MASTERS + MASTERS + 1,  # no deadline due: no winner
    "list_runs": MASTERS + 1,
}


class Counter:
    sent = 0


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> type[Counter]:
    """Counts every socket write of every redis-py connection (it still sends)."""
    original = Connection.send_packed_command

    async def send(self: Connection, command: Any, check_health: bool = True) -> None:
        Counter.sent += 1
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", send)
    return Counter


async def _open(url: str, cluster: bool) -> AsyncIterator[RedisStore]:
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    store = RedisStore.from_url(url, prefix=prefix, cluster=cluster)
    await store.create_schema()
    yield store
    async for key in store.client.scan_iter(match=store.keys.pattern):
        await store.client.unlink(key)
    await store.close()


@pytest.fixture
async def store() -> AsyncIterator[RedisStore]:
    require_server(URL, "Redis", default_port=6379)
    async for opened in _open(URL, False):
        yield opened


@pytest.fixture
async def cluster_store(redis_cluster_url: str) -> AsyncIterator[RedisStore]:
    async for opened in _open(redis_cluster_url, True):
        yield opened


async def _drive(store: RedisStore, run_id: str, now: int) -> dict[str, int]:
    """One pass over the hot operations; returns the round trips each took."""
    seen: dict[str, int] = {}

    async def count(name: str, op: Callable[[], Awaitable[Any]]) -> Any:
        before = Counter.sent
        result = await op()
        seen[name] = Counter.sent - before
        return result

    await count("create_run", lambda: store.create_run(run_id, "wf", None, {"a": 1}, now))
    await count(
        "create_run_claimed",
        lambda: store.create_run(
            f"{run_id}-c", "wf", None, None, now, owner="w", lease_ms=LEASE_MS
        ),
    )
    await count("load_run", lambda: store.load_run(run_id))
    claim = await count("claim_run", lambda: store.claim_run(run_id, "w", LEASE_MS, now))
    assert isinstance(claim, Claimed)
    lease = await count("heartbeat", lambda: store.heartbeat(run_id, claim.lease, LEASE_MS, now))
    one = [NewEvent("step", {"i": 0})]
    ten = [NewEvent("step", {"i": i}) for i in range(10)]
    await count("append_events_1", lambda: store.append_events(run_id, lease, 0, one, now))
    await count("append_events_10", lambda: store.append_events(run_id, lease, 1, ten, now))
    await count(
        "settle_run",
        lambda: store.settle_run(run_id, lease, 11, [], Pause(Wait.signal("s", "go")), now),
    )
    await count("deliver_signal", lambda: store.deliver_signal(run_id, "sig", "go", None, now))
    (again,) = await count("claim_runnable", lambda: store.claim_runnable("w", LEASE_MS, 1, now))
    await store.settle_run(run_id, again.lease, 11, [], Pause(Wait.sleep("nap", now)), now)
    await count("fire_due_timers", lambda: store.fire_due_timers(now, 10))
    await count("read_events", lambda: store.read_events(run_id))
    await count("get_timeline", lambda: store.get_timeline(run_id))
    await count("read_inbox", lambda: store.read_inbox(run_id))
    await count("list_runs", lambda: store.list_runs(limit=10))
    # Gone, so the next pass's claim_runnable cannot pick this (older) run.
    assert await store.delete_run(run_id)
    return seen


async def test_hot_operations_take_the_budgeted_round_trips(
    store: RedisStore, counted: type[Counter]
) -> None:
    # The first pass connects and loads the scripts (EVALSHA -> NOSCRIPT -> load).
    await _drive(store, "warm-up", T0)
    seen = await _drive(store, "measured", T0 + 1)
    assert seen == STANDALONE


async def test_queue_limits_cost_no_round_trip_on_a_standalone_server(
    store: RedisStore, counted: type[Counter]
) -> None:
    # Every limit on the queue the runs are in: each claim (claim_run, claim_runnable,
    # create_run claimed) counts the queue's leases and its rate window inside its own
    # script, so the budget is the same as without limits.
    await store.upsert_queue(
        "default", T0, concurrency=100, per_key_concurrency=10, rate_limit=RateLimit(1000, 60_000)
    )
    await _drive(store, "warm-up", T0)
    seen = await _drive(store, "measured", T0 + 1)
    assert seen == STANDALONE


async def test_hot_operations_take_the_budgeted_round_trips_on_a_cluster(
    cluster_store: RedisStore, counted: type[Counter]
) -> None:
    await _drive(cluster_store, "warm-up", T0)
    seen = await _drive(cluster_store, "measured", T0 + 1)
    assert seen == CLUSTER


async def test_an_idle_cluster_poll_is_one_write_per_master(
    cluster_store: RedisStore, counted: type[Counter]
) -> None:
    # Nothing claimable: the room ({g}) and every bucket's dry script, one pipeline.
    await _drive(cluster_store, "warm-up", T0)  # loads the scripts on every master
    before = counted.sent
    assert await cluster_store.claim_runnable("w", LEASE_MS, 1, T0 + 1) == []
    assert counted.sent - before == MASTERS


def _masters_of(store: RedisStore, buckets: set[int]) -> int:
    """How many masters hold ``buckets`` (the slots of their tags)."""
    client = store.client
    assert isinstance(client, RedisCluster)
    nodes = {client.get_node_from_key(store.keys.index(k, "ready")) for k in buckets}
    assert None not in nodes
    return len(nodes)


async def test_a_cluster_claim_reads_on_past_a_key_it_filled_in_one_more_round(
    cluster_store: RedisStore, counted: type[Counter]
) -> None:
    # 40 runs of a key with room for one, then a run of another key; limit 2. Round 1
    # (room and dry scripts, then the reservation) takes a00 and fills k1; round 2 reads
    # on from where round 1's candidates stopped, past k1's runs (dry scripts, then the
    # reservation of b); then the claims, one pipeline over the winners' masters.
    await _drive(cluster_store, "warm-up", T0)
    await cluster_store.upsert_queue("q", T0, per_key_concurrency=1)
    for i in range(40):
        await cluster_store.create_run(
            f"a{i:02d}", "wf", None, None, T0, queue="q", partition_key="k1"
        )
    await cluster_store.create_run("b", "wf", None, None, T0, queue="q", partition_key="k2")
    before = counted.sent
    got = await cluster_store.claim_runnable("w", LEASE_MS, 2, T0 + 10)
    sent = counted.sent - before
    assert [c.run.run_id for c in got] == ["a00", "b"]
    keys = cluster_store.keys
    winners = {keys.run_bucket("a00"), keys.run_bucket("b")}
    assert sent == (MASTERS + 1) + (MASTERS + 1) + _masters_of(cluster_store, winners)


async def test_a_status_filter_reads_only_the_matching_runs(
    store: RedisStore, counted: type[Counter]
) -> None:
    # 4000 queued runs (about 250 per bucket, more than one read-ahead round of 200)
    # and one running: the per-status list order finds it in one round.
    ids = [f"r{i:04d}" for i in range(4000)]
    for start in range(0, len(ids), 50):
        await asyncio.gather(
            *(store.create_run(r, "wf", None, None, T0) for r in ids[start : start + 50])
        )
    assert isinstance(await store.claim_run("r0042", "w", LEASE_MS, T0), Claimed)
    before = Counter.sent
    page = await store.list_runs(status=RunStatus.RUNNING, limit=10)
    assert Counter.sent - before == STANDALONE["list_runs"]
    assert [r.run_id for r in page.items] == ["r0042"]
    assert page.next_cursor is None


async def test_a_store_open_store_opened_has_read_its_bucket_count(
    store: RedisStore, counted: type[Counter]
) -> None:
    # verify_schema reads P{g}:buckets along with the revision, so the first operation
    # of an opened store is its own one round trip.
    joint = "&" if "?" in URL else "?"
    opened = await open_store(f"{URL}{joint}prefix={store.keys.prefix}")
    try:
        before = counted.sent
        assert await opened.load_run("r") is None
        assert counted.sent - before == 1
    finally:
        await opened.close()


async def _child_ends(store: RedisStore, parent: str, now: int) -> dict[str, int]:
    """A parent paused on its child's wait; the child is created and settles: the
    round trips of the child's create, of its settle (which also writes the parent's
    child entry and queues the parent) and of listing the parent's children."""
    child = f"{parent}@child"
    await store.create_run(parent, "wf", None, None, now)
    claim = await store.claim_run(parent, "w", LEASE_MS, now)
    assert isinstance(claim, Claimed)
    await store.settle_run(parent, claim.lease, 0, [], Pause(Wait.child("c", child)), now)
    before = Counter.sent
    await store.create_run(child, "wf", None, None, now, parent_run_id=parent)
    created = Counter.sent - before
    ran = await store.claim_run(child, "w", LEASE_MS, now)
    assert isinstance(ran, Claimed)
    before = Counter.sent
    await store.settle_run(child, ran.lease, 0, [], Finish(1), now)
    settled = Counter.sent - before
    woken = await store.load_run(parent)
    assert woken is not None
    assert woken.status is RunStatus.QUEUED
    before = Counter.sent
    page = await store.list_runs(parent_run_id=parent)
    listed = Counter.sent - before
    assert [r.run_id for r in page.items] == [child]
    return {"create_run": created, "settle_run": settled, "list_children": listed}


@pytest.fixture(params=["standalone", "cluster"])
async def either_store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    async for handle in standalone_or_cluster(request, create=True):
        yield handle


async def test_a_child_s_create_and_settle_take_the_budgeted_round_trips(
    either_store: RedisStore, counted: type[Counter]
) -> None:
    await _child_ends(either_store, "warm-up", T0)  # loads the scripts
    seen = await _child_ends(either_store, "measured", T0 + 1)
    # A child costs what any run costs: its parent's entry is in the settle's script.
    # Its parent's children are one index in one bucket: one node even on a cluster.
    budget = CLUSTER if either_store.cluster else STANDALONE
    assert seen == {
        "create_run": budget["create_run"],
        "settle_run": budget["settle_run"],
        "list_children": 2,
    }
