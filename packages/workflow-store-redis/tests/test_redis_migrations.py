"""The keyspace migrations: Alembic's revision graph, the revision in a Redis key.

Every test runs on the standalone server and on the test cluster (conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from local_cluster import (  # noqa: F401  (fixture redis_cluster_url)
    cluster_fixture,
    standalone_or_cluster,
)

from workflow.runtime import (
    Claimed,
    Finish,
    IntervalSpec,
    NewEvent,
    Pause,
    RunStatus,
    SchemaMigrator,
    SchemaOwner,
    SchemaRevision,
    Wait,
)
from workflow.runtime.errors import InvalidArgumentError, SchemaVersionError
from workflow.store.redis.keys import escape
from workflow.store.redis.migrator import _Lock, head
from workflow.store.redis.store import RedisStore

T0 = 1_700_000_000_000


@pytest.fixture(params=["standalone", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    async for handle in standalone_or_cluster(request, create=False):
        yield handle


async def _keys(store: RedisStore) -> set[str]:
    return {k async for k in store.client.scan_iter(match=store.keys.pattern)}


async def test_upgrade_records_the_head_once_and_is_idempotent(store: RedisStore) -> None:
    assert (await store.schema_status()).current is None
    assert [r.revision for r in store.migrator.history()][-1] == head()
    await store.create_schema()
    await store.create_schema()
    status = await store.schema_status()
    assert (status.current, status.up_to_date) == (head(), True)
    # Only the revision and bucket-count keys: the lock was released.
    assert await _keys(store) == {store.keys.meta("revision"), store.keys.meta("buckets")}


async def test_downgrade_to_base_removes_every_key_of_the_prefix(store: RedisStore) -> None:
    await store.create_schema()
    await store.create_run("r:{1}", "wf", None, {"x": 1}, T0)
    assert len(await _keys(store)) > 1
    await store.migrator.downgrade("base")
    assert await _keys(store) == set()
    assert (await store.schema_status()).current is None


async def test_verify_names_the_fix_and_unknown_revisions(store: RedisStore) -> None:
    with pytest.raises(SchemaVersionError, match="workflow migrate upgrade --url"):
        await store.verify_schema()
    await store.client.set(store.keys.meta("revision"), "9999")
    with pytest.raises(SchemaVersionError, match="does not know") as caught:
        await store.verify_schema()
    assert (caught.value.current, caught.value.required) == ("9999", head())


async def test_a_held_migration_lock_stops_a_second_migrator(store: RedisStore) -> None:
    lock = store.keys.meta("migration_lock")
    await store.client.set(lock, "someone-else")
    with pytest.raises(SchemaVersionError, match="another process is migrating"):
        await store.create_schema()
    # The holder's lock is left alone, and nothing was migrated.
    assert await store.client.get(lock) == "someone-else"
    assert (await store.schema_status()).current is None


async def test_a_held_lock_s_message_says_when_it_expires_and_how_to_remove_it(
    store: RedisStore,
) -> None:
    lock = store.keys.meta("migration_lock")
    await store.client.set(lock, "someone-else", px=120_000)
    with pytest.raises(SchemaVersionError) as caught:
        await store.create_schema()
    message = str(caught.value)
    assert "it expires in 1" in message  # 119 or 120 s
    assert f"redis-cli DEL '{lock}'" in message


async def test_the_migration_lock_is_renewed_while_held_and_fenced_by_its_token(
    store: RedisStore,
) -> None:
    lock = _Lock(store.migrator.context)
    key = store.keys.meta("migration_lock")
    await lock.__aenter__()
    try:
        await store.client.pexpire(key, 5_000)
        assert await lock.renew()
        assert await store.client.pttl(key) > 5_000  # back to the full ten minutes
        # Someone else's lock (ours expired and another process took it): not renewed.
        await store.client.set(key, "someone-else", px=5_000)
        assert not await lock.renew()
        assert await store.client.pttl(key) <= 5_000
    finally:
        await lock.__aexit__(None, None, None)
    assert await store.client.get(key) == "someone-else"  # released only by its holder


async def test_a_migration_that_lost_its_lock_says_so(store: RedisStore) -> None:
    # A short lock, so its background renewal runs soon: it finds the lock taken by
    # another process and stops; leaving then reports the lost lock.
    lock = _Lock(store.migrator.context, ttl_ms=300)
    key = store.keys.meta("migration_lock")
    await lock.__aenter__()
    await store.client.set(key, "someone-else")
    assert lock._renewer is not None
    await lock._renewer  # ends at its first renewal, which finds the lock gone
    assert lock.lost
    with pytest.raises(SchemaVersionError, match="expired or was removed"):
        await lock.__aexit__(None, None, None)


async def test_downgrading_one_prefix_leaves_a_longer_prefix_alone(store: RedisStore) -> None:
    # "wftest:x:" and "wftest:x:t2:": the second starts with the first.
    other = RedisStore(store.client, prefix=f"{store.keys.prefix}t2:")
    try:
        await store.create_schema()
        await other.create_schema()
        await other.create_run("r", "wf", None, None, T0)
        await store.migrator.downgrade("base")
        assert (await other.schema_status()).current == head()
        assert await other.load_run("r") is not None
    finally:
        async for key in other.client.scan_iter(match=other.keys.pattern):
            await other.client.unlink(key)


async def test_unknown_revisions_are_the_contracts_errors_not_alembics(store: RedisStore) -> None:
    await store.create_schema()
    with pytest.raises(InvalidArgumentError, match="no such revision"):
        await store.migrator.upgrade("0badc0ffee00")
    with pytest.raises(InvalidArgumentError, match="no such revision"):
        await store.migrator.downgrade("0badc0ffee00")
    # A keyspace migrated by a newer adapter: our graph does not have its revision.
    await store.client.set(store.keys.meta("revision"), "ffffffffffff")
    for attempt in (store.migrator.upgrade(), store.migrator.downgrade("base")):
        with pytest.raises(SchemaVersionError, match="does not know") as exc:
            await attempt
        assert exc.value.current == "ffffffffffff"


async def _snapshot(store: RedisStore) -> object:
    """Everything the store says about its runs and schedules."""
    page = await store.list_runs(limit=100)
    runs = []
    for run in page.items:
        runs.append(
            (
                run,
                await store.get_timeline(run.run_id),
                await store.read_inbox(run.run_id, include_consumed=True),
            )
        )
    by_workflow = [r.run_id for r in (await store.list_runs(workflow_id="wf2")).items]
    return runs, by_workflow, await store.list_schedules()


async def test_downgrade_to_0001_and_upgrade_again_keeps_every_run_and_schedule(
    store: RedisStore,
) -> None:
    await store.create_schema()
    ids = ["queued", "run:{1}", "paused é", "日本", "done", "sig"]
    for i, run_id in enumerate(ids):
        await store.create_run(run_id, "wf2" if i % 2 else "wf", None, {"i": i}, T0 + i)
    running = await store.claim_run("run:{1}", "w", 60_000, T0 + 10)
    paused = await store.claim_run("paused é", "w", 60_000, T0 + 10)
    done = await store.claim_run("done", "w", 60_000, T0 + 10)
    sig = await store.claim_run("sig", "w", 60_000, T0 + 10)
    assert isinstance(running, Claimed)
    assert isinstance(paused, Claimed)
    assert isinstance(done, Claimed)
    assert isinstance(sig, Claimed)
    await store.append_events("run:{1}", running.lease, 0, [NewEvent("step", {"a": 1})], T0 + 11)
    await store.settle_run(
        "paused é", paused.lease, 0, [], Pause(Wait.sleep("nap", T0 + 50)), T0 + 12
    )
    await store.settle_run("done", done.lease, 0, [NewEvent("x")], Finish("ok"), T0 + 13)
    await store.settle_run("sig", sig.lease, 0, [], Pause(Wait.signal("s", "go")), T0 + 14)
    await store.deliver_signal("sig", "other", "nope", {"p": 1}, T0 + 15)
    await store.upsert_schedule("nightly:{x}", "wf", IntervalSpec(1000), T0)
    before = await _snapshot(store)

    await store.migrator.downgrade("0001")
    assert (await store.schema_status()).current == "0001"
    keys = await _keys(store)
    prefix = store.keys.prefix
    # Revision 0001's layout: a run under {wf:<hex>}, indexes and schedules under {g}.
    assert f"{prefix}{{wf:{escape('run:{1}')}}}:run" in keys
    assert f"{prefix}{{wf:{escape('run:{1}')}}}:events" in keys
    assert f"{prefix}{{g}}:sched:{escape('nightly:{x}')}" in keys
    assert {f"{prefix}{{g}}:{name}" for name in ("queued", "leases", "timers", "terminal")} <= keys
    assert not any("{b" in k for k in keys)

    await store.create_schema()
    assert (await store.schema_status()).up_to_date
    assert not any("{wf:" in k or "{g}:sched" in k for k in await _keys(store))
    assert await _snapshot(store) == before
    # The indexes were rebuilt: the timer fires, the queued run and the expired lease
    # are claimed in (ready_at, run_id) order, the terminal run is purged.
    fired = await store.fire_due_timers(T0 + 50, 10)
    assert [e.run_id for e in fired] == ["paused é"]
    claims = await store.claim_runnable("w2", 60_000, 10, T0 + 100_000)
    assert [c.run.run_id for c in claims] == ["queued", "run:{1}", "日本", "paused é"]
    assert await store.purge_runs(T0 + 100, 10) == 1


async def test_upgrade_moves_a_keyspace_written_by_0001(store: RedisStore) -> None:
    # Written key by key as revision 0001's code wrote it (its keys.py layout).
    prefix, h, wf = store.keys.prefix, escape("r:{é}"), escape("wf")
    member = f"{T0:015d}:{h}"
    client = store.client
    await client.hset(
        f"{prefix}{{wf:{h}}}:run",
        mapping={
            "id": "r:{é}",
            "wf": "wf",
            "status": "queued",
            "next": 1,
            "token": 0,
            "created": T0,
            "updated": T0,
            "ready": T0,
            "cm": member,
            "input": '{"x":1}',
        },
    )
    await client.rpush(f"{prefix}{{wf:{h}}}:events", '["start",null,null,1700000000000]')
    await client.zadd(f"{prefix}{{g}}:queued", {h: T0})
    await client.zadd(f"{prefix}{{g}}:created", {member: 0})
    await client.zadd(f"{prefix}{{g}}:created:{wf}", {member: 0})
    await client.set(store.keys.meta("revision"), "0001")

    await store.create_schema()
    run = await store.load_run("r:{é}")
    assert run is not None
    assert run.input == {"x": 1}
    assert run.next_event_index == 1
    assert [r.run_id for r in (await store.list_runs(workflow_id="wf")).items] == ["r:{é}"]
    (claim,) = await store.claim_runnable("w", 60_000, 10, T0 + 1, with_history=True)
    assert claim.run.run_id == "r:{é}"
    assert claim.events is not None
    assert [e.type for e in claim.events] == ["start"]


async def test_the_bucket_count_is_the_keyspaces_not_the_handles(store: RedisStore) -> None:
    # Created with 4 buckets; a handle configured for the default 16 reads 4 and
    # finds every run where the creating handle put it.
    creator = RedisStore(store.client, prefix=store.keys.prefix, buckets=4)
    await creator.create_schema()
    for i in range(20):
        await creator.create_run(f"r{i}", "wf", None, None, T0 + i)
    assert await store.client.get(store.keys.meta("buckets")) == "4"
    assert {k.split("{", 1)[1].split("}")[0] for k in await _keys(store) if "{b" in k} <= {
        f"b{k}" for k in range(4)
    }
    assert store.keys.buckets == 16
    listed = await store.list_runs(limit=100)
    assert [r.run_id for r in listed.items] == [f"r{i}" for i in reversed(range(20))]
    assert store.keys.buckets == 4
    claims = await store.claim_runnable("w", 60_000, 3, T0 + 100)
    assert [c.run.run_id for c in claims] == ["r0", "r1", "r2"]


async def test_the_store_is_a_schema_owner(store: RedisStore) -> None:
    # workflow migrate and workflow demo find the migrations through these Protocols
    # only (no getattr): a store that stopped satisfying them would lose both.
    assert isinstance(store, SchemaOwner)
    migrator = store.migrator
    assert isinstance(migrator, SchemaMigrator)
    assert all(isinstance(r, SchemaRevision) for r in migrator.history())


async def test_downgrade_to_0002_ends_timed_out_runs_cancelled_and_drops_deadlines(
    store: RedisStore,
) -> None:
    await store.create_schema()
    await store.create_run("late", "wf", None, None, T0, deadline_at=T0 + 10)
    await store.create_run("live", "wf", None, None, T0, deadline_at=T0 + 1_000)
    fired = await store.fire_due_timers(T0 + 10, 10)
    assert [e.run_id for e in fired] == ["late"]

    await store.migrator.downgrade("0002")
    assert (await store.schema_status()).current == "0002"
    late, live = await store.load_run("late"), await store.load_run("live")
    assert late is not None
    assert live is not None
    assert late.status.value == "cancelled"
    assert late.error is not None
    assert late.error.code == "timed_out"
    assert (late.deadline_at, live.deadline_at) == (None, None)
    keys = await _keys(store)
    assert not any(k.endswith((":deadlines", ":status:timed_out")) for k in keys)
    page = await store.list_runs(status=RunStatus.CANCELLED)
    assert [r.run_id for r in page.items] == ["late"]

    await store.create_schema()
    assert (await store.schema_status()).up_to_date
    assert await store.fire_due_timers(T0 + 2_000, 10) == []


async def test_0004_puts_old_runs_in_the_default_queue_and_downgrade_drops_queues(
    store: RedisStore,
) -> None:
    await store.create_schema()
    await store.create_run("old", "wf", None, None, T0)
    await store.create_run("held", "wf", None, None, T0 + 1)
    await store.create_run("new", "wf", None, None, T0 + 2)
    held = await store.claim_run("held", "w", 60_000, T0 + 3)
    assert isinstance(held, Claimed)
    others: tuple[str, ...] = ()
    if not store.cluster:
        await store.upsert_queue("q", T0, concurrency=1)
        await store.create_run("urgent", "wf", None, None, T0 + 4, queue="q", priority=5)
        others = ("urgent",)

    # Down to 0003: the keyspace as 0003 wrote it (0003 knew no placement).
    await store.migrator.downgrade("0003")
    keys = await _keys(store)
    assert not any(k.endswith(":ready") or ":qr:" in k or ":ql:" in k for k in keys), keys
    assert not any(":queue:" in k or k.endswith(":queues") for k in keys), keys
    for run_id in ("old", "held", "new", *others):
        fields = await store.client.hgetall(store.keys.run(run_id))
        assert not {"q", "pri", "po", "pk", "rm"} & set(fields), fields

    # Up again: every run is in the default queue at priority 0, in claim order, and
    # the run leased before counts against a limit set now.
    await store.create_schema()
    assert (await store.schema_status()).up_to_date
    for run_id in ("old", "held", "new", *others):
        run = await store.load_run(run_id)
        assert run is not None
        assert (run.queue, run.priority, run.partition_key) == ("default", 0, None)
    if not store.cluster:
        await store.upsert_queue("default", T0 + 5, concurrency=1)
        assert await store.claim_runnable("w", 60_000, 10, T0 + 6) == []
        await store.upsert_queue("default", T0 + 7, concurrency=4)
    claims = await store.claim_runnable("w", 60_000, 10, T0 + 8)
    assert [c.run.run_id for c in claims] == ["old", "new", *others]
