"""Child runs: a month-end run fans out one invoice run per customer, waits for them
all, handles the one that fails, and then runs a summary as one more child.

Each invoice is a run of its own (its own log, retries and status; `workflow runs show`
lists them under the parent). The parent starts them all at once with
``ctx.start_child`` and collects them with ``ctx.child_result``: it holds no worker
while they run, and each child's end reaches its inbox (nothing polls). A customer
without an address fails its invoice; the parent gets a ``ChildFailedError`` with the
child's error and goes on. ``ctx.child`` starts a child and waits for it in one call.

    python examples/children.py [STORE_URL]     # default: memory://
    workflow runs show <PARENT_RUN_ID> --url STORE_URL    # the parent and its children

The stores that keep parent links declare ``Capability.CHILDREN``; see
docs/runtime.md, Children.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

from workflow.runtime import (
    ChildFailedError,
    Context,
    Runtime,
    SchemaOwner,
    WorkflowFailed,
    open_store,
    workflow,
)
from workflow.runtime.worker import Worker

CUSTOMERS: list[dict[str, Any]] = [
    {"id": "acme", "address": "1 Road Runner Way", "amount": 120},
    {"id": "globex", "address": "2 Cypress Creek", "amount": 80},
    {"id": "initech", "address": None, "amount": 45},
    {"id": "umbrella", "address": "3 Raccoon St", "amount": 200},
]


@workflow("invoice")
async def invoice(ctx: Context, customer: dict[str, Any]) -> dict[str, Any]:
    if not customer["address"]:
        # Fails the child run at once (no retries): its parent decides what next.
        raise WorkflowFailed(f"no address for {customer['id']}", code="no_address")
    number = await ctx.step("number", lambda: f"INV-{customer['id']}-{ctx.run_id[-6:]}")
    return {"customer": customer["id"], "invoice": number, "amount": customer["amount"]}


@workflow("summary")
async def summary(ctx: Context, invoices: list[dict[str, Any]]) -> str:
    total = sum(int(i["amount"]) for i in invoices)
    return f"{len(invoices)} invoices, {total} in total"


@workflow("month-end")
async def month_end(ctx: Context, customers: list[dict[str, Any]]) -> dict[str, Any]:
    # All invoices in flight at once: each start is recorded, none is waited for yet.
    handles = [
        await ctx.start_child(invoice, customer, step_id=f"invoice-{customer['id']}")
        for customer in customers
    ]
    sent: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for handle in handles:
        try:
            sent.append(await ctx.child_result(handle))
        except ChildFailedError as exc:
            failed[handle.step_id] = exc.error.message if exc.error else exc.status.value
    # One more child, started and waited for in one call; typed by its workflow (str).
    total = await ctx.child(summary, sent, step_id="summary")
    return {"sent": [i["invoice"] for i in sent], "failed": failed, "summary": total}


runtime = Runtime(workflows=[month_end, invoice, summary])
"""The worker target: `workflow worker children:runtime --url ...` binds it to a store."""


async def main(url: str) -> dict[str, Any]:
    """Starts a month-end run, works it with a worker until it ends (at most 30 s), and
    returns its id, its output and its children's statuses."""
    store = await open_store(url, verify_schema=False)
    if isinstance(store, SchemaOwner):
        await store.create_schema()
    try:
        bound = runtime.bind(store)
        run = await bound.start(month_end, CUSTOMERS, run_id=f"month-end-{uuid.uuid4().hex[:8]}")
        worker = Worker(bound, poll_interval=0.05)
        running = asyncio.create_task(worker.run())
        try:
            output = await bound.result(run.run_id, workflow=month_end, wait=30)
        finally:
            worker.stop()
            await running
        children = (await store.list_runs(parent_run_id=run.run_id, limit=100)).items
        statuses = {child.run_id: child.status.value for child in children}
        print(f"run {run.run_id}: {output['summary']}")
        print(f"  sent {', '.join(output['sent'])}")
        for step_id, reason in output["failed"].items():
            print(f"  {step_id} failed: {reason}")
        for child_id, status in sorted(statuses.items()):
            print(f"  child {child_id}: {status}")
        return {"run_id": run.run_id, "output": output, "children": statuses}
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
