"""Child runs are typed by their workflow: ctx.child and ctx.child_result return the
child workflow's output type, and its input is checked against its handler."""

from __future__ import annotations

from typing import assert_type

from workflow.runtime import JSON, ChildRun, Context, ParentPolicy, workflow


@workflow("ship")
async def ship(ctx: Context, input: dict[str, int]) -> list[str]:
    return [str(input["qty"])]


async def accepted(ctx: Context) -> None:
    assert_type(await ctx.child(ship, {"qty": 2}, step_id="ship"), list[str])
    handle = await ctx.start_child(ship, {"qty": 2}, policy=ParentPolicy.ABANDON)
    assert_type(handle, ChildRun[list[str]])
    assert_type(await ctx.child_result(handle, timeout=5.0), list[str])
    # By id: any JSON input, a JSON output.
    assert_type(await ctx.child("ship", {"anything": [1, "two"]}), JSON)
    assert_type(await ctx.start_child("ship"), ChildRun[JSON])


async def refused(ctx: Context) -> None:
    # The handler takes a dict[str, int].
    await ctx.child(ship, {"qty": "two"})  # type: ignore[misc]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await ctx.child(ship)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    await ctx.child(ship, {"qty": 1}, policy="cancel")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
