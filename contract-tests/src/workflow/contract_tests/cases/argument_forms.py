"""Contract cases: every form an argument may take has its effect.

Validation accepts more than one form for some arguments (docs/semantics.md): a
status filter is a ``RunStatus``, its plain string value, or a non-empty collection
(list, tuple, set, frozenset) of either; ``events`` and ``consume`` are lists or
tuples, possibly empty, ``consume`` possibly naming one entry twice; ``overlap`` is an
``Overlap`` or its value. Passing validation is not enough: a store that turns a
plain string into a one-character set, or reads only lists, is wrong on valid input.
So each form is exercised here for what it does.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TypeVar

import pytest

from workflow.runtime import (
    Buffered,
    Claimed,
    ExecutionStore,
    Finish,
    InboxKind,
    InboxRef,
    IntervalSpec,
    NewEvent,
    Overlap,
    Pause,
    RunStatus,
    TickOutcome,
    Wait,
)

from ..support import LEASE_MS, T0, create, event, started
from .runs import ALL_STATUSES, make_run

StatusFilter = RunStatus | str | Collection[RunStatus | str]

# (id, filter, the statuses it selects)
STATUS_FORMS: list[tuple[str, StatusFilter, set[RunStatus]]] = [
    ("enum", RunStatus.PAUSED, {RunStatus.PAUSED}),
    ("plain_string", "paused", {RunStatus.PAUSED}),
    ("plain_string_of_a_long_value", "cancelled", {RunStatus.CANCELLED}),
    (
        "list_of_enums",
        [RunStatus.QUEUED, RunStatus.FINISHED],
        {RunStatus.QUEUED, RunStatus.FINISHED},
    ),
    ("list_of_strings", ["running", "errored"], {RunStatus.RUNNING, RunStatus.ERRORED}),
    ("tuple_mixed", ("queued", RunStatus.PAUSED), {RunStatus.QUEUED, RunStatus.PAUSED}),
    ("set_of_strings", {"finished"}, {RunStatus.FINISHED}),
    ("frozenset_of_enums", frozenset(ALL_STATUSES), set(ALL_STATUSES)),
    ("one_status_twice", [RunStatus.RUNNING, "running"], {RunStatus.RUNNING}),
]

T = TypeVar("T")
SEQUENCE_FORMS = ["list", "tuple"]


def shaped(form: str, items: list[T]) -> Sequence[T]:
    """``items`` as the sequence type ``form`` names."""
    return tuple(items) if form == "tuple" else list(items)


class ArgumentFormCases:
    @pytest.mark.parametrize(
        ("status", "selects"),
        [pytest.param(form, selects, id=name) for name, form, selects in STATUS_FORMS],
    )
    async def test_list_runs_status_filter_in_each_accepted_form_selects_its_statuses(
        self, store: ExecutionStore, status: StatusFilter, selects: set[RunStatus]
    ) -> None:
        # Two runs per status, so a page of one shows that the filter holds across
        # the cursor too.
        for i, each in enumerate(ALL_STATUSES):
            for copy in ("x", "y"):
                await make_run(store, each, f"{each.value}-{copy}", created_at=T0 + i)
        expected = [
            f"{each.value}-{copy}"
            for each in reversed(ALL_STATUSES)
            if each in selects
            for copy in ("y", "x")
        ]
        page = await store.list_runs(status=status, limit=1000)  # type: ignore[arg-type]
        assert [r.run_id for r in page.items] == expected
        assert {r.status for r in page.items} == selects
        paged: list[str] = []
        cursor: str | None = None
        for _ in range(len(expected) + 1):
            one = await store.list_runs(status=status, limit=1, cursor=cursor)  # type: ignore[arg-type]
            paged += [r.run_id for r in one.items]
            cursor = one.next_cursor
            if cursor is None:
                break
        assert paged == expected

    @pytest.mark.parametrize("form", SEQUENCE_FORMS)
    async def test_events_and_consume_as_list_or_tuple_are_written(
        self, store: ExecutionStore, form: str
    ) -> None:
        claim = await started(store, now=T0)
        for signal_id in ("s1", "s2", "s3"):
            result = await store.deliver_signal("run-1", signal_id, "go", None, T0 + 1)
            assert isinstance(result, Buffered), result
        await store.deliver_approval("run-1", "ap", True, T0 + 1)
        events = shaped(form, [event(0), NewEvent("OTHER", None, "step")])
        # s1 named twice, an unknown ref ignored.
        consume = shaped(
            form,
            [
                InboxRef(InboxKind.SIGNAL, "s1"),
                InboxRef(InboxKind.SIGNAL, "s1"),
                InboxRef(InboxKind.SIGNAL, "nope"),
            ],
        )
        assert (
            await store.append_events("run-1", claim.lease, 0, events, T0 + 2, consume=consume) == 2
        )
        inbox = await store.read_inbox("run-1", include_consumed=True)
        assert [(e.key, e.consumed) for e in inbox] == [
            ("ap", False),
            ("s1", True),
            ("s2", False),
            ("s3", False),
        ]
        # Empty events with a consume, then events with an empty consume, on the settle.
        assert (
            await store.append_events(
                "run-1",
                claim.lease,
                2,
                shaped(form, []),
                T0 + 3,
                consume=shaped(form, [InboxRef(InboxKind.APPROVAL, "ap")]),
            )
            == 2
        )
        run = await store.settle_run(
            "run-1",
            claim.lease,
            2,
            shaped(form, [event(2)]),
            Finish("done"),
            T0 + 4,
            consume=shaped(
                form, [InboxRef(InboxKind.SIGNAL, "s3"), InboxRef(InboxKind.SIGNAL, "s3")]
            ),
        )
        assert (run.status, run.next_event_index) == (RunStatus.FINISHED, 3)
        logged = await store.read_events("run-1")
        assert [(e.index, e.type, e.step_id, e.data) for e in logged] == [
            (0, "CUSTOM", None, {"n": 0}),
            (1, "OTHER", "step", None),
            (2, "CUSTOM", None, {"n": 2}),
        ]
        inbox = await store.read_inbox("run-1", include_consumed=True)
        assert [(e.key, e.consumed) for e in inbox] == [
            ("ap", True),
            ("s1", True),
            ("s2", False),
            ("s3", True),
        ]

    @pytest.mark.parametrize("form", SEQUENCE_FORMS)
    async def test_settle_consume_as_list_or_tuple_decides_whether_a_pause_waits(
        self, store: ExecutionStore, form: str
    ) -> None:
        # The pause check runs after this call's consume, whatever sequence holds it.
        claim = await started(store, now=T0)
        await store.deliver_signal("run-1", "sig-1", "go", 1, T0 + 1)
        await store.deliver_signal("run-1", "sig-2", "go", 2, T0 + 1)
        both = shaped(
            form, [InboxRef(InboxKind.SIGNAL, "sig-1"), InboxRef(InboxKind.SIGNAL, "sig-2")]
        )
        run = await store.settle_run(
            "run-1",
            claim.lease,
            0,
            shaped(form, []),
            Pause(Wait.signal("step-1", "go")),
            T0 + 2,
            consume=both,
        )
        assert run.status is RunStatus.PAUSED
        assert run.wait == Wait.signal("step-1", "go")

    @pytest.mark.parametrize(
        ("overlap", "second_tick"),
        [
            ("skip", [TickOutcome.SKIPPED]),
            ("allow", [TickOutcome.FIRED]),
            ("buffer_one", []),
        ],
    )
    async def test_overlap_as_its_plain_value_has_the_policys_effect(
        self, store: ExecutionStore, overlap: str, second_tick: list[TickOutcome]
    ) -> None:
        every = 60_000
        schedule = await store.upsert_schedule(
            "sched",
            "wf",
            IntervalSpec(every, anchor_ms=T0),
            T0,
            overlap=overlap,  # type: ignore[arg-type]
        )
        assert schedule.overlap is Overlap(overlap)
        assert (await store.get_schedule("sched")) == schedule
        (first,) = await store.fire_due_schedules(T0 + every, 10)
        assert first.outcome is TickOutcome.FIRED
        # The first tick's run is still queued when the second tick is due.
        ticks = await store.fire_due_schedules(T0 + 2 * every, 10)
        assert [t.outcome for t in ticks] == second_tick

    async def test_omitted_optional_arguments_take_their_documented_defaults(
        self, store: ExecutionStore
    ) -> None:
        # list_runs: limit 50; read_events/get_timeline: from index 0, no limit;
        # read_inbox: unconsumed entries only.
        for i in range(51):
            await create(store, f"run-{i:02d}", now=T0 + i)
        first = await store.list_runs()
        assert [r.run_id for r in first.items] == [f"run-{i:02d}" for i in range(50, 0, -1)]
        assert first.next_cursor is not None
        rest = await store.list_runs(cursor=first.next_cursor)
        assert ([r.run_id for r in rest.items], rest.next_cursor) == (["run-00"], None)

        claim = await store.claim_run("run-00", "worker-a", LEASE_MS, T0 + 100)
        assert isinstance(claim, Claimed), claim
        await store.deliver_signal("run-00", "sig-1", "go", None, T0 + 100)
        await store.deliver_signal("run-00", "sig-2", "go", None, T0 + 100)
        events = [event(n) for n in range(3)]
        consume = [InboxRef(InboxKind.SIGNAL, "sig-1")]
        await store.append_events("run-00", claim.lease, 0, events, T0 + 101, consume=consume)
        logged = await store.read_events("run-00")
        assert [e.index for e in logged] == [0, 1, 2]
        timeline = await store.get_timeline("run-00")
        assert timeline is not None
        assert timeline.events == logged
        assert [e.key for e in await store.read_inbox("run-00")] == ["sig-2"]
