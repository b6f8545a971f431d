"""A workflow application: what you hand to `workflow worker`.

Run a worker on a SQLite file, start an order, and answer its approval:

    workflow migrate upgrade --url sqlite:///orders.db
    workflow worker orders:runtime --url sqlite:///orders.db     # in examples/, Ctrl-C stops
    python orders.py start --url sqlite:///orders.db            # another terminal
    workflow runs show <RUN_ID> --url sqlite:///orders.db        # shows the approval command
    workflow approve <RUN_ID> <APPROVAL_ID> --yes --url sqlite:///orders.db

Any number of workers may run against one store (PostgreSQL, MySQL/MariaDB, SQLite):
each run is driven by one of them at a time, and a run whose worker dies is taken over
once its lease expires.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from workflow.runtime import (
    Context,
    RetryPolicy,
    Runtime,
    WorkflowFailed,
    cron,
    current_step,
    open_store,
    workflow,
)


async def charge(order: dict[str, Any]) -> dict[str, Any]:
    # A real payment API takes an idempotency key: retries of this step (and a replay
    # after a crash mid-call) then charge once.
    key = current_step().idempotency_key
    return {"charge_id": f"ch-{key}", "amount": order["total"]}


async def ship(order: dict[str, Any]) -> str:
    return f"TRK-{order['order_id']}"


@workflow("order", version="1")
async def order(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    if order.get("total", 0) <= 0:
        raise WorkflowFailed("an order needs a positive total", code="invalid_order")
    payment = await ctx.step("charge", charge, order, retry=RetryPolicy(max_attempts=5))
    decision = await ctx.wait_for_approval(f"Ship order {order['order_id']}?", timeout=86_400)
    if not decision.approved:
        return {"status": "rejected", "feedback": decision.feedback}
    await ctx.sleep(2, step_id="packing")
    tracking = await ctx.step("ship", ship, order)
    return {"status": "shipped", "payment": payment, "tracking": tracking}


async def nightly_report(ctx: Context, _: Any) -> str:
    return await ctx.step("report", lambda: "all orders accounted for")


report = workflow("nightly-report", schedules=[cron("0 2 * * *", timezone="Europe/Berlin")])(
    nightly_report
)

runtime = Runtime(workflows=[order, report])
"""The worker target: `workflow worker orders:runtime --url ...` binds it to a store."""


async def start(url: str) -> None:
    store = await open_store(url)
    try:
        run = await runtime.bind(store).start("order", {"order_id": "A-1001", "total": 42.0})
        print(f"started run {run.run_id}")
    finally:
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start"])
    parser.add_argument("--url", default="sqlite:///orders.db")
    asyncio.run(start(parser.parse_args().url))
