"""Retention: a worker given ``retention`` deletes the runs that ended longer ago, in
bounded batches, and leaves every other run alone; without it nothing is purged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from workflow.runtime import (
    JSON,
    Context,
    InMemoryStore,
    InvalidArgumentError,
    RunStatus,
    Runtime,
    workflow,
)
from workflow.runtime.worker import Worker

GUARD_S = 10.0
"""A failure guard only: every wait below ends long before it unless a purge is lost."""

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000


class PurgeCountingStore(InMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.purges: list[tuple[int, int]] = []

    async def purge_runs(self, terminal_before: int, limit: int) -> int:
        self.purges.append((terminal_before, limit))
        return await super().purge_runs(terminal_before, limit)


@workflow("echo")
async def echo(ctx: Context, input: JSON) -> JSON:
    return await ctx.step("echo", lambda: input)


@workflow("waits")
async def waits(ctx: Context, _: JSON) -> JSON:
    return await ctx.wait_for_signal("go")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


async def _until(check: Callable[[], bool | Awaitable[bool]]) -> None:
    for _ in range(int(GUARD_S / 0.005)):
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not reached in {GUARD_S} s")


async def _finished_runs(rt: Runtime, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    for run_id in ids:
        await rt.start("echo", run_id, run_id=run_id)
    await rt.run_until_idle()
    return ids


async def _statuses(store: InMemoryStore, ids: list[str]) -> dict[str, RunStatus | None]:
    runs = {run_id: await store.load_run(run_id) for run_id in ids}
    return {run_id: None if run is None else run.status for run_id, run in runs.items()}


async def test_a_worker_purges_runs_that_ended_before_its_retention_in_bounded_batches() -> None:
    clock = Clock()
    store = PurgeCountingStore()
    rt = Runtime(store, [echo, waits], clock=clock)
    old = await _finished_runs(rt, "old", 5)
    await rt.start("waits", None, run_id="waiting")  # never ends: kept whatever its age
    await rt.run_until_idle()
    clock.now += 2 * HOUR_MS
    recent = await _finished_runs(rt, "recent", 2)
    clock.now += HOUR_MS // 2

    w = Worker(rt, poll_interval=0.01, jitter=0, limit=2, retention=3600, purge_interval=60)
    task = asyncio.create_task(w.run())
    try:
        await _until(lambda: w.purged >= 5)
        sweeps = w.sweeps
        await _until(lambda: w.sweeps >= sweeps + 5)
    finally:
        w.stop()
        await asyncio.wait_for(task, GUARD_S)

    statuses = await _statuses(store, [*old, *recent, "waiting"])
    assert statuses == {
        **dict.fromkeys(old),
        **dict.fromkeys(recent, RunStatus.FINISHED),
        "waiting": RunStatus.PAUSED,
    }
    # Batches of `limit`, again at once while full, then not before the purge interval
    # (five more polls went by).
    assert store.purges == [(clock.now - HOUR_MS, 2)] * 3
    assert w.purged == 5


async def test_without_retention_a_worker_purges_nothing() -> None:
    clock = Clock()
    store = PurgeCountingStore()
    rt = Runtime(store, [echo], clock=clock)
    ids = await _finished_runs(rt, "r", 3)
    clock.now += 1000 * HOUR_MS
    w = Worker(rt, poll_interval=0.01, jitter=0)
    task = asyncio.create_task(w.run())
    try:
        await _until(lambda: w.sweeps >= 5)
    finally:
        w.stop()
        await asyncio.wait_for(task, GUARD_S)
    assert store.purges == []
    assert set((await _statuses(store, ids)).values()) == {RunStatus.FINISHED}


async def test_purge_finished_deletes_only_what_ended_longer_ago_oldest_first() -> None:
    clock = Clock()
    store = InMemoryStore()
    rt = Runtime(store, [echo], clock=clock)
    first = await _finished_runs(rt, "a", 2)
    clock.now += HOUR_MS
    second = await _finished_runs(rt, "b", 2)
    clock.now += HOUR_MS
    # Both batches are older than half an hour; a limit of 3 takes the oldest three.
    assert await rt.purge_finished(HOUR_MS // 2, limit=3) == 3
    assert [k for k, v in (await _statuses(store, [*first, *second])).items() if v] == ["b-1"]
    # Nothing ended more than two hours ago.
    assert await rt.purge_finished(2 * HOUR_MS) == 0


@pytest.mark.parametrize("retention", [-1, float("nan"), float("inf"), True, "7d"])
def test_a_bad_retention_is_refused(retention: object) -> None:
    with pytest.raises(InvalidArgumentError, match="retention"):
        Worker(Runtime(InMemoryStore(), []), retention=retention)  # type: ignore[arg-type]


@pytest.mark.parametrize("older_than", [-1, 1.5, "1h"])
async def test_purge_finished_refuses_a_bad_age(older_than: object) -> None:
    with pytest.raises(InvalidArgumentError, match="older_than_ms"):
        await Runtime(InMemoryStore(), []).purge_finished(older_than)  # type: ignore[arg-type]
