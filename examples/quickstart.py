"""A tour of the store contract on the embedded SQLite store.

Drives one run by hand, the way the runtime drives a store: create a run, claim it,
record a step, pause on a signal, deliver the signal, claim again with the delivered
entry, finish. Prints the timeline at the end. Each invocation makes a new run in the
same database file, so it can run again and again.

    python examples/quickstart.py [STORE_URL]      # default: sqlite:///workflow-quickstart.db
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

from workflow.runtime import (
    Claimed,
    Finish,
    NewEvent,
    Pause,
    SchemaOwner,
    Wait,
    open_store,
)


async def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "sqlite:///workflow-quickstart.db"
    store = await open_store(url, verify_schema=False)
    # Demos may create their schema; deploys run `workflow migrate upgrade --url ...`.
    if isinstance(store, SchemaOwner):
        await store.create_schema()
    print(f"store: {url} (schema {(await store.schema_status()).current})")
    now = int(time.time() * 1000)
    run_id = f"order-{uuid.uuid4().hex[:8]}"

    await store.create_run(run_id, "order", "v1", {"sku": "tea", "qty": 2}, now)
    claim = await store.claim_run(run_id, f"worker-{os.getpid()}", lease_ms=30_000, now=now)
    assert isinstance(claim, Claimed)
    print(f"claimed {run_id} with lease token {claim.lease.token}")

    # One step ran: record its result, then wait for the payment signal.
    index = await store.append_events(
        run_id, claim.lease, 0, [NewEvent("STEP_FINISHED", {"reserved": True}, "reserve")], now
    )
    run = await store.settle_run(
        run_id, claim.lease, index, [], Pause(Wait.signal("pay", "payment")), now + 5
    )
    print(f"run is {run.status}, waiting for {run.wait.name if run.wait else None!r}")

    delivered = await store.deliver_signal(run_id, "psp-991", "payment", {"eur": 9.5}, now + 60)
    print(f"signal: {type(delivered).__name__}")

    claim = await store.claim_run(run_id, "worker-2", lease_ms=30_000, now=now + 61)
    assert isinstance(claim, Claimed)
    (entry,) = claim.inbox
    await store.settle_run(
        run_id,
        claim.lease,
        claim.run.next_event_index,
        [NewEvent("SIGNAL_RESOLVED", entry.payload, "pay")],
        Finish({"shipped": True}),
        now + 62,
        consume=[entry.ref],
    )

    timeline = await store.get_timeline(run_id)
    assert timeline is not None
    print(f"run {timeline.run.run_id}: {timeline.run.status}, output {timeline.run.output}")
    for event in timeline.events:
        print(f"  #{event.index} {event.type:<16} step={event.step_id} {event.data}")
    page = await store.list_runs(workflow_id="order", limit=5)
    print(f"latest runs in this store: {', '.join(r.run_id for r in page.items)}")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
