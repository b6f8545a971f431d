"""Workflows are generic in their handler's input and output: Runtime.start checks the
input against the handler, Runtime.result(..., workflow=) returns the output's type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, assert_type

from workflow.runtime import JSON, Context, Run, Runtime, Workflow, workflow


@workflow("order")
async def order(ctx: Context, input: dict[str, int]) -> list[str]:
    return [str(input["qty"])]


@dataclass
class Order:
    qty: int


async def accepted(runtime: Runtime) -> None:
    assert_type(order, Workflow[dict[str, int], list[str]])
    run = await runtime.start(order, {"qty": 2})
    assert_type(run, Run)
    assert_type(await runtime.result(run.run_id, workflow=order), list[str])
    # By id, as before: any JSON input, a JSON output.
    await runtime.start("order", {"anything": [1, "two"]}, run_id="r-1")
    assert_type(await runtime.result("r-1", wait=None), JSON)
    Runtime(None, [order])


async def refused(runtime: Runtime) -> None:
    # The handler takes a dict[str, int].
    await runtime.start(order, {"qty": "two"})  # type: ignore[misc]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await runtime.start(order)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]


# A handler whose input or output the codec cannot carry is no workflow.
@workflow("dataclass-in")  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]
async def dataclass_in(ctx: Context, input: Order) -> None:
    return None


@workflow("dataclass-out")  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]
async def dataclass_out(ctx: Context, input: Any) -> Order:
    return Order(1)
