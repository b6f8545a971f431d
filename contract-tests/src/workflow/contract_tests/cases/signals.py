"""Contract cases: delivering signals and approvals (``deliver_signal``, ``deliver_approval``).

Covers every result kind and their precedence (NotFound, Duplicate, Closed, then
Delivered or Buffered), the matching rule, separate key spaces, and that a delivered or
buffered entry is never lost: it reaches the next claim's inbox until it is consumed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import pytest

from workflow.runtime import (
    JSON,
    Buffered,
    Claimed,
    Closed,
    Delivered,
    Duplicate,
    ErrorInfo,
    ExecutionStore,
    Fail,
    Finish,
    InboxEntry,
    InboxKind,
    InboxRef,
    NotFound,
    Pause,
    Run,
    RunStatus,
    Wait,
    Yield,
)

from ..support import LEASE_MS, T0, create, event, paused_on, started

NOW = T0 + 1_000
"""When deliveries in these cases happen (the runs were set up at ``T0``)."""

Ending = Literal["finished", "errored", "cancelled"]
ENDINGS: list[Ending] = ["finished", "errored", "cancelled"]


async def _ended(store: ExecutionStore, ending: Ending, run_id: str = "run-1") -> Run:
    """A run in the terminal status ``ending``."""
    if ending == "cancelled":
        await create(store, run_id)
        cancelled = await store.cancel_run(run_id, "stop", T0)
        run = await store.load_run(run_id)
        assert run is not None, cancelled
        assert run.status is RunStatus.CANCELLED
        return run
    claim = await started(store, run_id)
    outcome = Finish({"ok": True}) if ending == "finished" else Fail(ErrorInfo("Boom", "bad"))
    run = await store.settle_run(run_id, claim.lease, 0, [], outcome, T0)
    assert run.status is RunStatus(ending)
    return run


async def _load(store: ExecutionStore, run_id: str = "run-1") -> Run:
    run = await store.load_run(run_id)
    assert run is not None
    return run


def _queued_by_delivery(before: Run, now: int) -> Run:
    """What a paused run looks like after a delivery (or timer) woke it at ``now``."""
    return replace(before, status=RunStatus.QUEUED, wait=None, ready_at=now, updated_at=now)


def _signal(
    key: str,
    name: str,
    payload: JSON,
    *,
    step_id: str | None = None,
    meta: JSON = None,
    at: int = NOW,
    run_id: str = "run-1",
) -> InboxEntry:
    return InboxEntry(
        run_id=run_id,
        kind=InboxKind.SIGNAL,
        key=key,
        name=name,
        step_id=step_id,
        payload=payload,
        meta=meta,
        received_at=at,
        consumed=False,
    )


def _approval(
    key: str, approved: bool, feedback: JSON = None, *, meta: JSON = None, at: int = NOW
) -> InboxEntry:
    payload: JSON = {"approved": approved, "feedback": feedback}
    return InboxEntry(
        run_id="run-1",
        kind=InboxKind.APPROVAL,
        key=key,
        name=None,
        step_id=None,
        payload=payload,
        meta=meta,
        received_at=at,
        consumed=False,
    )


class DeliveryCases:
    # -- Delivered -----------------------------------------------------------------------
    async def test_deliver_signal_to_run_paused_on_matching_wait_queues_it(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("step-1", "approve", meta={"ui": "form"}))
        payload: JSON = {"amount": 12, "ratio": 0.5, "tags": ["a", None, True], "note": "{}"}
        result = await store.deliver_signal(
            "run-1", "sig-1", "approve", payload, NOW, meta={"source": "api"}
        )
        assert isinstance(result, Delivered), result
        expected_entry = _signal("sig-1", "approve", payload, meta={"source": "api"})
        assert result.entry == expected_entry
        assert type(result.entry.payload) is dict
        assert type(result.entry.payload["ratio"]) is float
        expected_run = _queued_by_delivery(before, NOW)
        assert result.run == expected_run
        assert result.run.wait is None
        assert await _load(store) == expected_run
        assert await store.read_inbox("run-1") == [expected_entry]

    async def test_deliver_signal_naming_the_waits_step_is_delivered(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("step-1", "approve"))
        result = await store.deliver_signal(
            "run-1", "sig-1", "approve", {"v": 1}, NOW, step_id="step-1"
        )
        assert isinstance(result, Delivered), result
        assert result.entry == _signal("sig-1", "approve", {"v": 1}, step_id="step-1")
        assert result.run == _queued_by_delivery(before, NOW)

    async def test_deliver_signal_naming_another_step_is_buffered_and_run_stays_paused(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("step-1", "approve"))
        result = await store.deliver_signal(
            "run-1", "sig-1", "approve", {"v": 1}, NOW, step_id="step-2"
        )
        assert isinstance(result, Buffered), result
        expected_entry = _signal("sig-1", "approve", {"v": 1}, step_id="step-2")
        assert result.entry == expected_entry
        assert result.run == before
        assert await _load(store) == before
        assert await store.read_inbox("run-1") == [expected_entry]

    async def test_deliver_signal_without_step_id_matches_any_step_by_name(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("some/other:step", "approve"))
        result = await store.deliver_signal("run-1", "sig-1", "approve", None, NOW)
        assert isinstance(result, Delivered), result
        assert result.entry == _signal("sig-1", "approve", None)
        assert result.run == _queued_by_delivery(before, NOW)

    async def test_deliver_signal_with_matching_step_but_other_name_is_buffered(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("step-1", "approve"))
        result = await store.deliver_signal(
            "run-1", "sig-1", "reject", {"v": 1}, NOW, step_id="step-1"
        )
        assert isinstance(result, Buffered), result
        assert result.run == before
        assert await _load(store) == before

    async def test_deliver_signal_after_non_matching_buffered_one_still_delivers(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("step-1", "b"))
        first = await store.deliver_signal("run-1", "sig-a", "a", 1, NOW)
        assert isinstance(first, Buffered), first
        second = await store.deliver_signal("run-1", "sig-b", "b", 2, NOW + 1)
        assert isinstance(second, Delivered), second
        assert second.run == _queued_by_delivery(before, NOW + 1)
        assert await store.read_inbox("run-1") == [
            _signal("sig-a", "a", 1),
            _signal("sig-b", "b", 2, at=NOW + 1),
        ]

    # -- Buffered ------------------------------------------------------------------------
    async def test_deliver_signal_to_queued_run_is_buffered_and_run_unchanged(
        self, store: ExecutionStore
    ) -> None:
        before = await create(store)
        result = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(result, Buffered), result
        assert result.entry == _signal("sig-1", "approve", {"v": 1})
        assert result.run == before
        assert await _load(store) == before
        assert await store.read_inbox("run-1") == [result.entry]

    async def test_deliver_signal_to_running_run_is_buffered_and_lease_kept(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        before = await _load(store)
        result = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(result, Buffered), result
        assert result.run == before
        assert result.run.lease == claim.lease
        assert await _load(store) == before
        # The holder's lease still works: a delivery never fences the worker out.
        assert await store.append_events("run-1", claim.lease, 0, [event(1)], NOW) == 1

    async def test_deliver_signal_to_run_paused_on_other_signal_name_is_buffered(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("step-1", "approve"))
        result = await store.deliver_signal("run-1", "sig-1", "cancel-order", {"v": 1}, NOW)
        assert isinstance(result, Buffered), result
        assert result.run == before
        assert await _load(store) == before
        assert await store.read_inbox("run-1") == [_signal("sig-1", "cancel-order", {"v": 1})]

    @pytest.mark.parametrize(
        "wait",
        [
            Wait.approval("step-1", "approve"),
            Wait.sleep("step-1", T0 + 60_000),
            Wait.approval("step-1", "approve", timeout_at=T0 + 60_000),
        ],
        ids=["approval", "sleep", "approval-with-timeout"],
    )
    async def test_deliver_signal_to_run_paused_on_non_signal_wait_is_buffered(
        self, store: ExecutionStore, wait: Wait
    ) -> None:
        # The signal's name equals the approval id: kinds never cross-match.
        before = await paused_on(store, wait)
        result = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(result, Buffered), result
        assert result.run == before
        assert await _load(store) == before

    async def test_deliver_signal_to_run_already_queued_by_earlier_delivery_is_buffered(
        self, store: ExecutionStore
    ) -> None:
        await paused_on(store, Wait.signal("step-1", "approve"))
        first = await store.deliver_signal("run-1", "sig-1", "approve", 1, NOW)
        assert isinstance(first, Delivered), first
        second = await store.deliver_signal("run-1", "sig-2", "approve", 2, NOW + 5)
        assert isinstance(second, Buffered), second
        assert second.run == first.run
        assert await _load(store) == first.run

    # -- Duplicate -----------------------------------------------------------------------
    async def test_deliver_signal_twice_returns_first_entry_and_changes_nothing(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        first = await store.deliver_signal(
            "run-1", "sig-1", "approve", {"v": 1}, NOW, meta={"m": 1}
        )
        assert isinstance(first, Buffered), first
        run_before = await _load(store)
        again = await store.deliver_signal(
            "run-1", "sig-1", "other-name", {"v": 2}, NOW + 10, step_id="x", meta={"m": 2}
        )
        assert isinstance(again, Duplicate), again
        assert again.entry == first.entry
        assert again.entry.payload == {"v": 1}
        assert await store.read_inbox("run-1", include_consumed=True) == [first.entry]
        assert await _load(store) == run_before

    async def test_duplicate_signal_does_not_wake_run_paused_on_matching_wait(
        self, store: ExecutionStore
    ) -> None:
        # Consumed entries still count: a retried delivery must not wake the run twice.
        await create(store)
        buffered = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(buffered, Buffered), buffered
        claim = await store.claim_run("run-1", "worker-a", LEASE_MS, NOW)
        assert isinstance(claim, Claimed), claim
        paused = await store.settle_run(
            "run-1",
            claim.lease,
            0,
            [],
            Pause(Wait.signal("step-2", "approve")),
            NOW,
            consume=[buffered.entry.ref],
        )
        assert paused.status is RunStatus.PAUSED
        again = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW + 10)
        assert isinstance(again, Duplicate), again
        stored = await store.read_inbox("run-1", include_consumed=True)
        assert stored == [replace(buffered.entry, consumed=True)]
        assert again.entry == stored[0]
        assert await _load(store) == paused

    async def test_deliver_signal_duplicate_on_terminal_run_is_duplicate_not_closed(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        first = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(first, Buffered), first
        finished = await store.settle_run("run-1", claim.lease, 0, [], Finish(None), NOW)
        again = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 9}, NOW + 1)
        assert isinstance(again, Duplicate), again
        assert again.entry == first.entry
        assert await _load(store) == finished

    async def test_deliver_approval_twice_returns_first_entry_and_changes_nothing(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        first = await store.deliver_approval("run-1", "ap-1", True, NOW, feedback="yes")
        assert isinstance(first, Buffered), first
        run_before = await _load(store)
        again = await store.deliver_approval("run-1", "ap-1", False, NOW + 1, feedback="no")
        assert isinstance(again, Duplicate), again
        assert again.entry == _approval("ap-1", True, "yes")
        assert await store.read_inbox("run-1") == [first.entry]
        assert await _load(store) == run_before

    async def test_deliver_approval_duplicate_on_terminal_run_is_duplicate_not_closed(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        first = await store.deliver_approval("run-1", "ap-1", True, NOW)
        assert isinstance(first, Buffered), first
        cancelled = await store.cancel_run("run-1", "stop", NOW)
        again = await store.deliver_approval("run-1", "ap-1", True, NOW + 1)
        assert isinstance(again, Duplicate), again
        assert again.entry == first.entry
        run = await _load(store)
        assert run.status is RunStatus.CANCELLED
        assert run.updated_at == NOW, cancelled

    # -- Closed and NotFound -------------------------------------------------------------
    @pytest.mark.parametrize("ending", ENDINGS)
    async def test_deliver_signal_to_terminal_run_is_closed_and_stores_nothing(
        self, store: ExecutionStore, ending: Ending
    ) -> None:
        before = await _ended(store, ending)
        result = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(result, Closed), result
        assert result.run == before
        assert await _load(store) == before
        assert await store.read_inbox("run-1", include_consumed=True) == []

    @pytest.mark.parametrize("ending", ENDINGS)
    async def test_deliver_approval_to_terminal_run_is_closed_and_stores_nothing(
        self, store: ExecutionStore, ending: Ending
    ) -> None:
        before = await _ended(store, ending)
        result = await store.deliver_approval("run-1", "ap-1", True, NOW, feedback="late")
        assert isinstance(result, Closed), result
        assert result.run == before
        assert await _load(store) == before
        assert await store.read_inbox("run-1", include_consumed=True) == []

    async def test_closed_delivery_can_be_repeated_and_stays_closed(
        self, store: ExecutionStore
    ) -> None:
        # Nothing was stored the first time, so the retry is Closed again, not Duplicate.
        before = await _ended(store, "finished")
        first = await store.deliver_signal("run-1", "sig-1", "approve", 1, NOW)
        second = await store.deliver_signal("run-1", "sig-1", "approve", 1, NOW + 1)
        assert isinstance(first, Closed), first
        assert isinstance(second, Closed), second
        assert second.run == before

    async def test_deliver_signal_to_unknown_run_is_not_found(self, store: ExecutionStore) -> None:
        result = await store.deliver_signal("no-such-run", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(result, NotFound), result
        assert result.run_id == "no-such-run"
        assert await store.load_run("no-such-run") is None
        assert await store.read_inbox("no-such-run", include_consumed=True) == []

    async def test_deliver_approval_to_unknown_run_is_not_found(
        self, store: ExecutionStore
    ) -> None:
        await create(store, "other-run")
        result = await store.deliver_approval("no-such-run", "ap-1", True, NOW)
        assert isinstance(result, NotFound), result
        assert result.run_id == "no-such-run"
        assert await store.load_run("no-such-run") is None
        assert await store.read_inbox("other-run") == []

    async def test_deliver_signal_to_deleted_run_is_not_found(self, store: ExecutionStore) -> None:
        await create(store)
        first = await store.deliver_signal("run-1", "sig-1", "approve", 1, NOW)
        assert isinstance(first, Buffered), first
        assert await store.delete_run("run-1") is True
        # The deleted run's entry went with it: not Duplicate, NotFound.
        again = await store.deliver_signal("run-1", "sig-1", "approve", 1, NOW + 1)
        assert isinstance(again, NotFound), again
        assert again.run_id == "run-1"

    # -- key spaces ----------------------------------------------------------------------
    async def test_signal_and_approval_with_same_id_are_both_stored(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        signal = await store.deliver_signal("run-1", "same-id", "approve", {"s": 1}, NOW)
        approval = await store.deliver_approval("run-1", "same-id", True, NOW)
        assert isinstance(signal, Buffered), signal
        assert isinstance(approval, Buffered), approval
        # Ordered by (received_at, kind, key): "approval" sorts before "signal".
        assert await store.read_inbox("run-1") == [
            _approval("same-id", True),
            _signal("same-id", "approve", {"s": 1}),
        ]

    async def test_same_signal_id_on_two_runs_is_stored_for_each(
        self, store: ExecutionStore
    ) -> None:
        await create(store, "run-a")
        await create(store, "run-b")
        a = await store.deliver_signal("run-a", "sig-1", "go", 1, NOW)
        b = await store.deliver_signal("run-b", "sig-1", "go", 2, NOW)
        assert isinstance(a, Buffered), a
        assert isinstance(b, Buffered), b
        assert await store.read_inbox("run-a") == [_signal("sig-1", "go", 1, run_id="run-a")]
        assert await store.read_inbox("run-b") == [_signal("sig-1", "go", 2, run_id="run-b")]

    # -- approvals -----------------------------------------------------------------------
    @pytest.mark.parametrize("approved", [True, False])
    async def test_deliver_approval_to_run_paused_on_that_approval_queues_it(
        self, store: ExecutionStore, approved: bool
    ) -> None:
        before = await paused_on(store, Wait.approval("step-1", "ap-1"))
        feedback: JSON = {"comment": "looks fine", "score": 4}
        result = await store.deliver_approval(
            "run-1", "ap-1", approved, NOW, feedback=feedback, meta={"by": "alice"}
        )
        assert isinstance(result, Delivered), result
        expected_entry = _approval("ap-1", approved, feedback, meta={"by": "alice"})
        assert result.entry == expected_entry
        assert isinstance(result.entry.payload, dict)
        assert result.entry.payload["approved"] is approved
        assert result.run == _queued_by_delivery(before, NOW)
        assert await _load(store) == result.run
        assert await store.read_inbox("run-1") == [expected_entry]

    async def test_deliver_approval_without_feedback_stores_none_feedback(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        result = await store.deliver_approval("run-1", "ap-1", False, NOW)
        assert isinstance(result, Buffered), result
        assert result.entry == _approval("ap-1", False, None)
        assert result.entry.payload == {"approved": False, "feedback": None}

    async def test_deliver_approval_for_other_approval_id_is_buffered(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.approval("step-1", "ap-1"))
        result = await store.deliver_approval("run-1", "ap-2", True, NOW)
        assert isinstance(result, Buffered), result
        assert result.entry == _approval("ap-2", True)
        assert result.run == before
        assert await _load(store) == before

    async def test_deliver_approval_to_run_paused_on_signal_of_that_name_is_buffered(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("step-1", "ap-1"))
        result = await store.deliver_approval("run-1", "ap-1", True, NOW)
        assert isinstance(result, Buffered), result
        assert result.run == before
        assert await _load(store) == before

    async def test_deliver_approval_to_running_run_is_buffered_and_lease_kept(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        before = await _load(store)
        result = await store.deliver_approval("run-1", "ap-1", True, NOW)
        assert isinstance(result, Buffered), result
        assert result.run == before
        assert result.run.lease == claim.lease

    # -- nothing is lost -----------------------------------------------------------------
    async def test_buffered_signal_then_pause_on_matching_wait_goes_straight_to_queued(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        buffered = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(buffered, Buffered), buffered
        run = await store.settle_run(
            "run-1", claim.lease, 0, [event(1)], Pause(Wait.signal("step-1", "approve")), NOW + 5
        )
        assert run.status is RunStatus.QUEUED
        assert run.wait is None
        assert run.lease is None
        assert run.ready_at == NOW + 5
        assert run.updated_at == NOW + 5
        assert run.next_event_index == 1
        assert await _load(store) == run
        again = await store.claim_run("run-1", "worker-b", LEASE_MS, NOW + 6)
        assert isinstance(again, Claimed), again
        assert again.inbox == [buffered.entry]

    async def test_buffered_approval_then_pause_on_that_approval_goes_straight_to_queued(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        buffered = await store.deliver_approval("run-1", "ap-1", False, NOW, feedback="no")
        assert isinstance(buffered, Buffered), buffered
        run = await store.settle_run(
            "run-1", claim.lease, 0, [], Pause(Wait.approval("step-1", "ap-1")), NOW + 5
        )
        assert run.status is RunStatus.QUEUED
        assert run.wait is None
        assert run.ready_at == NOW + 5
        again = await store.claim_run("run-1", "worker-b", LEASE_MS, NOW + 6)
        assert isinstance(again, Claimed), again
        assert again.inbox == [_approval("ap-1", False, "no")]

    async def test_buffered_signal_for_other_step_does_not_satisfy_pause(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        buffered = await store.deliver_signal("run-1", "sig-1", "approve", 1, NOW, step_id="step-2")
        assert isinstance(buffered, Buffered), buffered
        wait = Wait.signal("step-1", "approve")
        run = await store.settle_run("run-1", claim.lease, 0, [], Pause(wait), NOW + 5)
        assert run.status is RunStatus.PAUSED
        assert run.wait == wait
        assert run.ready_at is None

    async def test_consumed_signal_does_not_satisfy_a_later_pause(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        buffered = await store.deliver_signal("run-1", "sig-1", "approve", 1, NOW)
        assert isinstance(buffered, Buffered), buffered
        wait = Wait.signal("step-1", "approve")
        # Consumed in the same settle that pauses: the pause must not see it.
        run = await store.settle_run(
            "run-1", claim.lease, 0, [], Pause(wait), NOW + 5, consume=[buffered.entry.ref]
        )
        assert run.status is RunStatus.PAUSED
        assert run.wait == wait
        assert await store.read_inbox("run-1") == []

    async def test_claim_after_delivery_carries_the_entry(self, store: ExecutionStore) -> None:
        await paused_on(store, Wait.signal("step-1", "approve"))
        delivered = await store.deliver_signal("run-1", "sig-1", "approve", {"v": [1, 2]}, NOW)
        assert isinstance(delivered, Delivered), delivered
        claim = await store.claim_run("run-1", "worker-b", LEASE_MS, NOW + 1)
        assert isinstance(claim, Claimed), claim
        assert claim.inbox == [delivered.entry]
        assert claim.run.status is RunStatus.RUNNING

    async def test_claim_runnable_after_delivery_carries_the_entry(
        self, store: ExecutionStore
    ) -> None:
        await paused_on(store, Wait.approval("step-1", "ap-1"))
        delivered = await store.deliver_approval("run-1", "ap-1", True, NOW)
        assert isinstance(delivered, Delivered), delivered
        claims = await store.claim_runnable("worker-b", LEASE_MS, 10, NOW + 1)
        assert [c.run.run_id for c in claims] == ["run-1"]
        assert claims[0].inbox == [delivered.entry]

    async def test_claim_inbox_lists_all_unconsumed_entries_in_arrival_order(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        await store.deliver_signal("run-1", "sig-b", "x", 1, NOW + 2)
        await store.deliver_signal("run-1", "sig-a", "x", 2, NOW + 3)
        await store.deliver_approval("run-1", "ap-z", True, NOW + 2)
        await store.deliver_signal("run-1", "sig-0", "x", 3, NOW + 1)
        expected = [
            _signal("sig-0", "x", 3, at=NOW + 1),
            _approval("ap-z", True, at=NOW + 2),
            _signal("sig-b", "x", 1, at=NOW + 2),
            _signal("sig-a", "x", 2, at=NOW + 3),
        ]
        assert await store.read_inbox("run-1") == expected
        claim = await store.claim_run("run-1", "worker-a", LEASE_MS, NOW + 4)
        assert isinstance(claim, Claimed), claim
        assert claim.inbox == expected

    async def test_consumed_entry_is_gone_from_the_next_claims_inbox(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        one = await store.deliver_signal("run-1", "sig-1", "x", 1, NOW)
        two = await store.deliver_signal("run-1", "sig-2", "x", 2, NOW + 1)
        assert isinstance(one, Buffered), one
        assert isinstance(two, Buffered), two
        claim = await store.claim_run("run-1", "worker-a", LEASE_MS, NOW + 2)
        assert isinstance(claim, Claimed), claim
        assert claim.inbox == [one.entry, two.entry]
        index = await store.append_events(
            "run-1", claim.lease, 0, [event(1)], NOW + 3, consume=[one.entry.ref]
        )
        assert index == 1
        assert await store.read_inbox("run-1") == [two.entry]
        assert await store.read_inbox("run-1", include_consumed=True) == [
            replace(one.entry, consumed=True),
            two.entry,
        ]
        await store.settle_run("run-1", claim.lease, 1, [], Yield(), NOW + 4)
        again = await store.claim_run("run-1", "worker-a", LEASE_MS, NOW + 5)
        assert isinstance(again, Claimed), again
        assert again.inbox == [two.entry]

    async def test_consume_of_unknown_or_other_kind_ref_changes_nothing(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        sig = await store.deliver_signal("run-1", "same-id", "x", 1, NOW)
        assert isinstance(sig, Buffered), sig
        # Same key, other kind: the signal must not be consumed by an approval ref.
        await store.append_events(
            "run-1",
            claim.lease,
            0,
            [],
            NOW + 1,
            consume=[InboxRef(InboxKind.APPROVAL, "same-id"), InboxRef(InboxKind.SIGNAL, "nope")],
        )
        assert await store.read_inbox("run-1", include_consumed=True) == [sig.entry]

    async def test_signal_delivered_while_running_shows_up_in_next_claim(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        buffered = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(buffered, Buffered), buffered
        run = await store.settle_run("run-1", claim.lease, 0, [event(1)], Yield(), NOW + 1)
        assert run.status is RunStatus.QUEUED
        again = await store.claim_run("run-1", "worker-b", LEASE_MS, NOW + 2)
        assert isinstance(again, Claimed), again
        assert again.lease.token == claim.lease.token + 1
        assert again.inbox == [buffered.entry]

    async def test_signal_delivered_while_running_survives_lease_expiry_takeover(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        buffered = await store.deliver_signal("run-1", "sig-1", "approve", {"v": 1}, NOW)
        assert isinstance(buffered, Buffered), buffered
        takeover = await store.claim_run("run-1", "worker-b", LEASE_MS, claim.lease.expires_at)
        assert isinstance(takeover, Claimed), takeover
        assert takeover.inbox == [buffered.entry]
