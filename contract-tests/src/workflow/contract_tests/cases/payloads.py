"""Contract cases: payloads come back equal and of exactly the same types.

A corpus of JSON values that stores tend to get wrong (astral and control characters,
64-bit integers, floats that a 32-bit or decimal column would round, ints that must not
become floats, strings that look like JSON, deep and wide structures) goes through
every payload slot of the contract, and every place each slot is read back from.
Values are compared recursively with exact types (``bool`` is not ``int``, ``int`` is
not ``float``, ``-0.0`` keeps its sign). Stored payloads are never shared with the
caller: mutating what went in or what came out changes nothing stored.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

import pytest

from workflow.runtime import (
    JSON,
    Buffered,
    Claimed,
    Created,
    Delivered,
    Duplicate,
    ExecutionStore,
    Existing,
    Finish,
    IntervalSpec,
    NewEvent,
    Pause,
    Run,
    RunStatus,
    TickOutcome,
    Timeline,
    Wait,
    Yield,
)

from ..support import LEASE_MS, T0, paused_on, started


def assert_same_json(actual: object, expected: object, where: str = "$") -> None:
    """Assert ``actual == expected`` with the same Python type at every level.

    Dict key order is not compared (JSON objects are unordered), list order is.
    """
    if type(actual) is not type(expected):
        raise AssertionError(
            f"{where}: got {type(actual).__name__} {_short(actual)}, "
            f"expected {type(expected).__name__} {_short(expected)}"
        )
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        missing = expected.keys() - actual.keys()
        extra = actual.keys() - expected.keys()
        assert not missing, f"{where}: missing keys {missing}"
        assert not extra, f"{where}: extra keys {extra}"
        for key, item in expected.items():
            assert_same_json(actual[key], item, f"{where}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list)
        assert len(actual) == len(expected), f"{where}: {len(actual)} items, not {len(expected)}"
        for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_same_json(got, want, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, float)
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
        assert math.copysign(1.0, actual) == math.copysign(1.0, expected), (
            f"{where}: {actual!r} lost the sign of {expected!r}"
        )
    else:
        assert actual == expected, f"{where}: {_short(actual)} != {_short(expected)}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# -- the corpus ---------------------------------------------------------------------------


def _deep(levels: int) -> JSON:
    """``levels`` containers, alternating dicts and lists, around a scalar."""
    value: JSON = "bottom"
    for level in range(levels):
        value = [value, level] if level % 2 else {"level": level, "next": value}
    return value


CORPUS: list[tuple[str, JSON]] = [
    # Text of every plane, and the characters codecs and columns mangle.
    ("str_ascii", "hello, world"),
    ("str_bmp", "h\u00e9llo w\u00f6rld \u2014 \u00f1 \u20ac \u03a9 \u0416 \u4e2d\u6587"),
    ("str_astral_emoji", "\U0001f600\U0001f680 \U0001f469\u200d\U0001f469\u200d\U0001f467"),
    ("str_flag_and_skin_tone", "\U0001f3f3\ufe0f\u200d\U0001f308 \U0001f44d\U0001f3fd"),
    ("str_cjk_ext_b", "\U00020000\U00020001\U0002070e\U0002a6a5"),
    ("str_max_code_point", "\U0010ffff"),
    ("str_combining_marks", "e\u0301 a\u0308\u0323 Z\u0324\u0354\u0367\u0311"),
    ("str_nfc_and_nfd_stay_distinct", ["caf\u00e9", "cafe\u0301"]),
    (
        "str_rtl_and_bidi_controls",
        "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eevil\u202c\u200f",
    ),
    ("str_nul", "a\x00b\x00"),
    ("str_control_chars", "".join(chr(c) for c in range(1, 32)) + "\x7f\x80\x9f"),
    ("str_line_separators", "a\u2028b\u2029c\u0085d"),
    ("str_bom_and_noncharacters", "\ufeff\ufffe\uffff\ufffd"),
    ("str_escape_lookalikes", '\\u0000 \\n \\" \\\\ \\ud800'),
    ("str_whitespace_only", " \t\r\n "),
    ("str_empty", ""),
    # Strings that look like other JSON stay strings.
    ("str_looks_like_int", "123"),
    ("str_looks_like_float", "1.0"),
    ("str_looks_like_negative_zero", "-0"),
    ("str_looks_like_true", "true"),
    ("str_looks_like_null", "null"),
    ("str_looks_like_object", "{}"),
    ("str_looks_like_array", "[1]"),
    ("str_quoted", '"quoted"'),
    ("str_nan", "NaN"),
    # Integers: 64-bit bounds, beyond a double's 53 bits, and never floats.
    ("int_zero", 0),
    ("int_negative_zero", -0),
    ("int_one", 1),
    ("int_minus_one", -1),
    ("int64_max", 2**63 - 1),
    ("int64_min", -(2**63)),
    ("int64_min_plus_one", -(2**63) + 1),
    ("int_2_53_plus_1", 2**53 + 1),
    ("int_minus_2_53_minus_1", -(2**53) - 1),
    # Floats: none of these survives 32 bits or a decimal(…) column.
    ("float_0_1", 0.1),
    ("float_one_third", 1 / 3),
    ("float_tiny", 1e-300),
    ("float_smallest_subnormal", 5e-324),
    ("float_max", 1.7976931348623157e308),
    ("float_negative_zero", -0.0),
    ("float_integral", 1.0),
    ("float_1e16", 1e16),
    ("float_2_53", 2.0**53),
    ("float_negative", -2.5e-7),
    # Containers and the constants.
    ("none", None),
    ("true", True),
    ("false", False),
    ("list_empty", []),
    ("dict_empty", {}),
    ("list_bool_int_float_siblings", [True, 1, 1.0, False, 0, 0.0, -0.0, None, "1"]),
    ("dict_bool_int_float_values", {"t": True, "one": 1, "onef": 1.0, "f": False, "zero": 0}),
    (
        "list_mixed_nested",
        [[], [[]], [1, "1", [1.0, ["1", [None, [True, {}]]]]], {"a": [{}, []]}, [[[[0.5]]]]],
    ),
    (
        "dict_tricky_keys",
        {
            "": 0,
            " ": 1,
            "1": 2,
            "true": 3,
            "null": 4,
            "__proto__": 5,
            "constructor": 6,
            "$ref": 7,
            "a.b": 8,
            "a\x00b": 9,
            "\U0001f680": 10,
            "caf\u00e9": 11,
            "cafe\u0301": 12,
            "K": 13,
            "k": 14,
            "'; --": 15,
        },
    ),
    ("deep_99_levels", _deep(99)),
    ("wide_10k_keys", {f"key-{i}": i for i in range(10_000)}),
    (
        "wide_10k_items",
        [i if i % 3 == 0 else str(i) if i % 3 == 1 else i + 0.5 for i in range(10_000)],
    ),
]


# -- the slots ------------------------------------------------------------------------------

Seen = list[tuple[str, JSON, JSON]]
"""(where it was read, the value read, the value expected there)."""


@dataclass(frozen=True)
class Slot:
    """A payload slot: ``write`` stores a value (and reports what the writing calls
    returned), ``read`` reads it back through every pure read of the contract."""

    write: Callable[[ExecutionStore, JSON], Awaitable[Seen]]
    read: Callable[[ExecutionStore, JSON], Awaitable[Seen]]


async def _load(store: ExecutionStore, run_id: str = "run-p") -> Run:
    run = await store.load_run(run_id)
    assert run is not None, run_id
    return run


async def _only_run(store: ExecutionStore, workflow_id: str) -> Run:
    page = await store.list_runs(workflow_id=workflow_id)
    assert len(page.items) == 1, page
    return page.items[0]


async def _timeline(store: ExecutionStore, run_id: str = "run-p") -> Timeline:
    timeline = await store.get_timeline(run_id)
    assert timeline is not None
    return timeline


async def _write_input(store: ExecutionStore, value: JSON) -> Seen:
    created = await store.create_run("run-p", "wf-p", None, value, T0)
    assert isinstance(created, Created)
    again = await store.create_run("run-p", "wf-p", None, "other input", T0 + 1)
    assert isinstance(again, Existing)
    claim = await store.claim_run("run-p", "worker-a", LEASE_MS, T0 + 2)
    assert isinstance(claim, Claimed)
    return [
        ("Created.run.input", created.run.input, value),
        ("Existing.run.input", again.run.input, value),
        ("Claimed.run.input", claim.run.input, value),
    ]


async def _read_input(store: ExecutionStore, value: JSON) -> Seen:
    return [
        ("load_run.input", (await _load(store)).input, value),
        ("list_runs.input", (await _only_run(store, "wf-p")).input, value),
        ("get_timeline.run.input", (await _timeline(store)).run.input, value),
    ]


async def _write_output(store: ExecutionStore, value: JSON) -> Seen:
    claim = await started(store, "run-p", workflow_id="wf-p")
    run = await store.settle_run("run-p", claim.lease, 0, [], Finish(value), T0 + 1)
    assert run.status is RunStatus.FINISHED
    return [("settle_run.output", run.output, value)]


async def _read_output(store: ExecutionStore, value: JSON) -> Seen:
    return [
        ("load_run.output", (await _load(store)).output, value),
        ("list_runs.output", (await _only_run(store, "wf-p")).output, value),
        ("get_timeline.run.output", (await _timeline(store)).run.output, value),
    ]


async def _write_event_data(store: ExecutionStore, value: JSON) -> Seen:
    claim = await started(store, "run-p")
    appended = NewEvent("APPENDED", value, "step-1")
    assert await store.append_events("run-p", claim.lease, 0, [appended], T0 + 1) == 1
    settled = NewEvent("SETTLED", value)
    await store.settle_run("run-p", claim.lease, 1, [settled], Yield(), T0 + 2)
    again = await store.claim_run("run-p", "worker-b", LEASE_MS, T0 + 3, with_history=True)
    assert isinstance(again, Claimed)
    assert again.events is not None
    assert [(e.index, e.type) for e in again.events] == [(0, "APPENDED"), (1, "SETTLED")]
    return [(f"Claimed.events[{e.index}].data", e.data, value) for e in again.events]


async def _read_event_data(store: ExecutionStore, value: JSON) -> Seen:
    events = await store.read_events("run-p")
    tail = await store.read_events("run-p", 1)
    timeline = await _timeline(store)
    assert [e.index for e in events] == [0, 1]
    assert [e.index for e in tail] == [1]
    return [
        *((f"read_events[{e.index}].data", e.data, value) for e in events),
        ("read_events(from_index=1)[0].data", tail[0].data, value),
        *((f"get_timeline.events[{e.index}].data", e.data, value) for e in timeline.events),
    ]


async def _write_signal(store: ExecutionStore, value: JSON) -> Seen:
    await paused_on(store, Wait.signal("step-1", "go"), "run-p")
    delivered = await store.deliver_signal("run-p", "sig-1", "go", value, T0 + 1, meta=value)
    assert isinstance(delivered, Delivered)
    buffered = await store.deliver_signal("run-p", "sig-2", "later", value, T0 + 2, meta=value)
    assert isinstance(buffered, Buffered)
    duplicate = await store.deliver_signal("run-p", "sig-1", "go", "other", T0 + 3, meta="other")
    assert isinstance(duplicate, Duplicate)
    claim = await store.claim_run("run-p", "worker-b", LEASE_MS, T0 + 4)
    assert isinstance(claim, Claimed)
    assert [e.key for e in claim.inbox] == ["sig-1", "sig-2"]
    seen: Seen = []
    for where, entry in [
        ("Delivered.entry", delivered.entry),
        ("Buffered.entry", buffered.entry),
        ("Duplicate.entry", duplicate.entry),
        *((f"Claimed.inbox[{i}]", e) for i, e in enumerate(claim.inbox)),
    ]:
        seen += [(f"{where}.payload", entry.payload, value), (f"{where}.meta", entry.meta, value)]
    return seen


async def _read_signal(store: ExecutionStore, value: JSON) -> Seen:
    inbox = await store.read_inbox("run-p", include_consumed=True)
    assert [e.key for e in inbox] == ["sig-1", "sig-2"]
    seen: Seen = []
    for e in inbox:
        seen += [(f"read_inbox[{e.key}].payload", e.payload, value)]
        seen += [(f"read_inbox[{e.key}].meta", e.meta, value)]
    return seen


def _approval_payloads(feedback: JSON) -> tuple[JSON, JSON]:
    """An approval entry's payload is ``{"approved": bool, "feedback": feedback}``."""
    return {"approved": True, "feedback": feedback}, {"approved": False, "feedback": feedback}


