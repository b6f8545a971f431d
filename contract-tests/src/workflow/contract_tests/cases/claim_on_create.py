"""Contract cases: ``create_run(..., owner=, lease_ms=)`` (``Capability.CLAIM_ON_CREATE``).

A create that names an owner makes the new run ``running`` under the first lease
(token 1, ``expires_at = now + lease_ms``), exactly as ``claim_run`` at the same
``now`` would have left it; the lease fences writes like any other. An id that already
exists is answered as a plain create answers it, and nothing is claimed.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from workflow.runtime import (
    Capability,
    Claimed,
    Conflict,
    Created,
    ExecutionStore,
    Existing,
    Finish,
    InvalidArgumentError,
    Lease,
    LeaseLostError,
    NotClaimable,
    RunStatus,
)
from workflow.runtime.validation import MAX_MS

from ..support import LEASE_MS, T0, create, event, requires
from .runs import HOLDER_WRITES, HolderWrite, holder_write, loaded


async def created_claimed(
    store: ExecutionStore,
    run_id: str = "run-1",
    *,
    owner: str = "worker-a",
    now: int = T0,
    lease_ms: int = LEASE_MS,
) -> Created:
    result = await store.create_run(
        run_id, "wf", "v1", {"x": 1}, now, owner=owner, lease_ms=lease_ms
    )
    assert isinstance(result, Created), result
    return result


class ClaimOnCreateCases:
    @requires(Capability.CLAIM_ON_CREATE)
    async def test_create_with_owner_makes_the_run_running_under_the_first_lease(
        self, store: ExecutionStore
    ) -> None:
        result = await created_claimed(store, now=T0 + 5)
        assert result.lease == Lease("worker-a", 1, T0 + 5 + LEASE_MS)
        run = result.run
        assert run.status is RunStatus.RUNNING
        assert run.lease == result.lease
        assert (run.created_at, run.updated_at, run.ready_at) == (T0 + 5, T0 + 5, T0 + 5)
        assert (run.workflow_id, run.workflow_version, run.input) == ("wf", "v1", {"x": 1})
        assert run.next_event_index == 0
        assert run.wait is None
        assert run.output is None
        assert run.error is None
        assert await loaded(store) == run

    @requires(Capability.CLAIM_ON_CREATE)
    async def test_a_run_created_claimed_equals_one_created_then_claimed_at_the_same_now(
        self, store: ExecutionStore
    ) -> None:
        at_once = (await created_claimed(store, "one", now=T0)).run
        await store.create_run("two", "wf", "v1", {"x": 1}, T0)
        claim = await store.claim_run("two", "worker-a", LEASE_MS, T0)
        assert isinstance(claim, Claimed)
        assert at_once == replace(claim.run, run_id="one")

    @requires(Capability.CLAIM_ON_CREATE)
    async def test_a_run_created_claimed_is_not_claimable_until_its_lease_expires(
        self, store: ExecutionStore
    ) -> None:
        await created_claimed(store, now=T0)
        expires = T0 + LEASE_MS
        assert await store.claim_runnable("worker-b", LEASE_MS, 10, expires - 1) == []
        refused = await store.claim_run("run-1", "worker-b", LEASE_MS, expires - 1)
        assert isinstance(refused, NotClaimable)
        (taken,) = await store.claim_runnable("worker-b", LEASE_MS, 10, expires)
        assert taken.lease == Lease("worker-b", 2, expires + LEASE_MS)
        assert taken.run.updated_at == T0  # running -> running: a stale takeover

    @requires(Capability.CLAIM_ON_CREATE)
    async def test_the_lease_from_a_create_fences_writes_like_a_claimed_one(
        self, store: ExecutionStore
    ) -> None:
        lease = (await created_claimed(store)).lease
        assert lease is not None
        renewed = await store.heartbeat("run-1", lease, LEASE_MS, T0 + 1)
        assert renewed == Lease("worker-a", 1, T0 + 1 + LEASE_MS)
        assert await store.append_events("run-1", renewed, 0, [event(1)], T0 + 2) == 1
        with pytest.raises(LeaseLostError):
            await store.append_events("run-1", Lease("worker-b", 1, renewed.expires_at), 1, [], T0)
        done = await store.settle_run("run-1", renewed, 1, [event(2)], Finish("ok"), T0 + 3)
        assert done.status is RunStatus.FINISHED
        assert done.output == "ok"
        assert done.next_event_index == 2

    @requires(Capability.CLAIM_ON_CREATE)
    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_a_takeover_fences_off_the_creates_lease(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        lease = (await created_claimed(store, now=T0)).lease
        assert lease is not None
        (taken,) = await store.claim_runnable("worker-b", LEASE_MS, 10, T0 + LEASE_MS)
        with pytest.raises(LeaseLostError):
            await holder_write(store, op, "run-1", lease, 0, T0 + LEASE_MS + 1)
        assert (await loaded(store)).lease == taken.lease

    @requires(Capability.CLAIM_ON_CREATE)
    async def test_create_with_owner_on_an_existing_id_claims_nothing(
        self, store: ExecutionStore
    ) -> None:
        queued = await create(store, input={"first": True}, now=T0)
        again = await store.create_run(
            "run-1", "wf", None, {"x": 1}, T0 + 1, owner="worker-a", lease_ms=LEASE_MS
        )
        assert again == Existing(queued)
        other = await store.create_run(
            "run-1", "other", None, None, T0 + 1, owner="worker-a", lease_ms=LEASE_MS
        )
        assert other == Conflict(queued)
        assert await loaded(store) == queued
        (claim,) = await store.claim_runnable("worker-b", LEASE_MS, 10, T0 + 2)
        assert claim.lease.token == 1

    @requires(Capability.CLAIM_ON_CREATE)
    async def test_a_plain_create_answers_created_without_a_lease(
        self, store: ExecutionStore
    ) -> None:
        result = await store.create_run("run-1", "wf", None, None, T0)
        assert isinstance(result, Created)
        assert result.lease is None
        assert result.run.status is RunStatus.QUEUED

    @requires(Capability.CLAIM_ON_CREATE)
    @pytest.mark.parametrize(
        ("owner", "lease_ms", "now", "match"),
        [
            ("worker-a", None, T0, "owner and lease_ms go together"),
            (None, LEASE_MS, T0, "owner and lease_ms go together"),
            ("", LEASE_MS, T0, "owner"),
            ("worker-a", 0, T0, "lease_ms"),
            ("worker-a", True, T0, "lease_ms"),
            ("worker-a", LEASE_MS, MAX_MS - LEASE_MS + 1, "now \\+ lease_ms"),
        ],
    )
    async def test_create_with_a_bad_owner_or_lease_is_refused_and_writes_nothing(
        self,
        store: ExecutionStore,
        owner: object,
        lease_ms: object,
        now: int,
        match: str,
    ) -> None:
        with pytest.raises(InvalidArgumentError, match=match):
            await store.create_run(
                "run-1",
                "wf",
                None,
                None,
                now,
                owner=owner,  # type: ignore[arg-type]
                lease_ms=lease_ms,  # type: ignore[arg-type]
            )
        assert await store.load_run("run-1") is None
