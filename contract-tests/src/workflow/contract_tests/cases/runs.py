"""Contract cases: the run lifecycle (create_run, load_run, cancel_run, delete_run, purge_runs).

Also home of small helpers the other case modules share: :func:`make_run` brings a run
to any status through ordinary operations, :func:`holder_write` performs one write on
behalf of a lease.
"""

from __future__ import annotations

from typing import Literal

import pytest

from workflow.runtime import (
    JSON,
    AlreadyTerminal,
    Cancelled,
    Claimed,
    Conflict,
    Created,
    ErrorInfo,
    ExecutionStore,
    Existing,
    Fail,
    Finish,
    Lease,
    LeaseLostError,
    NotClaimable,
    NotFound,
    Outcome,
    Pause,
    Run,
    RunCancelledError,
    RunStatus,
    Wait,
)

from ..support import LEASE_MS, T0, create, event, started

NON_TERMINAL = [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED]
TERMINAL = [RunStatus.FINISHED, RunStatus.ERRORED, RunStatus.CANCELLED]
ALL_STATUSES = NON_TERMINAL + TERMINAL

PAUSE_WAIT = Wait.signal("step-1", "go")
FINISH_OUTPUT: JSON = {"ok": True, "n": 3}
FAIL_ERROR = ErrorInfo("Boom", "it broke", "boom", "Traceback: line 1")

HolderWrite = Literal["heartbeat", "append_events", "settle_run"]
HOLDER_WRITES: list[HolderWrite] = ["heartbeat", "append_events", "settle_run"]


async def make_run(
    store: ExecutionStore,
    status: RunStatus,
    run_id: str = "run-1",
    *,
    workflow_id: str = "wf",
    created_at: int = T0,
    at: int | None = None,
) -> Run:
    """Create a run at ``created_at`` and bring it to ``status`` at ``at`` (default:
    ``created_at``): claimed for ``running``, settled for ``paused``/``finished``/
    ``errored``, cancelled for ``cancelled``."""
    when = created_at if at is None else at
    await create(store, run_id, workflow_id=workflow_id, now=created_at)
    if status is RunStatus.QUEUED:
        loaded = await store.load_run(run_id)
        assert loaded is not None
        return loaded
    if status is RunStatus.CANCELLED:
        cancelled = await store.cancel_run(run_id, "stop", when)
        assert isinstance(cancelled, Cancelled), cancelled
        return cancelled.run
    claim = await store.claim_run(run_id, "maker", LEASE_MS, when)
    assert isinstance(claim, Claimed), claim
    if status is RunStatus.RUNNING:
        return claim.run
    outcomes: dict[RunStatus, Outcome] = {
        RunStatus.PAUSED: Pause(PAUSE_WAIT),
        RunStatus.FINISHED: Finish(FINISH_OUTPUT),
        RunStatus.ERRORED: Fail(FAIL_ERROR),
    }
    run = await store.settle_run(run_id, claim.lease, 0, [], outcomes[status], when)
    assert run.status is status, run
    return run


async def holder_write(
    store: ExecutionStore,
    op: HolderWrite,
    run_id: str,
    lease: Lease,
    expected_next_index: int,
    now: int,
) -> None:
    """One write on behalf of ``lease``: a heartbeat, an append or a settle."""
    if op == "heartbeat":
        await store.heartbeat(run_id, lease, LEASE_MS, now)
    elif op == "append_events":
        await store.append_events(run_id, lease, expected_next_index, [event(99)], now)
    else:
        await store.settle_run(run_id, lease, expected_next_index, [event(99)], Finish("late"), now)


async def loaded(store: ExecutionStore, run_id: str = "run-1") -> Run:
    run = await store.load_run(run_id)
    assert run is not None, f"run {run_id!r} is gone"
    return run


