"""Small helpers the contract cases share (and adapter authors may use)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from workflow.runtime import (
    JSON,
    Capability,
    Claimed,
    Created,
    ExecutionStore,
    NewEvent,
    Pause,
    Run,
    Wait,
)

T0 = 1_700_000_000_000
"""A fixed ``now`` the cases start from (ms since the epoch, 2023-11-14)."""

LEASE_MS = 30_000

StoreFactory = Callable[[], Awaitable[ExecutionStore]]
"""What the ``store_factory`` fixture returns: opens one more handle on the same data."""

CAPABILITY_SKIP_PREFIX = "store does not declare capability"


def requires(capability: Capability) -> pytest.MarkDecorator:
    """Mark a case as needing ``capability``; stores that do not declare it skip it,
    and the skip reason names the declaration."""
    return pytest.mark.workflow_requires(capability)


async def create(
    store: ExecutionStore,
    run_id: str = "run-1",
    *,
    workflow_id: str = "wf",
    version: str | None = None,
    input: JSON = None,
    now: int = T0,
) -> Run:
    result = await store.create_run(run_id, workflow_id, version, input, now)
    assert isinstance(result, Created), result
    return result.run


async def started(
    store: ExecutionStore,
    run_id: str = "run-1",
    *,
    workflow_id: str = "wf",
    input: JSON = None,
    now: int = T0,
    owner: str = "worker-a",
    lease_ms: int = LEASE_MS,
    with_history: bool = False,
) -> Claimed:
    """Create a run and claim it: the usual start of a lease-holder case."""
    await create(store, run_id, workflow_id=workflow_id, input=input, now=now)
    claim = await store.claim_run(run_id, owner, lease_ms, now, with_history=with_history)
    assert isinstance(claim, Claimed), claim
    return claim


async def paused_on(
    store: ExecutionStore,
    wait: Wait,
    run_id: str = "run-1",
    *,
    now: int = T0,
    events: list[NewEvent] | None = None,
) -> Run:
    """Create, claim and settle a run paused on ``wait``."""
    claim = await started(store, run_id, now=now)
    run = await store.settle_run(
        run_id, claim.lease, claim.run.next_event_index, events or [], Pause(wait), now
    )
    return run


def event(n: int, step_id: str | None = None) -> NewEvent:
    return NewEvent("CUSTOM", {"n": n}, step_id)
