"""The engine's event log format: the event types it writes, and how a recorded log
reads back as the sequence of context operations a replay must meet again.

Every context operation (a step, a sleep, a signal or approval wait, ``now()``,
``uuid()``) writes events under its own ``step_id``; an operation's events are
contiguous and operations follow each other in the order the workflow code ran them.
Run-level events (a failed attempt of the run, its end) carry no operation and are
skipped by replay.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from .records import JSON, ErrorInfo, StoredEvent


class OpKind(enum.StrEnum):
    STEP = "step"
    SLEEP = "sleep"
    SIGNAL = "signal"
    APPROVAL = "approval"
    NOW = "now"
    UUID = "uuid"
    CHILD = "child"
    """``ctx.start_child``: the child's creation."""
    CHILD_WAIT = "child_wait"
    """``ctx.child_result``: a wait for a child's end."""


class EventType:
    """The event types the engine writes (plain ``str`` constants: stores take exact
    ``str`` types)."""

    STEP_COMPLETED: Final = "STEP_COMPLETED"
    """``{"result": R, "attempt": n}``"""
    STEP_ATTEMPT_FAILED: Final = "STEP_ATTEMPT_FAILED"
    """``{"attempt": n, "error": {...}, "retry_at": ms}``: retried at ``retry_at``."""
    STEP_FAILED: Final = "STEP_FAILED"
    """``{"attempt": n, "error": {...}}``: final."""
    SLEEP_STARTED: Final = "SLEEP_STARTED"
    """``{"wake_at": ms}``"""
    SLEEP_COMPLETED: Final = "SLEEP_COMPLETED"
    SIGNAL_WAITING: Final = "SIGNAL_WAITING"
    """``{"name": str, "timeout_at": ms | None}``"""
    SIGNAL_RECEIVED: Final = "SIGNAL_RECEIVED"
    """``{"name": str, "signal_id": str, "payload": P}``"""
    SIGNAL_TIMED_OUT: Final = "SIGNAL_TIMED_OUT"
    APPROVAL_REQUESTED: Final = "APPROVAL_REQUESTED"
    """``{"approval_id": str, "title": str, "description": str | None, "timeout_at": ...}``"""
    APPROVAL_DECIDED: Final = "APPROVAL_DECIDED"
    """``{"approval_id": str, "approved": bool, "feedback": F}``"""
    APPROVAL_TIMED_OUT: Final = "APPROVAL_TIMED_OUT"
    NOW_RECORDED: Final = "NOW_RECORDED"
    """``{"now": ms}``"""
    UUID_RECORDED: Final = "UUID_RECORDED"
    """``{"uuid": str}``"""
    CHILD_STARTED: Final = "CHILD_STARTED"
    """``{"child_run_id": str, "workflow_id": str}``: the child run exists (created
    before this record is written; a replay after a crash in between creates nothing)."""
    CHILD_WAITING: Final = "CHILD_WAITING"
    """``{"child_run_id": str, "timeout_at": ms | None}``, under the wait's own step id
    (:func:`child_wait_step_id`)."""
    CHILD_FINISHED: Final = "CHILD_FINISHED"
    """The child finished; the data is its output, as it is. Taken from the ``child``
    entry of the parent's inbox, which it consumes."""
    CHILD_FAILED: Final = "CHILD_FAILED"
    """``{"status": str, "error": {"type", "message", "code"} | None}``: the child ended
    ``errored``, ``cancelled`` or ``timed_out`` (from its ``child`` entry, consumed)."""
    CHILD_WAIT_TIMED_OUT: Final = "CHILD_WAIT_TIMED_OUT"
    """``{"child_run_id": str}``: the wait's timeout came first (the child runs on)."""
    PATCH_APPLIED: Final = "PATCH_APPLIED"
    """``{"patch_id": str}``: the run took the patched path of ``ctx.patched(patch_id)``.
    Not an operation of the replay: its position does not matter, only that it is there."""
    RUN_ATTEMPT_FAILED: Final = "RUN_ATTEMPT_FAILED"
    """Run level: ``{"attempt": n, "error": {...}, "retry_at": ms}``."""
    RUN_FINISHED: Final = "RUN_FINISHED"
    RUN_FAILED: Final = "RUN_FAILED"
    """Run level: ``{"error": {...}}``."""
    TRACE_CONTEXT: Final = "TRACE_CONTEXT"
    """Run level, the run's first event when ``start()`` ran inside a recorded span: the
    propagator's carrier (``{"traceparent": str, ...}``), so that the worker driving the
    run, in any process, continues that trace (:mod:`workflow.runtime.telemetry`)."""


