"""Contract cases: bad input raises the documented error and writes nothing.

The validation table of ``docs/semantics.md`` as data: every operation of the
Protocol, each argument it takes, each way that argument can be malformed. Every case
runs against the same prepared store (a running run with a lease, events and inbox
entries, a paused run whose timer is due, a finished run, a queued run, a due
schedule) and passes arguments that, but for the one bad argument, would write
something: ``test_valid_call_of_each_operation_writes_only_when_it_should`` proves
that, so "nothing was written" is a real check and not a vacuous one.

Legal but unusual identifiers, and payloads exactly at the size limit, are checked to
be accepted and stored exactly.
"""

from __future__ import annotations

import base64
import enum
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from workflow.runtime import (
    JSON,
    Buffered,
    Cancelled,
    Claimed,
    CronSpec,
    Delivered,
    ErrorInfo,
    ExecutionStore,
    Fail,
    Finish,
    InboxEntry,
    InboxKind,
    InboxRef,
    IntervalSpec,
    InvalidArgumentError,
    Lease,
    NewEvent,
    Pause,
    PayloadError,
    Run,
    RunStatus,
    Schedule,
    StoredEvent,
    Wait,
    WaitKind,
    Yield,
)
from workflow.runtime.validation import MAX_MS, MAX_SCHEDULE_ID_LENGTH

from ..support import LEASE_MS, T0, create, event, started

NOW = T0 + 100_000
"""When the bad calls happen: run-1's lease has expired (nobody took it), run-2's timer
and sched-1 are due, run-3 is old enough to purge. A valid call at NOW writes."""

PREPARED_RUNS = ("run-1", "run-2", "run-3", "run-4")

Args = dict[str, Any]
"""Argument overrides for one call; absent names take the valid default."""


@dataclass(frozen=True)
class Prepared:
    lease: Lease
    """run-1's lease (expired at NOW, but nobody took it, so it still works)."""
    next_index: int
    """run-1's next event index."""


async def _prepare(store: ExecutionStore) -> Prepared:
    claim = await started(store, "run-1", input={"n": 1}, now=T0)
    await store.deliver_signal("run-1", "sig-1", "go", {"s": 1}, T0 + 1)
    await store.deliver_signal("run-1", "sig-2", "go", {"s": 2}, T0 + 2)
    await store.deliver_approval("run-1", "appr-1", True, T0 + 3, feedback="ok")
    next_index = await store.append_events(
        "run-1",
        claim.lease,
        0,
        [event(0), event(1, "step-1")],
        T0 + 4,
        consume=[InboxRef(InboxKind.SIGNAL, "sig-1")],
    )
    claim2 = await started(store, "run-2", now=T0 + 10)
    wait = Wait.signal("step-w", "go", timeout_at=T0 + 50_000, meta={"m": 1})
    await store.settle_run("run-2", claim2.lease, 0, [event(0)], Pause(wait), T0 + 11)
    claim3 = await started(store, "run-3", now=T0 + 20)
    await store.settle_run("run-3", claim3.lease, 0, [], Finish({"done": True}), T0 + 21)
    await create(store, "run-4", now=T0 + 30)
    await store.upsert_schedule("sched-1", "wf", IntervalSpec(60_000), T0, input={"s": 1})
    return Prepared(claim.lease, next_index)


@dataclass(frozen=True)
class _State:
    """Everything a call could have written, as the store reports it."""

    runs: list[Run]
    loaded: dict[str, Run | None]
    events: dict[str, list[StoredEvent]]
    inbox: dict[str, list[InboxEntry]]
    schedules: list[Schedule]


async def _state(store: ExecutionStore) -> _State:
    page = await store.list_runs(limit=1000)
    assert page.next_cursor is None
    return _State(
        runs=page.items,
        loaded={r: await store.load_run(r) for r in PREPARED_RUNS},
        events={r: await store.read_events(r) for r in PREPARED_RUNS},
        inbox={r: await store.read_inbox(r, include_consumed=True) for r in PREPARED_RUNS},
        schedules=await store.list_schedules(),
    )


# -- the operations, each with valid defaults that write (or read) something ----------

Call = Callable[[ExecutionStore, Prepared, Args], Awaitable[object]]


