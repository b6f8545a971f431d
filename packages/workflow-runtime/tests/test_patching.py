"""In-code patching: a deploy changes a workflow's code under runs in flight. Runs
recorded under the old code replay it exactly; new runs, and runs that reach the patch
with nothing left to replay, take the new path; ``deprecate_patch`` is the step after.
Each test "deploys" by driving the same store with a second Runtime holding the new
code under the same workflow id and version."""

from __future__ import annotations

from typing import Any

import pytest

from workflow.runtime import (
    JSON,
    Context,
    ErrorInfo,
    InMemoryStore,
    RetryPolicy,
    RunStatus,
    Runtime,
    Workflow,
    workflow,
)
from workflow.runtime.history import EventType

calls: list[str] = []


def runtime(store: InMemoryStore, code: Workflow[Any, Any]) -> Runtime:
    # A failed run fails for good at once: these failures are the code's, not transient.
    return Runtime(store, [code], run_retry=RetryPolicy.never())


def did(what: str) -> str:
    calls.append(what)
    return what


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    calls.clear()


@workflow("order")
async def v1(ctx: Context, _: JSON) -> JSON:
    a = await ctx.step("reserve", did, "reserve")
    go = await ctx.wait_for_signal("go")
    return [a, go, await ctx.step("ship", did, "ship")]


@workflow("order")
async def v2(ctx: Context, _: JSON) -> JSON:
    """v1 with a fraud check before the wait, behind a patch."""
    a = await ctx.step("reserve", did, "reserve")
    checked = None
    if ctx.patched("fraud-check"):
        checked = await ctx.step("fraud-check", did, "fraud-check")
    assert ctx.patched("fraud-check") is (checked is not None)  # one answer per run
    go = await ctx.wait_for_signal("go")
    return [a, checked, go, await ctx.step("ship", did, "ship")]


@workflow("order")
async def v2_unpatched(ctx: Context, _: JSON) -> JSON:
    """The same change made without a patch."""
    a = await ctx.step("reserve", did, "reserve")
    checked = await ctx.step("fraud-check", did, "fraud-check")
    go = await ctx.wait_for_signal("go")
    return [a, checked, go, await ctx.step("ship", did, "ship")]


@workflow("order")
async def v3(ctx: Context, _: JSON) -> JSON:
    """v2 once every run started before the patch has ended."""
    a = await ctx.step("reserve", did, "reserve")
    ctx.deprecate_patch("fraud-check")
    checked = await ctx.step("fraud-check", did, "fraud-check")
    go = await ctx.wait_for_signal("go")
    return [a, checked, go, await ctx.step("ship", did, "ship")]


@workflow("order")
async def v4(ctx: Context, _: JSON) -> JSON:
    """v3 with the deprecation call removed."""
    a = await ctx.step("reserve", did, "reserve")
    checked = await ctx.step("fraud-check", did, "fraud-check")
    go = await ctx.wait_for_signal("go")
    return [a, checked, go, await ctx.step("ship", did, "ship")]


async def _paused_at_the_wait(store: InMemoryStore, code: Workflow[Any, Any], run_id: str) -> None:
    rt = runtime(store, code)
    await rt.start("order", None, run_id=run_id)
    await rt.run_until_idle()
    run = await store.load_run(run_id)
    assert run is not None
    assert run.status is RunStatus.PAUSED


async def _error_of(store: InMemoryStore, run_id: str) -> ErrorInfo:
    """The error the run failed with for good."""
    run = await store.load_run(run_id)
    assert run is not None
    assert run.status is RunStatus.ERRORED
    assert run.error is not None
    return run.error


async def _resumed(store: InMemoryStore, code: Workflow[Any, Any], run_id: str) -> JSON:
    rt = runtime(store, code)
    await rt.signal(run_id, "go", "go")
    await rt.run_until_idle()
    return await rt.result(run_id)


async def _patches(store: InMemoryStore, run_id: str) -> list[JSON]:
    return [e.data for e in await store.read_events(run_id) if e.type == EventType.PATCH_APPLIED]


