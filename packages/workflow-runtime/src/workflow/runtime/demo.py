"""``workflow demo``: an order workflow on a real store, end to end, in a few seconds.

The order validates, reserves stock, charges a card (the first attempt fails with a
simulated gateway timeout and is retried after a backoff), sleeps until the courier
window, waits for a shipping approval, ships and sends a receipt. A scheduled
``demo-restock`` workflow fires every two seconds next to it.

Kill the demo at any point and run it again: it resumes the unfinished order where it
stopped. Steps whose results were recorded are replayed from the log, never run again
(a step's ``running ...`` line shows when its code really runs).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from .contract import ExecutionStore
from .definitions import every, workflow
from .driver import Runtime
from .engine import Context, current_step
from .hints import shell_command
from .history import EventType, field_of
from .records import JSON, Run, RunStatus, StoredEvent, WaitKind
from .retry import RetryPolicy

ORDER = "demo-order"
RESTOCK = "demo-restock"
RESTOCK_SCHEDULE = "demo-restock/every-2s"
STEP_WORK_S = 0.1
"""How long each simulated step takes, so the progress is visible."""

Say = Callable[[str], None]
_say: Say = print


class PaymentGatewayTimeout(Exception):
    """The simulated transient failure of the first charge attempt."""


async def _work(what: str) -> None:
    call = current_step()
    _say(f"    running {call.step_id} (attempt {call.attempt}): {what}")
    await asyncio.sleep(STEP_WORK_S)


async def validate_order(order: dict[str, Any]) -> dict[str, Any]:
    await _work(f"checking {len(order['items'])} item(s)")
    total = sum(item["qty"] * item["price"] for item in order["items"])
    return {"valid": True, "total": round(total, 2)}


async def reserve_stock(order: dict[str, Any]) -> dict[str, Any]:
    await _work("reserving stock in the warehouse")
    return {"reservation": f"res-{order['order_id']}", "items": len(order["items"])}


async def charge_card(order: dict[str, Any], total: float) -> dict[str, Any]:
    await _work(f"charging {total:.2f} EUR")
    if current_step().attempt == 1:
        raise PaymentGatewayTimeout("payment gateway timed out (simulated transient failure)")
    return {"charge": f"ch-{current_step().idempotency_key}", "amount": total}


async def ship(order: dict[str, Any]) -> dict[str, Any]:
    await _work("handing the parcel to the courier")
    return {"tracking": f"TRK-{order['order_id'].upper()}"}


async def send_receipt(order: dict[str, Any], tracking: str) -> str:
    await _work(f"emailing {order['email']}")
    return f"receipt sent to {order['email']} (tracking {tracking})"


async def refund(charge: dict[str, Any]) -> dict[str, Any]:
    await _work(f"refunding {charge['charge']}")
    return {"refunded": charge["amount"]}


@workflow(ORDER, version="1")
async def order_workflow(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    checked = await ctx.step("validate-order", validate_order, order)
    await ctx.step("reserve-stock", reserve_stock, order)
    charge = await ctx.step(
        "charge-card",
        charge_card,
        order,
        checked["total"],
        retry=RetryPolicy(max_attempts=3, initial_delay=0.5, jitter=0.0),
    )
    await ctx.sleep(1.0, step_id="wait-for-courier-window")
    decision = await ctx.wait_for_approval(
        f"Ship order {order['order_id']} ({checked['total']:.2f} EUR)?",
        step_id="approve-shipment",
        timeout=24 * 3600,
    )
    if not decision.approved:
        refunded = await ctx.step("refund", refund, charge)
        return {"order_id": order["order_id"], "status": "refunded", **refunded}
    parcel = await ctx.step("ship", ship, order)
    receipt = await ctx.step("send-receipt", send_receipt, order, parcel["tracking"])
    return {
        "order_id": order["order_id"],
        "status": "shipped",
        "tracking": parcel["tracking"],
        "receipt": receipt,
        "finished_at": ctx.now(),
    }


async def count_stock() -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"tea": 40, "cups": 12}


@workflow(RESTOCK, version="1", schedules=[every(2, id=RESTOCK_SCHEDULE)])
async def restock_workflow(ctx: Context, _input: JSON) -> dict[str, Any]:
    return await ctx.step("count-stock", count_stock)


WORKFLOWS = (order_workflow, restock_workflow)


def new_order() -> dict[str, Any]:
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    return {
        "order_id": order_id,
        "email": "ada@example.com",
        "items": [{"sku": "tea", "qty": 2, "price": 4.5}, {"sku": "cup", "qty": 1, "price": 12.0}],
    }


def _short(value: JSON, limit: int = 70) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _items_text(items: JSON) -> str:
    """An order's items in words (``2 x tea, 1 x cup``): whole, where JSON cut to a
    width would end mid-key."""
    if not isinstance(items, list):
        return _short(items)
    parts = [
        f"{item.get('qty')} x {item.get('sku')}" if isinstance(item, dict) else _short(item)
        for item in items
    ]
    return ", ".join(parts) or "no items"


def describe(event: StoredEvent, started_at: int | None = None) -> str | None:
    """A progress line for an order event (``None``: not worth a line)."""
    step = event.step_id
    error = field_of(event, "error")
    message = error.get("message") if isinstance(error, dict) else None
    match event.type:
        case EventType.STEP_COMPLETED:
            return f"  [ok]       {step} -> {_short(field_of(event, 'result'))}"
        case EventType.STEP_ATTEMPT_FAILED:
            retry_at = field_of(event, "retry_at")
            wait = (retry_at - event.created_at) / 1000 if isinstance(retry_at, int) else 0
            return (
                f"  [retry]    {step} attempt {field_of(event, 'attempt')} failed: {message}; "
                f"retrying in {wait:.1f} s (a durable timer, the worker is free meanwhile)"
            )
        case EventType.STEP_FAILED:
            return f"  [failed]   {step}: {message}"
        case EventType.SLEEP_STARTED:
            wake = field_of(event, "wake_at")
            secs = (wake - event.created_at) / 1000 if isinstance(wake, int) else 0
            return f"  [sleep]    {step}: sleeping {secs:.1f} s (durable timer)"
        case EventType.SLEEP_COMPLETED:
            return f"  [wake]     {step}: timer fired"
        case EventType.APPROVAL_REQUESTED:
            return (
                f"  [approval] {step}: {field_of(event, 'title')} "
                f"(approval id {field_of(event, 'approval_id')})"
            )
        case EventType.APPROVAL_DECIDED:
            verdict = "approved" if field_of(event, "approved") is True else "rejected"
            return f"  [approval] {step}: {verdict} ({_short(field_of(event, 'feedback'))})"
        case EventType.RUN_FINISHED:
            return "  [done]     run finished"
        case EventType.RUN_FAILED | EventType.RUN_ATTEMPT_FAILED:
            return f"  [error]    {message}"
    return None


async def run_demo(
    store: ExecutionStore,
    *,
    say: Say = print,
    auto_approve: bool = True,
    poll: float = 0.05,
    lease_ms: int = 2_000,
    url: str | None = None,
) -> Run:
    """Run (or resume) one demo order to its end on ``store``; returns the final run.
    ``url``: the store's URL (password hidden), for the commands the demo prints."""
    global _say
    _say = say
    order_ids: set[str] = set()

    def progress(event: StoredEvent) -> None:
        if event.run_id in order_ids:
            line = describe(event)
            if line:
                say(line)

    runtime = Runtime(
        store,
        WORKFLOWS,
        lease_ms=lease_ms,
        run_retry=RetryPolicy(max_attempts=3, initial_delay=0.5),
        listener=progress,
    )
    for schedule in await runtime.reconcile_schedules():
        say(f"schedule {schedule.schedule_id}: runs {schedule.workflow_id} every 2 s")

    unfinished = await store.list_runs(
        workflow_id=ORDER, status={RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED}
    )
    if unfinished.items:
        run = unfinished.items[-1]  # the oldest of the page
        say(
            f"resuming run {run.run_id} where it stopped ({run.next_event_index} events "
            "recorded; recorded steps are replayed, not run again)"
        )
    else:
        order = new_order()
        run = await runtime.start(ORDER, order, run_id=order["order_id"])
        say(f"started run {run.run_id}: {_items_text(order['items'])}")
    order_ids.add(run.run_id)

    announced: set[str] = set()
    while True:
        report = await runtime.sweep()
        for tick in report.ticks:
            if tick.run_id:
                say(f"  [schedule] {tick.schedule_id} fired run {tick.run_id}")
        for drive in report.drives:
            if drive.workflow_id == RESTOCK and drive.run and drive.run.status.terminal:
                say(f"  [schedule] {drive.run_id}: {drive.run.status.value}")
        current = await store.load_run(run.run_id)
        assert current is not None, "the demo run disappeared"
        run = current
        if run.status.terminal:
            return run
        wait = run.wait
        if run.status is RunStatus.PAUSED and wait and wait.kind is WaitKind.APPROVAL:
            approval_id = wait.approval_id or ""
            answer = shell_command(
                "workflow",
                "approve",
                run.run_id,
                approval_id,
                "--yes",
                *(("--url", url) if url is not None else ()),
            )
            if auto_approve and approval_id not in announced:
                announced.add(approval_id)
                say(
                    f"  [approval] auto-approving {approval_id} (run with --manual-approve "
                    f"and answer with: {answer})"
                )
                await runtime.approve(
                    run.run_id, approval_id, True, feedback="auto-approved by demo"
                )
                continue
            if approval_id not in announced:
                announced.add(approval_id)
                say(f"  [approval] waiting: in another terminal run `{answer}` (or --no)")
        lease = run.lease
        if run.status is RunStatus.RUNNING and lease and lease.owner != runtime.owner:
            key = f"lease:{lease.owner}:{lease.token}"
            if key not in announced:
                announced.add(key)
                say(
                    f"  [wait]     {run.run_id} is still leased by {lease.owner} (a stopped "
                    "demo?); taking over when that lease expires"
                )
        if not report.did_work:
            await asyncio.sleep(poll)
