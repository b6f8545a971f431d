"""Contract cases: timers (``fire_due_timers``).

A timer is the ``wake_at`` of a paused run's wait. Firing stores a timer entry and
queues the run in one step; each timer fires exactly once, due order is
``(wake_at, run_id)``, and a wait that was resolved takes its timer with it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from workflow.runtime import (
    JSON,
    Buffered,
    Claimed,
    Delivered,
    ExecutionStore,
    InboxEntry,
    InboxKind,
    Pause,
    Run,
    RunStatus,
    Wait,
)
from workflow.runtime.validation import MAX_MS

from ..support import LEASE_MS, T0, paused_on

WAKE = T0 + 60_000
"""The ``wake_at`` most cases arm (runs pause at ``T0``)."""


def _timer(
    step_id: str, wake_at: int, now: int, *, name: str | None = None, run_id: str = "run-1"
) -> InboxEntry:
    payload: JSON = {"wake_at": wake_at}
    return InboxEntry(
        run_id=run_id,
        kind=InboxKind.TIMER,
        key=step_id,
        name=name,
        step_id=step_id,
        payload=payload,
        meta=None,
        received_at=now,
        consumed=False,
    )


async def _load(store: ExecutionStore, run_id: str = "run-1") -> Run:
    run = await store.load_run(run_id)
    assert run is not None
    return run


def _woken(before: Run, now: int) -> Run:
    return replace(before, status=RunStatus.QUEUED, wait=None, ready_at=now, updated_at=now)


class TimerCases:
    async def test_fire_due_timers_fires_a_timer_whose_wake_at_equals_now(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.sleep("nap", WAKE, meta={"why": "backoff"}))
        fired = await store.fire_due_timers(WAKE, 10)
        expected = _timer("nap", WAKE, WAKE)
        assert fired == [expected]
        assert type(fired[0].payload) is dict
        assert type(fired[0].payload["wake_at"]) is int
        assert await _load(store) == _woken(before, WAKE)
        assert await store.read_inbox("run-1") == [expected]

    async def test_fire_due_timers_leaves_a_timer_due_one_ms_later(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.sleep("nap", WAKE))
        assert await store.fire_due_timers(WAKE - 1, 10) == []
        assert await _load(store) == before
        assert await store.read_inbox("run-1", include_consumed=True) == []

    async def test_fired_timer_is_received_at_now_not_at_wake_at(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.sleep("nap", WAKE))
        late = WAKE + 12_345
        fired = await store.fire_due_timers(late, 10)
        assert fired == [_timer("nap", WAKE, late)]
        assert await _load(store) == _woken(before, late)

    async def test_signal_wait_timeout_fires_with_the_signal_name(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("ask", "answer", timeout_at=WAKE))
        fired = await store.fire_due_timers(WAKE, 10)
        assert fired == [_timer("ask", WAKE, WAKE, name="answer")]
        assert await _load(store) == _woken(before, WAKE)

    async def test_approval_wait_timeout_fires_without_a_name(self, store: ExecutionStore) -> None:
        before = await paused_on(store, Wait.approval("review", "ap-1", timeout_at=WAKE))
        fired = await store.fire_due_timers(WAKE, 10)
        assert fired == [_timer("review", WAKE, WAKE)]
        assert await _load(store) == _woken(before, WAKE)

    async def test_signal_wait_without_timeout_never_fires(self, store: ExecutionStore) -> None:
        before = await paused_on(store, Wait.signal("ask", "answer"))
        assert await store.fire_due_timers(MAX_MS, 1000) == []
        assert await _load(store) == before

    async def test_fired_timer_is_in_the_next_claims_inbox(self, store: ExecutionStore) -> None:
        await paused_on(store, Wait.sleep("nap", WAKE))
        fired = await store.fire_due_timers(WAKE, 10)
        claim = await store.claim_run("run-1", "worker-b", LEASE_MS, WAKE + 1)
        assert isinstance(claim, Claimed), claim
        assert claim.inbox == fired

    async def test_each_timer_fires_exactly_once(self, store: ExecutionStore) -> None:
        await paused_on(store, Wait.sleep("nap", WAKE))
        first = await store.fire_due_timers(WAKE, 10)
        assert len(first) == 1
        woken = await _load(store)
        assert await store.fire_due_timers(WAKE, 10) == []
        assert await store.fire_due_timers(WAKE + 100_000, 10) == []
        assert await _load(store) == woken
        assert await store.read_inbox("run-1", include_consumed=True) == first

    async def test_fire_due_timers_orders_by_wake_at_then_run_id(
        self, store: ExecutionStore
    ) -> None:
        await paused_on(store, Wait.sleep("s", WAKE + 10), run_id="a")
        await paused_on(store, Wait.sleep("s", WAKE), run_id="c")
        await paused_on(store, Wait.sleep("s", WAKE), run_id="b")
        now = WAKE + 100
        order = []
        for _ in range(4):
            order.append([e.run_id for e in await store.fire_due_timers(now, 1)])
        assert order == [["b"], ["c"], ["a"], []]

    async def test_fire_due_timers_respects_limit(self, store: ExecutionStore) -> None:
        for i in range(5):
            await paused_on(store, Wait.sleep("s", WAKE + i), run_id=f"r{i}")
        first = await store.fire_due_timers(WAKE + 100, 3)
        assert [e.run_id for e in first] == ["r0", "r1", "r2"]
        for i in range(5):
            run = await _load(store, f"r{i}")
            assert run.status is (RunStatus.QUEUED if i < 3 else RunStatus.PAUSED)
        rest = await store.fire_due_timers(WAKE + 100, 3)
        assert [e.run_id for e in rest] == ["r3", "r4"]

    async def test_fire_due_timers_fires_only_the_due_ones(self, store: ExecutionStore) -> None:
        await paused_on(store, Wait.sleep("s", WAKE), run_id="due")
        later = await paused_on(store, Wait.sleep("s", WAKE + 1), run_id="later")
        fired = await store.fire_due_timers(WAKE, 10)
        assert fired == [_timer("s", WAKE, WAKE, run_id="due")]
        assert await _load(store, "later") == later

    async def test_timer_of_wait_resolved_by_signal_never_fires(
        self, store: ExecutionStore
    ) -> None:
        await paused_on(store, Wait.signal("ask", "answer", timeout_at=WAKE))
        delivered = await store.deliver_signal("run-1", "sig-1", "answer", {"a": 1}, WAKE - 10)
        assert isinstance(delivered, Delivered), delivered
        assert await store.fire_due_timers(WAKE, 10) == []
        assert await store.fire_due_timers(WAKE + 100_000, 10) == []
        assert await _load(store) == delivered.run
        assert await store.read_inbox("run-1") == [delivered.entry]

    async def test_timer_of_wait_resolved_by_approval_never_fires(
        self, store: ExecutionStore
    ) -> None:
        await paused_on(store, Wait.approval("review", "ap-1", timeout_at=WAKE))
        delivered = await store.deliver_approval("run-1", "ap-1", True, WAKE - 10)
        assert isinstance(delivered, Delivered), delivered
        assert await store.fire_due_timers(WAKE, 10) == []
        assert await _load(store) == delivered.run

    async def test_timers_of_queued_and_running_runs_never_fire(
        self, store: ExecutionStore
    ) -> None:
        await paused_on(store, Wait.signal("ask", "answer", timeout_at=WAKE))
        delivered = await store.deliver_signal("run-1", "sig-1", "answer", None, T0 + 1)
        assert isinstance(delivered, Delivered), delivered
        # Queued: the old timer is gone.
        assert await store.fire_due_timers(WAKE, 10) == []
        claim = await store.claim_run("run-1", "worker-b", 10 * LEASE_MS, T0 + 2)
        assert isinstance(claim, Claimed), claim
        # Running (lease still valid at WAKE): still nothing to fire.
        assert await store.fire_due_timers(WAKE, 10) == []
        run = await _load(store)
        assert run.status is RunStatus.RUNNING
        assert run.lease == claim.lease
        assert await store.read_inbox("run-1") == [delivered.entry]

    async def test_cancel_drops_the_timer(self, store: ExecutionStore) -> None:
        await paused_on(store, Wait.sleep("nap", WAKE))
        await store.cancel_run("run-1", "stop", T0 + 1)
        cancelled = await _load(store)
        assert await store.fire_due_timers(WAKE, 10) == []
        assert await _load(store) == cancelled
        assert await store.read_inbox("run-1", include_consumed=True) == []

    async def test_delete_drops_the_timer(self, store: ExecutionStore) -> None:
        await paused_on(store, Wait.sleep("nap", WAKE))
        other = await paused_on(store, Wait.sleep("nap", WAKE + 5), run_id="run-2")
        assert await store.delete_run("run-1") is True
        fired = await store.fire_due_timers(WAKE + 5, 10)
        assert fired == [_timer("nap", WAKE + 5, WAKE + 5, run_id="run-2")]
        assert await store.load_run("run-1") is None
        assert await _load(store, "run-2") == _woken(other, WAKE + 5)

    async def test_timer_entry_matches_a_re_pause_of_the_same_step(
        self, store: ExecutionStore
    ) -> None:
        wait = Wait.sleep("nap", WAKE)
        await paused_on(store, wait)
        fired = await store.fire_due_timers(WAKE, 10)
        claim = await store.claim_run("run-1", "worker-b", LEASE_MS, WAKE + 1)
        assert isinstance(claim, Claimed), claim
        # Replaying up to the same sleep: the timer already fired, so no pause.
        run = await store.settle_run("run-1", claim.lease, 0, [], Pause(wait), WAKE + 2)
        assert run.status is RunStatus.QUEUED
        assert run.wait is None
        assert run.ready_at == WAKE + 2
        assert run.updated_at == WAKE + 2
        assert await store.read_inbox("run-1") == fired

    async def test_timer_entry_does_not_match_a_pause_of_another_step(
        self, store: ExecutionStore
    ) -> None:
        await paused_on(store, Wait.sleep("nap", WAKE))
        await store.fire_due_timers(WAKE, 10)
        claim = await store.claim_run("run-1", "worker-b", LEASE_MS, WAKE + 1)
        assert isinstance(claim, Claimed), claim
        wait = Wait.sleep("nap-2", WAKE + 1_000)
        run = await store.settle_run("run-1", claim.lease, 0, [], Pause(wait), WAKE + 2)
        assert run.status is RunStatus.PAUSED
        assert run.wait == wait
        assert await store.fire_due_timers(WAKE + 999, 10) == []
        fired = await store.fire_due_timers(WAKE + 1_000, 10)
        assert fired == [_timer("nap-2", WAKE + 1_000, WAKE + 1_000)]

    async def test_consumed_timer_entry_does_not_match_a_re_pause(
        self, store: ExecutionStore
    ) -> None:
        wait = Wait.signal("ask", "answer", timeout_at=WAKE)
        await paused_on(store, wait)
        fired = await store.fire_due_timers(WAKE, 10)
        claim = await store.claim_run("run-1", "worker-b", LEASE_MS, WAKE + 1)
        assert isinstance(claim, Claimed), claim
        run = await store.settle_run(
            "run-1", claim.lease, 0, [], Pause(wait), WAKE + 2, consume=[fired[0].ref]
        )
        assert run.status is RunStatus.PAUSED
        assert run.wait == wait

    async def test_timer_re_armed_on_the_same_step_after_consumption_fires_a_fresh_entry(
        self, store: ExecutionStore
    ) -> None:
        # A polling loop may sleep on the same step again once it consumed the first
        # timer: the second firing is a new timer entry (its own wake_at, received now,
        # unconsumed), so the next claim sees it.
        await paused_on(store, Wait.sleep("poll", WAKE))
        first = await store.fire_due_timers(WAKE, 10)
        claim = await store.claim_run("run-1", "worker-b", LEASE_MS, WAKE + 1)
        assert isinstance(claim, Claimed), claim
        again = Wait.sleep("poll", WAKE + 5_000)
        run = await store.settle_run(
            "run-1", claim.lease, 0, [], Pause(again), WAKE + 2, consume=[first[0].ref]
        )
        assert run.status is RunStatus.PAUSED
        fired = await store.fire_due_timers(WAKE + 5_000, 10)
        fresh = _timer("poll", WAKE + 5_000, WAKE + 5_000)
        assert fired == [fresh]
        next_claim = await store.claim_run("run-1", "worker-b", LEASE_MS, WAKE + 5_001)
        assert isinstance(next_claim, Claimed), next_claim
        assert next_claim.inbox == [fresh]

    async def test_timer_fires_although_a_non_matching_signal_is_buffered(
        self, store: ExecutionStore
    ) -> None:
        before = await paused_on(store, Wait.signal("ask", "answer", timeout_at=WAKE))
        buffered = await store.deliver_signal("run-1", "sig-1", "other", 1, T0 + 1)
        assert isinstance(buffered, Buffered), buffered
        fired = await store.fire_due_timers(WAKE, 10)
        assert fired == [_timer("ask", WAKE, WAKE, name="answer")]
        assert await _load(store) == _woken(before, WAKE)

    @pytest.mark.parametrize(
        "wait",
        [
            Wait.sleep("step", WAKE),
            Wait.signal("step", "sig", timeout_at=WAKE),
            Wait.approval("step", "ap", timeout_at=WAKE),
        ],
        ids=["sleep", "signal-timeout", "approval-timeout"],
    )
    async def test_pause_with_wake_at_in_the_past_fires_on_next_call(
        self, store: ExecutionStore, wait: Wait
    ) -> None:
        # Armed late (the worker paused after wake_at): still fires, right away.
        before = await paused_on(store, wait, now=WAKE + 500)
        fired = await store.fire_due_timers(WAKE + 500, 10)
        assert [(e.kind, e.key, e.payload) for e in fired] == [
            (InboxKind.TIMER, "step", {"wake_at": WAKE})
        ]
        assert await _load(store) == _woken(before, WAKE + 500)
