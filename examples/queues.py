"""Queues: limits the store keeps at claim time, whatever the number of workers.

Outgoing e-mail goes through the "emails" queue: at most 2 sends at once across every
worker and process, at most 1 per tenant, and at most 10 per second. A password reset
jumps the line (priority 10). Everything else stays in the default queue, unlimited,
and is never held up by a full "emails" queue.

    workflow migrate upgrade --url sqlite:///queues.db
    python queues.py setup --url sqlite:///queues.db     # declares the queue's limits
    workflow worker queues:runtime --url sqlite:///queues.db    # in examples/
    python queues.py start --url sqlite:///queues.db     # another terminal
    workflow runs show <RUN_ID> --url sqlite:///queues.db  # shows queue, priority, key

The stores that keep queue limits declare ``Capability.QUEUES`` (in memory, SQLite,
PostgreSQL, MySQL/MariaDB); see docs/runtime.md, Queues.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from workflow.runtime import (
    Context,
    ExecutionStore,
    QueueStore,
    RateLimit,
    Runtime,
    open_store,
    workflow,
)

EMAILS = "emails"


async def deliver(message: dict[str, Any]) -> str:
    return f"sent to {message['to']}"


@workflow("send-email", version="1")
async def send_email(ctx: Context, message: dict[str, Any]) -> str:
    return await ctx.step("deliver", deliver, message)


runtime = Runtime(workflows=[send_email])
"""The worker target: `workflow worker queues:runtime --url ...` binds it to a store."""


async def declare_queues(store: ExecutionStore, now: int) -> None:
    """The queue's limits live in the store: every worker claims under them."""
    assert isinstance(store, QueueStore), "this store does not keep queue limits"
    await store.upsert_queue(
        EMAILS, now, concurrency=2, per_key_concurrency=1, rate_limit=RateLimit(10, 1000)
    )


async def start_emails(store: ExecutionStore) -> list[str]:
    """A newsletter for two tenants, then a password reset that goes first."""
    bound = runtime.bind(store)
    ids = []
    for i, tenant in enumerate(["acme", "acme", "globex", "globex"]):
        run = await bound.start(
            send_email,
            {"to": f"user{i}@{tenant}.example"},
            queue=EMAILS,
            partition_key=tenant,
        )
        ids.append(run.run_id)
    reset = await bound.start(
        send_email, {"to": "alice@acme.example"}, queue=EMAILS, priority=10, partition_key="acme"
    )
    return [reset.run_id, *ids]


async def main(command: str, url: str) -> None:
    store = await open_store(url)
    try:
        if command == "setup":
            await declare_queues(store, runtime.clock())
            print(f"queue {EMAILS!r}: 2 at once, 1 per tenant, 10 per second")
        else:
            for run_id in await start_emails(store):
                print(f"started run {run_id}")
    finally:
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["setup", "start"])
    parser.add_argument("--url", default="sqlite:///queues.db")
    args = parser.parse_args()
    asyncio.run(main(args.command, args.url))
