"""Child runs on Redis: what the contract cannot say because only Redis places runs in
buckets (a child must share its parent's), and the children index's upkeep.

Every test runs on the standalone server and on the test cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import pairwise

import pytest
from local_cluster import (  # noqa: F401  (fixture redis_cluster_url)
    cluster_fixture,
    standalone_or_cluster,
)

from workflow.runtime import Cancelled, Claimed, ErrorInfo, Existing, RunStatus
from workflow.runtime.errors import InvalidArgumentError
from workflow.store.redis.store import RedisStore

T0 = 1_700_000_000_000


@pytest.fixture(params=["standalone", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    async for handle in standalone_or_cluster(request, create=True):
        yield handle


async def _keys(store: RedisStore) -> dict[str, object]:
    """Every key of the store's prefix with its value (to see that nothing changed)."""
    out: dict[str, object] = {}
    async for key in store.client.scan_iter(match=store.keys.pattern):
        kind = await store.client.type(key)
        if kind == "hash":
            out[key] = await store.client.hgetall(key)
        elif kind == "zset":
            out[key] = await store.client.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    return out


async def test_a_child_outside_its_parents_bucket_is_refused_and_nothing_is_written(
    store: RedisStore,
) -> None:
    await store.create_run("p", "wf", None, None, T0)
    ks = store.keys
    elsewhere = next(f"x{i}" for i in range(100) if ks.run_bucket(f"x{i}") != ks.run_bucket("p"))
    before = await _keys(store)
    with pytest.raises(InvalidArgumentError, match="parent_run_id") as caught:
        await store.create_run(elsewhere, "wf", None, None, T0, parent_run_id="p")
    assert "'p@…'" in str(caught.value)  # the id form that works
    assert await _keys(store) == before
    # An existing id is answered first, as without a parent (its bucket is its own).
    await store.create_run(elsewhere, "wf", None, None, T0)
    again = await store.create_run(elsewhere, "wf", None, None, T0, parent_run_id="p")
    assert isinstance(again, Existing)
    assert again.run.parent_run_id is None


async def test_a_deep_tree_is_cancelled_whole_in_one_script(store: RedisStore) -> None:
    # A chain 300 deep (the cascade keeps its own stack, it does not recurse) under
    # one placement, so in one bucket.
    ids = ["p", *(f"p@c{i}" for i in range(300))]
    await store.create_run(ids[0], "wf", None, None, T0)
    for parent, run_id in pairwise(ids):
        await store.create_run(run_id, "wf", None, None, T0, parent_run_id=parent)
    assert isinstance(await store.cancel_run("p", "stop", T0 + 1), Cancelled)
    for parent, run_id in pairwise(ids):
        run = await store.load_run(run_id)
        assert run is not None
        assert (run.status, run.error) == (
            RunStatus.CANCELLED,
            ErrorInfo("ParentEnded", f"parent run {parent} ended cancelled", "cancelled"),
        )


async def test_listing_by_parent_with_another_filter_reads_in_rounds(store: RedisStore) -> None:
    # 450 children (more than two rounds of 200), every third cancelled: listing the
    # cancelled ones pages through them in (created_at, run_id) descending order.
    await store.create_run("p", "wf", None, None, T0)
    for i in range(450):
        await store.create_run(f"p@c{i:03d}", "wf", None, None, T0 + i, parent_run_id="p")
    for i in range(0, 450, 3):
        await store.cancel_run(f"p@c{i:03d}", "stop", T0 + 1_000)
    await store.create_run("q", "wf", None, None, T0)  # not p's: never listed
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_runs(
            parent_run_id="p", status=RunStatus.CANCELLED, limit=40, cursor=cursor
        )
        seen += [r.run_id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"p@c{i:03d}" for i in reversed(range(0, 450, 3))]
    only_wf = await store.list_runs(parent_run_id="p", workflow_id="other")
    assert only_wf.items == []


async def test_the_children_index_shrinks_as_children_go_and_outlives_its_parent(
    store: RedisStore,
) -> None:
    await store.create_run("p", "wf", None, None, T0)
    for i in range(3):
        await store.create_run(f"p@c{i}", "wf", None, None, T0 + i, parent_run_id="p")
    index = store.keys.children("p")
    assert await store.client.zcard(index) == 3
    assert await store.delete_run("p@c0")
    assert await store.client.zcard(index) == 2
    # The parent goes; its children keep their link, and so the list.
    assert await store.delete_run("p")
    listed = await store.list_runs(parent_run_id="p")
    assert [r.run_id for r in listed.items] == ["p@c2", "p@c1"]
    for i in (1, 2):
        assert await store.delete_run(f"p@c{i}")
    assert not any(":children:" in k for k in await _keys(store))


async def test_a_cascade_frees_the_queue_places_of_the_children_it_cancels(
    store: RedisStore,
) -> None:
    # A queue with one place, held by a running child; cancelling the parent cancels
    # the child, and the place is free at once (on a cluster: its reservation is
    # forgotten), not when the child's lease would have expired.
    await store.upsert_queue("q", T0, concurrency=1)
    await store.create_run("p", "wf", None, None, T0)
    await store.create_run("p@c", "wf", None, None, T0, parent_run_id="p", queue="q")
    await store.create_run("other", "wf", None, None, T0 + 1, queue="q")
    held = await store.claim_run("p@c", "w", 60_000, T0 + 2)
    assert isinstance(held, Claimed)
    assert await store.claim_runnable("w", 60_000, 5, T0 + 3, queues=["q"]) == []
    assert isinstance(await store.cancel_run("p", "stop", T0 + 4), Cancelled)
    claims = await store.claim_runnable("w", 60_000, 5, T0 + 5, queues=["q"])
    assert [c.run.run_id for c in claims] == ["other"]
