"""Contract cases: optional capabilities, schema status and ``close``.

Cases for an optional capability are marked with ``@requires``; a store that does not
declare the capability skips them with a reason naming the declaration. The
``asyncio.wait_for`` timeouts below only keep a broken store from hanging the run;
no case asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest

from workflow.runtime import (
    Capability,
    Claimed,
    ExecutionStore,
    Finish,
    InboxKind,
    IntervalSpec,
    Overlap,
    Pause,
    RunStatus,
    SchemaStatus,
    StoredEvent,
    StoreUnavailableError,
    Wait,
)

from ..support import LEASE_MS, T0, StoreFactory, create, event, requires, started

GUARD_S = 30.0
"""Upper bound on waiting for a subscriber or a subprocess (a hang guard, not a check)."""


async def _collect(
    events: AsyncIterator[StoredEvent], out: list[StoredEvent], reached: dict[int, asyncio.Event]
) -> None:
    """Drain ``events`` into ``out``; set ``reached[n]`` once ``n`` events arrived."""
    async for item in events:
        out.append(item)
        flag = reached.get(len(out))
        if flag is not None:
            flag.set()


async def _drain(events: AsyncIterator[StoredEvent]) -> list[StoredEvent]:
    return [item async for item in events]


async def _finish_task(task: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(task, GUARD_S)
    finally:
        if not task.done():
            task.cancel()


# Claims from the shared pool until it is empty, after the parent says "go" (so both
# processes race). Prints the run ids it claimed as one JSON line.
_CLAIMER = """
import asyncio, json, sys
from workflow.runtime import open_store

