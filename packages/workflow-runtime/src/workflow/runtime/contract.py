"""The execution-store contract as a typed Protocol.

``docs/semantics.md`` is normative; this module is its Python spelling. Every operation is
one atomic state transition, also under concurrent callers on many connections and
machines. Time is always the caller's ``now`` (ms since the Unix epoch): stores never
read a clock.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Protocol, runtime_checkable

from .records import (
    JSON,
    InboxEntry,
    InboxRef,
    Lease,
    NewEvent,
    Overlap,
    Page,
    ParentPolicy,
    Queue,
    RateLimit,
    Run,
    RunStatus,
    Schedule,
    ScheduleSpec,
    SchemaStatus,
    StoredEvent,
    Timeline,
)
from .results import (
    CancelResult,
    Claimed,
    ClaimResult,
    CreateResult,
    DeliveryResult,
    Outcome,
    ScheduleTick,
)


class Capability(enum.StrEnum):
    """Optional abilities a store declares (never detected)."""

    SUBSCRIBE_EVENTS = "subscribe_events"
    """``subscribe_events`` yields new events as they are appended."""
    MULTI_PROCESS = "multi_process"
    """Several processes (and machines) may share the data through the store's URL."""
    DURABLE = "durable"
    """Data outlives the process that wrote it."""
    CLAIM_ON_CREATE = "claim_on_create"
    """``create_run(..., owner=, lease_ms=)`` creates the run already claimed, in the
    same atomic step (a process that starts a run and has a free worker slot saves the
    claim's round trip and the wait for a poll)."""
    NOTIFY_RUNNABLE = "notify_runnable"
    """The store is a :class:`~workflow.runtime.wakeups.RunnableNotifier`: its
    ``watch_runnable()`` yields when a run may have become claimable in any process
    sharing the data (a hint: polling stays the guarantee)."""
    DEADLINES = "deadlines"
    """``create_run(..., deadline_at=)`` gives a run a deadline that ``fire_due_timers``
    fires exactly once: the run ends ``timed_out`` (see ``docs/semantics.md``). A store
    without it rejects ``deadline_at`` with ``InvalidArgumentError``."""
    QUEUES = "queues"
    """Runs have a queue, a priority and a partition key, and the store is a
    :class:`QueueStore`: every claim keeps the queue's limits in the same atomic step
    (``docs/semantics.md``, Queues). A store without it refuses a non-default queue,
    priority or partition key."""
    CHILDREN = "children"
    """``create_run(..., parent_run_id=, parent_policy=)`` makes a child run: its end
    writes a ``child`` entry to its parent's inbox in the same atomic step, and a parent
    cancelled or timed out cancels its ``cancel``-policy children in that step
    (``docs/semantics.md``, Children). A store without it refuses ``parent_run_id``
    with ``InvalidArgumentError``."""