async def _write_approval(store: ExecutionStore, value: JSON) -> Seen:
    await paused_on(store, Wait.approval("step-1", "appr-1"), "run-p")
    delivered = await store.deliver_approval(
        "run-p", "appr-1", True, T0 + 1, feedback=value, meta=value
    )
    assert isinstance(delivered, Delivered)
    buffered = await store.deliver_approval("run-p", "appr-2", False, T0 + 2, feedback=value)
    assert isinstance(buffered, Buffered)
    claim = await store.claim_run("run-p", "worker-b", LEASE_MS, T0 + 3)
    assert isinstance(claim, Claimed)
    assert [e.key for e in claim.inbox] == ["appr-1", "appr-2"]
    approved, rejected = _approval_payloads(value)
    return [
        ("Delivered.entry.payload", delivered.entry.payload, approved),
        ("Delivered.entry.meta", delivered.entry.meta, value),
        ("Buffered.entry.payload", buffered.entry.payload, rejected),
        ("Claimed.inbox[0].payload", claim.inbox[0].payload, approved),
        ("Claimed.inbox[0].meta", claim.inbox[0].meta, value),
        (
            "Claimed.inbox[1].payload",
            claim.inbox[1].payload,
            rejected,
        ),
    ]


async def _read_approval(store: ExecutionStore, value: JSON) -> Seen:
    inbox = await store.read_inbox("run-p", include_consumed=True)
    assert [e.key for e in inbox] == ["appr-1", "appr-2"]
    approved, rejected = _approval_payloads(value)
    return [
        ("read_inbox[appr-1].payload", inbox[0].payload, approved),
        ("read_inbox[appr-1].meta", inbox[0].meta, value),
        ("read_inbox[appr-2].payload", inbox[1].payload, rejected),
    ]


