"""The checked and encoded arguments of the store operations, one function each.

Every store calls these first, so each operation rejects bad input with the same
error, naming the same argument, before anything is written; and every store works
on the same encoded payload text. Single-argument checks live in
:mod:`workflow.runtime.validation`; the order of the checks here is part of the
contract (the first bad argument is the one named).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from . import codec, validation
from .errors import InvalidArgumentError
from .queues import DEFAULT_PLACEMENT, Placement, check_queues, placement
from .records import (
    DEFAULT_QUEUE,
    JSON,
    ErrorInfo,
    InboxKind,
    InboxRef,
    Lease,
    Overlap,
    ParentPolicy,
    ScheduleSpec,
)
from .validation import EncodedEvent, EncodedOutcome


@dataclass(frozen=True, slots=True)
class NewRun:
    run_id: str
    workflow_id: str
    workflow_version: str | None
    input: str | None
    now: int
    owner: str | None = None
    """Claim the new run for this owner (with ``expires_at``), or leave it queued."""
    expires_at: int | None = None
    deadline_at: int | None = None
    """When the run times out (``None``: never)."""
    placement: Placement = DEFAULT_PLACEMENT
    parent_run_id: str | None = None
    """The parent of a child run (``None``: no parent)."""
    parent_policy: ParentPolicy | None = None
    """The child's policy, ``None`` exactly when ``parent_run_id`` is."""


def new_run(
    run_id: object,
    workflow_id: object,
    workflow_version: object,
    input: JSON,
    now: object,
    *,
    max_bytes: int,
    owner: object = None,
    lease_ms: object = None,
    deadline_at: object = None,
    deadlines: bool = True,
    queue: object = DEFAULT_QUEUE,
    priority: object = 0,
    partition_key: object = None,
    parent_run_id: object = None,
    parent_policy: object = ParentPolicy.CANCEL,
    children: bool = True,
) -> NewRun:
    """``deadlines=False``: the store does not declare ``DEADLINES`` and refuses one;
    ``children=False``: it does not declare ``CHILDREN`` and refuses a parent."""
    checked = NewRun(
        validation.check_id(run_id, "run_id"),
        validation.check_id(workflow_id, "workflow_id"),
        validation.check_optional_id(workflow_version, "workflow_version"),
        codec.encode_optional(input, max_bytes=max_bytes, what="input"),
        validation.check_now(now),
        placement=placement(queue, priority, partition_key),
    )
    checked_deadline = None
    if deadline_at is not None:
        if not deadlines:
            raise InvalidArgumentError(
                "deadline_at: this store does not support deadlines (Capability.DEADLINES)"
            )
        checked_deadline = validation.check_time(deadline_at, "deadline_at")
    checked = replace(
        checked,
        deadline_at=checked_deadline,
        **_parent(checked.run_id, parent_run_id, parent_policy, children=children),
    )
    if owner is None and lease_ms is None:
        return checked
    if owner is None or lease_ms is None:
        raise InvalidArgumentError(
            "owner and lease_ms go together: give both to claim the new run, or neither"
        )
    checked_owner = validation.check_id(owner, "owner")
    checked_ms, checked_now = _lease_end(lease_ms, now)
    return replace(
        checked, now=checked_now, owner=checked_owner, expires_at=checked_now + checked_ms
    )


def _parent(
    run_id: str, parent_run_id: object, parent_policy: object, *, children: bool
) -> dict[str, Any]:
    """The checked ``parent_run_id`` and ``parent_policy`` of a new run, as fields."""
    if parent_run_id is None:
        if not isinstance(parent_policy, ParentPolicy):
            raise InvalidArgumentError("parent_policy must be a ParentPolicy")
        return {}
    if not children:
        raise InvalidArgumentError(
            "parent_run_id: this store does not support child runs (Capability.CHILDREN)"
        )
    parent = validation.check_id(parent_run_id, "parent_run_id")
    if parent == run_id:
        raise InvalidArgumentError("parent_run_id: a run cannot be its own parent")
    if not isinstance(parent_policy, ParentPolicy):
        raise InvalidArgumentError("parent_policy must be a ParentPolicy")
    return {"parent_run_id": parent, "parent_policy": parent_policy}


def children_listing(parent_run_id: object, *, children: bool) -> str | None:
    """The checked ``list_runs(parent_run_id=)``; ``children=False``: the store does not
    declare ``CHILDREN`` and refuses one."""
    if parent_run_id is None:
        return None
    if not children:
        raise InvalidArgumentError(
            "parent_run_id: this store does not support child runs (Capability.CHILDREN)"
        )
    return validation.check_id(parent_run_id, "parent_run_id")


