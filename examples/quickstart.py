"""A tour of the store contract on the in-memory store.

Runs one workflow slice by hand, the way the runtime drives a store: create a run,
claim it, record a step, pause on a signal, deliver the signal, claim again with the
buffered entry, finish. Prints the timeline at the end.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from workflow.runtime import (
    Claimed,
    Finish,
    NewEvent,
    Pause,
    Wait,
    open_store,
)


async def main() -> None:
    store = await open_store("memory://")
    now = 1_700_000_000_000

    await store.create_run("order-42", "order", "v1", {"sku": "tea", "qty": 2}, now)
    claim = await store.claim_run("order-42", "worker-1", lease_ms=30_000, now=now)
    assert isinstance(claim, Claimed)
    print(f"claimed order-42 with lease token {claim.lease.token}")

    # One step ran: record its result, then wait for the payment signal.
    index = await store.append_events(
        "order-42", claim.lease, 0, [NewEvent("STEP_FINISHED", {"reserved": True}, "reserve")], now
    )
    run = await store.settle_run(
        "order-42", claim.lease, index, [], Pause(Wait.signal("pay", "payment")), now + 5
    )
    print(f"run is {run.status}, waiting for {run.wait.name if run.wait else None!r}")

    delivered = await store.deliver_signal("order-42", "psp-991", "payment", {"eur": 9.5}, now + 60)
    print(f"signal: {type(delivered).__name__}")

    claim = await store.claim_run("order-42", "worker-2", lease_ms=30_000, now=now + 61)
    assert isinstance(claim, Claimed)
    (entry,) = claim.inbox
    await store.settle_run(
        "order-42",
        claim.lease,
        claim.run.next_event_index,
        [NewEvent("SIGNAL_RESOLVED", entry.payload, "pay")],
        Finish({"shipped": True}),
        now + 62,
        consume=[entry.ref],
    )

    timeline = await store.get_timeline("order-42")
    assert timeline is not None
    print(f"run {timeline.run.run_id}: {timeline.run.status}, output {timeline.run.output}")
    for event in timeline.events:
        print(f"  #{event.index} {event.type:<16} step={event.step_id} {event.data}")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