async def _write_wait_meta(store: ExecutionStore, value: JSON) -> Seen:
    claim = await started(store, "run-p", workflow_id="wf-p")
    wait = Wait.signal("step-1", "go", timeout_at=T0 + 60_000, meta=value)
    run = await store.settle_run("run-p", claim.lease, 0, [], Pause(wait), T0 + 1)
    assert run.status is RunStatus.PAUSED
    assert run.wait is not None
    return [("settle_run.wait.meta", run.wait.meta, value)]


async def _read_wait_meta(store: ExecutionStore, value: JSON) -> Seen:
    seen: Seen = []
    for where, run in [
        ("load_run", await _load(store)),
        ("list_runs", await _only_run(store, "wf-p")),
        ("get_timeline.run", (await _timeline(store)).run),
    ]:
        assert run.wait is not None
        seen.append((f"{where}.wait.meta", run.wait.meta, value))
    return seen


async def _write_schedule_input(store: ExecutionStore, value: JSON) -> Seen:
    schedule = await store.upsert_schedule("sched-p", "wf-s", IntervalSpec(60_000), T0, input=value)
    ticks = await store.fire_due_schedules(schedule.next_fire_at, 10)
    assert [t.outcome for t in ticks] == [TickOutcome.FIRED]
    return [("upsert_schedule.input", schedule.input, value)]


