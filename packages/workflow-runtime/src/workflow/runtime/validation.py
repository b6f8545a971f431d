"""Argument validation, owned in one place.

Every store calls these before touching its backend, so the same bad input gives
the same :class:`InvalidArgumentError` (or :class:`PayloadError`) on every store,
and nothing is written. Functions return the validated value, already normalised
(and, for payloads, encoded), so a store never re-derives it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from . import codec
from .errors import InvalidArgumentError
from .records import (
    ErrorInfo,
    InboxKind,
    InboxRef,
    Lease,
    NewEvent,
    Overlap,
    RunStatus,
    ScheduleSpec,
    Wait,
    WaitKind,
)
from .results import Fail, Finish, Pause, Yield

MAX_ID_LENGTH = 255
MAX_LIMIT = 1000
MAX_MS = 253_402_300_799_999
"""Largest accepted time or duration in ms: 9999-12-31T23:59:59.999Z. Times stay
inside what ``datetime`` handles (cron ticks) and exact in a double (Redis Lua)."""

MAX_SCHEDULE_ID_LENGTH = MAX_ID_LENGTH - len("@") - len(str(MAX_MS))
"""Schedule ids are shorter, so the run ids they create (``f"{id}@{fire_at}"``) fit."""


def check_id(value: object, what: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    """Identifiers: non-empty ``str`` of at most 255 characters; any Unicode text but
    NUL (which PostgreSQL cannot store in text)."""
    if type(value) is not str:
        raise InvalidArgumentError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{what} must not be empty")
    if len(value) > max_length:
        raise InvalidArgumentError(
            f"{what} is {len(value)} characters long; the limit is {max_length}"
        )
    if "\x00" in value:
        raise InvalidArgumentError(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{what} is not valid Unicode text (lone surrogate)") from None
    return value


def check_schedule_id(value: object) -> str:
    return check_id(value, "schedule_id", max_length=MAX_SCHEDULE_ID_LENGTH)


def check_optional_id(value: object, what: str) -> str | None:
    return None if value is None else check_id(value, what)


def check_int(value: object, what: str, low: int, high: int) -> int:
    """An exact ``int`` (not ``bool``, not a subclass) in ``low..high``, both included;
    ``what`` names it in the error. The other integer checks are made of it, and stores
    check their own integer options with it (pool sizes, timeouts, ``max_payload_bytes``),
    so a bad option fails the same way on every store."""
    if type(value) is not int:
        raise InvalidArgumentError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgumentError(f"{what} must be between {low} and {high}, got {value}")
    return value


def check_now(now: object) -> int:
    """``now``: milliseconds since the Unix epoch, an int >= 0."""
    return check_int(now, "now", 0, MAX_MS)


def check_time(value: object, what: str) -> int:
    return check_int(value, what, 0, MAX_MS)


def check_lease_ms(lease_ms: object) -> int:
    return check_int(lease_ms, "lease_ms", 1, MAX_MS)


def check_limit(limit: object, what: str = "limit") -> int:
    """Page and batch sizes: 1..1000."""
    return check_int(limit, what, 1, MAX_LIMIT)


def check_optional_limit(limit: object) -> int | None:
    return None if limit is None else check_limit(limit)


def check_index(value: object, what: str) -> int:
    return check_int(value, what, 0, MAX_MS)


def check_bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise InvalidArgumentError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def check_lease(lease: object) -> Lease:
    if not isinstance(lease, Lease):
        raise InvalidArgumentError(f"lease must be a Lease, not {type(lease).__name__}")
    check_id(lease.owner, "lease.owner")
    check_int(lease.token, "lease.token", 1, 2**63 - 1)
    check_time(lease.expires_at, "lease.expires_at")
    return lease


def check_text(value: object, what: str, *, max_length: int = 64 * 1024) -> str:
    if type(value) is not str:
        raise InvalidArgumentError(f"{what} must be a str, not {type(value).__name__}")
    if len(value) > max_length:
        raise InvalidArgumentError(f"{what} is longer than {max_length} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{what} is not valid Unicode text (lone surrogate)") from None
    return value


def check_statuses(status: object) -> frozenset[RunStatus] | None:
    """A status filter: ``None``, one :class:`RunStatus` (or its value), or a collection."""
    if status is None:
        return None
    items: Collection[object]
    if isinstance(status, (RunStatus, str)):
        items = (status,)
    elif isinstance(status, Collection):
        items = status
    else:
        raise InvalidArgumentError(
            f"status must be a RunStatus or a collection of them, not {type(status).__name__}"
        )
    out: set[RunStatus] = set()
    for item in items:
        try:
            out.add(RunStatus(item))  # type: ignore[arg-type]  # validated by the enum
        except ValueError:
            raise InvalidArgumentError(
                f"unknown run status {item!r}; expected one of "
                + ", ".join(s.value for s in RunStatus)
            ) from None
    if not out:
        raise InvalidArgumentError("status filter must name at least one status")
    return frozenset(out)


def check_consume(consume: object) -> tuple[InboxRef, ...]:
    if not isinstance(consume, (tuple, list)):
        raise InvalidArgumentError(
            f"consume must be a sequence of InboxRef, not {type(consume).__name__}"
        )
    refs: list[InboxRef] = []
    for ref in consume:
        if not isinstance(ref, InboxRef):
            raise InvalidArgumentError(f"consume items must be InboxRef, not {type(ref).__name__}")
        if not isinstance(ref.kind, InboxKind):
            raise InvalidArgumentError(f"InboxRef.kind must be an InboxKind, got {ref.kind!r}")
        check_id(ref.key, "InboxRef.key")
        if ref not in refs:
            refs.append(ref)
    return tuple(refs)


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    type: str
    step_id: str | None
    data: str | None


def check_events(events: object, *, max_bytes: int) -> tuple[EncodedEvent, ...]:
    if not isinstance(events, (tuple, list)):
        raise InvalidArgumentError(
            f"events must be a sequence of NewEvent, not {type(events).__name__}"
        )
    out: list[EncodedEvent] = []
    for i, event in enumerate(events):
        if not isinstance(event, NewEvent):
            raise InvalidArgumentError(
                f"events[{i}] must be a NewEvent, not {type(event).__name__}"
            )
        out.append(
            EncodedEvent(
                check_id(event.type, f"events[{i}].type"),
                check_optional_id(event.step_id, f"events[{i}].step_id"),
                codec.encode_optional(event.data, max_bytes=max_bytes, what=f"events[{i}].data"),
            )
        )
    return tuple(out)


def check_error(error: object, *, max_bytes: int) -> str:
    if not isinstance(error, ErrorInfo):
        raise InvalidArgumentError(f"error must be an ErrorInfo, not {type(error).__name__}")
    check_text(error.type, "error.type", max_length=MAX_ID_LENGTH)
    check_text(error.message, "error.message", max_length=max_bytes)
    check_text(error.code, "error.code", max_length=MAX_ID_LENGTH)
    if error.traceback is not None:
        check_text(error.traceback, "error.traceback", max_length=max_bytes)
    return codec.encode_error(error, max_bytes=max_bytes)


@dataclass(frozen=True, slots=True)
class EncodedWait:
    kind: WaitKind
    step_id: str
    key: str | None
    """The signal name, the approval id or the child's run id (``None`` for sleeps)."""
    wake_at: int | None
    meta: str | None
    wait: Wait


