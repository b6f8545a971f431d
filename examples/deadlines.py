"""Run deadlines: a run started with ``timeout=`` ends ``timed_out`` when it passes.

A quote waits for the customer's acceptance (a signal); the run gets 2 seconds in all.
Nobody accepts, so the store fires the deadline once, and the run ends ``timed_out``
(its waits, sleeps and lease are gone; a worker still holding it stops at its next
write). Per-step limits are ``ctx.step(..., timeout=)``.

    python examples/deadlines.py [STORE_URL]     # default: memory://
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from workflow.runtime import Context, Runtime, SchemaOwner, open_store, workflow


@workflow("quote")
async def quote(ctx: Context, request: dict[str, Any]) -> str:
    price = await ctx.step("price", lambda: 10 * request["qty"], timeout=5.0)
    accepted = await ctx.wait_for_signal("accepted")
    return f"sold {request['qty']} for {price}: {accepted}"


runtime = Runtime(workflows=[quote])


async def main(url: str, run_timeout: float = 2.0) -> str:
    store = await open_store(url, verify_schema=False)
    if isinstance(store, SchemaOwner):
        await store.create_schema()
    try:
        bound = runtime.bind(store)
        run = await bound.start(quote, {"qty": 3}, timeout=run_timeout)
        print(f"started {run.run_id}, deadline at {run.deadline_at} ms")
        await bound.sweep()  # prices, then waits for the acceptance that never comes
        await asyncio.sleep(run_timeout + 0.1)
        report = await bound.sweep()  # fires the due deadline
        ended = await store.load_run(run.run_id)
        assert ended is not None
        print(f"fired: {[entry.kind.value for entry in report.timers]}")
        print(f"run is {ended.status.value}: {ended.error}")
        return ended.status.value
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
