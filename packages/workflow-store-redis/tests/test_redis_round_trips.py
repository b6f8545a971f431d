"""Round trips per hot operation: each transition is one script call.

Counted client-side on a real connection (every write to the socket is one round
trip: redis-py sends a pipeline or MULTI/EXEC in one write). A change that adds a
round trip fails here; one that removes one updates the table.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from workflow.contract_tests.servers import require_server
from workflow.runtime import Claimed, NewEvent, Pause, Wait
from workflow.store.redis.store import RedisStore

URL = os.environ.get("WORKFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = 1_700_000_000_000
LEASE_MS = 30_000

BUDGET = {
    "create_run": 1,
    "load_run": 1,
    "claim_run": 1,
    "heartbeat": 1,
    "append_events_1": 1,
    "append_events_10": 1,
    "settle_run": 1,
    "deliver_signal": 1,
    "claim_runnable": 1,
    "fire_due_timers": 1,
    "read_events": 1,
    "get_timeline": 1,
    "read_inbox": 1,
    "list_runs": 2,
}


class CountingConnection(Connection):
    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sent += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def store() -> AsyncIterator[RedisStore]:
    require_server(URL, "Redis", default_port=6379)
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    pool = aioredis.ConnectionPool.from_url(
        URL, connection_class=CountingConnection, decode_responses=True
    )
    store = RedisStore(aioredis.Redis(connection_pool=pool), prefix=prefix)
    yield store
    keys = [k async for k in store.client.scan_iter(match=store.keys.pattern)]
    if keys:
        await store.client.unlink(*keys)
    await store.close()
    await pool.aclose()


async def _drive(store: RedisStore, run_id: str, now: int) -> dict[str, int]:
    """One pass over the hot operations; returns the round trips each took."""
    seen: dict[str, int] = {}

    async def count(name: str, op: Callable[[], Awaitable[Any]]) -> Any:
        before = CountingConnection.sent
        result = await op()
        seen[name] = CountingConnection.sent - before
        return result

    await count("create_run", lambda: store.create_run(run_id, "wf", None, {"a": 1}, now))
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


async def test_hot_operations_take_the_budgeted_round_trips(store: RedisStore) -> None:
    # The first pass connects and loads the scripts (EVALSHA -> NOSCRIPT -> load).
    await _drive(store, "warm-up", T0)
    seen = await _drive(store, "measured", T0 + 1)
    assert seen == BUDGET
