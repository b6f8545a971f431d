"""The keyspace migrations: Alembic's revision graph, the revision in a Redis key."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from workflow.contract_tests.servers import require_server
from workflow.runtime.errors import InvalidArgumentError, SchemaVersionError
from workflow.store.redis.keys import Keyspace
from workflow.store.redis.migrator import head
from workflow.store.redis.store import RedisStore

URL = os.environ.get("WORKFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = 1_700_000_000_000


@pytest.fixture
async def store() -> AsyncIterator[RedisStore]:
    require_server(URL, "Redis", default_port=6379)
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    store = RedisStore.from_url(URL, prefix=prefix)
    yield store
    keys = [k async for k in store.client.scan_iter(match=Keyspace(prefix).pattern)]
    if keys:
        await store.client.unlink(*keys)
    await store.close()


async def _keys(store: RedisStore) -> set[str]:
    return {k async for k in store.client.scan_iter(match=store.keys.pattern)}


async def test_upgrade_records_the_head_once_and_is_idempotent(store: RedisStore) -> None:
    assert (await store.schema_status()).current is None
    assert [r.revision for r in store.migrator.history()][-1] == head()
    await store.create_schema()
    await store.create_schema()
    status = await store.schema_status()
    assert (status.current, status.up_to_date) == (head(), True)
    # Only the revision key: the lock was released.
    assert await _keys(store) == {store.keys.index("revision")}


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
    await store.client.set(store.keys.index("revision"), "9999")
    with pytest.raises(SchemaVersionError, match="does not know") as caught:
        await store.verify_schema()
    assert (caught.value.current, caught.value.required) == ("9999", head())


async def test_a_held_migration_lock_stops_a_second_migrator(store: RedisStore) -> None:
    lock = store.keys.index("migration_lock")
    await store.client.set(lock, "someone-else")
    with pytest.raises(SchemaVersionError, match="another process is migrating"):
        await store.create_schema()
    # The holder's lock is left alone, and nothing was migrated.
    assert await store.client.get(lock) == "someone-else"
    assert (await store.schema_status()).current is None


async def test_downgrading_one_prefix_leaves_a_longer_prefix_alone(store: RedisStore) -> None:
    # "wftest:x:" and "wftest:x:t2:": the second starts with the first.
    other = RedisStore.from_url(URL, prefix=f"{store.keys.prefix}t2:")
    try:
        await store.create_schema()
        await other.create_schema()
        await other.create_run("r", "wf", None, None, T0)
        await store.migrator.downgrade("base")
        assert (await other.schema_status()).current == head()
        assert await other.load_run("r") is not None
    finally:
        keys = [k async for k in other.client.scan_iter(match=other.keys.pattern)]
        if keys:
            await other.client.unlink(*keys)
        await other.close()


async def test_unknown_revisions_are_the_contracts_errors_not_alembics(store: RedisStore) -> None:
    await store.create_schema()
    with pytest.raises(InvalidArgumentError, match="no such revision"):
        await store.migrator.upgrade("0badc0ffee00")
    with pytest.raises(InvalidArgumentError, match="no such revision"):
        await store.migrator.downgrade("0badc0ffee00")
    # A keyspace migrated by a newer adapter: our graph does not have its revision.
    await store.client.set(store.keys.index("revision"), "ffffffffffff")
    for attempt in (store.migrator.upgrade(), store.migrator.downgrade("base")):
        with pytest.raises(SchemaVersionError, match="does not know") as exc:
            await attempt
        assert exc.value.current == "ffffffffffff"
