"""The polling fallback for ``subscribe_events``.

Stores without push notifications implement ``subscribe_events`` by delegating here;
polling is always the guarantee, a push channel only makes wake-ups faster.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from . import validation
from .contract import ExecutionStore
from .records import StoredEvent


async def poll_events(
    store: ExecutionStore, run_id: str, from_index: int = 0, *, interval: float = 0.25
) -> AsyncIterator[StoredEvent]:
    """Yield the run's events from ``from_index`` on, polling every ``interval`` seconds;
    ends once the run is terminal (or gone) and every event was yielded."""
    run_id = validation.check_id(run_id, "run_id")
    index = validation.check_index(from_index, "from_index")
    while True:
        timeline = await store.get_timeline(run_id, index, validation.MAX_LIMIT)
        if timeline is None:
            return
        for event in timeline.events:
            yield event
        index += len(timeline.events)
        if len(timeline.events) == validation.MAX_LIMIT:
            continue
        if timeline.run.status.terminal and index >= timeline.run.next_event_index:
            return
        await asyncio.sleep(interval)
