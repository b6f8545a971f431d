"""Argument validation: every boundary accepted and the first value past it rejected,
with messages that name the argument."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workflow.runtime import (
    CronSpec,
    ErrorInfo,
    Fail,
    Finish,
    InboxEntry,
    InboxKind,
    InboxRef,
    IntervalSpec,
    InvalidArgumentError,
    Lease,
    NewEvent,
    Overlap,
    Pause,
    PayloadError,
    RunStatus,
    Wait,
    WaitKind,
    Yield,
)
from workflow.runtime import validation as v
from workflow.runtime.validation import MAX_MS, EncodedEvent, EncodedOutcome


class Text(str):
    pass


def test_check_id_rejects_nul_which_postgres_text_cannot_store() -> None:
    with pytest.raises(InvalidArgumentError, match="NUL"):
        v.check_id("a\x00b", "run_id")


def test_check_schedule_id_leaves_room_for_the_fire_time() -> None:
    longest = "s" * v.MAX_SCHEDULE_ID_LENGTH
    assert v.check_schedule_id(longest) == longest
    with pytest.raises(InvalidArgumentError, match="schedule_id"):
        v.check_schedule_id(longest + "s")


def test_constants() -> None:
    assert v.MAX_ID_LENGTH == 255
    assert v.MAX_LIMIT == 1000
    # 9999-12-31T23:59:59.999Z: the last instant datetime (and so cron) can represent.
    assert v.MAX_MS == 253_402_300_799_999
    assert v.MAX_SCHEDULE_ID_LENGTH + len("@") + len(str(v.MAX_MS)) == 255


# -- identifiers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a", "x" * 255, "😀" * 255, "quote'\"colon:{brace}%20 space", "\x01", "run/1@2"],
    ids=lambda s: f"len{len(s)}:{s[:12]!a}",
)
def test_check_id_accepts_any_text_of_1_to_255_characters(value: str) -> None:
    assert v.check_id(value, "run_id") is value


def test_check_id_rejects_empty_and_names_the_argument() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^run_id must not be empty$"):
        v.check_id("", "run_id")


def test_check_id_rejects_256_characters_and_says_how_long() -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"^workflow_id is 256 characters long; the limit is 255$"
    ):
        v.check_id("x" * 256, "workflow_id")


def test_check_id_counts_characters_not_bytes() -> None:
    # 255 four-byte characters are 1020 bytes: still 255 characters.
    assert v.check_id("😀" * 255, "step_id") == "😀" * 255
    with pytest.raises(InvalidArgumentError, match=r"step_id is 256 characters"):
        v.check_id("😀" * 256, "step_id")


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(None, "NoneType"), (1, "int"), (b"id", "bytes"), (Text("id"), "Text"), (["a"], "list")],
)
def test_check_id_rejects_non_str_naming_the_type(value: object, type_name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"^signal_id must be a str, not {type_name}$"):
        v.check_id(value, "signal_id")


def test_check_id_rejects_lone_surrogates() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^approval_id is not valid Unicode text"):
        v.check_id("ok\udc80", "approval_id")


def test_check_id_errors_are_not_payload_errors() -> None:
    with pytest.raises(InvalidArgumentError) as exc:
        v.check_id("", "run_id")
    assert type(exc.value) is InvalidArgumentError


def test_check_optional_id() -> None:
    assert v.check_optional_id(None, "workflow_version") is None
    assert v.check_optional_id("v1", "workflow_version") == "v1"
    with pytest.raises(InvalidArgumentError, match=r"^workflow_version must not be empty$"):
        v.check_optional_id("", "workflow_version")


# -- integers --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 1_700_000_000_000, MAX_MS])
def test_check_now_accepts_0_to_2_pow_53_minus_1(value: int) -> None:
    assert v.check_now(value) == value


@pytest.mark.parametrize("value", [-1, MAX_MS + 1, -(2**63)])
def test_check_now_rejects_out_of_range(value: int) -> None:
    with pytest.raises(
        InvalidArgumentError, match=rf"^now must be between 0 and {MAX_MS}, got {value}$"
    ):
        v.check_now(value)


@pytest.mark.parametrize(
    ("value", "type_name"), [(True, "bool"), (False, "bool"), (1.0, "float"), ("1", "str")]
)
def test_check_now_rejects_non_int_including_bool(value: object, type_name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"^now must be an int, not {type_name}$"):
        v.check_now(value)


def test_check_time_names_its_argument() -> None:
    assert v.check_time(0, "terminal_before") == 0
    assert v.check_time(MAX_MS, "wake_at") == MAX_MS
    with pytest.raises(InvalidArgumentError, match=r"^terminal_before must be between 0 and"):
        v.check_time(-1, "terminal_before")
    with pytest.raises(InvalidArgumentError, match=r"^wake_at must be an int, not bool$"):
        v.check_time(True, "wake_at")


def test_check_lease_ms_accepts_1_and_max_and_rejects_0() -> None:
    assert v.check_lease_ms(1) == 1
    assert v.check_lease_ms(MAX_MS) == MAX_MS
    with pytest.raises(InvalidArgumentError, match=rf"^lease_ms must be between 1 and {MAX_MS}"):
        v.check_lease_ms(0)
    with pytest.raises(InvalidArgumentError, match=r"^lease_ms must be between"):
        v.check_lease_ms(MAX_MS + 1)
    with pytest.raises(InvalidArgumentError, match=r"^lease_ms must be an int, not float$"):
        v.check_lease_ms(30.0)


def test_check_int_is_public_for_the_stores_own_options() -> None:
    # Stores check their integer options (pool sizes, timeouts, max_payload_bytes) with
    # it; a private helper of another distribution would break on any refactoring.
    assert v.check_int(1, "connections", 1, 1024) == 1
    assert v.check_int(1024, "connections", 1, 1024) == 1024
    with pytest.raises(
        InvalidArgumentError, match=r"^connections must be between 1 and 1024, got 0$"
    ):
        v.check_int(0, "connections", 1, 1024)
    with pytest.raises(InvalidArgumentError, match=r"^connections must be an int, not bool$"):
        v.check_int(True, "connections", 1, 1024)
    assert not hasattr(v, "_check_int")


@pytest.mark.parametrize("value", [1, 50, 1000])
def test_check_limit_accepts_1_to_1000(value: int) -> None:
    assert v.check_limit(value) == value


@pytest.mark.parametrize("value", [0, -1, 1001])
def test_check_limit_rejects_outside_1_to_1000(value: int) -> None:
    with pytest.raises(
        InvalidArgumentError, match=rf"^limit must be between 1 and 1000, got {value}$"
    ):
        v.check_limit(value)


def test_check_limit_uses_the_given_name_and_rejects_bool() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^batch must be an int, not bool$"):
        v.check_limit(True, "batch")


def test_check_optional_limit() -> None:
    assert v.check_optional_limit(None) is None
    assert v.check_optional_limit(1000) == 1000
    with pytest.raises(InvalidArgumentError, match=r"^limit must be between 1 and 1000"):
        v.check_optional_limit(0)


def test_check_index_accepts_0_and_rejects_negative() -> None:
    assert v.check_index(0, "from_index") == 0
    assert v.check_index(7, "expected_next_index") == 7
    with pytest.raises(InvalidArgumentError, match=r"^expected_next_index must be between 0 and"):
        v.check_index(-1, "expected_next_index")
    with pytest.raises(InvalidArgumentError, match=r"^from_index must be an int, not NoneType$"):
        v.check_index(None, "from_index")


def test_check_bool_accepts_only_bool() -> None:
    assert v.check_bool(True, "with_history") is True
    assert v.check_bool(False, "with_history") is False
    for bad, name in [(1, "int"), (0, "int"), (None, "NoneType"), ("true", "str")]:
        with pytest.raises(
            InvalidArgumentError, match=rf"^include_consumed must be a bool, not {name}$"
        ):
            v.check_bool(bad, "include_consumed")


# -- leases, text, statuses ------------------------------------------------------------------


def test_check_lease_accepts_a_valid_lease() -> None:
    lease = Lease("worker-a", 1, 0)
    assert v.check_lease(lease) is lease
    assert v.check_lease(Lease("w", 2**63 - 1, MAX_MS)).token == 2**63 - 1


@pytest.mark.parametrize(
    ("lease", "message"),
    [
        (Lease("", 1, 0), "^lease.owner must not be empty$"),
        (Lease("w", 0, 0), "^lease.token must be between 1 and"),
        (Lease("w", 2**63, 0), "^lease.token must be between 1 and"),
        (Lease("w", True, 0), "^lease.token must be an int, not bool$"),
        (Lease("w", 1, -1), "^lease.expires_at must be between 0 and"),
    ],
)
def test_check_lease_rejects_bad_fields_naming_them(lease: Lease, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        v.check_lease(lease)


def test_check_lease_rejects_other_types() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^lease must be a Lease, not tuple$"):
        v.check_lease(("w", 1, 0))


def test_check_text_limits_length_and_rejects_surrogates() -> None:
    assert v.check_text("x" * 10, "reason", max_length=10) == "x" * 10
    assert v.check_text("", "reason") == ""
    with pytest.raises(InvalidArgumentError, match=r"^reason is longer than 10 characters$"):
        v.check_text("x" * 11, "reason", max_length=10)
    with pytest.raises(InvalidArgumentError, match=r"^reason is not valid Unicode text"):
        v.check_text("\ud800", "reason")
    with pytest.raises(InvalidArgumentError, match=r"^reason must be a str, not int$"):
        v.check_text(5, "reason")


def test_check_text_default_limit_is_64_kib_characters() -> None:
    assert v.check_text("x" * 65536, "reason") == "x" * 65536
    with pytest.raises(InvalidArgumentError, match=r"longer than 65536"):
        v.check_text("x" * 65537, "reason")


def test_check_statuses_normalises_every_accepted_spelling() -> None:
    assert v.check_statuses(None) is None
    assert v.check_statuses(RunStatus.QUEUED) == frozenset({RunStatus.QUEUED})
    assert v.check_statuses("paused") == frozenset({RunStatus.PAUSED})
    both = v.check_statuses(["queued", RunStatus.RUNNING, "queued"])
    assert both == frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
    assert both is not None
    assert all(type(s) is RunStatus for s in both)
    assert v.check_statuses({RunStatus.FINISHED}) == frozenset({RunStatus.FINISHED})


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ([], "^status filter must name at least one status$"),
        ("done", "^unknown run status 'done'; expected one of queued, running, paused"),
        (["queued", "QUEUED"], "^unknown run status 'QUEUED'"),
        (5, "^status must be a RunStatus or a collection of them, not int$"),
    ],
)
def test_check_statuses_rejects(status: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        v.check_statuses(status)


# -- consume, events, errors -----------------------------------------------------------------


def test_check_consume_keeps_order_and_drops_duplicates() -> None:
    a = InboxRef(InboxKind.SIGNAL, "s1")
    b = InboxRef(InboxKind.TIMER, "step")
    assert v.check_consume([a, b, a]) == (a, b)
    assert v.check_consume(()) == ()


@pytest.mark.parametrize(
    ("consume", "message"),
    [
        ({InboxRef(InboxKind.SIGNAL, "s")}, "^consume must be a sequence of InboxRef, not set$"),
        ([("signal", "s")], "^consume items must be InboxRef, not tuple$"),
        ([InboxRef("signal", "s")], "^InboxRef.kind must be an InboxKind, got 'signal'$"),  # type: ignore[arg-type]
        ([InboxRef(InboxKind.SIGNAL, "")], "^InboxRef.key must not be empty$"),
    ],
)
def test_check_consume_rejects(consume: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        v.check_consume(consume)


def test_check_events_encodes_data_and_keeps_order() -> None:
    out = v.check_events(
        [NewEvent("A", {"x": 1}, "step-1"), NewEvent("B"), NewEvent("C", None)], max_bytes=1024
    )
    assert out == (
        EncodedEvent("A", "step-1", '{"x":1}'),
        EncodedEvent("B", None, None),
        EncodedEvent("C", None, None),
    )
    assert v.check_events([], max_bytes=1024) == ()


def test_check_events_names_the_index_of_the_bad_event() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^events\[1\]\.type must not be empty$"):
        v.check_events([NewEvent("A"), NewEvent("")], max_bytes=1024)
    with pytest.raises(InvalidArgumentError, match=r"^events\[0\]\.step_id must not be empty$"):
        v.check_events([NewEvent("A", None, "")], max_bytes=1024)
    with pytest.raises(InvalidArgumentError, match=r"^events\[1\] must be a NewEvent, not dict$"):
        v.check_events([NewEvent("A"), {"type": "B"}], max_bytes=1024)
    with pytest.raises(InvalidArgumentError, match=r"^events must be a sequence of NewEvent"):
        v.check_events(NewEvent("A"), max_bytes=1024)


def test_check_events_rejects_bad_data_with_a_payload_error_naming_the_event() -> None:
    bad: Any = {"t": (1,)}
    with pytest.raises(PayloadError, match=r"^events\[2\]\.data: ") as exc:
        v.check_events([NewEvent("A"), NewEvent("B"), NewEvent("C", bad)], max_bytes=1024)
    assert exc.value.path == "$.t"


def test_check_events_applies_the_size_limit_to_each_event() -> None:
    data = "x" * 8  # encodes to 10 bytes
    assert v.check_events([NewEvent("A", data), NewEvent("B", data)], max_bytes=10)
    with pytest.raises(PayloadError, match=r"^events\[1\]\.data encodes to 11 bytes"):
        v.check_events([NewEvent("A", data), NewEvent("B", data + "x")], max_bytes=10)


def test_check_error_encodes_and_checks_each_field() -> None:
    text = v.check_error(ErrorInfo("ValueError", "bad", "E1", "tb"), max_bytes=1024)
    assert json.loads(text) == {
        "type": "ValueError",
        "message": "bad",
        "code": "E1",
        "traceback": "tb",
    }
    with pytest.raises(InvalidArgumentError, match=r"^error.type is longer than 255 characters$"):
        v.check_error(ErrorInfo("x" * 256, "m"), max_bytes=1024)
    with pytest.raises(InvalidArgumentError, match=r"^error.code is longer than 255 characters$"):
        v.check_error(ErrorInfo("T", "m", "c" * 256), max_bytes=1024)
    with pytest.raises(InvalidArgumentError, match=r"^error.message must be a str, not NoneType$"):
        v.check_error(ErrorInfo("T", None), max_bytes=1024)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"^error.traceback is not valid Unicode"):
        v.check_error(ErrorInfo("T", "m", "c", "\ud800"), max_bytes=1024)
    with pytest.raises(InvalidArgumentError, match=r"^error must be an ErrorInfo, not str$"):
        v.check_error("boom", max_bytes=1024)


# -- waits and outcomes ----------------------------------------------------------------------


def test_check_wait_signal_keys_on_the_name() -> None:
    wait = Wait.signal("step-1", "approved", timeout_at=5, meta={"m": [1]})
    out = v.check_wait(wait, max_bytes=1024)
    assert (out.kind, out.step_id, out.key, out.wake_at, out.meta) == (
        WaitKind.SIGNAL,
        "step-1",
        "approved",
        5,
        '{"m":[1]}',
    )
    assert out.wait is wait


def test_check_wait_approval_keys_on_the_approval_id() -> None:
    out = v.check_wait(Wait.approval("step-2", "ap-1"), max_bytes=1024)
    assert (out.kind, out.key, out.wake_at, out.meta) == (WaitKind.APPROVAL, "ap-1", None, None)


def test_check_wait_child_keys_on_the_child_run_id_with_an_optional_timeout() -> None:
    out = v.check_wait(Wait.child("step-4", "parent@c1"), max_bytes=1024)
    assert (out.kind, out.step_id, out.key, out.wake_at) == (
        WaitKind.CHILD,
        "step-4",
        "parent@c1",
        None,
    )
    timed = v.check_wait(Wait.child("step-4", "parent@c1", timeout_at=7), max_bytes=1024)
    assert (timed.key, timed.wake_at) == ("parent@c1", 7)


def test_wait_matches_a_child_entry_only_on_a_child_wait_naming_that_child() -> None:
    def entry(kind: InboxKind, key: str) -> InboxEntry:
        return InboxEntry("p", kind, key, None, None, None, None, 0, False)

    wait = Wait.child("s", "p@c1", timeout_at=5)
    assert wait.matches(entry(InboxKind.CHILD, "p@c1"))
    assert not wait.matches(entry(InboxKind.CHILD, "p@c2"))
    assert wait.matches(entry(InboxKind.TIMER, "s"))  # its timeout
    assert not wait.matches(entry(InboxKind.DEADLINE, "deadline"))
    # A signal wait whose name happens to be that id is no child wait.
    assert not Wait.signal("s", "p@c1").matches(entry(InboxKind.CHILD, "p@c1"))
    assert not Wait.approval("s", "p@c1").matches(entry(InboxKind.CHILD, "p@c1"))


def test_check_wait_sleep_has_no_key_and_needs_wake_at() -> None:
    out = v.check_wait(Wait.sleep("step-3", 0), max_bytes=1024)
    assert (out.kind, out.key, out.wake_at) == (WaitKind.SLEEP, None, 0)
    with pytest.raises(InvalidArgumentError, match=r"^a sleep wait needs wake_at$"):
        v.check_wait(Wait(WaitKind.SLEEP, "step-3"), max_bytes=1024)


@pytest.mark.parametrize(
    ("wait", "message"),
    [
        (Wait(WaitKind.SIGNAL, "s"), "^wait.name must be a str, not NoneType$"),
        (Wait(WaitKind.SIGNAL, "s", name="n", approval_id="a"), "^a signal wait takes name"),
        (Wait(WaitKind.APPROVAL, "s"), "^wait.approval_id must be a str, not NoneType$"),
        (Wait(WaitKind.APPROVAL, "s", name="n", approval_id="a"), "^an approval wait takes"),
        (Wait(WaitKind.SLEEP, "s", name="n", wake_at=1), "^a sleep wait takes neither"),
        (Wait(WaitKind.CHILD, "s"), "^wait.name must be a str, not NoneType$"),
        (Wait.child("s", ""), "^wait.name must not be empty$"),
        (Wait(WaitKind.CHILD, "s", name="c", approval_id="a"), "^a child wait takes name"),
        (Wait(WaitKind.SLEEP, "s", approval_id="a", wake_at=1), "^a sleep wait takes neither"),
        (Wait.sleep("", 1), "^wait.step_id must not be empty$"),
        (Wait.sleep("s", -1), "^wait.wake_at must be between 0 and"),
        (Wait.signal("s", "n", timeout_at=MAX_MS + 1), "^wait.wake_at must be between 0 and"),
        (Wait("signal", "s", name="n"), "^wait.kind must be a WaitKind, got 'signal'$"),  # type: ignore[arg-type]
    ],
)
def test_check_wait_rejects(wait: Wait, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        v.check_wait(wait, max_bytes=1024)


def test_check_wait_rejects_bad_meta_as_payload_error() -> None:
    bad: Any = {"x": {1, 2}}
    with pytest.raises(PayloadError, match=r"^wait.meta: ") as exc:
        v.check_wait(Wait.signal("s", "n", meta=bad), max_bytes=1024)
    assert exc.value.path == "$.x"
    with pytest.raises(InvalidArgumentError, match=r"^wait must be a Wait, not NoneType$"):
        v.check_wait(None, max_bytes=1024)


def test_check_outcome_maps_each_outcome_to_its_status() -> None:
    assert v.check_outcome(Yield(), max_bytes=1024) == EncodedOutcome(RunStatus.QUEUED)
    paused = v.check_outcome(Pause(Wait.sleep("s", 9)), max_bytes=1024)
    assert paused.status is RunStatus.PAUSED
    assert paused.wait is not None
    assert paused.wait.wake_at == 9
    assert v.check_outcome(Finish({"r": 1}), max_bytes=1024) == EncodedOutcome(
        RunStatus.FINISHED, output='{"r":1}'
    )
    # A finished run with output None stores no output at all.
    assert v.check_outcome(Finish(None), max_bytes=1024) == EncodedOutcome(RunStatus.FINISHED)
    failed = v.check_outcome(Fail(ErrorInfo("E", "m")), max_bytes=1024)
    assert failed.status is RunStatus.ERRORED
    assert failed.error is not None
    assert json.loads(failed.error)["type"] == "E"


def test_check_outcome_rejects_other_values_and_bad_output() -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"^outcome must be Yield, Pause, Finish or Fail"
    ):
        v.check_outcome("finish", max_bytes=1024)
    with pytest.raises(PayloadError, match=r"^output encodes to"):
        v.check_outcome(Finish("x" * 100), max_bytes=50)


# -- schedules ----------------------------------------------------------------------------


def test_check_overlap_accepts_members_and_values() -> None:
    assert v.check_overlap("skip") is Overlap.SKIP
    assert v.check_overlap(Overlap.BUFFER_ONE) is Overlap.BUFFER_ONE
    with pytest.raises(
        InvalidArgumentError,
        match=r"^unknown overlap policy 'queue'; expected one of skip, allow, buffer_one$",
    ):
        v.check_overlap("queue")


def test_check_spec_delegates_to_the_schedule_rules() -> None:
    spec = CronSpec("0 9 * * *", "Europe/Berlin")
    assert v.check_spec(spec) is spec
    with pytest.raises(InvalidArgumentError, match=r"^IntervalSpec.every_ms must be > 0$"):
        v.check_spec(IntervalSpec(0))