async def test_a_run_in_flight_replays_the_old_path_and_a_new_run_takes_the_new_one() -> None:
    store = InMemoryStore()
    await _paused_at_the_wait(store, v1, "old")
    assert calls == ["reserve"]
    # Deployed: the old run resumes on v2 and replays v1's path (no fraud check).
    assert await _resumed(store, v2, "old") == ["reserve", None, "go", "ship"]
    assert calls == ["reserve", "ship"]
    assert await _patches(store, "old") == []

    calls.clear()
    await _paused_at_the_wait(store, v2, "new")
    assert await _resumed(store, v2, "new") == ["reserve", "fraud-check", "go", "ship"]
    # The patched path was recorded once, and replays (after the wait) kept taking it.
    assert calls == ["reserve", "fraud-check", "ship"]
    assert await _patches(store, "new") == [{"patch_id": "fraud-check"}]


async def test_the_same_change_without_a_patch_breaks_the_run_in_flight() -> None:
    store = InMemoryStore()
    await _paused_at_the_wait(store, v1, "old")
    rt = runtime(store, v2_unpatched)
    await rt.signal("old", "go", "go")
    await rt.run_until_idle()
    error = await _error_of(store, "old")
    assert error.type == "NonDeterminismError"
    assert "ctx.patched" in error.message


async def test_a_run_that_stopped_before_the_patch_takes_the_new_path() -> None:
    @workflow("order")
    async def waits_first(ctx: Context, _: JSON) -> JSON:
        go = await ctx.wait_for_signal("go")
        return [go, await ctx.step("ship", did, "ship")]

    @workflow("order")
    async def patched_after_the_wait(ctx: Context, _: JSON) -> JSON:
        go = await ctx.wait_for_signal("go")
        checked = await ctx.step("check", did, "check") if ctx.patched("check") else None
        return [go, checked, await ctx.step("ship", did, "ship")]

    store = InMemoryStore()
    rt = runtime(store, waits_first)
    await rt.start("order", None, run_id="r")
    await rt.run_until_idle()
    # Nothing after the wait was recorded by the old code: the new path is safe.
    assert await _resumed(store, patched_after_the_wait, "r") == ["go", "check", "ship"]
    assert await _patches(store, "r") == [{"patch_id": "check"}]


async def test_deprecate_patch_keeps_patched_runs_and_refuses_old_ones_by_name() -> None:
    store = InMemoryStore()
    await _paused_at_the_wait(store, v2, "patched")
    await _paused_at_the_wait(store, v1, "old")
    calls.clear()
    assert await _resumed(store, v3, "patched") == ["reserve", "fraud-check", "go", "ship"]
    assert calls == ["ship"]

    rt = runtime(store, v3)
    await rt.signal("old", "go", "go")
    await rt.run_until_idle()
    error = await _error_of(store, "old")
    assert error.type == "NonDeterminismError"
    assert "recorded before patch 'fraud-check'" in error.message


async def test_once_the_call_is_removed_runs_that_recorded_the_patch_still_replay() -> None:
    store = InMemoryStore()
    await _paused_at_the_wait(store, v2, "patched")
    calls.clear()
    assert await _resumed(store, v4, "patched") == ["reserve", "fraud-check", "go", "ship"]
    assert calls == ["ship"]


@pytest.mark.parametrize("patch_id", ["", "a\x00b", "x" * 249])
async def test_a_bad_patch_id_fails_the_run_as_a_definition_error(patch_id: str) -> None:
    @workflow("bad")
    async def bad(ctx: Context, _: JSON) -> JSON:
        return ctx.patched(patch_id)

    store = InMemoryStore()
    rt = runtime(store, bad)
    await rt.start("bad", None, run_id="b")
    await rt.run_until_idle()
    error = await _error_of(store, "b")
    assert error.type == "WorkflowDefinitionError"


async def test_the_longest_patch_id_is_recorded() -> None:
    @workflow("long")
    async def long(ctx: Context, _: JSON) -> JSON:
        return ctx.patched("x" * 248)

    store = InMemoryStore()
    rt = runtime(store, long)
    await rt.start("long", None, run_id="l")
    await rt.run_until_idle()
    assert await rt.result("l") is True
    assert await _patches(store, "l") == [{"patch_id": "x" * 248}]