def check_wait(wait: object, *, max_bytes: int) -> EncodedWait:
    if not isinstance(wait, Wait):
        raise InvalidArgumentError(f"wait must be a Wait, not {type(wait).__name__}")
    if not isinstance(wait.kind, WaitKind):
        raise InvalidArgumentError(f"wait.kind must be a WaitKind, got {wait.kind!r}")
    step_id = check_id(wait.step_id, "wait.step_id")
    wake_at = None if wait.wake_at is None else check_time(wait.wake_at, "wait.wake_at")
    key: str | None
    if wait.kind is WaitKind.SIGNAL:
        key = check_id(wait.name, "wait.name")
        if wait.approval_id is not None:
            raise InvalidArgumentError("a signal wait takes name, not approval_id")
    elif wait.kind is WaitKind.APPROVAL:
        key = check_id(wait.approval_id, "wait.approval_id")
        if wait.name is not None:
            raise InvalidArgumentError("an approval wait takes approval_id, not name")
    elif wait.kind is WaitKind.CHILD:
        key = check_id(wait.name, "wait.name")
        if wait.approval_id is not None:
            raise InvalidArgumentError(
                "a child wait takes name (the child run id), not approval_id"
            )
    else:
        if wake_at is None:
            raise InvalidArgumentError("a sleep wait needs wake_at")
        if wait.name is not None or wait.approval_id is not None:
            raise InvalidArgumentError("a sleep wait takes neither name nor approval_id")
        key = None
    meta = codec.encode_optional(wait.meta, max_bytes=max_bytes, what="wait.meta")
    return EncodedWait(wait.kind, step_id, key, wake_at, meta, wait)


@dataclass(frozen=True, slots=True)
class EncodedOutcome:
    status: RunStatus
    """The status the outcome asks for (``paused`` may still become ``queued``)."""
    output: str | None = None
    error: str | None = None
    wait: EncodedWait | None = None


def check_outcome(outcome: object, *, max_bytes: int) -> EncodedOutcome:
    if isinstance(outcome, Yield):
        return EncodedOutcome(RunStatus.QUEUED)
    if isinstance(outcome, Pause):
        return EncodedOutcome(RunStatus.PAUSED, wait=check_wait(outcome.wait, max_bytes=max_bytes))
    if isinstance(outcome, Finish):
        return EncodedOutcome(
            RunStatus.FINISHED,
            output=codec.encode_optional(outcome.output, max_bytes=max_bytes, what="output"),
        )
    if isinstance(outcome, Fail):
        return EncodedOutcome(
            RunStatus.ERRORED, error=check_error(outcome.error, max_bytes=max_bytes)
        )
    raise InvalidArgumentError(
        f"outcome must be Yield, Pause, Finish or Fail, not {type(outcome).__name__}"
    )


def check_overlap(overlap: object) -> Overlap:
    try:
        return Overlap(overlap)  # type: ignore[arg-type]  # validated by the enum
    except ValueError:
        raise InvalidArgumentError(
            f"unknown overlap policy {overlap!r}; expected one of "
            + ", ".join(o.value for o in Overlap)
        ) from None


def check_spec(spec: object) -> ScheduleSpec:
    # Imported here: schedules imports this module for check_time.
    from .schedules import validate_spec

    return validate_spec(spec)
