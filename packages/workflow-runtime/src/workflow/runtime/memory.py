"""The in-memory reference store.

A real implementation of the contract, not a mock: it defines the reference
semantics the contract suite checks every other store against. Every operation's
body runs without awaiting, so each is atomic with respect to every other asyncio
task. Payloads are kept encoded and decoded on every read, so callers can never
reach stored state through objects they passed in or got back.

Several handles may share one dataset (``memory://name`` in one process, or
:meth:`InMemoryStore.handle`); the data lives as long as a handle refers to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlsplit

from . import arguments, codec, validation
from .contract import Capability
from .cursor import decode_cursor, encode_cursor
from .errors import (
    InvalidArgumentError,
    LeaseLostError,
    LogConflictError,
    RunCancelledError,
    RunTimedOutError,
    StoreUnavailableError,
)
from .queues import DEFAULT_PLACEMENT, LimitGate, Placement, holds_places, queue_config
from .records import (
    JSON,
    InboxEntry,
    InboxKind,
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
    Wait,
    WaitKind,
)
from .registry import check_flag, redact_url, unknown_options
from .results import (
    AlreadyTerminal,
    Buffered,
    Cancelled,
    CancelResult,
    Claimed,
    ClaimResult,
    Closed,
    Conflict,
    Created,
    CreateResult,
    Delivered,
    DeliveryResult,
    Duplicate,
    Existing,
    NotClaimable,
    NotFound,
    Outcome,
    ScheduleTick,
    TickOutcome,
)
from .schedules import next_fire_at
from .timeouts import DEFAULT_OPERATION_TIMEOUT_S, check_operation_timeout
from .validation import EncodedWait
from .wakeups import Watchers

SCHEMA_REVISION = "memory-1"


@dataclass(slots=True)
class _RunRow:
    run_id: str
    workflow_id: str
    workflow_version: str | None
    status: RunStatus
    input: str | None
    created_at: int
    updated_at: int
    ready_at: int | None
    output: str | None = None
    error: str | None = None
    wait: EncodedWait | None = None
    deadline_at: int | None = None
    lease: Lease | None = None
    last_token: int = 0
    events: list[tuple[str, str | None, str | None, int]] = field(default_factory=list)
    inbox: dict[tuple[InboxKind, str], _InboxRow] = field(default_factory=dict)
    placement: Placement = DEFAULT_PLACEMENT
    parent_run_id: str | None = None
    parent_policy: ParentPolicy | None = None

    def leased(self, now: int) -> bool:
        """Holds a place in its queue: running under a lease that has not expired."""
        return (
            self.status is RunStatus.RUNNING
            and self.lease is not None
            and self.lease.expires_at > now
        )

    def claimable(self, now: int) -> bool:
        if self.status is RunStatus.QUEUED:
            return True
        return (
            self.status is RunStatus.RUNNING
            and self.lease is not None
            and self.lease.expires_at <= now
        )


@dataclass(slots=True)
class _InboxRow:
    kind: InboxKind
    key: str
    name: str | None
    step_id: str | None
    payload: str | None
    meta: str | None
    received_at: int
    consumed: bool = False


@dataclass(slots=True)
class _ScheduleRow:
    schedule_id: str
    workflow_id: str
    workflow_version: str | None
    spec: ScheduleSpec
    overlap: Overlap
    input: str | None
    enabled: bool
    next_fire_at: int
    last_fired_at: int | None
    updated_at: int
    last_run_id: str | None = None


class _Data:
    """One dataset, shared by every handle opened on it."""

    def __init__(self) -> None:
        self.runs: dict[str, _RunRow] = {}
        self.schedules: dict[str, _ScheduleRow] = {}
        self.queues: dict[str, Queue] = {}
        self.windows: dict[str, tuple[int, int]] = {}
        """Per rate-limited queue: the start of its latest window and its claims in it."""
        self.changed: asyncio.Condition | None = None
        self.bells: set[Callable[[], None]] = set()
        """The ``ring`` of every watcher of any handle (wake-up hints)."""

    def gate(self, now: int) -> LimitGate:
        """The queue limits at ``now`` (the leased runs counted by a scan, as the
        reference store does everything)."""
        leased: Counter[str] = Counter()
        keyed: Counter[tuple[str, str]] = Counter()
        if self.queues:
            for row in self.runs.values():
                if row.leased(now):
                    leased[row.placement.queue] += 1
                    if row.placement.partition_key is not None:
                        keyed[(row.placement.queue, row.placement.partition_key)] += 1
        return LimitGate(self.queues, self.windows, leased, keyed, now)

    def admit(self, gate: LimitGate, p: Placement) -> bool:
        """Take a place for a run of ``p`` if its queue has room (windows kept)."""
        if not gate.has_room(p.queue, p.partition_key):
            return False
        gate.take(p.queue, p.partition_key)
        self.windows.update(gate.windows)
        return True

    def runnable(self) -> None:
        """A run may have become claimable: ring every watcher."""
        for ring in self.bells:
            ring()

    def notify(self) -> None:
        if self.changed is not None:
            cond = self.changed

            async def _wake() -> None:
                async with cond:
                    cond.notify_all()

            # Without a running loop nobody can be waiting.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(_wake())


_NAMED: weakref.WeakValueDictionary[str, _Data] = weakref.WeakValueDictionary()


class InMemoryStore:
    """The reference :class:`~workflow.runtime.ExecutionStore`, kept in process memory."""

    db_system = "memory"
    """``db.system`` on its OpenTelemetry spans (:mod:`~workflow.runtime.traced_store`)."""

    def __init__(
        self,
        *,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        _data: _Data | None = None,
    ) -> None:
        self.max_payload_bytes: int = validation.check_int(
            max_payload_bytes, "max_payload_bytes", 2, 2**31
        )
        self._data = _data if _data is not None else _Data()
        self._closed = False
        self._watchers = Watchers("InMemoryStore")

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(
            {
                Capability.SUBSCRIBE_EVENTS,
                Capability.CLAIM_ON_CREATE,
                Capability.NOTIFY_RUNNABLE,
                Capability.DEADLINES,
                Capability.QUEUES,
                Capability.CHILDREN,
            }
        )

    def handle(self) -> InMemoryStore:
        """Another handle on the same data (what a second connection is elsewhere)."""
        return type(self)(max_payload_bytes=self.max_payload_bytes, _data=self._data)

    # -- helpers -----------------------------------------------------------------
    def _open(self) -> _Data:
        if self._closed:
            raise StoreUnavailableError("this InMemoryStore handle is closed")
        return self._data

    def _run(self, row: _RunRow) -> Run:
        return Run(
            run_id=row.run_id,
            workflow_id=row.workflow_id,
            workflow_version=row.workflow_version,
            status=row.status,
            input=codec.decode(row.input),
            output=codec.decode(row.output),
            error=codec.decode_error(row.error),
            wait=_wait(row.wait),
            lease=row.lease,
            next_event_index=len(row.events),
            created_at=row.created_at,
            updated_at=row.updated_at,
            ready_at=row.ready_at,
            deadline_at=row.deadline_at,
            queue=row.placement.queue,
            priority=row.placement.priority,
            partition_key=row.placement.partition_key,
            parent_run_id=row.parent_run_id,
            parent_policy=row.parent_policy,
        )

    @staticmethod
    def _entry(run_id: str, row: _InboxRow) -> InboxEntry:
        return InboxEntry(
            run_id=run_id,
            kind=row.kind,
            key=row.key,
            name=row.name,
            step_id=row.step_id,
            payload=codec.decode(row.payload),
            meta=codec.decode(row.meta),
            received_at=row.received_at,
            consumed=row.consumed,
        )

    @staticmethod
    def _events(row: _RunRow, from_index: int, limit: int | None) -> list[StoredEvent]:
        end = len(row.events) if limit is None else from_index + limit
        return [
            StoredEvent(row.run_id, i, etype, step_id, codec.decode(data), created_at)
            for i, (etype, step_id, data, created_at) in enumerate(
                row.events[from_index:end], start=from_index
            )
        ]

    def _inbox(self, row: _RunRow, include_consumed: bool) -> list[InboxEntry]:
        rows = sorted(
            (r for r in row.inbox.values() if include_consumed or not r.consumed),
            key=lambda r: (r.received_at, r.kind.value, r.key),
        )
        return [self._entry(row.run_id, r) for r in rows]

    def _held(self, data: _Data, run_id: str, lease: Lease) -> _RunRow:
        row = data.runs.get(run_id)
        if row is None:
            raise LeaseLostError(run_id, f"run {run_id!r} does not exist (deleted?)")
        if row.status is RunStatus.CANCELLED:
            raise RunCancelledError(run_id)
        if row.status is RunStatus.TIMED_OUT:
            raise RunTimedOutError(run_id)
        # Token and owner: a token alone restarts at 1 when a run id is deleted and
        # created again, and a stale worker must not pass for the new holder.
        if row.lease is None or row.lease.token != lease.token or row.lease.owner != lease.owner:
            raise LeaseLostError(run_id)
        return row

    @staticmethod
    def _append(row: _RunRow, log: arguments.LogWrite) -> None:
        if log.expected != len(row.events):
            raise LogConflictError(row.run_id, log.expected, len(row.events))
        row.events.extend((e.type, e.step_id, e.data, log.now) for e in log.events)
        for ref in log.consume:
            entry = row.inbox.get((ref.kind, ref.key))
            if entry is not None:
                entry.consumed = True

    def _claim(self, row: _RunRow, owner: str, lease_ms: int, now: int, history: bool) -> Claimed:
        row.last_token += 1
        row.lease = Lease(owner, row.last_token, now + lease_ms)
        if row.status is not RunStatus.RUNNING:
            row.status = RunStatus.RUNNING
            row.updated_at = now
        return Claimed(
            run=self._run(row),
            lease=row.lease,
            inbox=self._inbox(row, False),
            events=self._events(row, 0, None) if history else None,
        )

    @staticmethod
    def _make_queued(row: _RunRow, now: int) -> None:
        row.status = RunStatus.QUEUED
        row.wait = None
        row.ready_at = now
        row.updated_at = now

    @staticmethod
    def _end(row: _RunRow, status: RunStatus, error: str | None, now: int) -> None:
        """Make ``row`` terminal: lease, wait and ``ready_at`` go with it."""
        row.status = status
        row.error = error
        row.lease = None
        row.wait = None
        row.ready_at = None
        row.updated_at = now

    # -- children ----------------------------------------------------------------------
    def _ended(self, data: _Data, row: _RunRow, now: int) -> None:
        """``row`` just became terminal: tell its parent, and end its children as
        their policy says (same step: nothing between the two writes)."""
        self._tell_parent(data, row, now)
        if row.status in (RunStatus.CANCELLED, RunStatus.TIMED_OUT):
            self._cascade(data, row, now)

    def _tell_parent(self, data: _Data, child: _RunRow, now: int) -> None:
        parent = None if child.parent_run_id is None else data.runs.get(child.parent_run_id)
        if parent is None or parent.status.terminal:
            return  # an ended or deleted parent gets nothing
        key = (InboxKind.CHILD, child.run_id)
        entry = parent.inbox.get(key)
        if entry is None:
            error = codec.decode_error(child.error)
            payload = arguments.child_payload(child.status.value, codec.decode(child.output), error)
            entry = _InboxRow(
                InboxKind.CHILD, child.run_id, None, None, codec.encode(payload), None, now
            )
            parent.inbox[key] = entry
        # An entry kept as it was (a child id ended before) still wakes a parent
        # paused on that child: the child has ended, and nothing else would wake it.
        if (
            parent.status is RunStatus.PAUSED
            and parent.wait is not None
            and parent.wait.wait.matches(self._entry(parent.run_id, entry))
        ):
            self._make_queued(parent, now)
            data.runnable()

    @staticmethod
    def _cascade(data: _Data, parent: _RunRow, now: int) -> None:
        """Cancel the live ``cancel``-policy children of a run that ended cancelled or
        timed out, and theirs in turn; ``abandon`` subtrees go on. The cancelled write
        no child entries: their parents have ended."""
        ended = [parent]
        while ended:
            up = ended.pop()
            error = codec.encode_error(arguments.parent_ended_error(up.run_id, up.status.value))
            for row in data.runs.values():
                if (
                    row.parent_run_id == up.run_id
                    and row.parent_policy is ParentPolicy.CANCEL
                    and not row.status.terminal
                ):
                    InMemoryStore._end(row, RunStatus.CANCELLED, error, now)
                    ended.append(row)

    @staticmethod
    def _parent_ended(data: _Data, a: arguments.NewRun) -> str | None:
        """For a new child: the encoded ``ParentEnded`` error it is created with when
        its parent was cancelled or timed out and its policy is ``cancel``, else
        ``None``. Refuses a parent that does not exist."""
        if a.parent_run_id is None:
            return None
        parent = data.runs.get(a.parent_run_id)
        if parent is None:
            raise InvalidArgumentError(
                f"parent_run_id: run {a.parent_run_id!r} does not exist; "
                "a child names an existing parent run"
            )
        if a.parent_policy is ParentPolicy.CANCEL and parent.status in (
            RunStatus.CANCELLED,
            RunStatus.TIMED_OUT,
        ):
            return codec.encode_error(
                arguments.parent_ended_error(parent.run_id, parent.status.value)
            )
        return None

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
        a = arguments.new_run(
            run_id,
            workflow_id,
            workflow_version,
            input,
            now,
            max_bytes=self.max_payload_bytes,
            owner=owner,
            lease_ms=lease_ms,
            deadline_at=deadline_at,
            queue=queue,
            priority=priority,
            partition_key=partition_key,
            parent_run_id=parent_run_id,
            parent_policy=parent_policy,
        )
        data = self._open()
        existing = data.runs.get(a.run_id)
        if existing is not None:
            run = self._run(existing)
            return Existing(run) if existing.workflow_id == a.workflow_id else Conflict(run)
        row = _RunRow(
            a.run_id,
            a.workflow_id,
            a.workflow_version,
            RunStatus.QUEUED,
            a.input,
            a.now,
            a.now,
            a.now,
            deadline_at=a.deadline_at,
            placement=a.placement,
            parent_run_id=a.parent_run_id,
            parent_policy=a.parent_policy,
        )
        ended = self._parent_ended(data, a)
        if ended is not None:
            # The cascade it came too late for: created cancelled, claimed by nobody.
            row.status = RunStatus.CANCELLED
            row.error = ended
            row.ready_at = None
            data.runs[a.run_id] = row
            return Created(self._run(row))
        # A queue at a limit: the run is created queued, claimed by nobody.
        if (
            a.owner is not None
            and a.expires_at is not None
            and data.admit(data.gate(a.now), a.placement)
        ):
            row.status = RunStatus.RUNNING
            row.last_token = 1
            row.lease = Lease(a.owner, 1, a.expires_at)
        data.runs[a.run_id] = row
        if row.lease is None:  # created claimed: nobody else may take it
            data.runnable()
        return Created(self._run(row), row.lease)

    async def load_run(self, run_id: str) -> Run | None:
        run_id = validation.check_id(run_id, "run_id")
        row = self._open().runs.get(run_id)
        return None if row is None else self._run(row)

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | Collection[RunStatus] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        parent_run_id: str | None = None,
    ) -> Page:
        parent = arguments.children_listing(parent_run_id, children=True)
        workflow_id = validation.check_optional_id(workflow_id, "workflow_id")
        statuses = validation.check_statuses(status)
        limit = validation.check_limit(limit)
        after = None if cursor is None else decode_cursor(cursor)
        rows = [
            r
            for r in self._open().runs.values()
            if (workflow_id is None or r.workflow_id == workflow_id)
            and (statuses is None or r.status in statuses)
            and (parent is None or r.parent_run_id == parent)
            and (after is None or (r.created_at, r.run_id) < after)
        ]
        rows.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        page = rows[:limit]
        more = len(rows) > limit
        next_cursor = encode_cursor(page[-1].created_at, page[-1].run_id) if more else None
        return Page([self._run(r) for r in page], next_cursor)

    async def get_timeline(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> Timeline | None:
        run_id = validation.check_id(run_id, "run_id")
        from_index = validation.check_index(from_index, "from_index")
        limit = validation.check_optional_limit(limit)
        row = self._open().runs.get(run_id)
        if row is None:
            return None
        return Timeline(self._run(row), self._events(row, from_index, limit))

    async def cancel_run(self, run_id: str, reason: str, now: int) -> CancelResult:
        a = arguments.cancellation(run_id, reason, now, max_bytes=self.max_payload_bytes)
        row = self._open().runs.get(a.run_id)
        if row is None:
            return NotFound(a.run_id)
        if row.status.terminal:
            return AlreadyTerminal(self._run(row))
        self._end(row, RunStatus.CANCELLED, a.error, a.now)
        self._ended(self._data, row, a.now)
        self._data.notify()
        return Cancelled(self._run(row))

    async def delete_run(self, run_id: str) -> bool:
        run_id = validation.check_id(run_id, "run_id")
        deleted = self._open().runs.pop(run_id, None) is not None
        if deleted:
            self._data.notify()
        return deleted

    async def purge_runs(self, terminal_before: int, limit: int) -> int:
        terminal_before = validation.check_time(terminal_before, "terminal_before")
        limit = validation.check_limit(limit)
        data = self._open()
        doomed = sorted(
            (r for r in data.runs.values() if r.status.terminal and r.updated_at < terminal_before),
            key=lambda r: (r.updated_at, r.run_id),
        )[:limit]
        for row in doomed:
            del data.runs[row.run_id]
        return len(doomed)

    # -- execution -------------------------------------------------------------------
    async def claim_run(
        self, run_id: str, owner: str, lease_ms: int, now: int, *, with_history: bool = False
    ) -> ClaimResult:
        a = arguments.claim(run_id, owner, lease_ms, now, with_history)
        row = self._open().runs.get(a.run_id)
        if row is None:
            return NotFound(a.run_id)
        if not row.claimable(a.now):
            return NotClaimable(self._run(row))
        if not self._data.admit(self._data.gate(a.now), row.placement):
            return NotClaimable(self._run(row))
        return self._claim(row, a.owner, a.lease_ms, a.now, a.with_history)

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
        a = arguments.claim_many(owner, lease_ms, limit, now, with_history, queues)
        data = self._open()
        gate = data.gate(a.now)
        claimed: list[Claimed] = []
        for row in sorted(
            (
                r
                for r in data.runs.values()
                if r.claimable(a.now) and (a.queues is None or r.placement.queue in a.queues)
            ),
            key=lambda r: (-r.placement.priority, r.ready_at or 0, r.run_id),
        ):
            if len(claimed) == a.limit:
                break
            # A full queue or key skips its run, never the runs behind it.
            if data.admit(gate, row.placement):
                claimed.append(self._claim(row, a.owner, a.lease_ms, a.now, a.with_history))
        return claimed

    async def heartbeat(self, run_id: str, lease: Lease, lease_ms: int, now: int) -> Lease:
        a = arguments.renewal(run_id, lease, lease_ms, now)
        data = self._open()
        row = self._held(data, a.run_id, a.lease)
        if not row.leased(a.now) and holds_places(data.queues.get(row.placement.queue)):
            # The expired lease gave its place up (another run may hold it by now).
            raise LeaseLostError(
                a.run_id, f"run {a.run_id!r}: the lease expired and its queue limits places"
            )
        row.lease = Lease(a.lease.owner, a.lease.token, a.now + a.lease_ms)
        return row.lease

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
        log = arguments.log_write(
            run_id,
            lease,
            expected_next_index,
            events,
            now,
            consume,
            max_bytes=self.max_payload_bytes,
        )
        row = self._held(self._open(), log.run_id, log.lease)
        self._append(row, log)
        if log.events:
            self._data.notify()
        return len(row.events)

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
        a = arguments.settlement(
            run_id,
            lease,
            expected_next_index,
            events,
            outcome,
            now,
            consume,
            max_bytes=self.max_payload_bytes,
        )
        result, now = a.outcome, a.log.now
        row = self._held(self._open(), a.log.run_id, a.log.lease)
        self._append(row, a.log)
        row.lease = None
        if result.status is RunStatus.QUEUED:
            self._make_queued(row, now)
        elif result.status is RunStatus.PAUSED:
            assert result.wait is not None
            wait = result.wait.wait
            if any(
                not e.consumed and wait.matches(self._entry(row.run_id, e))
                for e in row.inbox.values()
            ):
                self._make_queued(row, now)
            else:
                row.status = RunStatus.PAUSED
                row.wait = result.wait
                row.ready_at = None
                row.updated_at = now
        else:
            row.output = result.output
            self._end(row, result.status, result.error, now)
            self._ended(self._data, row, now)
        self._data.notify()
        if row.status is RunStatus.QUEUED:
            self._data.runnable()
        return self._run(row)

    async def read_events(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        run_id = validation.check_id(run_id, "run_id")
        from_index = validation.check_index(from_index, "from_index")
        limit = validation.check_optional_limit(limit)
        row = self._open().runs.get(run_id)
        return [] if row is None else self._events(row, from_index, limit)

    async def read_inbox(self, run_id: str, *, include_consumed: bool = False) -> list[InboxEntry]:
        run_id = validation.check_id(run_id, "run_id")
        include_consumed = validation.check_bool(include_consumed, "include_consumed")
        row = self._open().runs.get(run_id)
        return [] if row is None else self._inbox(row, include_consumed)

    async def subscribe_events(
        self, run_id: str, from_index: int = 0
    ) -> AsyncIterator[StoredEvent]:
        run_id = validation.check_id(run_id, "run_id")
        index = validation.check_index(from_index, "from_index")
        data = self._open()
        if data.changed is None:
            data.changed = asyncio.Condition()
        cond = data.changed
        while True:
            row = data.runs.get(run_id)
            if row is None:
                return
            batch = self._events(row, index, None)
            for event in batch:
                yield event
            index += len(batch)
            if row.status.terminal and index >= len(row.events):
                return
            async with cond:
                # Re-check under the condition: a write may have landed meanwhile.
                current = data.runs.get(run_id)
                if current is row and len(row.events) == index and not row.status.terminal:
                    await cond.wait()

    # -- wake-ups ------------------------------------------------------------------
    def _deliver(self, d: arguments.Delivery) -> DeliveryResult:
        run_id, now = d.run_id, d.now
        entry = _InboxRow(d.kind, d.key, d.name, d.step_id, d.payload, d.meta, d.now)
        row = self._open().runs.get(run_id)
        if row is None:
            return NotFound(run_id)
        seen = row.inbox.get((entry.kind, entry.key))
        if seen is not None:
            return Duplicate(self._entry(run_id, seen))
        if row.status.terminal:
            return Closed(self._run(row))
        row.inbox[(entry.kind, entry.key)] = entry
        stored = self._entry(run_id, entry)
        if row.status is RunStatus.PAUSED and row.wait and row.wait.wait.matches(stored):
            self._make_queued(row, now)
            self._data.runnable()
            return Delivered(self._run(row), stored)
        return Buffered(self._run(row), stored)

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
    ) -> DeliveryResult:
        return self._deliver(
            arguments.signal(
                run_id,
                signal_id,
                name,
                payload,
                now,
                step_id,
                meta,
                max_bytes=self.max_payload_bytes,
            )
        )

    async def deliver_approval(
        self,
        run_id: str,
        approval_id: str,
        approved: bool,
        now: int,
        *,
        feedback: JSON = None,
        meta: JSON = None,
    ) -> DeliveryResult:
        return self._deliver(
            arguments.approval(
                run_id, approval_id, approved, now, feedback, meta, max_bytes=self.max_payload_bytes
            )
        )

    async def fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        now = validation.check_now(now)
        limit = validation.check_limit(limit)
        fired = self._fire_deadlines(now, limit)
        due = sorted(
            (
                r
                for r in self._open().runs.values()
                if r.status is RunStatus.PAUSED
                and r.wait is not None
                and r.wait.wake_at is not None
                and r.wait.wake_at <= now
            ),
            key=lambda r: (r.wait.wake_at if r.wait else 0, r.run_id),
        )[: limit - len(fired)]
        for row in due:
            assert row.wait is not None
            assert row.wait.wake_at is not None
            # Each firing is a fresh entry; it replaces an earlier firing of the same
            # step (a polling loop may sleep on one step id again and again).
            entry = _InboxRow(
                InboxKind.TIMER,
                row.wait.step_id,
                row.wait.key if row.wait.kind is WaitKind.SIGNAL else None,
                row.wait.step_id,
                codec.encode({"wake_at": row.wait.wake_at}),
                None,
                now,
            )
            row.inbox[(InboxKind.TIMER, row.wait.step_id)] = entry
            self._make_queued(row, now)
            fired.append(self._entry(row.run_id, entry))
        if fired:
            self._data.runnable()
        return fired

    def _fire_deadlines(self, now: int, limit: int) -> list[InboxEntry]:
        """End up to ``limit`` runs whose deadline passed ``timed_out``, oldest
        ``(deadline_at, run_id)`` first, each with its deadline entry."""
        data = self._open()
        due = sorted(
            (
                r
                for r in data.runs.values()
                if not r.status.terminal and r.deadline_at is not None and r.deadline_at <= now
            ),
            key=lambda r: (r.deadline_at or 0, r.run_id),
        )
        fired: list[InboxEntry] = []
        error = codec.encode_error(arguments.TIMED_OUT_ERROR)
        for row in due:
            if len(fired) == limit:
                break
            # One firing after another: a child an earlier firing's cascade cancelled
            # has no deadline left (and takes no place in ``limit``).
            if row.status.terminal:
                continue
            assert row.deadline_at is not None
            entry = _InboxRow(
                InboxKind.DEADLINE,
                arguments.DEADLINE_KEY,
                None,
                None,
                arguments.deadline_payload(row.deadline_at),
                None,
                now,
            )
            row.inbox[(InboxKind.DEADLINE, arguments.DEADLINE_KEY)] = entry
            self._end(row, RunStatus.TIMED_OUT, error, now)
            self._ended(data, row, now)
            fired.append(self._entry(row.run_id, entry))
        if fired:
            data.notify()
        return fired

    # -- schedules -----------------------------------------------------------------
    @staticmethod
    def _schedule(row: _ScheduleRow) -> Schedule:
        return Schedule(
            schedule_id=row.schedule_id,
            workflow_id=row.workflow_id,
            workflow_version=row.workflow_version,
            spec=row.spec,
            overlap=row.overlap,
            input=codec.decode(row.input),
            enabled=row.enabled,
            next_fire_at=row.next_fire_at,
            last_fired_at=row.last_fired_at,
            updated_at=row.updated_at,
            last_run_id=row.last_run_id,
        )

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
    ) -> Schedule:
        a = arguments.schedule_declaration(
            schedule_id,
            workflow_id,
            spec,
            now,
            workflow_version,
            overlap,
            input,
            enabled,
            max_bytes=self.max_payload_bytes,
        )
        schedule_id, spec, now, enabled = a.schedule_id, a.spec, a.now, a.enabled
        data = self._open()
        row = data.schedules.get(schedule_id)
        if row is None:
            row = _ScheduleRow(
                schedule_id,
                a.workflow_id,
                a.workflow_version,
                spec,
                a.overlap,
                a.input,
                enabled,
                next_fire_at(spec, now),
                None,
                now,
            )
            data.schedules[schedule_id] = row
        else:
            # Keep a due tick across re-declaration (start-up reconciliation must not
            # drop it); re-plan only when the timing changed or the schedule wakes up.
            if row.spec != spec or (enabled and not row.enabled):
                row.next_fire_at = next_fire_at(spec, now)
            row.workflow_id = a.workflow_id
            row.workflow_version = a.workflow_version
            row.spec = spec
            row.overlap = a.overlap
            row.input = a.input
            row.enabled = enabled
            row.updated_at = now
        return self._schedule(row)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        schedule_id = validation.check_schedule_id(schedule_id)
        row = self._open().schedules.get(schedule_id)
        return None if row is None else self._schedule(row)

    async def list_schedules(self, *, workflow_id: str | None = None) -> list[Schedule]:
        workflow_id = validation.check_optional_id(workflow_id, "workflow_id")
        rows = sorted(
            (
                r
                for r in self._open().schedules.values()
                if workflow_id is None or r.workflow_id == workflow_id
            ),
            key=lambda r: r.schedule_id,
        )
        return [self._schedule(r) for r in rows]

    async def delete_schedule(self, schedule_id: str) -> bool:
        schedule_id = validation.check_schedule_id(schedule_id)
        return self._open().schedules.pop(schedule_id, None) is not None

    async def fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        now = validation.check_now(now)
        limit = validation.check_limit(limit)
        data = self._open()

        def busy(row: _ScheduleRow) -> bool:
            last = data.runs.get(row.last_run_id) if row.last_run_id else None
            return last is not None and not last.status.terminal

        due = sorted(
            (
                r
                for r in data.schedules.values()
                if r.enabled
                and r.next_fire_at <= now
                # A buffered tick waits without blocking the schedules behind it.
                and not (r.overlap is Overlap.BUFFER_ONE and busy(r))
            ),
            key=lambda r: (r.next_fire_at, r.schedule_id),
        )[:limit]
        ticks: list[ScheduleTick] = []
        for row in due:
            fire_at = row.next_fire_at
            row.next_fire_at = next_fire_at(row.spec, now)
            if row.overlap is Overlap.SKIP and busy(row):
                ticks.append(
                    ScheduleTick(
                        row.schedule_id, fire_at, TickOutcome.SKIPPED, None, row.next_fire_at
                    )
                )
                continue
            run_id = f"{row.schedule_id}@{fire_at}"
            if run_id not in data.runs:
                data.runs[run_id] = _RunRow(
                    run_id,
                    row.workflow_id,
                    row.workflow_version,
                    RunStatus.QUEUED,
                    row.input,
                    now,
                    now,
                    now,
                )
            row.last_fired_at = fire_at
            row.last_run_id = run_id
            ticks.append(
                ScheduleTick(row.schedule_id, fire_at, TickOutcome.FIRED, run_id, row.next_fire_at)
            )
        if any(t.outcome is TickOutcome.FIRED for t in ticks):
            data.runnable()
        return ticks

    # -- queues --------------------------------------------------------------------
    async def upsert_queue(
        self,
        name: str,
        now: int,
        *,
        concurrency: int | None = None,
        per_key_concurrency: int | None = None,
        rate_limit: RateLimit | None = None,
    ) -> Queue:
        queue = queue_config(name, now, concurrency, per_key_concurrency, rate_limit)
        data = self._open()
        data.queues[queue.name] = queue
        # More room (a raised or removed limit) may make runs claimable.
        data.runnable()
        return queue

    async def get_queue(self, name: str) -> Queue | None:
        return self._open().queues.get(validation.check_id(name, "name"))

    async def list_queues(self) -> list[Queue]:
        data = self._open()
        return [data.queues[name] for name in sorted(data.queues)]

    # -- operations and health -------------------------------------------------------
    async def schema_status(self) -> SchemaStatus:
        self._open()
        return SchemaStatus(SCHEMA_REVISION, SCHEMA_REVISION)

    # -- wake-up hints ----------------------------------------------------------------
    def watch_runnable(self) -> AsyncGenerator[None, None]:
        """Yields when a run may have become claimable through any handle on this data
        (in process: the rings are direct calls). See :class:`RunnableNotifier`."""
        data = self._data

        async def session(ring: Callable[[], None]) -> None:
            data.bells.add(ring)
            try:
                ring()  # listening from now on
                await asyncio.Future()  # until the watcher ends (cancelled)
            finally:
                data.bells.discard(ring)

        return self._watchers.watch(session, data)  # one hub per dataset

    async def close(self) -> None:
        self._closed = True
        await self._watchers.close()


def _wait(encoded: EncodedWait | None) -> Wait | None:
    if encoded is None:
        return None
    # Decode meta afresh so callers never share it with the stored wait.
    return replace(encoded.wait, meta=codec.decode(encoded.meta))


async def open_memory_store(url: str, **options: object) -> InMemoryStore:
    """Entry point for ``memory://`` (a private dataset) and ``memory://NAME`` (a
    dataset shared by every handle opened with that name in this process)."""
    parts = urlsplit(url)
    if parts.scheme != "memory" or parts.path not in ("", "/") or parts.fragment:
        raise InvalidArgumentError(
            f"bad memory store URL {redact_url(url)!r}: use memory:// or memory://NAME"
        )
    if parts.query:
        names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
        raise unknown_options("memory store URL option", names or [parts.query], ())
    valid = ("max_payload_bytes", "verify_schema", "operation_timeout")
    unknown = set(options) - set(valid)
    if unknown:
        raise unknown_options("memory store option", unknown, valid)
    # Accepted by every store (and checked); nothing in memory waits on a network.
    check_operation_timeout(options.pop("operation_timeout", DEFAULT_OPERATION_TIMEOUT_S))
    max_bytes = options.pop("max_payload_bytes", codec.DEFAULT_MAX_PAYLOAD_BYTES)
    # Accepted by every store; memory has no schema to verify.
    check_flag("verify_schema", options.pop("verify_schema", True))
    if type(max_bytes) is not int:
        raise InvalidArgumentError("max_payload_bytes must be an int")
    name = parts.netloc
    data: _Data | None = None
    if name:
        data = _NAMED.get(name)
        if data is None:
            data = _Data()
            _NAMED[name] = data
    return InMemoryStore(max_payload_bytes=max_bytes, _data=data)
