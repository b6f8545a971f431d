"""Contract cases: lease identity on every fenced write.

A write on behalf of a lease (``heartbeat``, ``append_events``, ``settle_run``)
succeeds only while the run's current lease has the same owner **and** token; the
lease's ``expires_at`` is not compared (an extended or expired lease nobody took
still works). Each case runs on every fenced write, and each refused write must leave
the run, its log and its inbox (``consume`` included) as they were.

Tokens restart at 1 when a run id is deleted and created again, so a worker of the
old run can hold a lease whose token equals the new holder's: only the owner tells
them apart.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from workflow.runtime import (
    Buffered,
    Claimed,
    ExecutionStore,
    Finish,
    InboxKind,
    InboxRef,
    Lease,
    LeaseLostError,
    RunCancelledError,
    RunStatus,
    Yield,
)

from ..support import LEASE_MS, T0, create, event, started
from .runs import HOLDER_WRITES, HolderWrite, loaded

SIGNAL = InboxRef(InboxKind.SIGNAL, "sig-1")


async def fenced_write(
    store: ExecutionStore, op: HolderWrite, lease: Lease, expected: int, now: int
) -> None:
    """One write of ``op`` on run-1 for ``lease``; appends and settles also consume
    the buffered ``sig-1``, so a refused write that consumed anyway shows."""
    if op == "heartbeat":
        await store.heartbeat("run-1", lease, LEASE_MS, now)
    elif op == "append_events":
        await store.append_events("run-1", lease, expected, [event(99)], now, consume=[SIGNAL])
    else:
        await store.settle_run(
            "run-1", lease, expected, [event(99)], Finish("late"), now, consume=[SIGNAL]
        )


async def with_signal(store: ExecutionStore, now: int) -> None:
    result = await store.deliver_signal("run-1", "sig-1", "go", {"v": 1}, now)
    assert isinstance(result, Buffered), result


async def assert_refused(
    store: ExecutionStore, op: HolderWrite, lease: Lease, expected: int, now: int
) -> None:
    """``lease`` is not run-1's current lease: the write raises ``LeaseLostError``
    (not ``RunCancelledError``) and changes nothing."""
    run = await loaded(store)
    events = await store.read_events("run-1")
    inbox = await store.read_inbox("run-1", include_consumed=True)
    with pytest.raises(LeaseLostError) as caught:
        await fenced_write(store, op, lease, expected, now)
    assert not isinstance(caught.value, RunCancelledError)
    assert caught.value.run_id == "run-1"
    assert await store.load_run("run-1") == run
    assert await store.read_events("run-1") == events
    assert await store.read_inbox("run-1", include_consumed=True) == inbox


async def assert_accepted(
    store: ExecutionStore, op: HolderWrite, lease: Lease, expected: int, now: int
) -> None:
    """``lease`` (owner and token of the current lease) writes, whatever its expiry."""
    held = (await loaded(store)).lease
    assert held is not None
    await fenced_write(store, op, lease, expected, now)
    run = await loaded(store)
    if op == "heartbeat":
        assert run.lease == Lease(held.owner, held.token, now + LEASE_MS)
        return
    assert run.next_event_index == expected + 1
    consumed = await store.read_inbox("run-1", include_consumed=True)
    assert [(e.key, e.consumed) for e in consumed] == [("sig-1", True)]
    if op == "settle_run":
        assert run.status is RunStatus.FINISHED
        assert run.lease is None


class LeaseIdentityCases:
    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_fenced_write_with_the_current_token_but_another_owner_is_refused(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        claim = await started(store, now=T0)
        await with_signal(store, T0 + 1)
        impostor = replace(claim.lease, owner="worker-b")
        await assert_refused(store, op, impostor, 0, T0 + 2)
        # Owner compared exactly: no case folding, no trimming, no prefix match.
        for owner in ("Worker-a", "worker-a ", "worker-", "worker-a2"):
            await assert_refused(store, op, replace(claim.lease, owner=owner), 0, T0 + 3)
        await assert_accepted(store, op, claim.lease, 0, T0 + 4)

    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_fenced_write_with_the_current_owner_but_an_earlier_token_is_refused(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        # The same owner claims again after its slice: only the token tells its two
        # leases apart.
        first = await started(store, now=T0, owner="worker-a")
        await store.append_events("run-1", first.lease, 0, [event(0)], T0 + 3)
        settled = await store.settle_run("run-1", first.lease, 1, [], Yield(), T0 + 4)
        assert settled.status is RunStatus.QUEUED
        second = await store.claim_run("run-1", "worker-a", LEASE_MS, T0 + 5)
        assert isinstance(second, Claimed), second
        assert (second.lease.owner, second.lease.token) == ("worker-a", first.lease.token + 1)
        await with_signal(store, T0 + 6)
        await assert_refused(store, op, first.lease, 1, T0 + 7)
        # A token the run never handed out is no better.
        future = replace(second.lease, token=second.lease.token + 1)
        await assert_refused(store, op, future, 1, T0 + 8)
        await assert_accepted(store, op, second.lease, 1, T0 + 9)

    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_fenced_write_ignores_the_leases_expires_at(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        # Owner and token identify a lease; expires_at is what the store last handed
        # out and a caller may hold an older copy (before a heartbeat) of it.
        claim = await started(store, now=T0)
        extended = await store.heartbeat("run-1", claim.lease, LEASE_MS * 2, T0 + 1)
        assert extended.expires_at != claim.lease.expires_at
        await with_signal(store, T0 + 2)
        stale_copy = replace(extended, expires_at=T0 + 5)
        await assert_accepted(store, op, stale_copy, 0, T0 + 3)

    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_fenced_write_of_a_deleted_and_recreated_runs_old_worker_is_refused(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        old = await started(store, now=T0, owner="worker-a")
        await store.append_events("run-1", old.lease, 0, [event(0)], T0 + 1)
        assert await store.delete_run("run-1") is True
        await create(store, now=T0 + 2)
        # Not claimed yet: there is no lease for the old one to match.
        await with_signal(store, T0 + 3)
        await assert_refused(store, op, old.lease, 0, T0 + 4)
        new = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + 5)
        assert isinstance(new, Claimed), new
        # Tokens restart with the run: the old worker's token equals the new one's.
        assert new.lease.token == old.lease.token == 1
        await assert_refused(store, op, old.lease, 0, T0 + 6)
        same_expiry = replace(old.lease, expires_at=new.lease.expires_at)
        await assert_refused(store, op, same_expiry, 0, T0 + 6)
        await assert_accepted(store, op, new.lease, 0, T0 + 7)

    async def test_tokens_restart_at_one_for_a_recreated_run_id(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        tokens: list[int] = []
        for i in range(3):
            claim = await store.claim_run("run-1", "worker-a", LEASE_MS, T0 + 10 * i)
            assert isinstance(claim, Claimed), claim
            tokens.append(claim.lease.token)
            last = claim.lease
            await store.settle_run("run-1", last, 0, [], Yield(), T0 + 10 * i + 1)
        assert tokens == [1, 2, 3]
        assert await store.delete_run("run-1") is True
        await create(store, now=T0 + 100)
        (again,) = await store.claim_runnable("worker-b", LEASE_MS, 10, T0 + 101)
        assert again.lease == Lease("worker-b", 1, T0 + 101 + LEASE_MS)
        # The old worker's last lease (token 3) stays refused.
        with pytest.raises(LeaseLostError):
            await store.heartbeat("run-1", last, LEASE_MS, T0 + 102)

    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_fenced_write_on_a_cancelled_run_raises_run_cancelled_for_any_lease(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        claim = await started(store, now=T0)
        await with_signal(store, T0 + 1)
        await store.cancel_run("run-1", "stop", T0 + 2)
        before = await loaded(store)
        for lease in (claim.lease, replace(claim.lease, owner="worker-b")):
            with pytest.raises(RunCancelledError):
                await fenced_write(store, op, lease, 0, T0 + 3)
        assert await store.load_run("run-1") == before
        assert await store.read_events("run-1") == []
        inbox = await store.read_inbox("run-1", include_consumed=True)
        assert [(e.key, e.consumed) for e in inbox] == [("sig-1", False)]
