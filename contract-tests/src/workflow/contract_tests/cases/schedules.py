"""Contract cases: schedules (``upsert_schedule`` and friends, ``fire_due_schedules``).

Most cases use an interval spec anchored at ``T0`` so ticks are ``T0 + k * EVERY``.
Cron cases pin the UTC instants by hand (including across Europe/Berlin DST changes)
and cross-check them with ``workflow.runtime.next_fire_at``, the one shared helper.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import pytest

from workflow.runtime import (
    JSON,
    Claimed,
    CronSpec,
    ErrorInfo,
    ExecutionStore,
    Fail,
    Finish,
    IntervalSpec,
    Overlap,
    Pause,
    Run,
    RunStatus,
    Schedule,
    ScheduleTick,
    TickOutcome,
    Wait,
    next_fire_at,
)

from ..support import LEASE_MS, T0, create

EVERY = 60_000
SPEC = IntervalSpec(EVERY, anchor_ms=T0)


def tick(k: int) -> int:
    """The ``k``-th tick of :data:`SPEC`."""
    return T0 + k * EVERY


def utc_ms(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    """A UTC wall-clock instant in ms since the epoch (hand-computed expectations)."""
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) * 1000


Ending = Literal["finished", "errored", "cancelled"]


async def _end(store: ExecutionStore, run_id: str, ending: Ending, now: int) -> None:
    """Bring a schedule's run to the terminal status ``ending``."""
    if ending == "cancelled":
        await store.cancel_run(run_id, "stop", now)
    else:
        claim = await store.claim_run(run_id, "worker-a", LEASE_MS, now)
        assert isinstance(claim, Claimed), claim
        outcome = Finish(None) if ending == "finished" else Fail(ErrorInfo("Boom", "bad"))
        await store.settle_run(run_id, claim.lease, 0, [], outcome, now)
    run = await store.load_run(run_id)
    assert run is not None
    assert run.status is RunStatus(ending)


async def _get(store: ExecutionStore, schedule_id: str = "sched") -> Schedule:
    schedule = await store.get_schedule(schedule_id)
    assert schedule is not None
    return schedule


async def _load(store: ExecutionStore, run_id: str) -> Run:
    run = await store.load_run(run_id)
    assert run is not None
    return run


def _fired(schedule_id: str, fire_at: int, next_at: int) -> ScheduleTick:
    return ScheduleTick(
        schedule_id, fire_at, TickOutcome.FIRED, f"{schedule_id}@{fire_at}", next_at
    )


