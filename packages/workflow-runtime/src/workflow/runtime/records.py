"""The records every store reads and writes.

All records are frozen, slotted dataclasses. Payload fields hold plain JSON values
(see :mod:`workflow.runtime.codec`); stores hand out freshly decoded values, so
mutating a payload you got back never changes what is stored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypeAlias

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None
"""A JSON value as the contract allows it (see :mod:`workflow.runtime.codec`)."""

JSONLike: TypeAlias = bool | int | float | str | list[Any] | dict[str, Any] | None
"""What a step, or a workflow, may declare it returns: a JSON value at the top.

Below the top the items are not checked: ``list`` and ``dict`` are invariant, so
``list[str]`` or ``dict[str, int]`` (what functions declare) are not ``JSON``, and the
covariant ``Sequence`` and ``Mapping`` would accept tuples and other mappings, which
the codec refuses at run time (it takes exactly ``list`` and ``dict``). A ``TypedDict``
is not accepted: type checkers do not treat it as a ``dict`` (it may be any mapping).
The codec still checks every value when it is recorded."""


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    ERRORED = "errored"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    """Its deadline passed before it ended (``create_run(..., deadline_at=)``)."""

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.FINISHED, RunStatus.ERRORED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)


class WaitKind(enum.StrEnum):
    SIGNAL = "signal"
    APPROVAL = "approval"
    SLEEP = "sleep"
    CHILD = "child"
    """The end of a child run (``Wait.name`` holds the child's run id)."""


class InboxKind(enum.StrEnum):
    SIGNAL = "signal"
    APPROVAL = "approval"
    TIMER = "timer"
    DEADLINE = "deadline"
    """The firing of a run's deadline (key ``"deadline"``); it ends the run."""
    CHILD = "child"
    """The end of a child run (key: the child's run id), written by the operation that
    ended the child."""


class ParentPolicy(enum.StrEnum):
    """What becomes of a child run when its parent is cancelled or times out."""

    CANCEL = "cancel"
    """The child is cancelled with its parent, in the same atomic step (transitively)."""
    ABANDON = "abandon"
    """The child goes on by itself."""


class Overlap(enum.StrEnum):
    """What a schedule does when its previous run is still going."""

    SKIP = "skip"
    ALLOW = "allow"
    BUFFER_ONE = "buffer_one"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    type: str
    message: str
    code: str = "error"
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """The one thing a paused run waits for.

    ``signal`` waits name the signal (``name``), ``approval`` waits name the
    ``approval_id``, ``child`` waits name the child's run id (``name``), ``sleep``
    waits need ``wake_at``. Signal, approval and child waits may also carry
    ``wake_at`` as a timeout: a timer is armed for it either way.
    """

    kind: WaitKind
    step_id: str
    name: str | None = None
    approval_id: str | None = None
    wake_at: int | None = None
    meta: JSON = None

    def matches(self, entry: InboxEntry) -> bool:
        """Whether a stored inbox entry satisfies this wait (the one matching rule).

        A timer entry matches the wait of its step when the wait has a ``wake_at``; a
        signal matches by ``name`` (and by ``step_id`` when the delivery named one); an
        approval matches by ``approval_id``; a child entry matches the ``child`` wait
        naming its key (the child's run id). A deadline entry matches no wait (it ends
        the run instead of waking it).
        """
        if entry.kind is InboxKind.DEADLINE:
            return False
        if entry.kind is InboxKind.CHILD:
            return self.kind is WaitKind.CHILD and entry.key == self.name
        if entry.kind is InboxKind.TIMER:
            return self.wake_at is not None and entry.key == self.step_id
        if entry.kind is InboxKind.SIGNAL:
            return (
                self.kind is WaitKind.SIGNAL
                and entry.name == self.name
                and (entry.step_id is None or entry.step_id == self.step_id)
            )
        return self.kind is WaitKind.APPROVAL and entry.key == self.approval_id

    @classmethod
    def signal(
        cls, step_id: str, name: str, *, timeout_at: int | None = None, meta: JSON = None
    ) -> Wait:
        return cls(WaitKind.SIGNAL, step_id, name=name, wake_at=timeout_at, meta=meta)

    @classmethod
    def approval(
        cls, step_id: str, approval_id: str, *, timeout_at: int | None = None, meta: JSON = None
    ) -> Wait:
        return cls(
            WaitKind.APPROVAL, step_id, approval_id=approval_id, wake_at=timeout_at, meta=meta
        )

    @classmethod
    def child(
        cls, step_id: str, child_run_id: str, *, timeout_at: int | None = None, meta: JSON = None
    ) -> Wait:
        return cls(WaitKind.CHILD, step_id, name=child_run_id, wake_at=timeout_at, meta=meta)

    @classmethod
    def sleep(cls, step_id: str, wake_at: int, *, meta: JSON = None) -> Wait:
        return cls(WaitKind.SLEEP, step_id, wake_at=wake_at, meta=meta)


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of a claim. ``token`` strictly increases with every claim of the run."""

    owner: str
    token: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    workflow_id: str
    workflow_version: str | None
    status: RunStatus
    input: JSON
    output: JSON
    error: ErrorInfo | None
    wait: Wait | None
    lease: Lease | None
    next_event_index: int
    created_at: int
    updated_at: int
    ready_at: int | None
    deadline_at: int | None = None
    """When the run times out unless it ended before (``create_run(..., deadline_at=)``);
    kept after it ended."""
    queue: str = "default"
    """The queue the run belongs to (``docs/semantics.md``, Queues); fixed at creation."""
    priority: int = 0
    """Higher is claimed first; fixed at creation."""
    partition_key: str | None = None
    """The key ``per_key_concurrency`` counts by (e.g. a tenant); fixed at creation."""
    parent_run_id: str | None = None
    """The run this one is a child of (``create_run(..., parent_run_id=)``), else ``None``;
    fixed at creation, kept after the parent is deleted."""
    parent_policy: ParentPolicy | None = None
    """What the parent's cancellation or time-out does to this run; ``None`` without a
    parent."""


DEFAULT_QUEUE = "default"
"""The queue of a run created without ``queue=``."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` claims of a queue's runs in each fixed window of ``period_ms``
    (windows aligned to the epoch: ``[k * period_ms, (k + 1) * period_ms)``)."""

    count: int
    period_ms: int


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue's limits, as ``upsert_queue`` stored them (``None``: unlimited)."""

    name: str
    concurrency: int | None
    per_key_concurrency: int | None
    rate_limit: RateLimit | None
    updated_at: int


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``data`` is any JSON value; stores never interpret it."""

    type: str
    data: JSON = None
    step_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    run_id: str
    index: int
    type: str
    step_id: str | None
    data: JSON
    created_at: int


@dataclass(frozen=True, slots=True)
class InboxRef:
    """Names one inbox entry of a run, for ``consume=``."""

    kind: InboxKind
    key: str


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A stored signal, approval, timer firing, deadline firing or child's end.

    ``key`` is the signal id, the approval id, (for timers) the waiting step id,
    ``"deadline"``, or (for children) the child's run id. Approvals carry
    ``{"approved": bool, "feedback": ...}`` as ``payload``; timers carry
    ``{"wake_at": int}``; deadlines ``{"deadline_at": int}``; children
    ``{"status": str, "output": JSON, "error": {"type", "message", "code"} | None}``.
    """

    run_id: str
    kind: InboxKind
    key: str
    name: str | None
    step_id: str | None
    payload: JSON
    meta: JSON
    received_at: int
    consumed: bool

    @property
    def ref(self) -> InboxRef:
        return InboxRef(self.kind, self.key)


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A cron expression (5 fields, or 6 with seconds first) in an IANA time zone."""

    expression: str
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class IntervalSpec:
    """Ticks at ``anchor_ms + k * every_ms`` for ``k >= 0``: ``anchor_ms`` is the first
    tick (0, the default, aligns ticks to the epoch, e.g. hourly on the hour UTC)."""

    every_ms: int
    anchor_ms: int = 0


ScheduleSpec: TypeAlias = CronSpec | IntervalSpec


@dataclass(frozen=True, slots=True)
class Schedule:
    schedule_id: str
    workflow_id: str
    workflow_version: str | None
    spec: ScheduleSpec
    overlap: Overlap
    input: JSON
    enabled: bool
    next_fire_at: int
    last_fired_at: int | None
    updated_at: int
    last_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Run]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Timeline:
    run: Run
    events: list[StoredEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where the store's schema stands. ``current`` is ``None`` on an empty database."""

    current: str | None
    required: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.required
