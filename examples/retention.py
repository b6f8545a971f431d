"""Retention: a worker that deletes the runs that ended longer ago than a duration.

Three receipts finish at once; a refund waits for an approval that does not come. The
worker keeps ended runs for ``retention`` seconds (here half a second; in production
days, ``workflow worker ... --retention 30d``), then deletes them with everything they
own, a bounded batch at a time. The waiting refund has not ended, so it is kept
whatever its age. Without a retention nothing is ever deleted (on Redis, that is
memory: docs/stores/redis.md).

    python examples/retention.py [STORE_URL]     # default: memory://
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from workflow.runtime import Context, Runtime, SchemaOwner, open_store, workflow
from workflow.runtime.worker import Worker


@workflow("receipt")
async def receipt(ctx: Context, order: dict[str, Any]) -> str:
    return await ctx.step("render", lambda: f"receipt for order {order['id']}")


@workflow("refund")
async def refund(ctx: Context, order: dict[str, Any]) -> str:
    approved = await ctx.wait_for_signal("approved")
    return f"refunded order {order['id']}: {approved}"


runtime = Runtime(workflows=[receipt, refund])


async def main(url: str, retention: float = 0.5) -> dict[str, list[str]]:
    """Runs the worker until its retention has purged the receipts (at most 30 s);
    returns the run ids that were started and those still stored."""
    store = await open_store(url, verify_schema=False)
    if isinstance(store, SchemaOwner):
        await store.create_schema()
    try:
        bound = runtime.bind(store)
        started = [(await bound.start(receipt, {"id": i})).run_id for i in range(3)]
        started.append((await bound.start(refund, {"id": 9})).run_id)
        worker = Worker(bound, poll_interval=0.05, retention=retention, purge_interval=0.1)
        running = asyncio.create_task(worker.run())
        try:
            for _ in range(600):  # the receipts end at once, then age past the retention
                if worker.purged >= 3:
                    break
                await asyncio.sleep(0.05)
        finally:
            worker.stop()
            await running
        kept = [run_id for run_id in started if await store.load_run(run_id) is not None]
        print(f"started {len(started)} runs; the worker purged {worker.purged}; kept {kept}")
        return {"started": started, "kept": kept}
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
