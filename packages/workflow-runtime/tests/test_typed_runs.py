"""Runtime.start and Runtime.result with a Workflow object (what types them): the same
runs as by id, and a result asked of the wrong workflow is refused, not mistyped."""

from __future__ import annotations

import pytest

from workflow.runtime import Context, InMemoryStore, InvalidArgumentError, Runtime, workflow


async def double(n: int) -> int:
    return n * 2


@workflow("doubler")
async def doubler(ctx: Context, input: dict[str, int]) -> list[int]:
    return [await ctx.step("double", double, input["n"])]


@workflow("other")
async def other(ctx: Context, input: None) -> str:
    return "other"


async def test_a_run_started_with_its_workflow_returns_its_typed_output() -> None:
    runtime = Runtime(InMemoryStore(), [doubler, other])
    run = await runtime.start(doubler, {"n": 21}, run_id="r-1")
    assert (run.workflow_id, run.input) == ("doubler", {"n": 21})
    # Idempotent on the run id, whichever way it is started.
    assert (await runtime.start("doubler", {"n": 1}, run_id="r-1")).input == {"n": 21}
    await runtime.run_until_idle()
    assert await runtime.result("r-1", workflow=doubler) == [42]
    assert await runtime.result("r-1") == [42]


async def test_the_result_of_another_workflows_run_is_refused() -> None:
    runtime = Runtime(InMemoryStore(), [doubler, other])
    await runtime.start(other, None, run_id="r-other")
    await runtime.run_until_idle()
    with pytest.raises(InvalidArgumentError, match="run 'r-other' is a run of workflow 'other'"):
        await runtime.result("r-other", workflow=doubler)
