"""Contract cases: the event log and settling (append_events, settle_run, consume=).

Appends are a compare-and-swap on ``next_event_index``: all events or none, and the
named inbox entries are consumed in the same step. ``settle_run`` ends a slice in one
atomic step and releases the lease. Every write is fenced: only the run's current
lease token may write, checked before the log index.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import pytest

from workflow.runtime import (
    JSON,
    Buffered,
    Cancelled,
    Claimed,
    ErrorInfo,
    ExecutionStore,
    Fail,
    Finish,
    InboxKind,
    InboxRef,
    Lease,
    LeaseLostError,
    LogConflictError,
    NewEvent,
    Outcome,
    Pause,
    PayloadError,
    Run,
    RunCancelledError,
    RunStatus,
    StoredEvent,
    Wait,
    Yield,
)

from ..support import LEASE_MS, T0, create, event, paused_on, started
from .runs import HOLDER_WRITES, TERMINAL, HolderWrite, holder_write, loaded

SIGNAL_REF = InboxRef(InboxKind.SIGNAL, "sig-1")


async def with_log(store: ExecutionStore, n: int = 2) -> Claimed:
    """A claimed run-1 with ``n`` events, a buffered signal ``sig-1`` and an approval."""
    claim = await started(store, now=T0)
    if n:
        await store.append_events("run-1", claim.lease, 0, [event(i) for i in range(n)], T0 + 1)
    signal = await store.deliver_signal("run-1", "sig-1", "go", {"v": 1}, T0 + 2)
    approval = await store.deliver_approval("run-1", "appr-1", False, T0 + 2)
    assert isinstance(signal, Buffered), signal
    assert isinstance(approval, Buffered), approval
    return claim


EntryKind = Literal["signal", "signal-for-step", "approval", "timer"]


async def claimed_with_entry(store: ExecutionStore, kind: EntryKind) -> Claimed:
    """A claimed run-1 holding one unconsumed inbox entry of ``kind`` for ``step-1``."""
    if kind == "timer":
        await paused_on(store, Wait.sleep("step-1", T0 + 5))
        fired = await store.fire_due_timers(T0 + 5, 10)
        assert [(e.kind, e.key) for e in fired] == [(InboxKind.TIMER, "step-1")]
        claim = await store.claim_run("run-1", "worker-a", LEASE_MS, T0 + 6)
        assert isinstance(claim, Claimed), claim
        return claim
    claim = await started(store, now=T0)
    if kind == "approval":
        result = await store.deliver_approval("run-1", "appr-1", True, T0 + 1)
    else:
        step_id = "step-1" if kind == "signal-for-step" else None
        result = await store.deliver_signal(
            "run-1", "sig-1", "go", {"v": 1}, T0 + 1, step_id=step_id
        )
    assert isinstance(result, Buffered), result
    return claim


OUTCOMES: list[Outcome] = [
    Yield(),
    Pause(Wait.signal("step-1", "go")),
    Finish({"done": True}),
    Fail(ErrorInfo("Boom", "it broke")),
]


class EventLogCases:
    # -- append_events -------------------------------------------------------------------
    async def test_append_events_returns_the_next_index(self, store: ExecutionStore) -> None:
        claim = await started(store)
        assert await store.append_events("run-1", claim.lease, 0, [event(0), event(1)], T0) == 2
        assert await store.append_events("run-1", claim.lease, 2, [event(2)], T0) == 3
        assert (
            await store.append_events("run-1", claim.lease, 3, [event(i) for i in range(3)], T0)
            == 6
        )
        assert (await loaded(store)).next_event_index == 6

    async def test_append_events_stores_dense_indexes_types_steps_data_and_time(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        await store.append_events(
            "run-1",
            claim.lease,
            0,
            [
                NewEvent("RUN_STARTED"),
                NewEvent("STEP_DONE", {"result": [1, 2.5, "x", None, True]}, "step-1"),
            ],
            T0 + 10,
        )
        await store.append_events(
            "run-1", claim.lease, 2, [NewEvent("NOTE", '{"looks": "like json"}', "step 2")], T0 + 20
        )
        events = await store.read_events("run-1")
        assert events == [
            StoredEvent("run-1", 0, "RUN_STARTED", None, None, T0 + 10),
            StoredEvent(
                "run-1", 1, "STEP_DONE", "step-1", {"result": [1, 2.5, "x", None, True]}, T0 + 10
            ),
            StoredEvent("run-1", 2, "NOTE", "step 2", '{"looks": "like json"}', T0 + 20),
        ]
        data = events[1].data
        assert isinstance(data, dict)
        result = data["result"]
        assert isinstance(result, list)
        assert [type(v) for v in result] == [int, float, str, type(None), bool]
        assert type(events[2].data) is str

    async def test_append_events_does_not_change_status_times_or_lease(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, now=T0)
        await store.append_events("run-1", claim.lease, 0, [event(0)], T0 + 100)
        after = await loaded(store)
        assert after == replace(claim.run, next_event_index=1)

    @pytest.mark.parametrize("expected", [0, 1, 3, 10], ids=["zero", "lower", "higher", "far"])
    async def test_append_events_index_mismatch_raises_log_conflict_and_writes_nothing(
        self, store: ExecutionStore, expected: int
    ) -> None:
        claim = await with_log(store, 2)
        run_before = await loaded(store)
        events_before = await store.read_events("run-1")
        inbox_before = await store.read_inbox("run-1", include_consumed=True)
        with pytest.raises(LogConflictError) as caught:
            await store.append_events(
                "run-1", claim.lease, expected, [event(7)], T0 + 5, consume=[SIGNAL_REF]
            )
        assert caught.value.current == 2
        assert caught.value.expected == expected
        assert caught.value.run_id == "run-1"
        assert await store.load_run("run-1") == run_before
        assert await store.read_events("run-1") == events_before
        # The consume of the rejected append did not happen either.
        assert await store.read_inbox("run-1", include_consumed=True) == inbox_before

    async def test_append_events_retry_at_the_current_index_succeeds(
        self, store: ExecutionStore
    ) -> None:
        claim = await with_log(store, 2)
        with pytest.raises(LogConflictError) as caught:
            await store.append_events("run-1", claim.lease, 0, [event(9)], T0 + 5)
        index = caught.value.current
        assert await store.append_events("run-1", claim.lease, index, [event(9)], T0 + 6) == 3
        assert [e.data for e in await store.read_events("run-1")] == [
            {"n": 0},
            {"n": 1},
            {"n": 9},
        ]

    async def test_append_events_is_all_or_none(self, store: ExecutionStore) -> None:
        claim = await with_log(store, 1)
        run_before = await loaded(store)
        batch = [event(1), event(2), NewEvent("BAD", {"x": float("nan")})]
        with pytest.raises(PayloadError):
            await store.append_events("run-1", claim.lease, 1, batch, T0 + 5, consume=[SIGNAL_REF])
        assert await store.load_run("run-1") == run_before
        assert [e.index for e in await store.read_events("run-1")] == [0]
        assert [e.key for e in await store.read_inbox("run-1")] == ["appr-1", "sig-1"]
        # The log is still usable at the same index.
        assert await store.append_events("run-1", claim.lease, 1, [event(1)], T0 + 6) == 2

    async def test_append_events_with_empty_list_is_allowed_and_writes_no_event(
        self, store: ExecutionStore
    ) -> None:
        claim = await with_log(store, 2)
        assert await store.append_events("run-1", claim.lease, 2, [], T0 + 5) == 2
        assert [e.index for e in await store.read_events("run-1")] == [0, 1]
        # An empty append is still a checked compare-and-swap.
        with pytest.raises(LogConflictError):
            await store.append_events("run-1", claim.lease, 1, [], T0 + 5)

    async def test_append_events_empty_list_with_consume_marks_entries(
        self, store: ExecutionStore
    ) -> None:
        claim = await with_log(store, 0)
        index = await store.append_events("run-1", claim.lease, 0, [], T0 + 5, consume=[SIGNAL_REF])
        assert index == 0
        assert await store.read_events("run-1") == []
        assert [e.key for e in await store.read_inbox("run-1")] == ["appr-1"]

    async def test_append_events_consume_marks_entries_consumed_in_the_same_step(
        self, store: ExecutionStore
    ) -> None:
        claim = await with_log(store, 2)
        before = {e.key: e for e in await store.read_inbox("run-1", include_consumed=True)}
        assert (
            await store.append_events(
                "run-1", claim.lease, 2, [event(2)], T0 + 5, consume=[SIGNAL_REF]
            )
            == 3
        )
        assert [e.key for e in await store.read_inbox("run-1")] == ["appr-1"]
        everything = await store.read_inbox("run-1", include_consumed=True)
        assert everything == [before["appr-1"], replace(before["sig-1"], consumed=True)]

    async def test_append_events_consume_ignores_unknown_refs(self, store: ExecutionStore) -> None:
        claim = await with_log(store, 0)
        inbox_before = await store.read_inbox("run-1", include_consumed=True)
        unknown = [
            InboxRef(InboxKind.SIGNAL, "nope"),
            # Signals and approvals have separate key spaces.
            InboxRef(InboxKind.APPROVAL, "sig-1"),
            InboxRef(InboxKind.SIGNAL, "appr-1"),
            InboxRef(InboxKind.TIMER, "step-1"),
        ]
        assert (
            await store.append_events("run-1", claim.lease, 0, [event(0)], T0 + 5, consume=unknown)
            == 1
        )
        assert await store.read_inbox("run-1", include_consumed=True) == inbox_before
        assert [e.index for e in await store.read_events("run-1")] == [0]

    async def test_append_events_consume_of_already_consumed_entry_is_ignored(
        self, store: ExecutionStore
    ) -> None:
        claim = await with_log(store, 0)
        await store.append_events("run-1", claim.lease, 0, [event(0)], T0 + 5, consume=[SIGNAL_REF])
        after_first = await store.read_inbox("run-1", include_consumed=True)
        await store.append_events("run-1", claim.lease, 1, [event(1)], T0 + 6, consume=[SIGNAL_REF])
        assert await store.read_inbox("run-1", include_consumed=True) == after_first

    async def test_append_events_with_expired_lease_nobody_took_still_works(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, now=T0)
        late = claim.lease.expires_at + 1_000
        assert await store.append_events("run-1", claim.lease, 0, [event(0)], late) == 1
        run = await store.settle_run("run-1", claim.lease, 1, [], Finish(1), late + 1)
        assert run.status is RunStatus.FINISHED

    # -- settle_run: outcomes ------------------------------------------------------------
    async def test_settle_run_yield_queues_the_run(self, store: ExecutionStore) -> None:
        claim = await with_log(store, 1)
        run = await store.settle_run("run-1", claim.lease, 1, [event(1)], Yield(), T0 + 50)
        assert run == replace(
            claim.run,
            status=RunStatus.QUEUED,
            lease=None,
            next_event_index=2,
            updated_at=T0 + 50,
            ready_at=T0 + 50,
        )
        assert run.status is RunStatus.QUEUED
        assert await store.load_run("run-1") == run
        events = await store.read_events("run-1")
        assert events[-1] == StoredEvent("run-1", 1, "CUSTOM", None, {"n": 1}, T0 + 50)

    async def test_settle_run_pause_parks_the_run_on_its_wait(self, store: ExecutionStore) -> None:
        claim = await started(store, now=T0)
        wait = Wait.signal("step-1", "go", timeout_at=T0 + 10_000, meta={"k": [1, 2.5]})
        run = await store.settle_run("run-1", claim.lease, 0, [event(0)], Pause(wait), T0 + 50)
        assert run == replace(
            claim.run,
            status=RunStatus.PAUSED,
            wait=wait,
            lease=None,
            next_event_index=1,
            updated_at=T0 + 50,
            ready_at=None,
        )
        assert await store.load_run("run-1") == run

    @pytest.mark.parametrize(
        ("kind", "wait", "status"),
        [
            ("signal", Wait.signal("step-1", "go"), RunStatus.QUEUED),
            # A delivery that names no step matches the signal name on any step.
            ("signal", Wait.signal("step-2", "go"), RunStatus.QUEUED),
            ("signal", Wait.signal("step-1", "stop"), RunStatus.PAUSED),
            ("signal", Wait.approval("step-1", "sig-1"), RunStatus.PAUSED),
            ("signal-for-step", Wait.signal("step-1", "go"), RunStatus.QUEUED),
            ("signal-for-step", Wait.signal("step-2", "go"), RunStatus.PAUSED),
            ("approval", Wait.approval("step-1", "appr-1"), RunStatus.QUEUED),
            ("approval", Wait.approval("step-1", "appr-2"), RunStatus.PAUSED),
            ("approval", Wait.signal("step-1", "appr-1"), RunStatus.PAUSED),
            ("timer", Wait.sleep("step-1", T0 + 100), RunStatus.QUEUED),
            ("timer", Wait.signal("step-1", "go", timeout_at=T0 + 100), RunStatus.QUEUED),
            ("timer", Wait.signal("step-1", "go"), RunStatus.PAUSED),
            ("timer", Wait.sleep("step-2", T0 + 100), RunStatus.PAUSED),
        ],
    )
    async def test_settle_run_pause_with_buffered_entry_queues_only_when_it_matches(
        self, store: ExecutionStore, kind: EntryKind, wait: Wait, status: RunStatus
    ) -> None:
        claim = await claimed_with_entry(store, kind)
        inbox_before = await store.read_inbox("run-1", include_consumed=True)
        run = await store.settle_run(
            "run-1", claim.lease, claim.run.next_event_index, [], Pause(wait), T0 + 50
        )
        assert run.status is status
        assert run.lease is None
        assert run.updated_at == T0 + 50
        if status is RunStatus.QUEUED:
            assert run.wait is None
            assert run.ready_at == T0 + 50
        else:
            assert run.wait == wait
            assert run.ready_at is None
        assert await store.load_run("run-1") == run
        # Matching never consumes: the engine does that through consume=.
        assert await store.read_inbox("run-1", include_consumed=True) == inbox_before

    async def test_settle_run_pause_on_entry_consumed_in_the_same_settle_stays_paused(
        self, store: ExecutionStore
    ) -> None:
        claim = await claimed_with_entry(store, "signal")
        wait = Wait.signal("step-2", "go")
        run = await store.settle_run(
            "run-1", claim.lease, 0, [event(0)], Pause(wait), T0 + 50, consume=[SIGNAL_REF]
        )
        assert run.status is RunStatus.PAUSED
        assert run.wait == wait
        assert run.ready_at is None
        assert await store.read_inbox("run-1") == []
        consumed = await store.read_inbox("run-1", include_consumed=True)
        assert [(e.key, e.consumed) for e in consumed] == [("sig-1", True)]

    async def test_settle_run_pause_on_entry_consumed_earlier_stays_paused(
        self, store: ExecutionStore
    ) -> None:
        claim = await claimed_with_entry(store, "approval")
        ref = InboxRef(InboxKind.APPROVAL, "appr-1")
        await store.append_events("run-1", claim.lease, 0, [event(0)], T0 + 10, consume=[ref])
        wait = Wait.approval("step-1", "appr-1")
        run = await store.settle_run("run-1", claim.lease, 1, [], Pause(wait), T0 + 50)
        assert run.status is RunStatus.PAUSED
        assert run.wait == wait

    async def test_settle_run_finish_stores_the_output(self, store: ExecutionStore) -> None:
        claim = await with_log(store, 1)
        output: dict[str, JSON] = {
            "total": 10,
            "ratio": 0.5,
            "items": ["a", None, False],
            "raw": "[1]",
        }
        run = await store.settle_run("run-1", claim.lease, 1, [event(1)], Finish(output), T0 + 50)
        assert run == replace(
            claim.run,
            status=RunStatus.FINISHED,
            output=output,
            lease=None,
            next_event_index=2,
            updated_at=T0 + 50,
            ready_at=None,
        )
        assert await store.load_run("run-1") == run
        assert isinstance(run.output, dict)
        assert type(run.output["total"]) is int
        assert type(run.output["ratio"]) is float
        assert type(run.output["raw"]) is str

    async def test_settle_run_fail_stores_the_error(self, store: ExecutionStore) -> None:
        claim = await with_log(store, 1)
        error = ErrorInfo("ValueError", "bad value: 'x'", "step_failed", "Traceback...\n  line 3")
        run = await store.settle_run("run-1", claim.lease, 1, [], Fail(error), T0 + 50)
        assert run == replace(
            claim.run,
            status=RunStatus.ERRORED,
            error=error,
            lease=None,
            next_event_index=1,
            updated_at=T0 + 50,
            ready_at=None,
        )
        assert await store.load_run("run-1") == run

    async def test_settle_run_appends_consumes_and_applies_the_outcome_together(
        self, store: ExecutionStore
    ) -> None:
        claim = await with_log(store, 2)
        run = await store.settle_run(
            "run-1",
            claim.lease,
            2,
            [event(2), event(3)],
            Finish("ok"),
            T0 + 50,
            consume=[SIGNAL_REF, InboxRef(InboxKind.APPROVAL, "appr-1")],
        )
        assert run.status is RunStatus.FINISHED
        assert run.next_event_index == 4
        assert [e.index for e in await store.read_events("run-1")] == [0, 1, 2, 3]
        assert await store.read_inbox("run-1") == []

    @pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda o: type(o).__name__)
    async def test_settle_run_releases_the_lease(
        self, store: ExecutionStore, outcome: Outcome
    ) -> None:
        claim = await started(store, now=T0)
        run = await store.settle_run("run-1", claim.lease, 0, [event(0)], outcome, T0 + 50)
        assert run.lease is None
        assert (await loaded(store)).lease is None
        for op in HOLDER_WRITES:
            with pytest.raises(LeaseLostError) as caught:
                await holder_write(store, op, "run-1", claim.lease, 1, T0 + 51)
            assert not isinstance(caught.value, RunCancelledError)
        assert await store.load_run("run-1") == run
        assert [e.index for e in await store.read_events("run-1")] == [0]

    # -- settle_run: conflicts -----------------------------------------------------------
    @pytest.mark.parametrize("expected", [1, 3], ids=["lower", "higher"])
    async def test_settle_run_index_mismatch_writes_nothing_and_keeps_the_lease(
        self, store: ExecutionStore, expected: int
    ) -> None:
        claim = await with_log(store, 2)
        run_before = await loaded(store)
        events_before = await store.read_events("run-1")
        inbox_before = await store.read_inbox("run-1", include_consumed=True)
        with pytest.raises(LogConflictError) as caught:
            await store.settle_run(
                "run-1",
                claim.lease,
                expected,
                [event(9)],
                Finish("x"),
                T0 + 50,
                consume=[SIGNAL_REF],
            )
        assert caught.value.current == 2
        assert caught.value.expected == expected
        assert await store.load_run("run-1") == run_before
        assert run_before.status is RunStatus.RUNNING
        assert await store.read_events("run-1") == events_before
        assert await store.read_inbox("run-1", include_consumed=True) == inbox_before
        # The lease survived the rejected settle.
        lease = await store.heartbeat("run-1", claim.lease, LEASE_MS, T0 + 51)
        assert lease.token == claim.lease.token
        run = await store.settle_run("run-1", claim.lease, 2, [], Finish("x"), T0 + 52)
        assert run.status is RunStatus.FINISHED

    async def test_settle_run_twice_with_the_same_lease_raises_lease_lost(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        run = await store.settle_run("run-1", claim.lease, 0, [], Yield(), T0 + 1)
        with pytest.raises(LeaseLostError):
            await store.settle_run("run-1", claim.lease, 0, [], Yield(), T0 + 2)
        assert await store.load_run("run-1") == run

    # -- fencing -------------------------------------------------------------------------
    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_superseded_lease_write_raises_lease_lost_and_writes_nothing(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        old = await with_log(store, 2)
        takeover = await store.claim_run("run-1", "worker-b", LEASE_MS, old.lease.expires_at)
        assert isinstance(takeover, Claimed)
        run_before = await loaded(store)
        events_before = await store.read_events("run-1")
        inbox_before = await store.read_inbox("run-1", include_consumed=True)
        with pytest.raises(LeaseLostError) as caught:
            await holder_write(store, op, "run-1", old.lease, 2, old.lease.expires_at + 1)
        assert not isinstance(caught.value, RunCancelledError)
        assert caught.value.run_id == "run-1"
        assert await store.load_run("run-1") == run_before
        assert await store.read_events("run-1") == events_before
        assert await store.read_inbox("run-1", include_consumed=True) == inbox_before
        # The new holder is unaffected and writes on.
        now = old.lease.expires_at + 2
        assert await store.heartbeat("run-1", takeover.lease, LEASE_MS, now) == Lease(
            "worker-b", takeover.lease.token, now + LEASE_MS
        )
        assert await store.append_events("run-1", takeover.lease, 2, [event(2)], now) == 3
        run = await store.settle_run("run-1", takeover.lease, 3, [], Finish("b"), now)
        assert run.status is RunStatus.FINISHED
        assert run.output == "b"

    async def test_superseded_lease_is_rejected_before_the_log_index_is_checked(
        self, store: ExecutionStore
    ) -> None:
        old = await with_log(store, 2)
        takeover = await store.claim_run("run-1", "worker-b", LEASE_MS, old.lease.expires_at)
        assert isinstance(takeover, Claimed)
        now = old.lease.expires_at + 1
        for expected in (0, 2, 5):
            with pytest.raises(LeaseLostError):
                await store.append_events("run-1", old.lease, expected, [event(9)], now)
            with pytest.raises(LeaseLostError):
                await store.settle_run("run-1", old.lease, expected, [], Yield(), now)
        assert [e.index for e in await store.read_events("run-1")] == [0, 1]

    async def test_fencing_holds_across_several_takeovers(self, store: ExecutionStore) -> None:
        await create(store)
        leases: list[Lease] = []
        now = T0
        for owner in ("w1", "w2", "w3"):
            claim = await store.claim_run("run-1", owner, LEASE_MS, now)
            assert isinstance(claim, Claimed)
            leases.append(claim.lease)
            now = claim.lease.expires_at
        for lease in leases[:-1]:
            with pytest.raises(LeaseLostError):
                await store.append_events("run-1", lease, 0, [event(0)], now)
        assert await store.append_events("run-1", leases[-1], 0, [event(0)], now) == 1
        assert [lease.token for lease in leases] == [1, 2, 3]

    @pytest.mark.parametrize("status", TERMINAL)
    async def test_settle_run_on_terminal_run_with_its_last_lease_fails(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        claim = await started(store, now=T0)
        before = await end_run(store, status, claim.lease, T0 + 1)
        expected_error = RunCancelledError if status is RunStatus.CANCELLED else LeaseLostError
        with pytest.raises(expected_error) as caught:
            await store.settle_run("run-1", claim.lease, 0, [event(0)], Yield(), T0 + 2)
        if status is not RunStatus.CANCELLED:
            assert not isinstance(caught.value, RunCancelledError)
        assert await store.load_run("run-1") == before
        assert await store.read_events("run-1") == []

    @pytest.mark.parametrize("status", TERMINAL)
    async def test_settle_run_on_terminal_run_with_a_lease_of_an_earlier_slice_fails(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        first = await started(store, now=T0)
        await store.settle_run("run-1", first.lease, 0, [], Yield(), T0 + 1)
        second = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + 2)
        assert isinstance(second, Claimed)
        before = await end_run(store, status, second.lease, T0 + 3)
        with pytest.raises(LeaseLostError):
            await store.settle_run("run-1", first.lease, 0, [], Finish("late"), T0 + 4)
        assert await store.load_run("run-1") == before
        assert await store.read_events("run-1") == []


async def end_run(store: ExecutionStore, status: RunStatus, lease: Lease, now: int) -> Run:
    """Bring the claimed run-1 to the terminal ``status`` (settled, or cancelled)."""
    if status is RunStatus.CANCELLED:
        result = await store.cancel_run("run-1", "stop", now)
        assert isinstance(result, Cancelled), result
        run = result.run
    else:
        outcome: Outcome = Finish(1) if status is RunStatus.FINISHED else Fail(ErrorInfo("E", "m"))
        run = await store.settle_run("run-1", lease, 0, [], outcome, now)
    assert run.status is status
    return run