KIND_OF: dict[str, OpKind] = {
    EventType.STEP_COMPLETED: OpKind.STEP,
    EventType.STEP_ATTEMPT_FAILED: OpKind.STEP,
    EventType.STEP_FAILED: OpKind.STEP,
    EventType.SLEEP_STARTED: OpKind.SLEEP,
    EventType.SLEEP_COMPLETED: OpKind.SLEEP,
    EventType.SIGNAL_WAITING: OpKind.SIGNAL,
    EventType.SIGNAL_RECEIVED: OpKind.SIGNAL,
    EventType.SIGNAL_TIMED_OUT: OpKind.SIGNAL,
    EventType.APPROVAL_REQUESTED: OpKind.APPROVAL,
    EventType.APPROVAL_DECIDED: OpKind.APPROVAL,
    EventType.APPROVAL_TIMED_OUT: OpKind.APPROVAL,
    EventType.NOW_RECORDED: OpKind.NOW,
    EventType.UUID_RECORDED: OpKind.UUID,
    EventType.CHILD_STARTED: OpKind.CHILD,
    EventType.CHILD_WAITING: OpKind.CHILD_WAIT,
    EventType.CHILD_FINISHED: OpKind.CHILD_WAIT,
    EventType.CHILD_FAILED: OpKind.CHILD_WAIT,
    EventType.CHILD_WAIT_TIMED_OUT: OpKind.CHILD_WAIT,
}

RESERVED_PREFIX = "$"
"""Step ids the engine keeps for itself (``$now#1``, ``$retry``); user ids may not
start with it."""

PATCH_STEP_PREFIX = f"{RESERVED_PREFIX}patch:"
"""The step id of a ``PATCH_APPLIED`` event is this followed by the patch id."""

CHILD_WAIT_STEP_PREFIX = f"{RESERVED_PREFIX}child:"
"""A wait for a child's end has its own step id (:func:`child_wait_step_id`): the
step that started the child may be waited for more than once (after a timeout)."""
MAX_CHILD_WAITS_DIGITS = 6
"""Room an id leaves for the number of a wait on one child."""


def child_wait_step_id(start_step_id: str, n: int) -> str:
    """The step id of the ``n``-th wait (from 1) for the child started by step
    ``start_step_id``."""
    return f"{CHILD_WAIT_STEP_PREFIX}{start_step_id}#{n}"


RUN_RETRY_STEP = "$retry"
"""The step id of the sleep a run waits on between failed attempts."""


@dataclass(slots=True)
class RecordedOp:
    """One operation as the log recorded it."""

    kind: OpKind
    step_id: str
    position: int
    events: list[StoredEvent] = field(default_factory=list)

    def last(self, *types: str) -> StoredEvent | None:
        for event in reversed(self.events):
            if event.type in types:
                return event
        return None

    def count(self, type: str) -> int:
        return sum(1 for e in self.events if e.type == type)


@dataclass(slots=True)
class History:
    """A run's log, read back: its operations in order, and its failed run attempts
    since the last progress."""

    ops: list[RecordedOp]
    run_attempts_failed: int
    """Failed attempts since the last event of any other kind: a run that makes
    progress between failures is not given up on for failures it got past."""
    patches: frozenset[str] = frozenset()
    """The patch ids the run took the patched path of (``PATCH_APPLIED``)."""

    @classmethod
    def read(cls, events: list[StoredEvent]) -> History:
        ops: list[RecordedOp] = []
        by_id: dict[str, RecordedOp] = {}
        run_attempts = 0
        patches: set[str] = set()
        for event in events:
            if event.type == EventType.PATCH_APPLIED:
                patch_id = field_of(event, "patch_id")
                if isinstance(patch_id, str):
                    patches.add(patch_id)
            if event.type == EventType.RUN_ATTEMPT_FAILED:
                run_attempts += 1
            else:
                run_attempts = 0  # progress: only consecutive failures count
            kind = KIND_OF.get(event.type)
            if kind is None or event.step_id is None:
                continue  # run-level or foreign events: not part of the replay
            op = by_id.get(event.step_id)
            if op is None:
                op = RecordedOp(kind, event.step_id, len(ops))
                by_id[event.step_id] = op
                ops.append(op)
            op.events.append(event)
        return cls(ops, run_attempts, frozenset(patches))


def error_data(error: ErrorInfo) -> dict[str, JSON]:
    body: dict[str, JSON] = {"type": error.type, "message": error.message, "code": error.code}
    if error.traceback is not None:
        body["traceback"] = error.traceback
    return body


def error_from(data: JSON) -> ErrorInfo:
    if not isinstance(data, dict):
        return ErrorInfo("UnknownError", repr(data))
    tb = data.get("traceback")
    return ErrorInfo(
        str(data.get("type", "UnknownError")),
        str(data.get("message", "")),
        str(data.get("code", "error")),
        tb if isinstance(tb, str) else None,
    )


def field_of(event: StoredEvent | None, key: str) -> JSON:
    """``event.data[key]``, or ``None`` (events written by this module are dicts)."""
    if event is None or not isinstance(event.data, dict):
        return None
    return event.data.get(key)