async def _create_run(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.create_run(
        a.get("run_id", "run-new"),
        a.get("workflow_id", "wf"),
        a.get("workflow_version"),
        a.get("input", {"k": "v"}),
        a.get("now", NOW),
    )


async def _load_run(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.load_run(a.get("run_id", "run-1"))


async def _list_runs(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.list_runs(
        workflow_id=a.get("workflow_id"),
        status=a.get("status"),
        limit=a.get("limit", 50),
        cursor=a.get("cursor"),
    )


async def _get_timeline(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.get_timeline(
        a.get("run_id", "run-1"), a.get("from_index", 0), a.get("limit", None)
    )


async def _cancel_run(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.cancel_run(a.get("run_id", "run-1"), a.get("reason", "stop"), a.get("now", NOW))


async def _delete_run(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.delete_run(a.get("run_id", "run-1"))


async def _purge_runs(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.purge_runs(a.get("terminal_before", NOW), a.get("limit", 10))


async def _claim_run(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.claim_run(
        a.get("run_id", "run-4"),
        a.get("owner", "worker-b"),
        a.get("lease_ms", LEASE_MS),
        a.get("now", NOW),
        with_history=a.get("with_history", False),
    )


async def _claim_runnable(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.claim_runnable(
        a.get("owner", "worker-b"),
        a.get("lease_ms", LEASE_MS),
        a.get("limit", 10),
        a.get("now", NOW),
        with_history=a.get("with_history", False),
    )


async def _heartbeat(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.heartbeat(
        a.get("run_id", "run-1"),
        a.get("lease", p.lease),
        a.get("lease_ms", LEASE_MS),
        a.get("now", NOW),
    )


async def _append_events(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.append_events(
        a.get("run_id", "run-1"),
        a.get("lease", p.lease),
        a.get("expected_next_index", p.next_index),
        a.get("events", [event(9)]),
        a.get("now", NOW),
        consume=a.get("consume", [InboxRef(InboxKind.SIGNAL, "sig-2")]),
    )


async def _settle_run(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.settle_run(
        a.get("run_id", "run-1"),
        a.get("lease", p.lease),
        a.get("expected_next_index", p.next_index),
        a.get("events", [event(9)]),
        a.get("outcome", Yield()),
        a.get("now", NOW),
        consume=a.get("consume", [InboxRef(InboxKind.SIGNAL, "sig-2")]),
    )


async def _read_events(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.read_events(
        a.get("run_id", "run-1"), a.get("from_index", 0), a.get("limit", None)
    )


async def _read_inbox(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.read_inbox(
        a.get("run_id", "run-1"), include_consumed=a.get("include_consumed", False)
    )


async def _subscribe_events(s: ExecutionStore, p: Prepared, a: Args) -> object:
    # Stores may validate when called or on the first step: both count.
    iterator = s.subscribe_events(a.get("run_id", "run-1"), a.get("from_index", 0))
    try:
        return await anext(iterator)
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


async def _deliver_signal(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.deliver_signal(
        a.get("run_id", "run-1"),
        a.get("signal_id", "sig-new"),
        a.get("name", "go"),
        a.get("payload", {"p": 1}),
        a.get("now", NOW),
        step_id=a.get("step_id"),
        meta=a.get("meta"),
    )


async def _deliver_approval(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.deliver_approval(
        a.get("run_id", "run-1"),
        a.get("approval_id", "appr-new"),
        a.get("approved", True),
        a.get("now", NOW),
        feedback=a.get("feedback"),
        meta=a.get("meta"),
    )


async def _fire_due_timers(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.fire_due_timers(a.get("now", NOW), a.get("limit", 10))


async def _upsert_schedule(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.upsert_schedule(
        a.get("schedule_id", "sched-new"),
        a.get("workflow_id", "wf"),
        a.get("spec", IntervalSpec(60_000)),
        a.get("now", NOW),
        workflow_version=a.get("workflow_version"),
        overlap=a.get("overlap", "skip"),
        input=a.get("input", {"s": 2}),
        enabled=a.get("enabled", True),
    )


async def _get_schedule(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.get_schedule(a.get("schedule_id", "sched-1"))


async def _list_schedules(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.list_schedules(workflow_id=a.get("workflow_id"))


async def _delete_schedule(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.delete_schedule(a.get("schedule_id", "sched-1"))


async def _fire_due_schedules(s: ExecutionStore, p: Prepared, a: Args) -> object:
    return await s.fire_due_schedules(a.get("now", NOW), a.get("limit", 10))


OPS: dict[str, tuple[Call, bool]] = {
    # name: (call, whether its valid call writes)
    "create_run": (_create_run, True),
    "load_run": (_load_run, False),
    "list_runs": (_list_runs, False),
    "get_timeline": (_get_timeline, False),
    "cancel_run": (_cancel_run, True),
    "delete_run": (_delete_run, True),
    "purge_runs": (_purge_runs, True),
    "claim_run": (_claim_run, True),
    "claim_runnable": (_claim_runnable, True),
    "heartbeat": (_heartbeat, True),
    "append_events": (_append_events, True),
    "settle_run": (_settle_run, True),
    "read_events": (_read_events, False),
    "read_inbox": (_read_inbox, False),
    "subscribe_events": (_subscribe_events, False),
    "deliver_signal": (_deliver_signal, True),
    "deliver_approval": (_deliver_approval, True),
    "fire_due_timers": (_fire_due_timers, True),
    "upsert_schedule": (_upsert_schedule, True),
    "get_schedule": (_get_schedule, False),
    "list_schedules": (_list_schedules, False),
    "delete_schedule": (_delete_schedule, True),
    "fire_due_schedules": (_fire_due_schedules, True),
}


# -- the bad values ---------------------------------------------------------------------


def _unchecked(value: object) -> Any:
    """Pass a deliberately ill-typed value to a typed constructor."""
    return value


BAD_IDS: list[tuple[str, object]] = [
    ("empty", ""),
    ("256_chars", "r" * 256),
    ("256_astral_chars", "\U0001f680" * 256),
    ("int", 7),
    ("none", None),
    ("bytes", b"run-1"),
    ("lone_surrogate", "run-\udc00"),
]
BAD_OPTIONAL_IDS = [(kind, value) for kind, value in BAD_IDS if value is not None]
BAD_TIMES: list[tuple[str, object]] = [
    ("bool", True),
    ("float", float(NOW)),
    ("negative", -1),
    ("none", None),
    ("str", str(NOW)),
    ("above_2_53", 2**53),
]
BAD_LEASE_MS: list[tuple[str, object]] = [
    ("zero", 0),
    ("negative", -1),
    ("bool", True),
    ("float", float(LEASE_MS)),
    ("none", None),
]
BAD_LIMITS: list[tuple[str, object]] = [
    ("zero", 0),
    ("1001", 1001),
    ("negative", -1),
    ("bool", True),
    ("float", 10.0),
    ("none", None),
]
BAD_OPTIONAL_LIMITS = [(kind, value) for kind, value in BAD_LIMITS if value is not None]
BAD_INDEXES: list[tuple[str, object]] = [
    ("negative", -1),
    ("bool", True),
    ("float", 0.0),
    ("none", None),
]
BAD_FLAGS: list[tuple[str, object]] = [("int", 1), ("none", None), ("str", "true")]
LIVE_LEASE = ("worker-a", 1, T0 + LEASE_MS)
BAD_LEASES: list[tuple[str, object]] = [
    ("none", None),
    ("tuple", LIVE_LEASE),
    ("dict", dict(zip(("owner", "token", "expires_at"), LIVE_LEASE, strict=True))),
    ("int", 1),
]
BAD_EVENTS: list[tuple[str, object]] = [
    ("none", None),
    ("str", "CUSTOM"),
    ("dict_item", [{"type": "CUSTOM", "data": 1}]),
    ("empty_type", [NewEvent("")]),
    ("int_type", [NewEvent(_unchecked(7))]),
    ("256_char_type", [NewEvent("t" * 256)]),
    ("empty_step_id", [NewEvent("CUSTOM", None, "")]),
    ("second_item_bad", [event(9), NewEvent("")]),
]
SIG_2 = InboxRef(InboxKind.SIGNAL, "sig-2")
BAD_CONSUME: list[tuple[str, object]] = [
    ("none", None),
    ("str_item", ["sig-2"]),
    ("tuple_item", [(InboxKind.SIGNAL, "sig-2")]),
    ("empty_key", [InboxRef(InboxKind.SIGNAL, "")]),
    ("unknown_kind", [InboxRef(_unchecked("bogus"), "sig-2")]),
    ("second_item_bad", [SIG_2, "sig-1"]),
]
BAD_OUTCOMES: list[tuple[str, object]] = [
    ("none", None),
    ("str", "finish"),
    ("class_not_instance", Finish),
    ("bare_wait", Wait.signal("step-x", "later")),
    ("pause_without_wait", Pause(_unchecked(None))),
    ("fail_with_str_error", Fail(_unchecked("boom"))),
    ("fail_error_message_none", Fail(ErrorInfo("Boom", _unchecked(None)))),
    ("signal_wait_without_name", Pause(Wait(WaitKind.SIGNAL, "step-x"))),
    ("signal_wait_empty_name", Pause(Wait.signal("step-x", ""))),
    ("approval_wait_without_approval_id", Pause(Wait(WaitKind.APPROVAL, "step-x"))),
    ("approval_wait_256_char_approval_id", Pause(Wait.approval("step-x", "a" * 256))),
    ("sleep_wait_without_wake_at", Pause(Wait(WaitKind.SLEEP, "step-x"))),
    ("wait_empty_step_id", Pause(Wait.signal("", "later"))),
    ("wait_step_id_none", Pause(Wait(WaitKind.SIGNAL, _unchecked(None), name="later"))),
    ("wait_unknown_kind", Pause(Wait(_unchecked("bogus"), "step-x", name="later"))),
    ("wake_at_negative", Pause(Wait.sleep("step-x", -1))),
    ("wake_at_bool", Pause(Wait.sleep("step-x", True))),
    ("wake_at_float", Pause(Wait.sleep("step-x", _unchecked(float(NOW))))),
    ("timeout_at_negative", Pause(Wait.signal("step-x", "later", timeout_at=-1))),
]
BAD_STATUS: list[tuple[str, object]] = [
    ("unknown", "bogus"),
    ("empty_list", []),
    ("empty_set", set()),
    ("list_with_unknown", ["queued", "nope"]),
    ("list_with_none", [None]),
    ("int", 5),
]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


BAD_CURSORS: list[tuple[str, object]] = [
    ("empty", ""),
    ("abc", "abc"),
    ("base64_junk", _b64(b"\x00junk\xff\xfe")),
    ("base64_text", _b64(b"junk")),
    ("base64_json_wrong_shape", _b64(b'{"a":1}')),
    ("base64_json_swapped", _b64(b'["run-1",1700000000000]')),
    ("int", 5),
]
BAD_SPECS: list[tuple[str, object]] = [
    ("unparsable_cron", CronSpec("not a cron")),
    ("empty_cron", CronSpec("")),
    ("cron_minute_61", CronSpec("61 * * * *")),
    ("unknown_zone", CronSpec("* * * * *", "Mars/Olympus_Mons")),
    ("every_ms_zero", IntervalSpec(0)),
    ("every_ms_negative", IntervalSpec(-60_000)),
    ("str", "* * * * *"),
    ("none", None),
]
BAD_OVERLAPS: list[tuple[str, object]] = [("unknown", "sometimes"), ("none", None), ("int", 1)]
BAD_REASONS: list[tuple[str, object]] = [
    ("int", 7),
    ("none", None),
    ("lone_surrogate", "stop\ud800"),
]


# -- bad payloads (built per store: the size limit is the store's) ---------------------


class _Level(enum.IntEnum):
    LOW = 1


class _Text(str):
    __slots__ = ()


class _Number(float):
    __slots__ = ()


class _Items(list[int]):
    pass


def _nested(levels: int, *, dicts: bool = False) -> JSON:
    """``levels`` containers nested in one another (lists, or dicts around an empty list)."""
    value: JSON = []
    for _ in range(levels - 1):
        value = {"d": value} if dicts else [value]
    return value


def sized_string(encoded_bytes: int, alphabet: str) -> str:
    """A str whose compact JSON encoding is exactly ``encoded_bytes`` UTF-8 bytes.

    ``alphabet`` "ascii" uses one byte per character; "astral" four (U+1F680), so a
    store counting characters or UTF-16 units instead of bytes misjudges it.
    """
    n = encoded_bytes - 2  # the quotes
    astral = "\U0001f680" * (n // 4) + "x" * (n % 4)
    text = "x" * n if alphabet == "ascii" else astral
    encoded = json.dumps(text, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert len(encoded) == encoded_bytes
    return text


PayloadMaker = Callable[[int], object]
"""Builds a bad payload from the store's ``max_payload_bytes``."""

BAD_PAYLOADS: list[tuple[str, PayloadMaker]] = [
    ("nan", lambda _: float("nan")),
    ("inf", lambda _: float("inf")),
    ("minus_inf", lambda _: float("-inf")),
    ("nested_nan", lambda _: {"a": [1, float("nan")]}),
    ("tuple", lambda _: (1, 2)),
    ("nested_tuple", lambda _: {"a": (1, 2)}),
    ("set", lambda _: {1, 2}),
    ("bytes", lambda _: b"data"),
    ("object", lambda _: object()),
    ("int_key", lambda _: {1: "a"}),
    ("none_key", lambda _: {None: "a"}),
    ("nested_bool_key", lambda _: [{True: "a"}]),
    ("int_above_64_bits", lambda _: 2**63),
    ("int_below_64_bits", lambda _: [-(2**63) - 1]),
    ("101_nested_lists", lambda _: _nested(101)),
    ("101_nested_dicts", lambda _: _nested(101, dicts=True)),
    ("int_enum", lambda _: _Level.LOW),
    ("str_enum", lambda _: RunStatus.QUEUED),
    ("str_subclass", lambda _: {"a": _Text("x")}),
    ("float_subclass", lambda _: _Number(1.5)),
    ("dict_subclass", lambda _: OrderedDict(a=1)),
    ("list_subclass", lambda _: _Items([1])),
    ("lone_surrogate", lambda _: "a\ud800b"),
    ("lone_surrogate_key", lambda _: {"\udfff": 1}),
    ("limit_plus_1_bytes_ascii", lambda limit: sized_string(limit + 1, "ascii")),
    ("limit_plus_1_bytes_astral", lambda limit: sized_string(limit + 1, "astral")),
]


@dataclass(frozen=True)
class PayloadSlot:
    """Where a payload goes in: the operation, how the payload becomes its argument, and
    how to read the stored value back after a valid call."""

    op: str
    wrap: Callable[[object], Args]
    read: Callable[[ExecutionStore, Prepared], Awaitable[JSON]]


async def _entry(store: ExecutionStore, kind: InboxKind, key: str) -> InboxEntry:
    entries = [
        e
        for e in await store.read_inbox("run-1", include_consumed=True)
        if (e.kind, e.key) == (kind, key)
    ]
    assert len(entries) == 1, entries
    return entries[0]


async def _run_1(store: ExecutionStore) -> Run:
    run = await store.load_run("run-1")
    assert run is not None
    return run


async def _read_input(s: ExecutionStore, p: Prepared) -> JSON:
    run = await s.load_run("run-new")
    assert run is not None
    return run.input


async def _read_output(s: ExecutionStore, p: Prepared) -> JSON:
    return (await _run_1(s)).output


async def _read_event_data(s: ExecutionStore, p: Prepared) -> JSON:
    events = await s.read_events("run-1", p.next_index)
    assert len(events) == 1, events
    return events[0].data


async def _read_wait_meta(s: ExecutionStore, p: Prepared) -> JSON:
    wait = (await _run_1(s)).wait
    assert wait is not None
    return wait.meta


async def _read_signal_payload(s: ExecutionStore, p: Prepared) -> JSON:
    return (await _entry(s, InboxKind.SIGNAL, "sig-new")).payload


async def _read_signal_meta(s: ExecutionStore, p: Prepared) -> JSON:
    return (await _entry(s, InboxKind.SIGNAL, "sig-new")).meta


async def _read_feedback(s: ExecutionStore, p: Prepared) -> JSON:
    payload = (await _entry(s, InboxKind.APPROVAL, "appr-new")).payload
    assert isinstance(payload, dict)
    return payload["feedback"]


async def _read_approval_meta(s: ExecutionStore, p: Prepared) -> JSON:
    return (await _entry(s, InboxKind.APPROVAL, "appr-new")).meta


async def _read_schedule_input(s: ExecutionStore, p: Prepared) -> JSON:
    schedule = await s.get_schedule("sched-new")
    assert schedule is not None
    return schedule.input


PAYLOAD_SLOTS: dict[str, PayloadSlot] = {
    "input": PayloadSlot("create_run", lambda v: {"input": v}, _read_input),
    "output": PayloadSlot("settle_run", lambda v: {"outcome": Finish(_unchecked(v))}, _read_output),
    "append_event_data": PayloadSlot(
        "append_events",
        lambda v: {"events": [NewEvent("CUSTOM", _unchecked(v))]},
        _read_event_data,
    ),
    "settle_event_data": PayloadSlot(
        "settle_run",
        lambda v: {"events": [NewEvent("CUSTOM", _unchecked(v))]},
        _read_event_data,
    ),
    "wait_meta": PayloadSlot(
        "settle_run",
        # "later" matches no inbox entry of run-1, so the run stays paused on this wait.
        lambda v: {"outcome": Pause(Wait.signal("step-x", "later", meta=_unchecked(v)))},
        _read_wait_meta,
    ),
    "signal_payload": PayloadSlot("deliver_signal", lambda v: {"payload": v}, _read_signal_payload),
    "signal_meta": PayloadSlot("deliver_signal", lambda v: {"meta": v}, _read_signal_meta),
    "approval_feedback": PayloadSlot("deliver_approval", lambda v: {"feedback": v}, _read_feedback),
    "approval_meta": PayloadSlot("deliver_approval", lambda v: {"meta": v}, _read_approval_meta),
    "schedule_input": PayloadSlot("upsert_schedule", lambda v: {"input": v}, _read_schedule_input),
}

EXACT_LIMIT_SLOTS = [name for name in PAYLOAD_SLOTS if name != "approval_feedback"]
"""Slots whose stored value is the payload itself. Approval feedback is stored inside
``{"approved": ..., "feedback": ...}``; whether its limit counts that wrapper is not
pinned down, so only its over-limit case is checked."""


# -- the table ----------------------------------------------------------------------------

ArgsMaker = Callable[[int], Args]


def _fixed(name: str, value: object) -> ArgsMaker:
    return lambda _limit: {name: value}


def _past_max_ms(lease_ms: int) -> ArgsMaker:
    return lambda _limit: {"now": MAX_MS - lease_ms + 1, "lease_ms": lease_ms}


def _payload_args(slot: PayloadSlot, make: PayloadMaker) -> ArgsMaker:
    return lambda limit: slot.wrap(make(limit))


ID_ARGS: dict[str, list[str]] = {
    "create_run": ["run_id", "workflow_id"],
    "load_run": ["run_id"],
    "get_timeline": ["run_id"],
    "cancel_run": ["run_id"],
    "delete_run": ["run_id"],
    "claim_run": ["run_id", "owner"],
    "claim_runnable": ["owner"],
    "heartbeat": ["run_id"],
    "append_events": ["run_id"],
    "settle_run": ["run_id"],
    "read_events": ["run_id"],
    "read_inbox": ["run_id"],
    "subscribe_events": ["run_id"],
    "deliver_signal": ["run_id", "signal_id", "name"],
    "deliver_approval": ["run_id", "approval_id"],
    "upsert_schedule": ["schedule_id", "workflow_id"],
    "get_schedule": ["schedule_id"],
    "delete_schedule": ["schedule_id"],
}
OPTIONAL_ID_ARGS: dict[str, list[str]] = {
    "create_run": ["workflow_version"],
    "list_runs": ["workflow_id"],
    "deliver_signal": ["step_id"],
    "upsert_schedule": ["workflow_version"],
    "list_schedules": ["workflow_id"],
}
TIME_OPS = [
    "create_run",
    "cancel_run",
    "claim_run",
    "claim_runnable",
    "heartbeat",
    "append_events",
    "settle_run",
    "deliver_signal",
    "deliver_approval",
    "fire_due_timers",
    "upsert_schedule",
    "fire_due_schedules",
]
# (op, argument, bad values): every other argument rule of the table.
OTHER_ARGS: list[tuple[str, str, list[tuple[str, object]]]] = [
    ("purge_runs", "terminal_before", BAD_TIMES),
    ("claim_run", "lease_ms", BAD_LEASE_MS),
    ("claim_runnable", "lease_ms", BAD_LEASE_MS),
    ("heartbeat", "lease_ms", BAD_LEASE_MS),
    ("list_runs", "limit", BAD_LIMITS),
    ("claim_runnable", "limit", BAD_LIMITS),
    ("fire_due_timers", "limit", BAD_LIMITS),
    ("fire_due_schedules", "limit", BAD_LIMITS),
    ("purge_runs", "limit", BAD_LIMITS),
    ("read_events", "limit", BAD_OPTIONAL_LIMITS),
    ("get_timeline", "limit", BAD_OPTIONAL_LIMITS),
    ("read_events", "from_index", BAD_INDEXES),
    ("get_timeline", "from_index", BAD_INDEXES),
    ("subscribe_events", "from_index", BAD_INDEXES),
    ("append_events", "expected_next_index", BAD_INDEXES),
    ("settle_run", "expected_next_index", BAD_INDEXES),
    ("heartbeat", "lease", BAD_LEASES),
    ("append_events", "lease", BAD_LEASES),
    ("settle_run", "lease", BAD_LEASES),
    ("claim_run", "with_history", BAD_FLAGS),
    ("claim_runnable", "with_history", BAD_FLAGS),
    ("read_inbox", "include_consumed", BAD_FLAGS),
    ("deliver_approval", "approved", BAD_FLAGS),
    ("upsert_schedule", "enabled", BAD_FLAGS),
    ("append_events", "events", BAD_EVENTS),
    ("settle_run", "events", BAD_EVENTS),
    ("append_events", "consume", BAD_CONSUME),
    ("settle_run", "consume", BAD_CONSUME),
    ("settle_run", "outcome", BAD_OUTCOMES),
    ("list_runs", "status", BAD_STATUS),
    ("list_runs", "cursor", BAD_CURSORS),
    ("upsert_schedule", "spec", BAD_SPECS),
    ("upsert_schedule", "overlap", BAD_OVERLAPS),
    # `reason` is not in the table; it is a str like the ErrorInfo message it becomes.
    ("cancel_run", "reason", BAD_REASONS),
]


def _bad_cases() -> list[Any]:
    cases: list[Any] = []

    def add(op: str, what: str, kind: str, args: ArgsMaker, error: type[Exception]) -> None:
        cases.append(pytest.param(op, args, error, id=f"{op}-{what}-{kind}"))

    for op, names in ID_ARGS.items():
        for name in names:
            for kind, value in BAD_IDS:
                add(op, name, kind, _fixed(name, value), InvalidArgumentError)
    for op, names in OPTIONAL_ID_ARGS.items():
        for name in names:
            for kind, value in BAD_OPTIONAL_IDS:
                add(op, name, kind, _fixed(name, value), InvalidArgumentError)
    for op in TIME_OPS:
        for kind, value in BAD_TIMES:
            add(op, "now", kind, _fixed("now", value), InvalidArgumentError)
    for op, name, values in OTHER_ARGS:
        for kind, value in values:
            add(op, name, kind, _fixed(name, value), InvalidArgumentError)
    for slot_name, slot in PAYLOAD_SLOTS.items():
        for kind, make in BAD_PAYLOADS:
            add(slot.op, slot_name, kind, _payload_args(slot, make), PayloadError)
    # A lease must end by MAX_MS (now + lease_ms <= MAX_MS): a store never hands out a
    # lease that the writes it fences would refuse.
    for op in ("claim_run", "claim_runnable", "heartbeat"):
        for kind, lease_ms in (("one_past", 1), ("far_past", LEASE_MS)):
            add(op, "lease_end", kind, _past_max_ms(lease_ms), InvalidArgumentError)
    return cases


BAD_CASES = _bad_cases()

SCALAR_ARGS = {
    "terminal_before",
    "lease_ms",
    "limit",
    "from_index",
    "expected_next_index",
    "with_history",
    "include_consumed",
    "approved",
    "enabled",
}


def _named_cases() -> list[Any]:
    """One bad value per plain argument (ids, times, ints, flags): the error names it."""
    cases: list[Any] = []
    for op, names in ID_ARGS.items():
        cases += [pytest.param(op, name, 7, id=f"{op}-{name}") for name in names]
    for op, names in OPTIONAL_ID_ARGS.items():
        cases += [pytest.param(op, name, 7, id=f"{op}-{name}") for name in names]
    cases += [pytest.param(op, "now", -1, id=f"{op}-now") for op in TIME_OPS]
    cases += [
        pytest.param(op, name, -1, id=f"{op}-{name}")
        for op, name, _ in OTHER_ARGS
        if name in SCALAR_ARGS
    ]
    return cases


NAMED_CASES = _named_cases()


# -- legal identifiers --------------------------------------------------------------------

LEGAL_IDS: list[tuple[str, str]] = [
    ("double_quotes", 'say "hi"'),
    ("single_quote", "it's"),
    ("sql_injection", "x'); DROP TABLE runs; --"),
    ("colons", "ns:wf:run:1"),
    ("braces", "{run}-{{1}}"),
    ("percent_underscore", "100%_done_%s"),
    ("spaces_leading_trailing", "  spaced  out  "),
    ("emoji", "run \U0001f680\u2728 \U0001f469\u200d\U0001f4bb"),
    ("backslashes", "C:\\runs\\1"),
    ("glob_and_shell", "*?[ab]|&;$`"),
    ("slash_at_hash", "a/b@c#d?e=f"),
    ("newline_tab", "line1\nline2\tend"),
    ("non_latin", "\u0130stanbul-\u00df-\u03a3-\u0416-\u4e2d\u6587"),
    ("single_char", "x"),
    ("255_chars", "r" * 255),
    ("255_astral_chars", "\U0001f680" * 255),
]


class BadInputCases:
    """Every bad argument raises the documented error before anything is written."""

    max_payload_bytes: ClassVar[int]

    @pytest.mark.parametrize(("op", "writes"), [(op, w) for op, (_, w) in OPS.items()])
    async def test_valid_call_of_each_operation_writes_only_when_it_should(
        self, store: ExecutionStore, op: str, writes: bool
    ) -> None:
        # The baseline of every bad case below: with no argument overridden the call
        # succeeds, and the writing ones do write, so "nothing written" means something.
        prepared = await _prepare(store)
        before = await _state(store)
        await OPS[op][0](store, prepared, {})
        after = await _state(store)
        if writes:
            assert after != before, f"valid {op} call changed nothing"
        else:
            assert after == before

    @pytest.mark.parametrize(("op", "args", "error"), BAD_CASES)
    async def test_bad_argument_raises_documented_error_and_writes_nothing(
        self,
        store: ExecutionStore,
        op: str,
        args: ArgsMaker,
        error: type[InvalidArgumentError],
    ) -> None:
        prepared = await _prepare(store)
        before = await _state(store)
        with pytest.raises(InvalidArgumentError) as raised:
            await OPS[op][0](store, prepared, args(self.max_payload_bytes))
        if error is PayloadError:
            assert isinstance(raised.value, PayloadError), repr(raised.value)
        else:
            # A payload error is for payloads; anything else is a plain bad argument.
            assert not isinstance(raised.value, PayloadError), repr(raised.value)
        assert await _state(store) == before

    @pytest.mark.parametrize(("op", "name", "value"), NAMED_CASES)
    async def test_bad_argument_error_names_the_argument(
        self, store: ExecutionStore, op: str, name: str, value: object
    ) -> None:
        # "InvalidArgumentError naming the argument": a caller with six arguments of
        # one type learns which one was wrong.
        prepared = await _prepare(store)
        with pytest.raises(InvalidArgumentError) as raised:
            await OPS[op][0](store, prepared, {name: value})
        # As a word: "run_id", not "XXrun_idXX" or "RUN_ID".
        assert re.search(rf"(?<!\w){name}(?!\w)", str(raised.value)), (name, str(raised.value))

    @pytest.mark.parametrize("slot", EXACT_LIMIT_SLOTS)
    @pytest.mark.parametrize("alphabet", ["ascii", "astral"])
    async def test_payload_of_exactly_the_size_limit_is_accepted_and_stored(
        self, store: ExecutionStore, slot: str, alphabet: str
    ) -> None:
        prepared = await _prepare(store)
        value = sized_string(self.max_payload_bytes, alphabet)
        target = PAYLOAD_SLOTS[slot]
        await OPS[target.op][0](store, prepared, target.wrap(value))
        stored = await target.read(store, prepared)
        assert type(stored) is str
        assert stored == value

    async def test_store_declares_the_payload_limit_it_enforces(
        self, store: ExecutionStore
    ) -> None:
        # The runtime cuts what it records to the limit the store declares
        # (ExecutionStore.max_payload_bytes): a store enforcing another limit would
        # refuse a cut error or accept a step result the runtime failed.
        limit = store.max_payload_bytes
        assert limit == self.max_payload_bytes, (limit, self.max_payload_bytes)
        with pytest.raises(PayloadError):
            await store.create_run("over", "wf", None, sized_string(limit + 1, "ascii"), T0)
        assert await store.load_run("over") is None
        at_limit = sized_string(limit, "ascii")
        created = await create(store, "at", input=at_limit)
        assert created.input == at_limit

    @pytest.mark.parametrize("legal_id", [pytest.param(v, id=k) for k, v in LEGAL_IDS])
    async def test_unusual_but_legal_ids_round_trip_exactly(
        self, store: ExecutionStore, legal_id: str
    ) -> None:
        i = legal_id
        created = await create(store, i, workflow_id=i, version=i, input={"id": i})
        assert (created.run_id, created.workflow_id, created.workflow_version) == (i, i, i)
        loaded = await store.load_run(i)
        assert loaded == created
        page = await store.list_runs(workflow_id=i)
        assert [r.run_id for r in page.items] == [i]

        claim = await store.claim_run(i, i, LEASE_MS, T0 + 1)
        assert isinstance(claim, Claimed)
        assert claim.lease.owner == i
        lease = await store.heartbeat(i, claim.lease, LEASE_MS, T0 + 2)
        assert lease == Lease(i, claim.lease.token, T0 + 2 + LEASE_MS)
        assert await store.append_events(i, lease, 0, [NewEvent(i, {"k": i}, i)], T0 + 3) == 1
        events = await store.read_events(i)
        assert [(e.run_id, e.type, e.step_id, e.data) for e in events] == [(i, i, i, {"k": i})]

        paused = await store.settle_run(i, lease, 1, [], Pause(Wait.signal(i, i)), T0 + 4)
        assert paused.wait == Wait.signal(i, i)
        delivered = await store.deliver_signal(i, i, i, {"v": i}, T0 + 5, step_id=i, meta=i)
        assert isinstance(delivered, Delivered)
        assert (delivered.entry.key, delivered.entry.name, delivered.entry.step_id) == (i, i, i)
        approval = await store.deliver_approval(i, i, True, T0 + 6)
        assert isinstance(approval, Buffered)
        assert approval.entry.key == i
        inbox = await store.read_inbox(i, include_consumed=True)
        assert [(e.run_id, e.kind, e.key) for e in inbox] == [
            (i, InboxKind.SIGNAL, i),
            (i, InboxKind.APPROVAL, i),
        ]
        timeline = await store.get_timeline(i)
        assert timeline is not None
        assert timeline.run.run_id == i

        # Schedule ids are shorter so that the run ids they create fit in 255.
        sid = i[:MAX_SCHEDULE_ID_LENGTH]
        schedule = await store.upsert_schedule(
            sid, i, IntervalSpec(60_000), T0, workflow_version=i, input=i
        )
        assert (schedule.schedule_id, schedule.workflow_id, schedule.workflow_version) == (
            sid,
            i,
            i,
        )
        assert await store.get_schedule(sid) == schedule
        assert await store.list_schedules(workflow_id=i) == [schedule]
        ticks = await store.fire_due_schedules(schedule.next_fire_at, 10)
        assert [t.run_id for t in ticks] == [f"{sid}@{schedule.next_fire_at}"]
        fired = await store.load_run(f"{sid}@{schedule.next_fire_at}")
        assert fired is not None
        assert fired.input == i

        cancelled = await store.cancel_run(i, "stop", T0 + 7)
        assert isinstance(cancelled, Cancelled)
        assert cancelled.run.run_id == i
        assert await store.delete_schedule(sid) is True
        assert await store.delete_run(i) is True
        assert await store.load_run(i) is None

    async def test_ids_differing_only_in_case_spacing_or_normalization_are_distinct(
        self, store: ExecutionStore
    ) -> None:
        # Catches case-insensitive, space-padding or normalizing collations.
        ids = ["run", "Run", "RUN", "run ", " run", "caf\u00e9", "cafe\u0301", "\uff52\uff55\uff4e"]
        for n, run_id in enumerate(ids):
            await create(store, run_id, workflow_id=run_id, input=n, now=T0 + n)
        for n, run_id in enumerate(ids):
            run = await store.load_run(run_id)
            assert run is not None
            assert (run.run_id, run.workflow_id, run.input) == (run_id, run_id, n)
            page = await store.list_runs(workflow_id=run_id)
            assert [r.run_id for r in page.items] == [run_id]
        page = await store.list_runs(limit=1000)
        assert [r.run_id for r in page.items] == list(reversed(ids))

        for n, signal_id in enumerate(ids):
            result = await store.deliver_signal("run", signal_id, "go", n, T0 + 100)
            assert isinstance(result, Buffered), (signal_id, result)
        inbox = await store.read_inbox("run")
        assert sorted((e.key, e.payload) for e in inbox) == sorted(
            (signal_id, n) for n, signal_id in enumerate(ids)
        )

        for schedule_id in ids:
            await store.upsert_schedule(schedule_id, "wf", IntervalSpec(60_000), T0)
        assert [s.schedule_id for s in await store.list_schedules()] == sorted(ids)

    async def test_id_filters_match_exactly_not_as_patterns(self, store: ExecutionStore) -> None:
        # SQL LIKE wildcards (% and _) and glob characters in a filter are plain text.
        workflows = ["wf_a", "wfXa", "wf%", "wf%a", "wf*", "wfa", "WF_A"]
        for n, workflow_id in enumerate(workflows):
            await create(store, f"run-{n}", workflow_id=workflow_id, now=T0 + n)
            await store.upsert_schedule(f"sched-{n}", workflow_id, IntervalSpec(60_000), T0)
        for n, workflow_id in enumerate(workflows):
            page = await store.list_runs(workflow_id=workflow_id)
            assert [r.run_id for r in page.items] == [f"run-{n}"], workflow_id
            schedules = await store.list_schedules(workflow_id=workflow_id)
            assert [s.schedule_id for s in schedules] == [f"sched-{n}"], workflow_id
        assert (await store.list_runs(workflow_id="wf")).items == []
        assert await store.list_schedules(workflow_id="wf") == []