async def _read_schedule_input(store: ExecutionStore, value: JSON) -> Seen:
    schedule = await store.get_schedule("sched-p")
    assert schedule is not None
    listed = await store.list_schedules()
    assert len(listed) == 1
    fired = await _only_run(store, "wf-s")
    return [
        ("get_schedule.input", schedule.input, value),
        ("list_schedules.input", listed[0].input, value),
        ("fired run: list_runs.input", fired.input, value),
        ("fired run: load_run.input", (await _load(store, fired.run_id)).input, value),
    ]


SLOTS: dict[str, Slot] = {
    "run_input": Slot(_write_input, _read_input),
    "finish_output": Slot(_write_output, _read_output),
    "event_data": Slot(_write_event_data, _read_event_data),
    "signal_payload_and_meta": Slot(_write_signal, _read_signal),
    "approval_feedback_and_meta": Slot(_write_approval, _read_approval),
    "wait_meta": Slot(_write_wait_meta, _read_wait_meta),
    "schedule_input": Slot(_write_schedule_input, _read_schedule_input),
}


def _assert_all(seen: Seen) -> None:
    assert seen
    for where, actual, expected in seen:
        assert_same_json(actual, expected, where)


def _mutable() -> JSON:
    return {"a": [1, {"b": 2}], "c": "x", "d": {"e": [[]]}}