class ScheduleCases:
    # -- upsert / get / list / delete ----------------------------------------------------
    async def test_upsert_new_schedule_plans_first_tick_strictly_after_now(
        self, store: ExecutionStore
    ) -> None:
        # now (T0) is itself a tick of SPEC: the first tick is the one after it.
        schedule = await store.upsert_schedule(
            "sched",
            "wf",
            SPEC,
            T0,
            workflow_version="v2",
            overlap=Overlap.ALLOW,
            input={"n": 1, "f": 1.5, "s": "[1]"},
            enabled=True,
        )
        expected = Schedule(
            schedule_id="sched",
            workflow_id="wf",
            workflow_version="v2",
            spec=SPEC,
            overlap=Overlap.ALLOW,
            input={"n": 1, "f": 1.5, "s": "[1]"},
            enabled=True,
            next_fire_at=tick(1),
            last_fired_at=None,
            updated_at=T0,
            last_run_id=None,
        )
        assert schedule == expected
        assert await store.get_schedule("sched") == expected

    async def test_upsert_defaults_to_skip_enabled_no_input(self, store: ExecutionStore) -> None:
        schedule = await store.upsert_schedule("sched", "wf", SPEC, T0 + 1)
        assert schedule.overlap is Overlap.SKIP
        assert schedule.enabled is True
        assert schedule.input is None
        assert schedule.workflow_version is None
        assert schedule.next_fire_at == tick(1)

    async def test_upsert_interval_with_default_anchor_ticks_on_multiples_of_every(
        self, store: ExecutionStore
    ) -> None:
        # T0 = 1_700_000_000_000 is 40 s before a whole minute since the epoch.
        schedule = await store.upsert_schedule("sched", "wf", IntervalSpec(60_000), T0)
        assert schedule.next_fire_at == T0 + 40_000

    async def test_upsert_interval_with_future_anchor_first_fires_at_anchor(
        self, store: ExecutionStore
    ) -> None:
        spec = IntervalSpec(1_000, anchor_ms=T0 + 5_500)
        schedule = await store.upsert_schedule("sched", "wf", spec, T0)
        assert schedule.next_fire_at == T0 + 5_500

    @pytest.mark.parametrize(
        ("now", "expected"),
        [(T0, T0 + 100_000), (T0 + 100_000, T0 + 400_000), (T0 + 99_999, T0 + 100_000)],
        ids=["between-ticks", "on-a-tick", "just-before-a-tick"],
    )
    async def test_upsert_cron_schedule_plans_first_tick_strictly_after_now(
        self, store: ExecutionStore, now: int, expected: int
    ) -> None:
        # T0 is 2023-11-14 22:13:20 UTC; "*/5" ticks at 22:15:00 and every 5 minutes.
        spec = CronSpec("*/5 * * * *")
        schedule = await store.upsert_schedule("sched", "wf", spec, now)
        assert schedule.spec == spec
        assert schedule.next_fire_at == expected
        assert schedule.next_fire_at == next_fire_at(spec, now)

    async def test_upsert_new_disabled_schedule_still_plans_its_next_tick(
        self, store: ExecutionStore
    ) -> None:
        schedule = await store.upsert_schedule("sched", "wf", SPEC, T0, enabled=False)
        assert schedule.enabled is False
        assert schedule.next_fire_at == tick(1)

    async def test_upsert_existing_keeps_a_due_tick_and_updates_the_fields(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, input=1)
        # Re-declared after its tick came due (start-up reconciliation).
        later = tick(1) + 30_000
        updated = await store.upsert_schedule(
            "sched",
            "wf-2",
            SPEC,
            later,
            workflow_version="v9",
            overlap=Overlap.BUFFER_ONE,
            input={"new": True},
        )
        expected = Schedule(
            schedule_id="sched",
            workflow_id="wf-2",
            workflow_version="v9",
            spec=SPEC,
            overlap=Overlap.BUFFER_ONE,
            input={"new": True},
            enabled=True,
            next_fire_at=tick(1),
            last_fired_at=None,
            updated_at=later,
            last_run_id=None,
        )
        assert updated == expected
        assert await store.get_schedule("sched") == expected
        # The kept tick fires, with the updated workflow and input.
        ticks = await store.fire_due_schedules(later, 10)
        assert ticks == [_fired("sched", tick(1), tick(2))]
        run = await _load(store, f"sched@{tick(1)}")
        assert (run.workflow_id, run.workflow_version, run.input) == ("wf-2", "v9", {"new": True})

    async def test_upsert_existing_keeps_last_fired_at_and_last_run_id(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0)
        await store.fire_due_schedules(tick(1), 10)
        updated = await store.upsert_schedule("sched", "wf", SPEC, tick(1) + 5, input="x")
        assert updated.last_fired_at == tick(1)
        assert updated.last_run_id == f"sched@{tick(1)}"
        assert updated.next_fire_at == tick(2)

    async def test_upsert_with_changed_spec_replans_from_now(self, store: ExecutionStore) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0)
        spec = IntervalSpec(7_000, anchor_ms=T0)
        updated = await store.upsert_schedule("sched", "wf", spec, T0 + 10_000)
        assert updated.spec == spec
        assert updated.next_fire_at == T0 + 14_000
        assert updated.updated_at == T0 + 10_000

    async def test_upsert_re_enabling_replans_from_now_and_drops_the_stale_tick(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0)
        disabled = await store.upsert_schedule("sched", "wf", SPEC, T0 + 1, enabled=False)
        assert disabled.enabled is False
        assert disabled.next_fire_at == tick(1)
        enabled = await store.upsert_schedule("sched", "wf", SPEC, tick(5) + 1)
        assert enabled.enabled is True
        assert enabled.next_fire_at == tick(6)
        assert await store.fire_due_schedules(tick(5) + 1, 10) == []

    async def test_get_schedule_of_unknown_id_is_none(self, store: ExecutionStore) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0)
        assert await store.get_schedule("sched-2") is None

    async def test_list_schedules_orders_by_id_and_filters_by_workflow(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("b", "wf-1", SPEC, T0)
        await store.upsert_schedule("a", "wf-2", SPEC, T0)
        await store.upsert_schedule("c", "wf-1", SPEC, T0)
        await store.upsert_schedule("B", "wf-1", SPEC, T0)
        everything = await store.list_schedules()
        assert [s.schedule_id for s in everything] == ["B", "a", "b", "c"]
        assert everything[1] == await _get(store, "a")
        only = await store.list_schedules(workflow_id="wf-1")
        assert [s.schedule_id for s in only] == ["B", "b", "c"]
        assert await store.list_schedules(workflow_id="wf-3") == []

    async def test_delete_schedule_removes_it_and_it_never_fires(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0)
        await store.upsert_schedule("keep", "wf", SPEC, T0)
        assert await store.delete_schedule("sched") is True
        assert await store.delete_schedule("sched") is False
        assert await store.get_schedule("sched") is None
        assert [s.schedule_id for s in await store.list_schedules()] == ["keep"]
        assert await store.fire_due_schedules(tick(1), 10) == [_fired("keep", tick(1), tick(2))]

    async def test_delete_schedule_keeps_runs_it_created(self, store: ExecutionStore) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0)
        await store.fire_due_schedules(tick(1), 10)
        assert await store.delete_schedule("sched") is True
        run = await _load(store, f"sched@{tick(1)}")
        assert run.status is RunStatus.QUEUED

    # -- firing --------------------------------------------------------------------------
    async def test_fire_due_schedules_fires_when_next_fire_at_equals_now(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, workflow_version="v1", input=[1])
        before = await _get(store)
        assert await store.fire_due_schedules(tick(1) - 1, 10) == []
        assert await _get(store) == before
        assert await store.load_run(f"sched@{tick(1)}") is None
        ticks = await store.fire_due_schedules(tick(1), 10)
        assert ticks == [_fired("sched", tick(1), tick(2))]
        after = await _get(store)
        assert after.next_fire_at == tick(2)
        assert after.last_fired_at == tick(1)
        assert after.last_run_id == f"sched@{tick(1)}"

    async def test_fired_tick_creates_queued_run_with_the_schedules_workflow_and_input(
        self, store: ExecutionStore
    ) -> None:
        payload: JSON = {"n": 1, "f": 2.0, "s": "{}", "l": [None, True]}
        await store.upsert_schedule(
            "nightly report", "wf", SPEC, T0, workflow_version="v3", input=payload
        )
        now = tick(1) + 250
        ticks = await store.fire_due_schedules(now, 10)
        run_id = f"nightly report@{tick(1)}"
        assert ticks == [_fired("nightly report", tick(1), tick(2))]
        run = await _load(store, run_id)
        assert run.run_id == run_id
        assert run.workflow_id == "wf"
        assert run.workflow_version == "v3"
        assert run.status is RunStatus.QUEUED
        assert run.input == payload
        assert isinstance(run.input, dict)
        assert type(run.input["f"]) is float
        assert (run.created_at, run.updated_at, run.ready_at) == (now, now, now)
        assert (run.next_event_index, run.lease, run.wait) == (0, None, None)
        claim = await store.claim_run(run_id, "worker-a", LEASE_MS, now)
        assert isinstance(claim, Claimed), claim

    async def test_missed_ticks_collapse_into_one_run(self, store: ExecutionStore) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0)
        now = tick(10) + 5
        ticks = await store.fire_due_schedules(now, 10)
        assert ticks == [_fired("sched", tick(1), tick(11))]
        page = await store.list_runs()
        assert [r.run_id for r in page.items] == [f"sched@{tick(1)}"]
        assert (await _get(store)).next_fire_at == tick(11)

    async def test_fire_due_schedules_twice_at_same_now_fires_once(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, overlap=Overlap.ALLOW)
        first = await store.fire_due_schedules(tick(1), 10)
        after = await _get(store)
        assert len(first) == 1
        assert await store.fire_due_schedules(tick(1), 10) == []
        assert await store.fire_due_schedules(tick(2) - 1, 10) == []
        assert await _get(store) == after
        assert len((await store.list_runs()).items) == 1

    async def test_disabled_schedule_never_fires(self, store: ExecutionStore) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, enabled=False)
        before = await _get(store)
        assert await store.fire_due_schedules(tick(100), 1000) == []
        assert await _get(store) == before
        assert (await store.list_runs()).items == []

    async def test_fire_due_schedules_orders_by_next_fire_at_then_id(
        self, store: ExecutionStore
    ) -> None:
        hour = 3_600_000
        await store.upsert_schedule("a", "wf", IntervalSpec(hour, anchor_ms=T0 + 20), T0)
        await store.upsert_schedule("c", "wf", IntervalSpec(hour, anchor_ms=T0 + 10), T0)
        await store.upsert_schedule("b", "wf", IntervalSpec(hour, anchor_ms=T0 + 10), T0)
        now = T0 + 100
        order = [await store.fire_due_schedules(now, 1) for _ in range(4)]
        assert order == [
            [_fired("b", T0 + 10, T0 + 10 + hour)],
            [_fired("c", T0 + 10, T0 + 10 + hour)],
            [_fired("a", T0 + 20, T0 + 20 + hour)],
            [],
        ]

    async def test_fire_due_schedules_respects_limit(self, store: ExecutionStore) -> None:
        for name in ["s1", "s2", "s3", "s4", "s5"]:
            await store.upsert_schedule(name, "wf", SPEC, T0)
        first = await store.fire_due_schedules(tick(1), 2)
        assert [t.schedule_id for t in first] == ["s1", "s2"]
        assert (await _get(store, "s3")).next_fire_at == tick(1)
        rest = await store.fire_due_schedules(tick(1), 1000)
        assert [t.schedule_id for t in rest] == ["s3", "s4", "s5"]
        assert len((await store.list_runs()).items) == 5

    async def test_fire_keeps_an_existing_run_with_the_tick_id(self, store: ExecutionStore) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, input="from schedule")
        existing = await create(store, f"sched@{tick(1)}", input="already there", now=T0 + 1)
        ticks = await store.fire_due_schedules(tick(1), 10)
        assert ticks == [_fired("sched", tick(1), tick(2))]
        assert await _load(store, f"sched@{tick(1)}") == existing
        assert (await _get(store)).last_run_id == f"sched@{tick(1)}"

    # -- overlap -------------------------------------------------------------------------
    async def test_overlap_allow_fires_while_previous_run_is_running(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, overlap=Overlap.ALLOW)
        await store.fire_due_schedules(tick(1), 10)
        claim = await store.claim_run(f"sched@{tick(1)}", "worker-a", 10 * EVERY, tick(1))
        assert isinstance(claim, Claimed), claim
        ticks = await store.fire_due_schedules(tick(2), 10)
        assert ticks == [_fired("sched", tick(2), tick(3))]
        assert (await _load(store, f"sched@{tick(2)}")).status is RunStatus.QUEUED
        assert (await _load(store, f"sched@{tick(1)}")).status is RunStatus.RUNNING
        assert (await _get(store)).last_run_id == f"sched@{tick(2)}"

    @pytest.mark.parametrize("previous", ["queued", "running", "paused"])
    async def test_overlap_skip_records_skipped_tick_while_previous_run_is_going(
        self, store: ExecutionStore, previous: str
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, overlap=Overlap.SKIP)
        await store.fire_due_schedules(tick(1), 10)
        first = f"sched@{tick(1)}"
        if previous != "queued":
            claim = await store.claim_run(first, "worker-a", 10 * EVERY, tick(1))
            assert isinstance(claim, Claimed), claim
            if previous == "paused":
                await store.settle_run(
                    first, claim.lease, 0, [], Pause(Wait.signal("s", "go")), tick(1)
                )
        assert (await _load(store, first)).status is RunStatus(previous)
        ticks = await store.fire_due_schedules(tick(2) + 7, 10)
        assert ticks == [ScheduleTick("sched", tick(2), TickOutcome.SKIPPED, None, tick(3))]
        assert await store.load_run(f"sched@{tick(2)}") is None
        after = await _get(store)
        assert after.next_fire_at == tick(3)
        assert after.last_fired_at == tick(1)
        assert after.last_run_id == first
        assert len((await store.list_runs()).items) == 1

    async def test_a_skipped_tick_does_not_end_the_batch(self, store: ExecutionStore) -> None:
        # Three ticks due at once; "a" goes first and is skipped (its previous run is
        # still queued), and "b" and "c" behind it in the same call still fire.
        await store.upsert_schedule("a", "wf", SPEC, T0, overlap=Overlap.SKIP)
        assert [t.schedule_id for t in await store.fire_due_schedules(tick(1), 10)] == ["a"]
        for schedule_id in ("c", "b"):
            await store.upsert_schedule(schedule_id, "wf", SPEC, tick(1), overlap=Overlap.SKIP)
        ticks = await store.fire_due_schedules(tick(2), 10)
        assert ticks == [
            ScheduleTick("a", tick(2), TickOutcome.SKIPPED, None, tick(3)),
            _fired("b", tick(2), tick(3)),
            _fired("c", tick(2), tick(3)),
        ]

    @pytest.mark.parametrize("overlap", [Overlap.SKIP, Overlap.BUFFER_ONE])
    @pytest.mark.parametrize("ending", ["finished", "errored", "cancelled"])
    async def test_overlap_policy_fires_once_previous_run_is_terminal(
        self, store: ExecutionStore, overlap: Overlap, ending: Ending
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, overlap=overlap)
        await store.fire_due_schedules(tick(1), 10)
        await _end(store, f"sched@{tick(1)}", ending, tick(1) + 1)
        ticks = await store.fire_due_schedules(tick(2), 10)
        assert ticks == [_fired("sched", tick(2), tick(3))]
        assert (await _load(store, f"sched@{tick(2)}")).status is RunStatus.QUEUED

    @pytest.mark.parametrize("overlap", [Overlap.SKIP, Overlap.BUFFER_ONE])
    async def test_overlap_policy_fires_when_previous_run_was_deleted(
        self, store: ExecutionStore, overlap: Overlap
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, overlap=overlap)
        await store.fire_due_schedules(tick(1), 10)
        assert await store.delete_run(f"sched@{tick(1)}") is True
        ticks = await store.fire_due_schedules(tick(2), 10)
        assert ticks == [_fired("sched", tick(2), tick(3))]

    async def test_overlap_skip_then_fires_the_next_tick_after_previous_finishes(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, overlap=Overlap.SKIP)
        await store.fire_due_schedules(tick(1), 10)
        skipped = await store.fire_due_schedules(tick(2), 10)
        assert [t.outcome for t in skipped] == [TickOutcome.SKIPPED]
        await _end(store, f"sched@{tick(1)}", "finished", tick(2) + 1)
        ticks = await store.fire_due_schedules(tick(3), 10)
        assert ticks == [_fired("sched", tick(3), tick(4))]

    async def test_overlap_buffer_one_leaves_the_tick_due_until_previous_run_ends(
        self, store: ExecutionStore
    ) -> None:
        await store.upsert_schedule("sched", "wf", SPEC, T0, overlap=Overlap.BUFFER_ONE)
        await store.fire_due_schedules(tick(1), 10)
        first = f"sched@{tick(1)}"
        blocked = await _get(store)
        assert blocked.next_fire_at == tick(2)
        # The previous run is still queued: the tick waits, untouched, however late.
        assert await store.fire_due_schedules(tick(2), 10) == []
        assert await store.fire_due_schedules(tick(4) + 5, 10) == []
        assert await _get(store) == blocked
        assert await store.load_run(f"sched@{tick(2)}") is None
        await _end(store, first, "finished", tick(4) + 10)
        now = tick(4) + 20
        ticks = await store.fire_due_schedules(now, 10)
        # The buffered tick fires (with its own fire_at); missed ticks collapse into it.
        assert ticks == [_fired("sched", tick(2), tick(5))]
        run = await _load(store, f"sched@{tick(2)}")
        assert (run.status, run.created_at) == (RunStatus.QUEUED, now)
        after = await _get(store)
        assert (after.next_fire_at, after.last_fired_at, after.last_run_id) == (
            tick(5),
            tick(2),
            f"sched@{tick(2)}",
        )
        assert await store.fire_due_schedules(now, 10) == []

    async def test_blocked_buffer_one_schedule_does_not_starve_the_others(
        self, store: ExecutionStore
    ) -> None:
        # "a" is due first (tick 2) and sorts first, but its previous run is still queued.
        await store.upsert_schedule("a", "wf", SPEC, T0, overlap=Overlap.BUFFER_ONE)
        await store.fire_due_schedules(tick(1), 10)
        blocked = await _get(store, "a")
        later = IntervalSpec(EVERY, anchor_ms=T0 + 30_000)
        await store.upsert_schedule("b", "wf", later, tick(2))
        assert (await _get(store, "b")).next_fire_at == tick(2) + 30_000
        now = tick(2) + 40_000
        ticks = await store.fire_due_schedules(now, 1)
        assert ticks == [_fired("b", tick(2) + 30_000, tick(3) + 30_000)]
        assert await _get(store, "a") == blocked
        assert await store.fire_due_schedules(now, 1) == []

    # -- cron in a time zone -------------------------------------------------------------
    async def test_cron_in_berlin_winter_fires_at_the_right_utc_instant(
        self, store: ExecutionStore
    ) -> None:
        spec = CronSpec("0 9 * * *", "Europe/Berlin")
        # T0 = 2023-11-14 22:13:20 UTC; 09:00 CET (UTC+1) is 08:00 UTC the next day.
        first = utc_ms(2023, 11, 15, 8)
        schedule = await store.upsert_schedule("daily", "wf", spec, T0)
        assert schedule.next_fire_at == first == next_fire_at(spec, T0)
        assert await store.fire_due_schedules(first - 1, 10) == []
        ticks = await store.fire_due_schedules(first, 10)
        second = utc_ms(2023, 11, 16, 8)
        assert ticks == [_fired("daily", first, second)]
        assert second == next_fire_at(spec, first)

    async def test_cron_in_berlin_follows_the_spring_dst_change(
        self, store: ExecutionStore
    ) -> None:
        # Berlin moves from CET (UTC+1) to CEST (UTC+2) on 2024-03-31.
        spec = CronSpec("0 9 * * *", "Europe/Berlin")
        start = utc_ms(2024, 3, 29, 12)
        expected = [utc_ms(2024, 3, 30, 8), utc_ms(2024, 3, 31, 7), utc_ms(2024, 4, 1, 7)]
        schedule = await store.upsert_schedule("daily", "wf", spec, start, overlap=Overlap.ALLOW)
        assert schedule.next_fire_at == expected[0] == next_fire_at(spec, start)
        first = await store.fire_due_schedules(expected[0], 10)
        assert first == [_fired("daily", expected[0], expected[1])]
        assert expected[1] == next_fire_at(spec, expected[0])
        assert await store.fire_due_schedules(expected[1] - 1, 10) == []
        second = await store.fire_due_schedules(expected[1], 10)
        assert second == [_fired("daily", expected[1], expected[2])]
        assert expected[2] == next_fire_at(spec, expected[1])

    async def test_cron_in_berlin_follows_the_autumn_dst_change(
        self, store: ExecutionStore
    ) -> None:
        # Berlin moves from CEST (UTC+2) back to CET (UTC+1) on 2024-10-27.
        spec = CronSpec("0 9 * * *", "Europe/Berlin")
        start = utc_ms(2024, 10, 26, 6)
        before_change, after_change = utc_ms(2024, 10, 26, 7), utc_ms(2024, 10, 27, 8)
        schedule = await store.upsert_schedule("daily", "wf", spec, start)
        assert schedule.next_fire_at == before_change == next_fire_at(spec, start)
        ticks = await store.fire_due_schedules(before_change, 10)
        assert ticks == [_fired("daily", before_change, after_change)]
        assert after_change == next_fire_at(spec, before_change)

    async def test_cron_time_skipped_by_spring_dst_change_fires_once_right_after_it(
        self, store: ExecutionStore
    ) -> None:
        # 02:30 does not exist in Berlin on 2024-03-31 (02:00 CET jumps to 03:00 CEST):
        # the tick fires once at 03:00 CEST = 01:00 UTC, then 02:30 CEST = 00:30 UTC.
        spec = CronSpec("30 2 * * *", "Europe/Berlin")
        start = utc_ms(2024, 3, 30, 12)
        gap, after = utc_ms(2024, 3, 31, 1), utc_ms(2024, 4, 1, 0, 30)
        schedule = await store.upsert_schedule("nightly", "wf", spec, start)
        assert schedule.next_fire_at == gap == next_fire_at(spec, start)
        ticks = await store.fire_due_schedules(gap, 10)
        assert ticks == [_fired("nightly", gap, after)]
        assert after == next_fire_at(spec, gap)