@runtime_checkable
class ExecutionStore(Protocol):
    """What every store does. See ``docs/semantics.md`` for the full semantics."""

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    @property
    def max_payload_bytes(self) -> int:
        """The largest payload (its compact JSON text, in UTF-8 bytes) the store
        accepts; a larger one raises ``PayloadError`` before anything is written. The
        runtime cuts what it records (errors, step results) to fit it."""
        ...

    # -- run lifecycle -------------------------------------------------------------
    async def create_run(
        self,
        run_id: str,
        workflow_id: str,
        workflow_version: str | None,
        input: JSON,
        now: int,
        *,
        owner: str | None = None,
        lease_ms: int | None = None,
        deadline_at: int | None = None,
        queue: str = "default",
        priority: int = 0,
        partition_key: str | None = None,
        parent_run_id: str | None = None,
        parent_policy: ParentPolicy = ParentPolicy.CANCEL,
    ) -> CreateResult:
        """Create a ``queued`` run: ``Created`` | ``Existing`` (same workflow; the
        original input is kept) | ``Conflict`` (different workflow).

        With ``deadline_at`` (stores declaring ``DEADLINES``) the new run times out
        then: ``fire_due_timers`` ends it ``timed_out`` unless it ended before.

        With ``owner`` and ``lease_ms`` (stores declaring ``CLAIM_ON_CREATE``), a new
        run is created ``running`` under a lease for ``owner`` (token 1, expiring at
        ``now + lease_ms``), returned in ``Created.lease``; an existing run is left as
        it is (not claimed). A new run whose queue is at a limit is created ``queued``
        and not claimed (``lease`` is ``None``).

        ``queue``, ``priority`` and ``partition_key`` (stores declaring ``QUEUES``;
        the others refuse values other than the defaults) place the run in a queue.

        ``parent_run_id`` (stores declaring ``CHILDREN``) makes the new run a child of
        that existing run, under ``parent_policy``: see ``docs/semantics.md``,
        Children."""
        ...

    async def load_run(self, run_id: str) -> Run | None: ...

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | Collection[RunStatus] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        parent_run_id: str | None = None,
    ) -> Page:
        """Newest first by ``(created_at, run_id)``; ``next_cursor`` is an opaque keyset
        cursor, stable under concurrent inserts; ``None`` on the last page.
        ``parent_run_id`` lists that run's children only (stores declaring
        ``CHILDREN``; the others refuse it)."""
        ...

    async def get_timeline(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> Timeline | None: ...

    async def cancel_run(self, run_id: str, reason: str, now: int) -> CancelResult:
        """Cancel a non-terminal run and revoke its lease (the holder's next write
        raises ``RunCancelledError``)."""
        ...

    async def delete_run(self, run_id: str) -> bool:
        """Remove the run and everything it owns; ``False`` when there was none."""
        ...

    async def purge_runs(self, terminal_before: int, limit: int) -> int:
        """Delete up to ``limit`` terminal runs whose ``updated_at < terminal_before``,
        oldest first; returns how many were deleted."""
        ...

    # -- execution (lease holder) ----------------------------------------------------
    async def claim_run(
        self, run_id: str, owner: str, lease_ms: int, now: int, *, with_history: bool = False
    ) -> ClaimResult:
        """Claim a ``queued`` run, or a ``running`` one whose lease expired
        (``expires_at <= now``)."""
        ...

    async def claim_runnable(
        self,
        owner: str,
        lease_ms: int,
        limit: int,
        now: int,
        *,
        with_history: bool = False,
        queues: Collection[str] | None = None,
    ) -> list[Claimed]:
        """Claim up to ``limit`` claimable runs, highest priority then oldest
        ``ready_at`` first, within their queues' limits; concurrent callers never get
        the same run. ``queues`` restricts the claim to runs of those queues."""
        ...

    async def heartbeat(self, run_id: str, lease: Lease, lease_ms: int, now: int) -> Lease:
        """Extend the lease to ``now + lease_ms`` or raise ``LeaseLostError``."""
        ...

    async def append_events(
        self,
        run_id: str,
        lease: Lease,
        expected_next_index: int,
        events: Sequence[NewEvent],
        now: int,
        *,
        consume: Sequence[InboxRef] = (),
    ) -> int:
        """Append all events or none at ``expected_next_index`` (else
        ``LogConflictError``), marking ``consume``d entries in the same step; returns the
        next index."""
        ...

    async def settle_run(
        self,
        run_id: str,
        lease: Lease,
        expected_next_index: int,
        events: Sequence[NewEvent],
        outcome: Outcome,
        now: int,
        *,
        consume: Sequence[InboxRef] = (),
    ) -> Run:
        """End a slice atomically: append, consume, apply ``outcome``, release the lease."""
        ...

    async def read_events(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> list[StoredEvent]: ...

    async def read_inbox(self, run_id: str, *, include_consumed: bool = False) -> list[InboxEntry]:
        """Entries in arrival order (``received_at``, then kind, then key)."""
        ...

    def subscribe_events(self, run_id: str, from_index: int = 0) -> AsyncIterator[StoredEvent]:
        """Yield events from ``from_index`` on, as they are appended; ends once the run
        is terminal (or gone) and every event was yielded."""
        ...

    # -- wake-ups ------------------------------------------------------------------
    async def deliver_signal(
        self,
        run_id: str,
        signal_id: str,
        name: str,
        payload: JSON,
        now: int,
        *,
        step_id: str | None = None,
        meta: JSON = None,
    ) -> DeliveryResult: ...

    async def deliver_approval(
        self,
        run_id: str,
        approval_id: str,
        approved: bool,
        now: int,
        *,
        feedback: JSON = None,
        meta: JSON = None,
    ) -> DeliveryResult: ...

    async def fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        """Fire up to ``limit`` due deadlines (oldest ``deadline_at`` first: each ends
        its run ``timed_out``), then due timers (oldest ``wake_at`` first), each
        exactly once."""
        ...

    # -- schedules -----------------------------------------------------------------
    async def upsert_schedule(
        self,
        schedule_id: str,
        workflow_id: str,
        spec: ScheduleSpec,
        now: int,
        *,
        workflow_version: str | None = None,
        overlap: Overlap = Overlap.SKIP,
        input: JSON = None,
        enabled: bool = True,
    ) -> Schedule: ...

    async def get_schedule(self, schedule_id: str) -> Schedule | None: ...

    async def list_schedules(self, *, workflow_id: str | None = None) -> list[Schedule]: ...

    async def delete_schedule(self, schedule_id: str) -> bool: ...

    async def fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]: ...

    # -- operations and health -------------------------------------------------------
    async def schema_status(self) -> SchemaStatus: ...

    async def close(self) -> None: ...


@runtime_checkable
class QueueStore(Protocol):
    """The queue configuration of a store declaring ``Capability.QUEUES``."""

    async def upsert_queue(
        self,
        name: str,
        now: int,
        *,
        concurrency: int | None = None,
        per_key_concurrency: int | None = None,
        rate_limit: RateLimit | None = None,
    ) -> Queue:
        """Create or replace a queue's limits (``None``: unlimited)."""
        ...

    async def get_queue(self, name: str) -> Queue | None: ...

    async def list_queues(self) -> list[Queue]:
        """Every configured queue, by name."""
        ...