def _mutate(value: object) -> None:
    """Change every container inside ``value`` in place."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _mutate(item)
        value["mutated"] = True
    elif isinstance(value, list):
        for item in list(value):
            _mutate(item)
        value.append("mutated")


class PayloadFidelityCases:
    """Every payload slot stores JSON values exactly and never shares them."""

    max_payload_bytes: ClassVar[int]

    @pytest.mark.parametrize("slot", list(SLOTS))
    @pytest.mark.parametrize("value", [pytest.param(v, id=name) for name, v in CORPUS])
    async def test_payload_round_trips_with_exact_types(
        self, store: ExecutionStore, slot: str, value: JSON
    ) -> None:
        _assert_all(await SLOTS[slot].write(store, value))
        _assert_all(await SLOTS[slot].read(store, value))

    @pytest.mark.parametrize("slot", list(SLOTS))
    async def test_mutating_a_value_after_passing_it_in_changes_nothing_stored(
        self, store: ExecutionStore, slot: str
    ) -> None:
        value = _mutable()
        seen = await SLOTS[slot].write(store, value)
        # What the writing calls returned must not be the caller's objects either.
        returned = copy.deepcopy(seen)
        _mutate(value)
        assert value != _mutable()
        _assert_all(returned)
        _assert_all(await SLOTS[slot].read(store, _mutable()))

    @pytest.mark.parametrize("slot", list(SLOTS))
    async def test_mutating_a_value_read_back_changes_nothing_stored(
        self, store: ExecutionStore, slot: str
    ) -> None:
        for _, actual, _ in await SLOTS[slot].write(store, _mutable()):
            _mutate(actual)
        first = await SLOTS[slot].read(store, _mutable())
        _assert_all(first)
        for _, actual, _ in first:
            _mutate(actual)
        _assert_all(await SLOTS[slot].read(store, _mutable()))

    async def test_a_claim_carries_an_inbox_and_history_larger_than_one_payload(
        self, store: ExecutionStore
    ) -> None:
        # Many payloads near the limit add up to more than 1 MiB: a claim hands all of
        # them over whole. (MariaDB's JSON_ARRAYAGG once cut the claim's inbox and
        # history at group_concat_max_len, 1 MiB, and the claim failed to decode.)
        size = min(self.max_payload_bytes, 1 << 20) * 2 // 5
        count = (1 << 20) // size + 2
        claim = await started(store)
        big = [NewEvent("Big", {"i": i, "text": "e" * size}) for i in range(count)]
        for i, one in enumerate(big):
            await store.append_events("run-1", claim.lease, i, [one], T0 + 1)
        for i in range(count):
            await store.deliver_signal("run-1", f"sig-{i}", "other", "s" * size, T0 + 2)
        await store.settle_run("run-1", claim.lease, count, [], Yield(), T0 + 3)

        again = await store.claim_run("run-1", "w2", LEASE_MS, T0 + 4, with_history=True)
        assert isinstance(again, Claimed), again
        assert [e.data for e in again.events or []] == [e.data for e in big]
        assert [e.payload for e in again.inbox] == ["s" * size] * count