async def main(url, owner, lease_ms, now):
    store = await open_store(url)
    claimed = []
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        while True:
            batch = await store.claim_runnable(owner, lease_ms, 2, now)
            if not batch:
                break
            claimed.extend(c.run.run_id for c in batch)
    finally:
        await store.close()
    print(json.dumps(claimed), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


class CapabilityCases:
    # -- declarations, schema, close -----------------------------------------------------
    async def test_store_has_every_capability_its_test_class_declares(
        self, store: ExecutionStore
    ) -> None:
        declared: frozenset[Capability] = getattr(self, "capabilities", frozenset())
        actual = store.capabilities
        assert isinstance(actual, frozenset)
        assert all(isinstance(c, Capability) for c in actual)
        assert declared <= actual, f"declared {sorted(declared)} but store has {sorted(actual)}"

    async def test_schema_status_is_up_to_date_on_a_fresh_store(
        self, store: ExecutionStore
    ) -> None:
        status = await store.schema_status()
        assert isinstance(status, SchemaStatus)
        assert type(status.required) is str
        assert status.required != ""
        assert status.current == status.required
        assert status.up_to_date is True

    async def test_schema_status_is_the_same_through_another_handle(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        assert await other.schema_status() == await store.schema_status()

    async def test_close_is_idempotent(self, store: ExecutionStore) -> None:
        await store.close()
        await store.close()

    async def test_a_closed_handle_refuses_operations_as_unavailable(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        run = await create(store)
        other = await store_factory()
        assert await other.load_run("run-1") == run
        await other.close()
        with pytest.raises(StoreUnavailableError):
            await other.load_run("run-1")
        with pytest.raises(StoreUnavailableError):
            await other.create_run("run-2", "wf", None, None, T0)
        assert await store.load_run("run-2") is None

    async def test_closing_one_handle_leaves_the_others_working(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        run = await create(store)
        other = await store_factory()
        assert await other.load_run("run-1") == run
        await other.close()
        await other.close()
        assert await store.load_run("run-1") == run
        await create(store, "run-2")
        assert [r.run_id for r in (await store.list_runs()).items] == ["run-2", "run-1"]

    # -- subscribe_events ----------------------------------------------------------------
    @requires(Capability.SUBSCRIBE_EVENTS)
    async def test_subscribe_events_yields_existing_then_new_events_and_ends_at_finish(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        lease = claim.lease
        await store.append_events("run-1", lease, 0, [event(0), event(1), event(2)], T0 + 1)
        out: list[StoredEvent] = []
        existing, appended = asyncio.Event(), asyncio.Event()
        subscriber = asyncio.create_task(
            _collect(store.subscribe_events("run-1", 1), out, {2: existing, 4: appended})
        )

        async def writer() -> None:
            await store.append_events("run-1", lease, 3, [event(3), event(4, "s")], T0 + 2)
            # The subscriber must see these before the run ends, not only at the end.
            await asyncio.wait_for(appended.wait(), GUARD_S)
            await store.settle_run("run-1", lease, 5, [event(5)], Finish({"done": 1}), T0 + 3)

        try:
            await asyncio.wait_for(existing.wait(), GUARD_S)
            assert [e.index for e in out] == [1, 2]
            await asyncio.wait_for(writer(), GUARD_S)
        finally:
            await _finish_task(subscriber)
        assert out == await store.read_events("run-1", 1)
        assert [e.index for e in out] == [1, 2, 3, 4, 5]
        assert [e.data for e in out] == [{"n": n} for n in range(1, 6)]
        assert out[3].step_id == "s"
        assert {e.created_at for e in out[2:4]} == {T0 + 2}

    @requires(Capability.SUBSCRIBE_EVENTS)
    async def test_subscribe_events_from_the_start_sees_an_event_appended_between_reads(
        self, store: ExecutionStore
    ) -> None:
        # from_index left out: the whole log. The second event lands while the consumer
        # holds the first (the store's wake-up for it has come and gone): the next read
        # must still yield it rather than wait for a later write.
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(0)], T0 + 1)
        events = store.subscribe_events("run-1")
        try:
            first = await asyncio.wait_for(anext(events), GUARD_S)
            assert (first.index, first.data) == (0, {"n": 0})
            await store.append_events("run-1", claim.lease, 1, [event(1)], T0 + 2)
            await asyncio.sleep(0)  # let any wake-up the append scheduled run now
            second = await asyncio.wait_for(anext(events), GUARD_S)
            assert (second.index, second.data) == (1, {"n": 1})
            await store.settle_run("run-1", claim.lease, 2, [], Finish(None), T0 + 3)
            rest = await asyncio.wait_for(_drain(events), GUARD_S)
            assert rest == []
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    @requires(Capability.SUBSCRIBE_EVENTS)
    async def test_subscribe_events_ends_when_the_run_is_deleted(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(0), event(1)], T0 + 1)
        out: list[StoredEvent] = []
        existing = asyncio.Event()
        subscriber = asyncio.create_task(
            _collect(store.subscribe_events("run-1", 0), out, {2: existing})
        )
        try:
            await asyncio.wait_for(existing.wait(), GUARD_S)
            assert await store.delete_run("run-1") is True
        finally:
            await _finish_task(subscriber)
        assert [e.index for e in out] == [0, 1]

    @requires(Capability.SUBSCRIBE_EVENTS)
    async def test_subscribe_events_ends_when_the_run_is_cancelled(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(0)], T0 + 1)
        out: list[StoredEvent] = []
        existing = asyncio.Event()
        subscriber = asyncio.create_task(
            _collect(store.subscribe_events("run-1", 0), out, {1: existing})
        )
        try:
            await asyncio.wait_for(existing.wait(), GUARD_S)
            await store.cancel_run("run-1", "stop", T0 + 2)
        finally:
            await _finish_task(subscriber)
        assert out == await store.read_events("run-1")

    @requires(Capability.SUBSCRIBE_EVENTS)
    async def test_subscribe_events_on_a_terminal_run_yields_the_rest_and_ends(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        events = [event(0), event(1), event(2)]
        await store.settle_run("run-1", claim.lease, 0, events, Finish(None), T0 + 1)
        out: list[StoredEvent] = []
        await asyncio.wait_for(_collect(store.subscribe_events("run-1", 1), out, {}), GUARD_S)
        assert out == await store.read_events("run-1", 1)
        assert [e.index for e in out] == [1, 2]

    @requires(Capability.SUBSCRIBE_EVENTS)
    async def test_subscribe_events_on_an_unknown_run_ends_at_once(
        self, store: ExecutionStore
    ) -> None:
        out: list[StoredEvent] = []
        await asyncio.wait_for(_collect(store.subscribe_events("nope", 0), out, {}), GUARD_S)
        assert out == []

    @requires(Capability.SUBSCRIBE_EVENTS)
    async def test_subscribe_events_keeps_going_across_a_pause_and_a_new_slice(
        self, store: ExecutionStore
    ) -> None:
        claim = await started(store)
        await store.settle_run(
            "run-1", claim.lease, 0, [event(0)], Pause(Wait.signal("s", "go")), T0 + 1
        )
        out: list[StoredEvent] = []
        first = asyncio.Event()
        subscriber = asyncio.create_task(
            _collect(store.subscribe_events("run-1", 0), out, {1: first})
        )
        try:
            await asyncio.wait_for(first.wait(), GUARD_S)
            await store.deliver_signal("run-1", "sig-1", "go", None, T0 + 2)
            again = await store.claim_run("run-1", "worker-b", LEASE_MS, T0 + 3)
            assert isinstance(again, Claimed), again
            await store.settle_run("run-1", again.lease, 1, [event(1)], Finish(None), T0 + 4)
        finally:
            await _finish_task(subscriber)
        assert out == await store.read_events("run-1")
        assert [e.index for e in out] == [0, 1]

    # -- durability ----------------------------------------------------------------------
    @requires(Capability.DURABLE)
    async def test_data_survives_closing_the_handle_that_wrote_it(
        self, store: ExecutionStore, store_factory: StoreFactory
    ) -> None:
        wake = T0 + 60_000
        claim = await started(store, input={"order": 7, "price": 9.5})
        await store.append_events("run-1", claim.lease, 0, [event(0), event(1, "a")], T0 + 1)
        wait = Wait.signal("ask", "answer", timeout_at=wake, meta={"q": "?"})
        await store.settle_run("run-1", claim.lease, 2, [event(2)], Pause(wait), T0 + 2)
        await store.deliver_approval("run-1", "ap-1", False, T0 + 3, feedback="later")
        await store.upsert_schedule(
            "sched",
            "wf",
            IntervalSpec(60_000, anchor_ms=T0),
            T0 + 4,
            overlap=Overlap.ALLOW,
            input=[1, "x"],
        )
        run = await store.load_run("run-1")
        events = await store.read_events("run-1")
        inbox = await store.read_inbox("run-1", include_consumed=True)
        schedule = await store.get_schedule("sched")
        assert run is not None
        assert run.status is RunStatus.PAUSED
        assert len(events) == 3
        assert len(inbox) == 1
        assert schedule is not None
        await store.close()

        reopened = await store_factory()
        assert await reopened.load_run("run-1") == run
        assert await reopened.read_events("run-1") == events
        assert await reopened.read_inbox("run-1", include_consumed=True) == inbox
        assert await reopened.get_schedule("sched") == schedule
        # The armed timer survived too.
        fired = await reopened.fire_due_timers(wake, 10)
        assert [(e.run_id, e.kind, e.key) for e in fired] == [("run-1", InboxKind.TIMER, "ask")]

    # -- several processes ---------------------------------------------------------------
    @requires(Capability.MULTI_PROCESS)
    async def test_two_processes_claim_a_shared_pool_without_duplicates(
        self, store: ExecutionStore, store_url: str | None
    ) -> None:
        if store_url is None:
            pytest.fail(
                "this store declares Capability.MULTI_PROCESS but its test class does not "
                "provide the `store_url` fixture (a URL open_store opens on the same data)"
            )
        run_ids = [f"pool-{i:02d}" for i in range(20)]
        for run_id in run_ids:
            await create(store, run_id)
        now = T0 + 1
        owners = ["proc-a", "proc-b"]
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _CLAIMER,
                store_url,
                owner,
                str(LEASE_MS),
                str(now),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for owner in owners
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), GUARD_S)
                if line.strip() != b"ready":
                    _, err = await asyncio.wait_for(proc.communicate(), GUARD_S)
                    pytest.fail(f"claimer did not start: {line!r}\n{err.decode(errors='replace')}")
            # Release both at once so their claims race.
            outputs = await asyncio.wait_for(
                asyncio.gather(*(p.communicate(b"go\n") for p in procs)), GUARD_S
            )
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        claimed: dict[str, list[str]] = {}
        for owner, proc, (out, err) in zip(owners, procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode(errors="replace")
            ids = json.loads(out.decode().strip().splitlines()[-1])
            assert isinstance(ids, list)
            claimed[owner] = [str(i) for i in ids]
        everything = claimed["proc-a"] + claimed["proc-b"]
        assert len(everything) == len(set(everything)), f"claimed twice: {claimed}"
        assert sorted(everything) == run_ids
        for owner, ids in claimed.items():
            for run_id in ids:
                run = await store.load_run(run_id)
                assert run is not None
                assert run.status is RunStatus.RUNNING
                assert run.lease is not None
                assert (run.lease.owner, run.lease.token) == (owner, 1)