PARENT_ENDED_TYPE = "ParentEnded"
"""The ``ErrorInfo.type`` of a child cancelled because its parent was cancelled or
timed out (code ``cancelled``; the message names the parent and how it ended)."""


def parent_ended_error(parent_run_id: str, parent_status: str) -> ErrorInfo:
    """The error a ``cancel``-policy child ends with when its parent ends
    ``cancelled`` or ``timed_out``."""
    return ErrorInfo(
        PARENT_ENDED_TYPE, f"parent run {parent_run_id} ended {parent_status}", "cancelled"
    )


def child_payload(status: str, output: JSON, error: ErrorInfo | None) -> dict[str, JSON]:
    """The payload of a ``child`` inbox entry: how the child ended."""
    return {
        "status": status,
        "output": output,
        "error": None
        if error is None
        else {"type": error.type, "message": error.message, "code": error.code},
    }


DEADLINE_KEY = "deadline"
"""The key of a deadline firing's inbox entry (one per run)."""

TIMED_OUT_ERROR = ErrorInfo("DeadlineExceeded", "the run's deadline passed", "timed_out")
"""The error of a run its deadline ended."""


def deadline_payload(deadline_at: int) -> str:
    """The encoded payload of a deadline firing: ``{"deadline_at": deadline_at}``."""
    return codec.encode({"deadline_at": deadline_at})


@dataclass(frozen=True, slots=True)
class Cancellation:
    run_id: str
    error: str
    """The encoded ``ErrorInfo("Cancelled", reason, "cancelled")`` the run ends with."""
    now: int


def cancellation(run_id: object, reason: object, now: object, *, max_bytes: int) -> Cancellation:
    run_id = validation.check_id(run_id, "run_id")
    error = validation.check_error(
        ErrorInfo("Cancelled", validation.check_text(reason, "reason"), "cancelled"),
        max_bytes=max_bytes,
    )
    return Cancellation(run_id, error, validation.check_now(now))


@dataclass(frozen=True, slots=True)
class Claim:
    run_id: str
    owner: str
    lease_ms: int
    now: int
    with_history: bool


def _lease_end(lease_ms: object, now: object) -> tuple[int, int]:
    """``lease_ms`` and ``now``, checked, and checked together: the lease they make
    (``now + lease_ms``) must end by ``MAX_MS``, or the store would hand out a lease
    that every write fenced by it then refuses."""
    checked_ms, checked_now = validation.check_lease_ms(lease_ms), validation.check_now(now)
    if checked_now + checked_ms > validation.MAX_MS:
        raise InvalidArgumentError(
            f"now + lease_ms must be at most {validation.MAX_MS} (the lease's expires_at); "
            f"got {checked_now} + {checked_ms}"
        )
    return checked_ms, checked_now


def claim(
    run_id: object, owner: object, lease_ms: object, now: object, with_history: object
) -> Claim:
    checked_id = validation.check_id(run_id, "run_id")
    checked_owner = validation.check_id(owner, "owner")
    checked_ms, checked_now = _lease_end(lease_ms, now)
    history = validation.check_bool(with_history, "with_history")
    return Claim(checked_id, checked_owner, checked_ms, checked_now, history)


@dataclass(frozen=True, slots=True)
class ClaimMany:
    owner: str
    lease_ms: int
    limit: int
    now: int
    with_history: bool
    queues: frozenset[str] | None = None
    """Only runs of these queues (``None``: every queue)."""


def claim_many(
    owner: object,
    lease_ms: object,
    limit: object,
    now: object,
    with_history: object,
    queues: object = None,
) -> ClaimMany:
    checked_owner = validation.check_id(owner, "owner")
    checked_ms, checked_now = _lease_end(lease_ms, now)
    return ClaimMany(
        checked_owner,
        checked_ms,
        validation.check_limit(limit),
        checked_now,
        validation.check_bool(with_history, "with_history"),
        check_queues(queues),
    )


@dataclass(frozen=True, slots=True)
class Renewal:
    run_id: str
    lease: Lease
    lease_ms: int
    now: int


def renewal(run_id: object, lease: object, lease_ms: object, now: object) -> Renewal:
    checked_id, checked_lease = validation.check_id(run_id, "run_id"), validation.check_lease(lease)
    checked_ms, checked_now = _lease_end(lease_ms, now)
    return Renewal(checked_id, checked_lease, checked_ms, checked_now)


