"""ctx.step: the step's arguments are checked against the callable, its result is the
callable's (awaited) result, and that result must be a JSON value."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TypedDict, assert_type

from workflow.runtime import Context, RetryPolicy


async def charge(order: dict[str, int]) -> dict[str, str]:
    return {"charged": str(order["total"])}


def reserve(sku: str, qty: int) -> list[str]:
    return [sku] * qty


async def notify(to: str, *, urgent: bool) -> bool:
    return urgent


async def nothing() -> None:
    return None


@dataclass
class Receipt:
    id: str


async def receipt() -> Receipt:
    return Receipt("r")


class Shipment(TypedDict):
    carrier: str


async def shipment() -> Shipment:
    return {"carrier": "post"}


async def accepted(ctx: Context) -> None:
    assert_type(await ctx.step("charge", charge, {"total": 42}), dict[str, str])
    assert_type(await ctx.step("reserve", reserve, "tea", 2, timeout=5.0), list[str])
    assert_type(await ctx.step("nothing", nothing, retry=RetryPolicy.never()), None)
    # Keywords of fn go through functools.partial.
    assert_type(await ctx.step("notify", partial(notify, urgent=True), "ops"), bool)


async def refused(ctx: Context) -> None:
    # charge takes a dict: 42 is not one.
    await ctx.step("charge", charge, 42)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    # One argument too few, one too many.
    await ctx.step("reserve", reserve, "tea")  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await ctx.step("nothing", nothing, 1)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    # A result the codec cannot record: a dataclass, and a TypedDict (see JSONLike).
    await ctx.step("receipt", receipt)  # type: ignore[call-arg, type-var]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await ctx.step("shipment", shipment)  # type: ignore[call-arg, type-var]  # pyright: ignore[reportCallIssue, reportArgumentType]