class RunLifecycleCases:
    # -- create_run ------------------------------------------------------------------
    async def test_create_run_returns_created_queued_run_with_exact_fields(
        self, store: ExecutionStore
    ) -> None:
        input: dict[str, JSON] = {"order": 42, "price": 9.5, "tags": ["a", "b"], "note": None}
        result = await store.create_run("run-1", "wf", "v1", input, T0 + 5)
        assert isinstance(result, Created)
        assert result.run == Run(
            run_id="run-1",
            workflow_id="wf",
            workflow_version="v1",
            status=RunStatus.QUEUED,
            input=input,
            output=None,
            error=None,
            wait=None,
            lease=None,
            next_event_index=0,
            created_at=T0 + 5,
            updated_at=T0 + 5,
            ready_at=T0 + 5,
        )
        assert result.run.status is RunStatus.QUEUED
        assert isinstance(result.run.input, dict)
        assert type(result.run.input["order"]) is int
        assert type(result.run.input["price"]) is float

    async def test_create_run_without_version_or_input_stores_none(
        self, store: ExecutionStore
    ) -> None:
        result = await store.create_run("run-1", "wf", None, None, T0)
        assert isinstance(result, Created)
        assert result.run.workflow_version is None
        assert result.run.input is None
        assert await store.load_run("run-1") == result.run

    async def test_create_run_then_load_run_returns_the_same_run(
        self, store: ExecutionStore
    ) -> None:
        result = await store.create_run("run-1", "wf", "v1", ["x", 1], T0)
        assert isinstance(result, Created)
        assert await store.load_run("run-1") == result.run
        assert await store.read_events("run-1") == []
        assert await store.read_inbox("run-1", include_consumed=True) == []

    @pytest.mark.parametrize(
        ("first_version", "second_version"),
        [(None, "v2"), ("v1", None), ("v1", "v2"), ("v1", "v1")],
    )
    async def test_create_run_same_id_same_workflow_returns_existing_with_original_input(
        self, store: ExecutionStore, first_version: str | None, second_version: str | None
    ) -> None:
        first = await store.create_run("run-1", "wf", first_version, {"v": 1}, T0)
        assert isinstance(first, Created)
        again = await store.create_run("run-1", "wf", second_version, {"v": 2}, T0 + 100)
        assert isinstance(again, Existing)
        # The stored run comes back untouched: input, version and times of the first call.
        assert again.run == first.run
        assert again.run.input == {"v": 1}
        assert again.run.workflow_version == first_version
        assert again.run.created_at == T0
        assert await store.load_run("run-1") == first.run

    async def test_create_run_same_id_different_workflow_returns_conflict_and_writes_nothing(
        self, store: ExecutionStore
    ) -> None:
        first = await store.create_run("run-1", "wf", "v1", {"v": 1}, T0)
        assert isinstance(first, Created)
        clash = await store.create_run("run-1", "other-wf", "v9", {"v": 2}, T0 + 100)
        assert isinstance(clash, Conflict)
        assert clash.run == first.run
        assert await store.load_run("run-1") == first.run
        page = await store.list_runs(workflow_id="other-wf")
        assert page.items == []
        assert page.next_cursor is None

    async def test_create_run_existing_returns_the_current_state_of_a_running_run(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, input={"v": 1})
        again = await store.create_run("run-1", "wf", None, {"v": 2}, T0 + 50)
        assert isinstance(again, Existing)
        # Idempotent create never resets a run that already moved on.
        assert again.run.status is RunStatus.RUNNING
        assert again.run.lease == claim.lease
        assert again.run == claim.run
        assert await store.load_run("run-1") == claim.run

    @pytest.mark.parametrize("status", TERMINAL)
    async def test_create_run_existing_on_terminal_run_does_not_revive_it(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        before = await make_run(store, status, at=T0 + 10)
        again = await store.create_run("run-1", "wf", None, None, T0 + 20)
        assert isinstance(again, Existing)
        assert again.run == before
        assert await store.load_run("run-1") == before

    async def test_create_run_ids_are_compared_exactly(self, store: ExecutionStore) -> None:
        # Case, trailing spaces and normalisation forms name different runs.
        ids = ["run-a", "RUN-A", "run-a ", "caf\u00e9", "cafe\u0301"]
        for i, run_id in enumerate(ids):
            result = await store.create_run(run_id, "wf", None, {"i": i}, T0 + i)
            assert isinstance(result, Created), (run_id, result)
        for i, run_id in enumerate(ids):
            run = await loaded(store, run_id)
            assert run.run_id == run_id
            assert run.input == {"i": i}

    # -- load_run ----------------------------------------------------------------------
    async def test_load_run_unknown_returns_none(self, store: ExecutionStore) -> None:
        assert await store.load_run("missing") is None
        await create(store, "run-1")
        assert await store.load_run("run-2") is None

    # -- cancel_run --------------------------------------------------------------------
    async def test_cancel_run_unknown_returns_not_found_and_creates_nothing(
        self, store: ExecutionStore
    ) -> None:
        result = await store.cancel_run("missing", "stop", T0)
        assert isinstance(result, NotFound)
        assert result.run_id == "missing"
        assert await store.load_run("missing") is None

    @pytest.mark.parametrize("status", NON_TERMINAL)
    async def test_cancel_run_cancels_a_non_terminal_run(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        before = await make_run(store, status, created_at=T0, at=T0 + 10)
        result = await store.cancel_run("run-1", "user asked", T0 + 500)
        assert isinstance(result, Cancelled)
        assert result.run == Run(
            run_id="run-1",
            workflow_id="wf",
            workflow_version=None,
            status=RunStatus.CANCELLED,
            input=before.input,
            output=None,
            error=ErrorInfo("Cancelled", "user asked", "cancelled"),
            wait=None,
            lease=None,
            next_event_index=before.next_event_index,
            created_at=T0,
            updated_at=T0 + 500,
            ready_at=None,
        )
        assert result.run.error is not None
        assert result.run.error.traceback is None
        assert await store.load_run("run-1") == result.run

    async def test_cancel_run_keeps_the_event_log_and_inbox(self, store: ExecutionStore) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(1), event(2)], T0 + 1)
        await store.deliver_signal("run-1", "sig-1", "go", {"x": 1}, T0 + 2)
        events_before = await store.read_events("run-1")
        inbox_before = await store.read_inbox("run-1", include_consumed=True)
        result = await store.cancel_run("run-1", "stop", T0 + 3)
        assert isinstance(result, Cancelled)
        assert result.run.next_event_index == 2
        assert await store.read_events("run-1") == events_before
        assert await store.read_inbox("run-1", include_consumed=True) == inbox_before

    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_cancel_run_revokes_the_lease_so_holder_writes_raise_run_cancelled(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(1)], T0 + 1)
        cancelled = await store.cancel_run("run-1", "stop", T0 + 2)
        assert isinstance(cancelled, Cancelled)
        events_before = await store.read_events("run-1")
        with pytest.raises(RunCancelledError) as caught:
            await holder_write(store, op, "run-1", claim.lease, 1, T0 + 3)
        assert isinstance(caught.value, LeaseLostError)
        assert caught.value.run_id == "run-1"
        assert await store.load_run("run-1") == cancelled.run
        assert await store.read_events("run-1") == events_before

    async def test_cancel_run_revokes_an_expired_lease_nobody_took(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        result = await store.cancel_run("run-1", "stop", T0 + LEASE_MS + 1)
        assert isinstance(result, Cancelled)
        with pytest.raises(RunCancelledError):
            await store.heartbeat("run-1", claim.lease, LEASE_MS, T0 + LEASE_MS + 2)
        again = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + LEASE_MS + 3)
        assert isinstance(again, NotClaimable)
        assert again.run == result.run

    @pytest.mark.parametrize("status", TERMINAL)
    async def test_cancel_run_on_terminal_run_returns_already_terminal_and_changes_nothing(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        before = await make_run(store, status, at=T0 + 10)
        result = await store.cancel_run("run-1", "too late", T0 + 500)
        assert isinstance(result, AlreadyTerminal)
        assert result.run == before
        assert result.run.status is status
        assert result.run.updated_at == T0 + 10
        assert await store.load_run("run-1") == before

    async def test_cancel_run_twice_keeps_the_first_reason_and_time(
        self, store: ExecutionStore
    ) -> None:
        await create(store)
        first = await store.cancel_run("run-1", "first", T0 + 1)
        assert isinstance(first, Cancelled)
        second = await store.cancel_run("run-1", "second", T0 + 2)
        assert isinstance(second, AlreadyTerminal)
        assert second.run.error == ErrorInfo("Cancelled", "first", "cancelled")
        assert second.run.updated_at == T0 + 1
        assert second.run == first.run

    async def test_cancelled_run_can_no_longer_be_claimed(self, store: ExecutionStore) -> None:
        await create(store)
        cancelled = await store.cancel_run("run-1", "stop", T0 + 1)
        assert isinstance(cancelled, Cancelled)
        claim = await store.claim_run("run-1", "worker-a", LEASE_MS, T0 + 2)
        assert isinstance(claim, NotClaimable)
        assert await store.claim_runnable("worker-a", LEASE_MS, 1000, T0 + 2) == []
        assert await store.load_run("run-1") == cancelled.run

    # -- delete_run --------------------------------------------------------------------
    async def test_delete_run_returns_true_then_false(self, store: ExecutionStore) -> None:
        await create(store)
        assert await store.delete_run("run-1") is True
        assert await store.delete_run("run-1") is False

    async def test_delete_run_unknown_returns_false(self, store: ExecutionStore) -> None:
        await create(store, "run-1")
        assert await store.delete_run("missing") is False
        assert await store.load_run("run-1") is not None

    @pytest.mark.parametrize("status", ALL_STATUSES)
    async def test_delete_run_removes_a_run_in_any_status(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        await make_run(store, status)
        assert await store.delete_run("run-1") is True
        assert await store.load_run("run-1") is None
        assert (await store.list_runs()).items == []

    async def test_delete_run_removes_events_and_inbox_with_the_run(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(1), event(2)], T0 + 1)
        await store.deliver_signal("run-1", "sig-1", "go", {"x": 1}, T0 + 2)
        await store.deliver_approval("run-1", "appr-1", True, T0 + 3)
        assert await store.delete_run("run-1") is True

        assert await store.load_run("run-1") is None
        assert await store.read_events("run-1") == []
        assert await store.read_inbox("run-1", include_consumed=True) == []
        assert await store.get_timeline("run-1") is None
        claim_again = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + 4)
        assert isinstance(claim_again, NotFound)
        assert claim_again.run_id == "run-1"
        delivery = await store.deliver_signal("run-1", "sig-2", "go", None, T0 + 5)
        assert isinstance(delivery, NotFound)
        assert await store.load_run("run-1") is None

    @pytest.mark.parametrize("op", HOLDER_WRITES)
    async def test_delete_run_makes_holder_writes_raise_lease_lost(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(1)], T0 + 1)
        assert await store.delete_run("run-1") is True
        with pytest.raises(LeaseLostError) as caught:
            await holder_write(store, op, "run-1", claim.lease, 1, T0 + 2)
        # Deleted, not cancelled: the plain LeaseLostError.
        assert not isinstance(caught.value, RunCancelledError)
        assert caught.value.run_id == "run-1"
        # A fenced write never brings the run (or its log) back.
        assert await store.load_run("run-1") is None
        assert await store.read_events("run-1") == []

    async def test_delete_run_leaves_other_runs_untouched(self, store: ExecutionStore) -> None:
        claim = await started(store, "run-2")
        await store.append_events("run-2", claim.lease, 0, [event(1)], T0 + 1)
        await create(store, "run-1")
        run_2 = await loaded(store, "run-2")
        events_2 = await store.read_events("run-2")
        assert await store.delete_run("run-1") is True
        assert await store.load_run("run-2") == run_2
        assert await store.read_events("run-2") == events_2
        assert await store.heartbeat("run-2", claim.lease, LEASE_MS, T0 + 2) == Lease(
            "worker-a", claim.lease.token, T0 + 2 + LEASE_MS
        )

    async def test_delete_run_then_create_same_id_starts_a_fresh_run(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, input={"old": True})
        await store.append_events("run-1", claim.lease, 0, [event(1)], T0 + 1)
        await store.deliver_signal("run-1", "sig-1", "go", None, T0 + 2)
        assert await store.delete_run("run-1") is True
        result = await store.create_run("run-1", "other-wf", None, {"new": True}, T0 + 10)
        assert isinstance(result, Created)
        assert result.run.workflow_id == "other-wf"
        assert result.run.input == {"new": True}
        assert result.run.next_event_index == 0
        assert result.run.created_at == T0 + 10
        assert await store.read_events("run-1") == []
        assert await store.read_inbox("run-1", include_consumed=True) == []

    # -- purge_runs --------------------------------------------------------------------
    async def test_purge_runs_on_empty_store_returns_zero(self, store: ExecutionStore) -> None:
        assert await store.purge_runs(T0 + 1_000_000, 1000) == 0

    @pytest.mark.parametrize("status", TERMINAL)
    async def test_purge_runs_deletes_a_terminal_run_updated_before_the_cutoff(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        await make_run(store, status, at=T0 + 10)
        assert await store.purge_runs(T0 + 11, 1000) == 1
        assert await store.load_run("run-1") is None
        assert await store.read_events("run-1") == []

    @pytest.mark.parametrize("status", NON_TERMINAL)
    async def test_purge_runs_never_purges_a_non_terminal_run(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        before = await make_run(store, status)
        assert await store.purge_runs(T0 + 10**9, 1000) == 0
        assert await store.load_run("run-1") == before

    async def test_purge_runs_deletes_only_terminal_runs_before_the_cutoff(
        self, store: ExecutionStore
    ) -> None:
        for i, status in enumerate(ALL_STATUSES):
            await make_run(store, status, f"old-{status.value}", created_at=T0, at=T0 + i)
        for status in TERMINAL:
            await make_run(store, status, f"new-{status.value}", created_at=T0, at=T0 + 1000)
        assert await store.purge_runs(T0 + 500, 1000) == 3
        remaining = {run.run_id for run in (await store.list_runs(limit=1000)).items}
        assert remaining == {
            "old-queued",
            "old-running",
            "old-paused",
            "new-finished",
            "new-errored",
            "new-cancelled",
        }

    async def test_purge_runs_keeps_a_run_updated_exactly_at_the_cutoff(
        self, store: ExecutionStore
    ) -> None:
        before = await make_run(store, RunStatus.FINISHED, at=T0 + 100)
        # Strictly before: updated_at == terminal_before is kept.
        assert await store.purge_runs(T0 + 100, 1000) == 0
        assert await store.load_run("run-1") == before
        assert await store.purge_runs(T0 + 101, 1000) == 1
        assert await store.load_run("run-1") is None

    async def test_purge_runs_compares_updated_at_not_created_at(
        self, store: ExecutionStore
    ) -> None:
        before = await make_run(store, RunStatus.FINISHED, created_at=T0, at=T0 + 1000)
        assert await store.purge_runs(T0 + 500, 1000) == 0
        assert await store.load_run("run-1") == before

    async def test_purge_runs_deletes_oldest_first_and_respects_limit(
        self, store: ExecutionStore
    ) -> None:
        # Created in an order that differs from both updated_at and run_id order.
        await make_run(store, RunStatus.CANCELLED, "a", created_at=T0, at=T0 + 30)
        await make_run(store, RunStatus.FINISHED, "b", created_at=T0, at=T0 + 10)
        await make_run(store, RunStatus.ERRORED, "c", created_at=T0, at=T0 + 20)
        cutoff = T0 + 1000

        assert await store.purge_runs(cutoff, 1) == 1
        assert await store.load_run("b") is None
        assert await store.load_run("c") is not None
        assert await store.load_run("a") is not None

        assert await store.purge_runs(cutoff, 1) == 1
        assert await store.load_run("c") is None
        assert await store.load_run("a") is not None

        assert await store.purge_runs(cutoff, 1) == 1
        assert await store.load_run("a") is None
        assert await store.purge_runs(cutoff, 1) == 0

    async def test_purge_runs_breaks_updated_at_ties_by_run_id(self, store: ExecutionStore) -> None:
        for run_id in ["b", "c", "a", "B"]:
            await make_run(store, RunStatus.FINISHED, run_id, at=T0 + 10)
        # Code-point order: "B" < "a" < "b" < "c".
        assert await store.purge_runs(T0 + 11, 2) == 2
        assert await store.load_run("B") is None
        assert await store.load_run("a") is None
        assert await store.load_run("b") is not None
        assert await store.load_run("c") is not None

    async def test_purge_runs_returns_the_count_when_fewer_than_limit_qualify(
        self, store: ExecutionStore
    ) -> None:
        for i in range(3):
            await make_run(store, RunStatus.FINISHED, f"run-{i}", at=T0 + i)
        await make_run(store, RunStatus.QUEUED, "live")
        assert await store.purge_runs(T0 + 100, 1000) == 3
        assert (await store.list_runs()).items == [await loaded(store, "live")]

    async def test_purge_runs_removes_events_and_inbox_of_purged_runs(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        await store.deliver_signal("run-1", "sig-1", "go", None, T0 + 1)
        await store.settle_run("run-1", claim.lease, 0, [event(1), event(2)], Finish(None), T0 + 2)
        assert await store.purge_runs(T0 + 3, 1000) == 1
        assert await store.read_events("run-1") == []
        assert await store.read_inbox("run-1", include_consumed=True) == []
        assert await store.get_timeline("run-1") is None
        # The old lease stays fenced off.
        with pytest.raises(LeaseLostError):
            await store.append_events("run-1", claim.lease, 2, [event(3)], T0 + 4)
        assert await store.load_run("run-1") is None

    async def test_purge_runs_leaves_surviving_runs_and_their_logs_untouched(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store, "keep")
        await store.append_events("keep", claim.lease, 0, [event(1)], T0 + 1)
        await make_run(store, RunStatus.ERRORED, "gone", at=T0 + 1)
        keep_before = await loaded(store, "keep")
        assert await store.purge_runs(T0 + 2, 1000) == 1
        assert await store.load_run("keep") == keep_before
        assert [e.data for e in await store.read_events("keep")] == [{"n": 1}]