@dataclass(frozen=True, slots=True)
class LogWrite:
    """``append_events`` and the log part of ``settle_run``."""

    run_id: str
    lease: Lease
    expected: int
    events: tuple[EncodedEvent, ...]
    now: int
    consume: tuple[InboxRef, ...]

    @property
    def next_index(self) -> int:
        return self.expected + len(self.events)


def log_write(
    run_id: object,
    lease: object,
    expected_next_index: object,
    events: object,
    now: object,
    consume: object,
    *,
    max_bytes: int,
) -> LogWrite:
    return LogWrite(
        validation.check_id(run_id, "run_id"),
        validation.check_lease(lease),
        validation.check_index(expected_next_index, "expected_next_index"),
        validation.check_events(events, max_bytes=max_bytes),
        validation.check_now(now),
        validation.check_consume(consume),
    )


@dataclass(frozen=True, slots=True)
class Settlement:
    log: LogWrite
    outcome: EncodedOutcome


def settlement(
    run_id: object,
    lease: object,
    expected_next_index: object,
    events: object,
    outcome: object,
    now: object,
    consume: object,
    *,
    max_bytes: int,
) -> Settlement:
    run_id = validation.check_id(run_id, "run_id")
    lease = validation.check_lease(lease)
    expected = validation.check_index(expected_next_index, "expected_next_index")
    encoded = validation.check_events(events, max_bytes=max_bytes)
    result = validation.check_outcome(outcome, max_bytes=max_bytes)
    now = validation.check_now(now)
    refs = validation.check_consume(consume)
    return Settlement(LogWrite(run_id, lease, expected, encoded, now, refs), result)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A signal or approval about to be stored in a run's inbox."""

    run_id: str
    kind: InboxKind
    key: str
    name: str | None
    step_id: str | None
    payload: str | None
    meta: str | None
    now: int

    def entry_values(self) -> dict[str, Any]:
        """The inbox columns of the entry (``received_at`` is ``now``)."""
        return {
            "key": self.key,
            "name": self.name,
            "step_id": self.step_id,
            "payload": self.payload,
            "meta": self.meta,
            "received_at": self.now,
        }


def signal(
    run_id: object,
    signal_id: object,
    name: object,
    payload: JSON,
    now: object,
    step_id: object,
    meta: JSON,
    *,
    max_bytes: int,
) -> Delivery:
    run_id = validation.check_id(run_id, "run_id")
    signal_id = validation.check_id(signal_id, "signal_id")
    name = validation.check_id(name, "name")
    body = codec.encode_optional(payload, max_bytes=max_bytes, what="payload")
    now = validation.check_now(now)
    step_id = validation.check_optional_id(step_id, "step_id")
    meta_text = codec.encode_optional(meta, max_bytes=max_bytes, what="meta")
    return Delivery(run_id, InboxKind.SIGNAL, signal_id, name, step_id, body, meta_text, now)


def approval(
    run_id: object,
    approval_id: object,
    approved: object,
    now: object,
    feedback: JSON,
    meta: JSON,
    *,
    max_bytes: int,
) -> Delivery:
    run_id = validation.check_id(run_id, "run_id")
    approval_id = validation.check_id(approval_id, "approval_id")
    approved = validation.check_bool(approved, "approved")
    body = codec.encode(
        {"approved": approved, "feedback": feedback}, max_bytes=max_bytes, what="feedback"
    )
    now = validation.check_now(now)
    meta_text = codec.encode_optional(meta, max_bytes=max_bytes, what="meta")
    return Delivery(run_id, InboxKind.APPROVAL, approval_id, None, None, body, meta_text, now)


@dataclass(frozen=True, slots=True)
class ScheduleDeclaration:
    schedule_id: str
    workflow_id: str
    spec: ScheduleSpec
    now: int
    workflow_version: str | None
    overlap: Overlap
    input: str | None
    enabled: bool


def schedule_declaration(
    schedule_id: object,
    workflow_id: object,
    spec: object,
    now: object,
    workflow_version: object,
    overlap: object,
    input: JSON,
    enabled: object,
    *,
    max_bytes: int,
) -> ScheduleDeclaration:
    return ScheduleDeclaration(
        validation.check_schedule_id(schedule_id),
        validation.check_id(workflow_id, "workflow_id"),
        validation.check_spec(spec),
        validation.check_now(now),
        validation.check_optional_id(workflow_version, "workflow_version"),
        validation.check_overlap(overlap),
        codec.encode_optional(input, max_bytes=max_bytes, what="input"),
        validation.check_bool(enabled, "enabled"),
    )
