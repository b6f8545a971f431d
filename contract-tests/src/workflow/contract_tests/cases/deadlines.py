"""Contract cases: run deadlines (``create_run(..., deadline_at=)``, ``Capability.DEADLINES``).

``fire_due_timers`` ends each non-terminal run whose deadline passed ``timed_out``, with
a deadline entry in its inbox, exactly once: a terminal run has no deadline left, so of
a firing and a concurrent settle (or a second firing) exactly one wins. The holder's
next write raises ``RunTimedOutError``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from workflow.runtime import (
    Capability,
    Claimed,
    Closed,
    Created,
    ErrorInfo,
    ExecutionStore,
    Existing,
    Finish,
    InboxEntry,
    InboxKind,
    InvalidArgumentError,
    Lease,
    LeaseLostError,
    Pause,
    Run,
    RunCancelledError,
    RunStatus,
    RunTimedOutError,
    Wait,
)
from workflow.runtime.validation import MAX_MS

from ..support import LEASE_MS, T0, StoreFactory, event, requires
from .runs import HOLDER_WRITES, HolderWrite, holder_write, loaded

DEADLINE = T0 + 60_000
TIMED_OUT = ErrorInfo("DeadlineExceeded", "the run's deadline passed", "timed_out")


def _entry(run_id: str, deadline_at: int, now: int) -> InboxEntry:
    return InboxEntry(
        run_id=run_id,
        kind=InboxKind.DEADLINE,
        key="deadline",
        name=None,
        step_id=None,
        payload={"deadline_at": deadline_at},
        meta=None,
        received_at=now,
        consumed=False,
    )


def _timed_out(before: Run, now: int) -> Run:
    return replace(
        before,
        status=RunStatus.TIMED_OUT,
        error=TIMED_OUT,
        wait=None,
        lease=None,
        ready_at=None,
        updated_at=now,
    )


async def _claimed(store: ExecutionStore, run_id: str = "run-1") -> Lease:
    claim = await store.claim_run(run_id, "worker-a", LEASE_MS, T0)
    assert isinstance(claim, Claimed), claim
    return claim.lease


async def _with_deadline(
    store: ExecutionStore, run_id: str = "run-1", deadline_at: int = DEADLINE
) -> Run:
    result = await store.create_run(run_id, "wf", "v1", {"x": 1}, T0, deadline_at=deadline_at)
    assert isinstance(result, Created), result
    return result.run


class DeadlineCases:
    @requires(Capability.DEADLINES)
    async def test_create_run_keeps_the_deadline(self, store: ExecutionStore) -> None:
        run = await _with_deadline(store)
        assert run.deadline_at == DEADLINE
        assert await loaded(store) == run
        again = await store.create_run("run-1", "wf", "v1", None, T0 + 1, deadline_at=T0 + 5)
        assert isinstance(again, Existing)
        assert again.run.deadline_at == DEADLINE
        plain = await store.create_run("run-2", "wf", None, None, T0)
        assert isinstance(plain, Created)
        assert plain.run.deadline_at is None

    @requires(Capability.DEADLINES)
    async def test_deadline_at_is_validated_before_anything_is_written(
        self, store: ExecutionStore
    ) -> None:
        for bad in (-1, MAX_MS + 1, True, "soon", 1.5):
            with pytest.raises(InvalidArgumentError, match="deadline_at"):
                await store.create_run("run-1", "wf", None, None, T0, deadline_at=bad)  # type: ignore[arg-type]
        assert await store.load_run("run-1") is None

    @pytest.mark.parametrize("state", ["queued", "running", "paused"])
    @requires(Capability.DEADLINES)
    async def test_deadline_ends_a_live_run_timed_out_once(
        self, store: ExecutionStore, state: str
    ) -> None:
        await _with_deadline(store)
        if state != "queued":
            lease = await _claimed(store)
            if state == "paused":
                await store.settle_run(
                    "run-1",
                    lease,
                    0,
                    [event(1)],
                    Pause(Wait.sleep("nap", DEADLINE + 10_000)),
                    T0 + 1,
                )
        before = await loaded(store)
        assert await store.fire_due_timers(DEADLINE - 1, 10) == []
        fired = await store.fire_due_timers(DEADLINE + 5, 10)
        assert fired == [_entry("run-1", DEADLINE, DEADLINE + 5)]
        after = await loaded(store)
        assert after == _timed_out(before, DEADLINE + 5)
        assert after.status.terminal
        assert await store.read_inbox("run-1") == fired
        # Exactly once: nothing is left to fire, not even the paused run's sleep.
        assert await store.fire_due_timers(DEADLINE + 20_000, 10) == []
        assert await loaded(store) == after

    @requires(Capability.DEADLINES)
    async def test_deadline_does_not_fire_on_an_ended_run(self, store: ExecutionStore) -> None:
        await _with_deadline(store, "run-f")
        await store.settle_run("run-f", await _claimed(store, "run-f"), 0, [], Finish("ok"), T0 + 1)
        await _with_deadline(store, "run-c")
        await store.cancel_run("run-c", "stop", T0 + 1)
        finished, cancelled = await loaded(store, "run-f"), await loaded(store, "run-c")
        assert await store.fire_due_timers(DEADLINE + 1, 10) == []
        assert await loaded(store, "run-f") == finished
        assert await loaded(store, "run-c") == cancelled

    @requires(Capability.DEADLINES)
    async def test_deadlines_fire_in_order_within_limit_before_timers(
        self, store: ExecutionStore
    ) -> None:
        await _with_deadline(store, "run-b", DEADLINE)
        await _with_deadline(store, "run-a", DEADLINE)
        await _with_deadline(store, "run-0", DEADLINE + 1)
        lease = await _claimed(store, "run-0")
        await store.settle_run("run-0", lease, 0, [], Pause(Wait.sleep("s", T0 + 5)), T0)
        now = DEADLINE + 10
        first = await store.fire_due_timers(now, 2)
        assert first == [_entry("run-a", DEADLINE, now), _entry("run-b", DEADLINE, now)]
        rest = await store.fire_due_timers(now, 10)
        assert rest == [_entry("run-0", DEADLINE + 1, now)]

    @pytest.mark.parametrize("op", HOLDER_WRITES)
    @requires(Capability.DEADLINES)
    async def test_deadline_revokes_the_lease_so_holder_writes_raise_timed_out(
        self, store: ExecutionStore, op: HolderWrite
    ) -> None:
        await _with_deadline(store)
        lease = await _claimed(store)
        await store.append_events("run-1", lease, 0, [event(1)], T0 + 1)
        await store.fire_due_timers(DEADLINE, 10)
        after = await loaded(store)
        with pytest.raises(RunTimedOutError) as caught:
            await holder_write(store, op, "run-1", lease, 1, DEADLINE + 1)
        assert isinstance(caught.value, RunCancelledError)
        assert isinstance(caught.value, LeaseLostError)
        assert caught.value.run_id == "run-1"
        assert await loaded(store) == after
        assert len(await store.read_events("run-1")) == 1

    @requires(Capability.DEADLINES)
    async def test_timed_out_run_answers_closed_and_is_purged(self, store: ExecutionStore) -> None:
        await _with_deadline(store)
        await store.fire_due_timers(DEADLINE, 10)
        after = await loaded(store)
        result = await store.deliver_signal("run-1", "sig-1", "go", None, DEADLINE + 1)
        assert result == Closed(after)
        page = await store.list_runs(status=RunStatus.TIMED_OUT)
        assert [r.run_id for r in page.items] == ["run-1"]
        assert await store.purge_runs(DEADLINE + 1, 10) == 1
        assert await store.load_run("run-1") is None

    @requires(Capability.DEADLINES)
    async def test_deadline_race_with_settle_has_one_winner(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        ids = [f"run-{i:02d}" for i in range(12)]
        leases: dict[str, Lease] = {}
        for run_id in ids:
            await _with_deadline(store, run_id)
            leases[run_id] = await _claimed(store, run_id)
        firers = [await store_factory() for _ in range(3)]
        settler = await store_factory()

        async def settle(run_id: str) -> str:
            try:
                await settler.settle_run(
                    run_id, leases[run_id], 0, [event(1)], Finish("ok"), DEADLINE
                )
            except RunTimedOutError:
                return "timed_out"
            return "finished"

        async def fire(handle: ExecutionStore) -> list[InboxEntry]:
            got: list[InboxEntry] = []
            for _ in range(len(ids)):
                batch = await handle.fire_due_timers(DEADLINE, 2)
                got += batch
                await asyncio.sleep(0)
            return got

        outcomes, batches = await asyncio.gather(
            asyncio.gather(*(settle(r) for r in ids)), asyncio.gather(*(fire(f) for f in firers))
        )
        settled = dict(zip(ids, outcomes, strict=True))
        fired_ids = [e.run_id for batch in batches for e in batch]
        assert len(fired_ids) == len(set(fired_ids)), "a deadline fired twice"
        for run_id in ids:
            run = await loaded(store, run_id)
            if settled[run_id] == "finished":
                assert run.status is RunStatus.FINISHED
                assert run_id not in fired_ids
                assert len(await store.read_events(run_id)) == 1
            else:
                assert run.status is RunStatus.TIMED_OUT
                assert run_id in fired_ids
                assert await store.read_events(run_id) == []

    async def test_a_store_without_deadlines_refuses_deadline_at(
        self, store: ExecutionStore
    ) -> None:
        if Capability.DEADLINES in store.capabilities:
            result = await store.create_run("run-1", "wf", None, None, T0, deadline_at=DEADLINE)
            assert isinstance(result, Created)
            return
        with pytest.raises(InvalidArgumentError, match="deadline_at"):
            await store.create_run("run-1", "wf", None, None, T0, deadline_at=DEADLINE)
        assert await store.load_run("run-1") is None
