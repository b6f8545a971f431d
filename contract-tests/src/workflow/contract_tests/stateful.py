"""Contract cases: random operation sequences checked against a model of the rules.

A Hypothesis state machine drives every store operation in random order against the
store and against ``_Model``: plain dicts and lists written from docs/semantics.md,
deliberately naive, sharing no code with any store. Every result is compared
(kind, status, indexes, tokens, lease expiry, payloads, entries, raised errors), and
after every step the whole visible state (runs, event logs, inboxes, schedules).

The ids are few (three run names plus the runs schedules create, two signal names,
two schedules, two steps) so collisions, duplicates, stale leases and stale log
indexes come up all the time. Each example starts with its runs in drawn states
(queued, running, paused, ended) and its schedules declared, so deep states are
reached within its steps.

The store is async and the machine is synchronous: the machine runs in a worker
thread and submits each call to the test's event loop. Examples share that store, so
each example prefixes its ids, deletes what it created at teardown, and takes time
from a clock that only moves forward across examples.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from workflow.runtime import (
    JSON,
    AlreadyTerminal,
    Buffered,
    Cancelled,
    CancelResult,
    Capability,
    Claimed,
    ClaimResult,
    Closed,
    Conflict,
    Created,
    CreateResult,
    CronSpec,
    Delivered,
    DeliveryResult,
    Duplicate,
    ErrorInfo,
    ExecutionStore,
    Existing,
    Fail,
    Finish,
    InboxEntry,
    InboxKind,
    InboxRef,
    IntervalSpec,
    Lease,
    LeaseLostError,
    LogConflictError,
    NewEvent,
    NotClaimable,
    NotFound,
    Outcome,
    Overlap,
    Page,
    ParentPolicy,
    Pause,
    Run,
    RunCancelledError,
    RunStatus,
    Schedule,
    ScheduleSpec,
    ScheduleTick,
    StoredEvent,
    TickOutcome,
    Timeline,
    Wait,
    WaitKind,
    WorkflowStoreError,
    Yield,
    next_fire_at,
)

from .support import T0

_T = TypeVar("_T")

# -- the model --------------------------------------------------------------------------

_ENDED = (RunStatus.FINISHED, RunStatus.ERRORED, RunStatus.CANCELLED)


def _parent_ended(parent_run_id: str) -> ErrorInfo:
    """The error of a child its parent's cancellation cancelled."""
    return ErrorInfo("ParentEnded", f"parent run {parent_run_id} ended cancelled", "cancelled")


def _placement(run_id: str) -> str:
    """The run id up to its last ``@``: a child id ``<placement>@<suffix>`` qualifies
    on every store (docs/semantics.md, Children)."""
    head, at, _ = run_id.rpartition("@")
    return head if at else run_id


def _inbox_order(entry: InboxEntry) -> tuple[int, str, str]:
    return (entry.received_at, entry.kind.value, entry.key)


def _satisfies(wait: Wait, entry: InboxEntry) -> bool:
    """docs/semantics.md "Matching", written out on its own (not ``Wait.matches``)."""
    if entry.kind is InboxKind.SIGNAL:
        return (
            wait.kind is WaitKind.SIGNAL
            and entry.name == wait.name
            and (entry.step_id is None or entry.step_id == wait.step_id)
        )
    if entry.kind is InboxKind.APPROVAL:
        return wait.kind is WaitKind.APPROVAL and entry.key == wait.approval_id
    if entry.kind is InboxKind.CHILD:
        return wait.kind is WaitKind.CHILD and entry.key == wait.name
    return wait.wake_at is not None and entry.key == wait.step_id


@dataclass
class _ModelRun:
    run_id: str
    workflow_id: str
    workflow_version: str | None
    input: JSON
    created_at: int
    updated_at: int
    ready_at: int | None
    status: RunStatus = RunStatus.QUEUED
    output: JSON = None
    error: ErrorInfo | None = None
    wait: Wait | None = None
    lease: Lease | None = None
    tokens_issued: int = 0
    events: list[StoredEvent] = field(default_factory=list)
    inbox: dict[tuple[InboxKind, str], InboxEntry] = field(default_factory=dict)
    parent_run_id: str | None = None
    parent_policy: ParentPolicy | None = None

    def view(self) -> Run:
        return Run(
            run_id=self.run_id,
            workflow_id=self.workflow_id,
            workflow_version=self.workflow_version,
            status=self.status,
            input=self.input,
            output=self.output,
            error=self.error,
            wait=self.wait,
            lease=self.lease,
            next_event_index=len(self.events),
            created_at=self.created_at,
            updated_at=self.updated_at,
            ready_at=self.ready_at,
            parent_run_id=self.parent_run_id,
            parent_policy=self.parent_policy,
        )

    def entries(self, include_consumed: bool) -> list[InboxEntry]:
        kept = [e for e in self.inbox.values() if include_consumed or not e.consumed]
        return sorted(kept, key=_inbox_order)

    def claimable(self, now: int) -> bool:
        if self.status is RunStatus.QUEUED:
            return True
        return (
            self.status is RunStatus.RUNNING
            and self.lease is not None
            and self.lease.expires_at <= now
        )

    def become_queued(self, now: int) -> None:
        self.status = RunStatus.QUEUED
        self.wait = None
        self.ready_at = now
        self.updated_at = now

    def end(self, status: RunStatus, now: int) -> None:
        self.status = status
        self.lease = None
        self.wait = None
        self.ready_at = None
        self.updated_at = now


@dataclass
class _ModelSchedule:
    schedule_id: str
    workflow_id: str
    workflow_version: str | None
    spec: ScheduleSpec
    overlap: Overlap
    input: JSON
    enabled: bool
    next_fire_at: int
    updated_at: int
    last_fired_at: int | None = None
    last_run_id: str | None = None

    def view(self) -> Schedule:
        return Schedule(
            schedule_id=self.schedule_id,
            workflow_id=self.workflow_id,
            workflow_version=self.workflow_version,
            spec=self.spec,
            overlap=self.overlap,
            input=self.input,
            enabled=self.enabled,
            next_fire_at=self.next_fire_at,
            last_fired_at=self.last_fired_at,
            updated_at=self.updated_at,
            last_run_id=self.last_run_id,
        )


class _Model:
    """What a store must answer, from docs/semantics.md. Methods either return the
    expected result (having applied the change) or raise the expected error (having
    changed nothing)."""

    def __init__(self) -> None:
        self.runs: dict[str, _ModelRun] = {}
        self.schedules: dict[str, _ModelSchedule] = {}

    # run lifecycle
    def create_run(
        self,
        run_id: str,
        workflow_id: str,
        version: str | None,
        input: JSON,
        now: int,
        parent: str | None = None,
        policy: ParentPolicy = ParentPolicy.CANCEL,
    ) -> CreateResult:
        if run_id in self.runs:
            run = self.runs[run_id]
            return Existing(run.view()) if run.workflow_id == workflow_id else Conflict(run.view())
        new = _ModelRun(run_id, workflow_id, version, input, now, now, now)
        if parent is not None:
            new.parent_run_id, new.parent_policy = parent, policy
            above = self.runs[parent]  # the machine names existing parents only
            if policy is ParentPolicy.CANCEL and above.status is RunStatus.CANCELLED:
                # The cascade it came too late for.
                new.end(RunStatus.CANCELLED, now)
                new.error = _parent_ended(parent)
        self.runs[run_id] = new
        return Created(new.view())

    def _ended(self, run: _ModelRun, now: int) -> None:
        """docs/semantics.md "Children": ``run`` just ended. Its end reaches its live
        parent, and a cancelled run's ``cancel`` children are cancelled, down the tree."""
        parent = self.runs.get(run.parent_run_id) if run.parent_run_id else None
        if parent is not None and parent.status not in _ENDED:
            key = (InboxKind.CHILD, run.run_id)
            if key not in parent.inbox:
                error = run.error
                parent.inbox[key] = InboxEntry(
                    run_id=parent.run_id,
                    kind=InboxKind.CHILD,
                    key=run.run_id,
                    name=None,
                    step_id=None,
                    payload={
                        "status": run.status.value,
                        "output": run.output,
                        "error": None
                        if error is None
                        else {"type": error.type, "message": error.message, "code": error.code},
                    },
                    meta=None,
                    received_at=now,
                    consumed=False,
                )
            if (
                parent.status is RunStatus.PAUSED
                and parent.wait is not None
                and _satisfies(parent.wait, parent.inbox[key])
            ):
                parent.become_queued(now)
        if run.status is RunStatus.CANCELLED:
            for below in sorted(self.runs.values(), key=lambda r: r.run_id):
                if (
                    below.parent_run_id == run.run_id
                    and below.parent_policy is ParentPolicy.CANCEL
                    and below.status not in _ENDED
                ):
                    below.end(RunStatus.CANCELLED, now)
                    below.error = _parent_ended(run.run_id)
                    self._ended(below, now)

    def load_run(self, run_id: str) -> Run | None:
        return self.runs[run_id].view() if run_id in self.runs else None

    def list_runs(
        self,
        workflow_id: str | None,
        statuses: frozenset[RunStatus] | None,
        parent: str | None = None,
    ) -> list[Run]:
        rows = [
            r
            for r in self.runs.values()
            if workflow_id in (None, r.workflow_id)
            and (statuses is None or r.status in statuses)
            and parent in (None, r.parent_run_id)
        ]
        rows.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return [r.view() for r in rows]

    def cancel_run(self, run_id: str, reason: str, now: int) -> CancelResult:
        run = self.runs.get(run_id)
        if run is None:
            return NotFound(run_id)
        if run.status in _ENDED:
            return AlreadyTerminal(run.view())
        run.end(RunStatus.CANCELLED, now)
        run.error = ErrorInfo("Cancelled", reason, "cancelled")
        self._ended(run, now)
        return Cancelled(run.view())

    def delete_run(self, run_id: str) -> bool:
        return self.runs.pop(run_id, None) is not None

    def purge_runs(self, terminal_before: int, limit: int) -> list[str]:
        old = [
            r for r in self.runs.values() if r.status in _ENDED and r.updated_at < terminal_before
        ]
        old.sort(key=lambda r: (r.updated_at, r.run_id))
        doomed = [r.run_id for r in old[:limit]]
        for run_id in doomed:
            del self.runs[run_id]
        return doomed

    # claims and leases
    def _claim(self, run: _ModelRun, owner: str, lease_ms: int, now: int, history: bool) -> Claimed:
        run.tokens_issued += 1
        run.lease = Lease(owner, run.tokens_issued, now + lease_ms)
        if run.status is not RunStatus.RUNNING:
            run.status = RunStatus.RUNNING
            run.updated_at = now
        return Claimed(
            run.view(), run.lease, run.entries(False), list(run.events) if history else None
        )

    def claim_run(
        self, run_id: str, owner: str, lease_ms: int, now: int, history: bool
    ) -> ClaimResult:
        run = self.runs.get(run_id)
        if run is None:
            return NotFound(run_id)
        if not run.claimable(now):
            return NotClaimable(run.view())
        return self._claim(run, owner, lease_ms, now, history)

    def claim_runnable(
        self, owner: str, lease_ms: int, limit: int, now: int, history: bool
    ) -> list[Claimed]:
        ready = [r for r in self.runs.values() if r.claimable(now)]
        ready.sort(key=lambda r: (r.ready_at, r.run_id))
        return [self._claim(r, owner, lease_ms, now, history) for r in ready[:limit]]

    def _held(self, run_id: str, lease: Lease) -> _ModelRun:
        run = self.runs.get(run_id)
        if run is None:
            raise LeaseLostError(run_id)
        if run.status is RunStatus.CANCELLED:
            raise RunCancelledError(run_id)
        if run.lease is None or run.lease.token != lease.token:
            raise LeaseLostError(run_id)
        return run

    def heartbeat(self, run_id: str, lease: Lease, lease_ms: int, now: int) -> Lease:
        run = self._held(run_id, lease)
        assert run.lease is not None
        run.lease = Lease(run.lease.owner, lease.token, now + lease_ms)
        return run.lease

    # the event log
    @staticmethod
    def _append(
        run: _ModelRun,
        expected: int,
        events: Sequence[NewEvent],
        consume: Sequence[InboxRef],
        now: int,
    ) -> None:
        if expected != len(run.events):
            raise LogConflictError(run.run_id, expected, len(run.events))
        for e in events:
            run.events.append(
                StoredEvent(run.run_id, len(run.events), e.type, e.step_id, e.data, now)
            )
        for ref in consume:
            entry = run.inbox.get((ref.kind, ref.key))
            if entry is not None:
                run.inbox[(ref.kind, ref.key)] = replace(entry, consumed=True)

    def append_events(
        self,
        run_id: str,
        lease: Lease,
        expected: int,
        events: Sequence[NewEvent],
        now: int,
        consume: Sequence[InboxRef],
    ) -> int:
        run = self._held(run_id, lease)
        self._append(run, expected, events, consume, now)
        return len(run.events)

    def settle_run(
        self,
        run_id: str,
        lease: Lease,
        expected: int,
        events: Sequence[NewEvent],
        outcome: Outcome,
        now: int,
        consume: Sequence[InboxRef],
    ) -> Run:
        run = self._held(run_id, lease)
        self._append(run, expected, events, consume, now)
        run.lease = None
        if isinstance(outcome, Yield):
            run.become_queued(now)
        elif isinstance(outcome, Pause):
            wait = outcome.wait
            if any(not e.consumed and _satisfies(wait, e) for e in run.inbox.values()):
                run.become_queued(now)
            else:
                run.status = RunStatus.PAUSED
                run.wait = wait
                run.ready_at = None
                run.updated_at = now
        elif isinstance(outcome, Finish):
            run.end(RunStatus.FINISHED, now)
            run.output = outcome.output
            self._ended(run, now)
        else:
            assert isinstance(outcome, Fail)
            run.end(RunStatus.ERRORED, now)
            run.error = outcome.error
            self._ended(run, now)
        return run.view()

    def read_events(self, run_id: str, from_index: int, limit: int | None) -> list[StoredEvent]:
        if run_id not in self.runs:
            return []
        events = self.runs[run_id].events[from_index:]
        return events if limit is None else events[:limit]

    # wake-ups
    def deliver(self, entry: InboxEntry) -> DeliveryResult:
        run = self.runs.get(entry.run_id)
        if run is None:
            return NotFound(entry.run_id)
        if (entry.kind, entry.key) in run.inbox:
            return Duplicate(run.inbox[(entry.kind, entry.key)])
        if run.status in _ENDED:
            return Closed(run.view())
        run.inbox[(entry.kind, entry.key)] = entry
        if run.status is RunStatus.PAUSED and run.wait and _satisfies(run.wait, entry):
            run.become_queued(entry.received_at)
            return Delivered(run.view(), entry)
        return Buffered(run.view(), entry)

    def fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        due = [
            r
            for r in self.runs.values()
            if r.status is RunStatus.PAUSED
            and r.wait is not None
            and r.wait.wake_at is not None
            and r.wait.wake_at <= now
        ]
        due.sort(key=lambda r: (r.wait.wake_at if r.wait else 0, r.run_id))
        fired: list[InboxEntry] = []
        for run in due[:limit]:
            wait = run.wait
            assert wait is not None
            entry = InboxEntry(
                run_id=run.run_id,
                kind=InboxKind.TIMER,
                key=wait.step_id,
                name=wait.name if wait.kind is WaitKind.SIGNAL else None,
                step_id=wait.step_id,
                payload={"wake_at": wait.wake_at},
                meta=None,
                received_at=now,
                consumed=False,
            )
            run.inbox[(InboxKind.TIMER, wait.step_id)] = entry
            run.become_queued(now)
            fired.append(entry)
        return fired

    # schedules
    def upsert_schedule(
        self,
        schedule_id: str,
        workflow_id: str,
        spec: ScheduleSpec,
        now: int,
        version: str | None,
        overlap: Overlap,
        input: JSON,
        enabled: bool,
    ) -> Schedule:
        old = self.schedules.get(schedule_id)
        if old is None:
            self.schedules[schedule_id] = _ModelSchedule(
                schedule_id,
                workflow_id,
                version,
                spec,
                overlap,
                input,
                enabled,
                next_fire_at(spec, now),
                now,
            )
        else:
            if spec != old.spec or (enabled and not old.enabled):
                old.next_fire_at = next_fire_at(spec, now)
            old.workflow_id = workflow_id
            old.workflow_version = version
            old.spec = spec
            old.overlap = overlap
            old.input = input
            old.enabled = enabled
            old.updated_at = now
        return self.schedules[schedule_id].view()

    def _still_going(self, schedule: _ModelSchedule) -> bool:
        previous = self.runs.get(schedule.last_run_id) if schedule.last_run_id else None
        return previous is not None and previous.status not in _ENDED

    def fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        due = [
            s
            for s in self.schedules.values()
            if s.enabled
            and s.next_fire_at <= now
            and not (s.overlap is Overlap.BUFFER_ONE and self._still_going(s))
        ]
        due.sort(key=lambda s: (s.next_fire_at, s.schedule_id))
        ticks: list[ScheduleTick] = []
        for s in due[:limit]:
            fire_at = s.next_fire_at
            s.next_fire_at = next_fire_at(s.spec, now)
            if s.overlap is Overlap.SKIP and self._still_going(s):
                ticks.append(
                    ScheduleTick(s.schedule_id, fire_at, TickOutcome.SKIPPED, None, s.next_fire_at)
                )
                continue
            run_id = f"{s.schedule_id}@{fire_at}"
            if run_id not in self.runs:
                self.runs[run_id] = _ModelRun(
                    run_id, s.workflow_id, s.workflow_version, s.input, now, now, now
                )
            s.last_fired_at = fire_at
            s.last_run_id = run_id
            ticks.append(
                ScheduleTick(s.schedule_id, fire_at, TickOutcome.FIRED, run_id, s.next_fire_at)
            )
        return ticks


# -- strategies ---------------------------------------------------------------------------

_RUN_NAMES = ("r0", "r1", "r2")
_SCHEDULE_NAMES = ("sch1", "sch2")
_SIGNAL_IDS = ("s1", "s2", "s3")
_APPROVAL_IDS = ("a1", "a2")
_STEPS = st.sampled_from(["step-1", "step-2"])
_WAKE_IN = st.sampled_from([0, 500, 1000, 3000])
_META: st.SearchStrategy[JSON] = st.sampled_from([None, {"m": 1}])
_JSON: st.SearchStrategy[JSON] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["k", "v"]), st.integers(0, 3), max_size=2),
)

# "@" picks a run that a schedule created, "^" a child run (the first name when there
# is none).
_RUN = st.sampled_from([*_RUN_NAMES, "@", "^"])
# A child's id is its parent's placement, "@" and one of these.
_CHILD_SUFFIXES = ("k1", "k2", "k3")
# Lease-holder calls mostly target a run that was claimed (see ``_held_run``).
_PICK = st.integers(0, 7)
_OWNER = st.sampled_from(["w1", "w2"])
_LEASE_MS = st.sampled_from([1000, 2500])
_LIMIT = st.integers(1, 3)
_WORKFLOW = st.sampled_from(["wf-a", "wf-b"])
# Which lease a lease-holder call uses: the newest handed out for the run, the first
# (stale once the run was claimed again), or one with a token never handed out.
_WHICH_LEASE = st.sampled_from(["newest", "newest", "newest", "first", "forged"])
# Which ``expected_next_index``: the run's, one behind (stale), one ahead.
_AT = st.sampled_from(["current", "current", "current", "behind", "ahead"])
_EVENTS = st.lists(
    st.builds(
        NewEvent,
        type=st.sampled_from(["A", "B"]),
        data=_JSON,
        step_id=st.sampled_from([None, "step-1"]),
    ),
    max_size=2,
)
_CONSUME = st.lists(
    st.sampled_from(
        [
            InboxRef(InboxKind.SIGNAL, "s1"),
            InboxRef(InboxKind.SIGNAL, "s2"),
            InboxRef(InboxKind.APPROVAL, "a1"),
            InboxRef(InboxKind.TIMER, "step-1"),
            InboxRef(InboxKind.TIMER, "step-2"),
        ]
    ),
    max_size=2,
)
_STATUS_FILTER = st.one_of(
    st.none(),
    st.sampled_from(list(RunStatus)),
    st.frozensets(st.sampled_from(list(RunStatus)), min_size=1, max_size=3),
)
# Their ticks repeat every _PERIODS ms (cron: even seconds in any zone).
_PERIODS = 10_000
_SPEC: st.SearchStrategy[ScheduleSpec] = st.sampled_from(
    [
        IntervalSpec(every_ms=1000),
        IntervalSpec(every_ms=2500, anchor_ms=500),
        CronSpec("*/2 * * * * *", "Europe/Berlin"),
    ]
)


@dataclass(frozen=True)
class _Ending:
    """How a ``settle_run`` ends; waits are built at the machine's current time."""

    kind: str
    wait_kind: WaitKind | None = None
    step_id: str = "step-1"
    key: str | None = None
    wake_in: int | None = None
    value: JSON = None

    def outcome(self, now: int, run_id: str = "", children: bool = False) -> Outcome:
        """A child wait names ``run_id``'s child with suffix ``key``; on a store that
        does not declare children it is drawn as a signal wait on that name."""
        wake_at = None if self.wake_in is None else now + self.wake_in
        if self.wait_kind is WaitKind.CHILD:
            if children:
                child_id = f"{_placement(run_id)}@{self.key}"
                return Pause(Wait.child(self.step_id, child_id, timeout_at=wake_at))
            return Pause(Wait.signal(self.step_id, str(self.key), timeout_at=wake_at))
        if self.kind == "yield":
            return Yield()
        if self.kind == "finish":
            return Finish(self.value)
        if self.kind == "fail":
            return Fail(ErrorInfo("Boom", str(self.value), "boom"))
        assert self.key is not None or self.wait_kind is WaitKind.SLEEP
        if self.wait_kind is WaitKind.SIGNAL:
            wait = Wait.signal(self.step_id, str(self.key), timeout_at=wake_at, meta=self.value)
        elif self.wait_kind is WaitKind.APPROVAL:
            wait = Wait.approval(self.step_id, str(self.key), timeout_at=wake_at, meta=self.value)
        else:
            wait = Wait.sleep(self.step_id, now if wake_at is None else wake_at, meta=self.value)
        return Pause(wait)


_PAUSE = st.one_of(
    st.builds(
        _Ending,
        kind=st.just("pause"),
        wait_kind=st.just(WaitKind.SIGNAL),
        step_id=_STEPS,
        key=st.sampled_from(["go", "stop"]),
        wake_in=st.none() | _WAKE_IN,
        value=_META,
    ),
    st.builds(
        _Ending,
        kind=st.just("pause"),
        wait_kind=st.just(WaitKind.APPROVAL),
        step_id=_STEPS,
        key=st.sampled_from(_APPROVAL_IDS),
        wake_in=st.none() | _WAKE_IN,
        value=_META,
    ),
    st.builds(
        _Ending,
        kind=st.just("pause"),
        wait_kind=st.just(WaitKind.SLEEP),
        step_id=_STEPS,
        wake_in=_WAKE_IN,
        value=_META,
    ),
    st.builds(
        _Ending,
        kind=st.just("pause"),
        wait_kind=st.just(WaitKind.CHILD),
        step_id=_STEPS,
        key=st.sampled_from(_CHILD_SUFFIXES),
        wake_in=st.none() | _WAKE_IN,
    ),
)
# How a seeded run starts: "queued", "running", or claimed and settled with an ending.
_START: st.SearchStrategy[_Ending | str] = st.one_of(
    st.sampled_from(["queued", "running"]), _PAUSE, _PAUSE, _PAUSE
)
# Pauses are drawn most often: they are where wake-ups, timers and buffering meet.
_ENDING = st.one_of(
    st.just(_Ending("yield")),
    _PAUSE,
    _PAUSE,
    _PAUSE,
    _PAUSE,
    st.builds(_Ending, kind=st.just("finish"), value=_JSON),
    st.builds(_Ending, kind=st.just("fail"), value=st.sampled_from(["x", "y"])),
)


# -- the machine --------------------------------------------------------------------------


class _Session:
    """What every example of one test shares: the store, its loop, and the clock."""

    def __init__(
        self, store: ExecutionStore, loop: asyncio.AbstractEventLoop, children: bool = False
    ) -> None:
        self.store = store
        self.loop = loop
        self.children = children
        """The store declares ``Capability.CHILDREN``: child runs and waits are drawn."""
        self.now = T0
        self.examples = itertools.count()

    def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


def _failure(error: WorkflowStoreError) -> tuple[object, ...]:
    """What identifies an expected error: its exact type and the values it carries."""
    if isinstance(error, LogConflictError):
        return (type(error), error.run_id, error.expected, error.current)
    if isinstance(error, LeaseLostError):
        return (type(error), error.run_id)
    return (type(error), str(error))


def _same(what: str, actual: object, expected: object) -> None:
    assert actual == expected, f"{what}:\n  store: {actual!r}\n  model: {expected!r}"


def _claim_sorted(claim: Claimed) -> Claimed:
    # The order of a claim's inbox is not part of the rules; read_inbox's order is.
    return replace(claim, inbox=sorted(claim.inbox, key=_inbox_order))


class _StoreMachine(RuleBasedStateMachine):
    session: ClassVar[_Session]

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"ex{next(self.session.examples)}:"
        # Start on a multiple of every schedule period (see _SPEC), so that an example
        # behaves the same whenever Hypothesis runs or replays it.
        self.session.now = (self.session.now // _PERIODS + 1) * _PERIODS
        self.model = _Model()
        # Every lease handed out per run, oldest first (heartbeats included).
        self.leases: dict[str, list[Lease]] = {}

    # helpers
    @property
    def store(self) -> ExecutionStore:
        return self.session.store

    @property
    def now(self) -> int:
        return self.session.now

    def _run_id(self, name: str) -> str:
        if name == "@":
            made = sorted(
                r for r, run in self.model.runs.items() if "@" in r and not run.parent_run_id
            )
            return made[-1] if made else self.prefix + _RUN_NAMES[0]
        if name == "^":
            kids = sorted(r for r, run in self.model.runs.items() if run.parent_run_id)
            return kids[-1] if kids else self.prefix + _RUN_NAMES[0]
        return self.prefix + name

    def _held_run(self, pick: int) -> str:
        """Picks 0-3: a run that holds a lease now; 4, 5: a run some lease was ever
        handed out for; 6, 7 (or when there is none): any run name."""
        held = sorted(r for r, run in self.model.runs.items() if run.lease is not None)
        claimed = sorted(self.leases)
        if held and pick < 4:
            return held[pick % len(held)]
        if claimed and pick < 6:
            return claimed[pick % len(claimed)]
        return self.prefix + _RUN_NAMES[pick % len(_RUN_NAMES)]

    def _lease(self, run_id: str, which: str) -> Lease:
        issued = self.leases.get(run_id, [])
        if which == "newest" and issued:
            return issued[-1]
        if which == "first" and issued:
            return issued[0]
        run = self.model.runs.get(run_id)
        never_issued = (run.tokens_issued if run else 0) + 1
        return Lease("w1", never_issued, self.now + 1000)

    def _index(self, run_id: str, at: str) -> int:
        run = self.model.runs.get(run_id)
        current = len(run.events) if run else 0
        if at == "behind":
            return current - 1 if current else current + 2
        return current + 1 if at == "ahead" else current

    def _check(
        self,
        what: str,
        call: Coroutine[Any, Any, _T],
        expect: Callable[[], _T],
        normalize: Callable[[_T], object] = lambda value: value,
    ) -> _T | None:
        """Run ``expect`` on the model and ``call`` on the store; they must agree on the
        value returned or on the error raised. Returns the model's value."""
        expected: object
        try:
            value = expect()
            expected = normalize(value)
        except WorkflowStoreError as exc:
            value, expected = None, _failure(exc)
        try:
            actual: object = normalize(self.session.call(call))
        except WorkflowStoreError as exc:
            actual = _failure(exc)
        _same(what, actual, expected)
        return value

    @initialize(
        starts=st.lists(
            st.tuples(_WORKFLOW, _START), min_size=len(_RUN_NAMES), max_size=len(_RUN_NAMES)
        ),
        schedules=st.lists(
            st.tuples(_SPEC, st.sampled_from(list(Overlap))),
            min_size=len(_SCHEDULE_NAMES),
            max_size=len(_SCHEDULE_NAMES),
        ),
    )
    def seed(
        self,
        starts: list[tuple[str, _Ending | str]],
        schedules: list[tuple[ScheduleSpec, Overlap]],
    ) -> None:
        """Start every example with each run in a drawn state (queued, running, paused
        on a wait, or ended) and both schedules declared, reached through the normal
        operations: deep states are otherwise rare within one example's steps."""
        for name, (spec, overlap) in zip(_SCHEDULE_NAMES, schedules, strict=True):
            self._upsert(self.prefix + name, "wf-a", spec, None, overlap, None, True)
        for name, (workflow, start) in zip(_RUN_NAMES, starts, strict=True):
            run_id = self.prefix + name
            self._create(run_id, workflow, None, {"seed": name})
            if start != "queued":
                self._claim(run_id, "w1", 1000, False)
            if isinstance(start, _Ending):
                self._settle_held(run_id, [], start, consume_inbox=False)

    # time, and the wake-ups it brings
    @rule(
        # A 500 ms grid, like the leases and wake-ups: boundaries (expires_at == now,
        # wake_at == now, next_fire_at == now) come up often.
        ms=st.sampled_from([0, 500, 1000, 2500, 5000]),
        fire=st.sampled_from(["timers", "schedules", "both", "neither"]),
        limit=_LIMIT,
    )
    def advance_clock(self, ms: int, fire: str, limit: int) -> None:
        """Move time forward, then (like a scheduler loop) fire_due_timers and/or
        fire_due_schedules. (One rule: Hypothesis draws the rule with the fewest
        arguments most often, so it had better do something.)"""
        self.session.now += ms
        now = self.now
        if fire in ("timers", "both"):
            self._check(
                f"fire_due_timers({now}, {limit})",
                self.store.fire_due_timers(now, limit),
                lambda: self.model.fire_due_timers(now, limit),
                lambda entries: sorted(entries, key=lambda e: e.run_id),
            )
        if fire in ("schedules", "both"):
            self._check(
                f"fire_due_schedules({now}, {limit})",
                self.store.fire_due_schedules(now, limit),
                lambda: self.model.fire_due_schedules(now, limit),
                lambda ticks: sorted(ticks, key=lambda t: t.schedule_id),
            )

    # run lifecycle
    @rule(run=_RUN, workflow=_WORKFLOW, version=st.sampled_from([None, "v1"]), input=_JSON)
    def create_run(self, run: str, workflow: str, version: str | None, input: JSON) -> None:
        self._create(self._run_id(run), workflow, version, input)

    def _create(self, run_id: str, workflow: str, version: str | None, input: JSON) -> None:
        now = self.now
        self._check(
            f"create_run({run_id!r}, {workflow!r})",
            self.store.create_run(run_id, workflow, version, input, now),
            lambda: self.model.create_run(run_id, workflow, version, input, now),
        )

    @precondition(lambda self: self.session.children)
    @rule(
        parent=_RUN,
        suffix=st.sampled_from([*_CHILD_SUFFIXES, "awaited"]),
        policy=st.sampled_from(list(ParentPolicy)),
        workflow=_WORKFLOW,
    )
    def create_child(self, parent: str, suffix: str, policy: ParentPolicy, workflow: str) -> None:
        """create_run of a child of an existing run (stores declaring children)."""
        parent_id, now = self._run_id(parent), self.now
        if parent_id not in self.model.runs:
            return  # an unknown parent is refused: the children cases check that
        wait = self.model.runs[parent_id].wait
        if suffix == "awaited":
            # The child the parent waits for, if it waits for one (else the first).
            awaited = wait.name if wait is not None and wait.kind is WaitKind.CHILD else None
            suffix = str(awaited).rpartition("@")[2] if awaited else _CHILD_SUFFIXES[0]
        run_id = f"{_placement(parent_id)}@{suffix}"
        if run_id == parent_id:
            return
        self._check(
            f"create_run({run_id!r}, {workflow!r}, parent_run_id={parent_id!r}, {policy})",
            self.store.create_run(
                run_id, workflow, None, None, now, parent_run_id=parent_id, parent_policy=policy
            ),
            lambda: self.model.create_run(run_id, workflow, None, None, now, parent_id, policy),
        )

    def _live_children(self) -> list[str]:
        return sorted(
            r
            for r, run in self.model.runs.items()
            if run.parent_run_id is not None and run.status not in _ENDED
        )

    def _parent_is_live(self, run_id: str) -> bool:
        parent_id = self.model.runs[run_id].parent_run_id
        parent = self.model.runs.get(parent_id) if parent_id else None
        return parent is not None and parent.status not in _ENDED

    def _awaited(self, run_id: str) -> bool:
        parent_id = self.model.runs[run_id].parent_run_id
        parent = self.model.runs.get(parent_id) if parent_id else None
        return (
            parent is not None
            and parent.status is RunStatus.PAUSED
            and parent.wait is not None
            and parent.wait.kind is WaitKind.CHILD
            and parent.wait.name == run_id
        )

    @precondition(lambda self: bool(self._live_children()))
    @rule(
        pick=_PICK,
        how=st.sampled_from(["finish", "fail", "cancel", "cancel_parent"]),
        value=_JSON,
    )
    def end_child(self, pick: int, how: str, value: JSON) -> None:
        """End a live child (claimed and settled, or cancelled), or cancel its parent:
        where child entries, wake-ups and cascades happen (random picks rarely meet)."""
        live = self._live_children()
        if how == "cancel_parent":
            # A live parent, so that its cancellation cascades.
            pool = [r for r in live if self._parent_is_live(r)] or live
        else:
            # Picks 0-3 prefer a child its paused parent waits for (the wake-up path).
            awaited = [r for r in live if self._awaited(r)]
            pool = awaited if awaited and pick < 4 else live
        run_id, now = pool[pick % len(pool)], self.now
        parent_id = self.model.runs[run_id].parent_run_id
        if how == "cancel_parent" and parent_id is not None:
            run_id = parent_id
        if how in ("cancel", "cancel_parent"):
            self._check(
                f"cancel_run({run_id!r})",
                self.store.cancel_run(run_id, "stop", now),
                lambda: self.model.cancel_run(run_id, "stop", now),
            )
            return
        self._claim(run_id, "w2", 1000, False)
        ending = _Ending(how, value=value if how == "finish" else "x")
        self._settle_held(run_id, [], ending, consume_inbox=False)

    @rule(
        run=_RUN,
        from_index=st.integers(0, 4),
        limit=st.none() | _LIMIT,
        include_consumed=st.booleans(),
        workflow=st.none() | _WORKFLOW,
        status=_STATUS_FILTER,
        page_size=_LIMIT,
    )
    def read_back(
        self,
        run: str,
        from_index: int,
        limit: int | None,
        include_consumed: bool,
        workflow: str | None,
        status: RunStatus | frozenset[RunStatus] | None,
        page_size: int,
    ) -> None:
        """Every read: one run's record, events, timeline and inbox; then list_runs
        with filters, page by page."""
        run_id = self._run_id(run)
        self._check(
            f"load_run({run_id!r})",
            self.store.load_run(run_id),
            lambda: self.model.load_run(run_id),
        )
        self._check(
            f"read_events({run_id!r}, {from_index}, {limit})",
            self.store.read_events(run_id, from_index, limit),
            lambda: self.model.read_events(run_id, from_index, limit),
        )
        model_run = self.model.runs.get(run_id)
        self._check(
            f"get_timeline({run_id!r}, {from_index}, {limit})",
            self.store.get_timeline(run_id, from_index, limit),
            lambda: (
                None
                if model_run is None
                else Timeline(model_run.view(), self.model.read_events(run_id, from_index, limit))
            ),
        )
        self._check(
            f"read_inbox({run_id!r}, include_consumed={include_consumed})",
            self.store.read_inbox(run_id, include_consumed=include_consumed),
            lambda: [] if model_run is None else model_run.entries(include_consumed),
        )

        if self.session.children:
            self._check(
                f"list_runs(parent_run_id={run_id!r})",
                self.store.list_runs(parent_run_id=run_id, limit=1000),
                lambda: Page(self.model.list_runs(None, None, run_id), None),
                lambda page: page.items,
            )
        statuses = frozenset({status}) if isinstance(status, RunStatus) else status
        expected = self.model.list_runs(workflow, statuses)
        cursor: str | None = None
        for start in range(0, len(expected) + page_size, page_size):
            page = self.session.call(
                self.store.list_runs(
                    workflow_id=workflow, status=status, limit=page_size, cursor=cursor
                )
            )
            what = f"list_runs({workflow!r}, {status!r}, {page_size}) from row {start}"
            assert page.items == expected[start : start + page_size], (
                f"{what}:\n  store: {page.items!r}\n  model: {expected!r}"
            )
            last = start + page_size >= len(expected)
            assert (page.next_cursor is None) == last, f"{what}: next_cursor {page.next_cursor!r}"
            if last:
                return
            cursor = page.next_cursor
        raise AssertionError(f"list_runs paged past {len(expected)} rows")

    @rule(
        how=st.sampled_from(["cancel", "delete", "purge"]),
        run=_RUN,
        reason=st.sampled_from(["stop", ""]),
        back=st.sampled_from([0, 1000, 5000]),
        limit=_LIMIT,
    )
    def end_runs(self, how: str, run: str, reason: str, back: int, limit: int) -> None:
        """cancel_run or delete_run one run, or purge_runs terminal runs older than
        ``back`` ms. (One rule, so that ending runs does not crowd out the rest.)"""
        run_id, now = self._run_id(run), self.now
        if how == "cancel":
            self._check(
                f"cancel_run({run_id!r})",
                self.store.cancel_run(run_id, reason, now),
                lambda: self.model.cancel_run(run_id, reason, now),
            )
        elif how == "delete":
            self._check(
                f"delete_run({run_id!r})",
                self.store.delete_run(run_id),
                lambda: self.model.delete_run(run_id),
            )
        else:
            before = now - back
            self._check(
                f"purge_runs({before}, {limit})",
                self.store.purge_runs(before, limit),
                lambda: len(self.model.purge_runs(before, limit)),
            )
        # A recreated run starts its tokens at 1 again: forget the old leases.
        for gone in [r for r in self.leases if r not in self.model.runs]:
            del self.leases[gone]

    # claims and leases
    @rule(
        run=st.none() | _RUN,
        owner=_OWNER,
        lease_ms=_LEASE_MS,
        limit=_LIMIT,
        with_history=st.booleans(),
    )
    def claim(
        self, run: str | None, owner: str, lease_ms: int, limit: int, with_history: bool
    ) -> None:
        """claim_run by name, or (``run`` None) claim_runnable."""
        if run is None:
            self._claim_runnable(owner, lease_ms, limit, with_history)
        else:
            self._claim(self._run_id(run), owner, lease_ms, with_history)

    def _claim(self, run_id: str, owner: str, lease_ms: int, with_history: bool) -> None:
        now = self.now
        result = self._check(
            f"claim_run({run_id!r}, {owner!r})",
            self.store.claim_run(run_id, owner, lease_ms, now, with_history=with_history),
            lambda: self.model.claim_run(run_id, owner, lease_ms, now, with_history),
            lambda r: _claim_sorted(r) if isinstance(r, Claimed) else r,
        )
        if isinstance(result, Claimed):
            self.leases.setdefault(run_id, []).append(result.lease)

    def _claim_runnable(
        self, owner: str, lease_ms: int, limit: int, with_history: bool
    ) -> list[Claimed]:
        now = self.now
        claims = self._check(
            f"claim_runnable({owner!r}, limit={limit})",
            self.store.claim_runnable(owner, lease_ms, limit, now, with_history=with_history),
            lambda: self.model.claim_runnable(owner, lease_ms, limit, now, with_history),
            lambda cs: sorted((_claim_sorted(c) for c in cs), key=lambda c: c.run.run_id),
        )
        for claim in claims or []:
            self.leases.setdefault(claim.run.run_id, []).append(claim.lease)
        return claims or []

    @rule(
        run=st.none() | _RUN,
        owner=_OWNER,
        events=_EVENTS,
        ending=_ENDING,
        consume_inbox=st.booleans(),
    )
    def run_slice(
        self,
        run: str | None,
        owner: str,
        events: list[NewEvent],
        ending: _Ending,
        consume_inbox: bool,
    ) -> None:
        """One slice the way an engine runs it: claim a run (by name, or the next
        runnable one when ``run`` is None), then settle with the claim's lease and
        index, consuming the wake-ups it was handed (or not)."""
        if run is None:
            claims = self._claim_runnable(owner, 1000, 1, False)
            if not claims:
                return
            run_id = claims[0].run.run_id
        else:
            run_id = self._run_id(run)
            self._claim(run_id, owner, 1000, False)
        self._settle_held(run_id, events, ending, consume_inbox)

    def _settle_held(
        self, run_id: str, events: list[NewEvent], ending: _Ending, consume_inbox: bool
    ) -> None:
        """settle_run with the run's current lease and index (if it holds a lease)."""
        model_run = self.model.runs.get(run_id)
        if model_run is None or model_run.lease is None:
            return
        now, lease, index = self.now, model_run.lease, len(model_run.events)
        outcome = ending.outcome(now, run_id, self.session.children)
        consume = [e.ref for e in model_run.entries(False)] if consume_inbox else []
        self._check(
            f"settle_run({run_id!r}, {lease!r}, {index}, {outcome!r}, consume={consume!r})",
            self.store.settle_run(run_id, lease, index, events, outcome, now, consume=consume),
            lambda: self.model.settle_run(run_id, lease, index, events, outcome, now, consume),
        )

    def _running(self) -> list[str]:
        return sorted(r for r, run in self.model.runs.items() if run.status is RunStatus.RUNNING)

    @precondition(lambda self: bool(self._running()))
    @rule(pick=_PICK, owner=_OWNER, late=st.sampled_from([0, 0, 500]), by_name=st.booleans())
    def take_over_expired(self, pick: int, owner: str, late: int, by_name: bool) -> None:
        """Stale-lease recovery: once a running run's lease has expired (exactly at
        ``expires_at``, or ``late`` ms after), claim it by name or via claim_runnable."""
        running = self._running()
        run_id = running[pick % len(running)]
        lease = self.model.runs[run_id].lease
        assert lease is not None
        self.session.now = max(self.now, lease.expires_at + late)
        if by_name:
            self._claim(run_id, owner, 1000, False)
        else:
            self._claim_runnable(owner, 1000, len(_RUN_NAMES), False)

    @rule(pick=_PICK, which=_WHICH_LEASE, lease_ms=_LEASE_MS)
    def heartbeat(self, pick: int, which: str, lease_ms: int) -> None:
        run_id, now = self._held_run(pick), self.now
        lease = self._lease(run_id, which)
        renewed = self._check(
            f"heartbeat({run_id!r}, {lease!r})",
            self.store.heartbeat(run_id, lease, lease_ms, now),
            lambda: self.model.heartbeat(run_id, lease, lease_ms, now),
        )
        if renewed is not None:
            self.leases.setdefault(run_id, []).append(renewed)

    # the event log
    @rule(pick=_PICK, which=_WHICH_LEASE, at=_AT, events=_EVENTS, consume=_CONSUME)
    def append_events(
        self, pick: int, which: str, at: str, events: list[NewEvent], consume: list[InboxRef]
    ) -> None:
        run_id, now = self._held_run(pick), self.now
        lease, index = self._lease(run_id, which), self._index(run_id, at)
        self._check(
            f"append_events({run_id!r}, {lease!r}, {index})",
            self.store.append_events(run_id, lease, index, events, now, consume=consume),
            lambda: self.model.append_events(run_id, lease, index, events, now, consume),
        )

    @rule(
        pick=_PICK,
        which=_WHICH_LEASE,
        at=_AT,
        events=_EVENTS,
        ending=_ENDING,
        consume=_CONSUME,
    )
    def settle_run(
        self,
        pick: int,
        which: str,
        at: str,
        events: list[NewEvent],
        ending: _Ending,
        consume: list[InboxRef],
    ) -> None:
        run_id, now = self._held_run(pick), self.now
        lease, index = self._lease(run_id, which), self._index(run_id, at)
        outcome = ending.outcome(now, run_id, self.session.children)
        self._check(
            f"settle_run({run_id!r}, {lease!r}, {index}, {outcome!r})",
            self.store.settle_run(run_id, lease, index, events, outcome, now, consume=consume),
            lambda: self.model.settle_run(run_id, lease, index, events, outcome, now, consume),
        )

    # wake-ups
    @rule(
        run=_RUN,
        key=st.sampled_from(_SIGNAL_IDS + _APPROVAL_IDS),
        name=st.sampled_from(["go", "stop"]),
        payload=_JSON,
        step_id=st.sampled_from([None, "step-1", "step-2"]),
        meta=_META,
    )
    def deliver(
        self, run: str, key: str, name: str, payload: JSON, step_id: str | None, meta: JSON
    ) -> None:
        """deliver_signal ``key`` named ``name``; or, for an approval id,
        deliver_approval ``key``, approved when ``name`` is "go"."""
        run_id = self._run_id(run)
        if key in _APPROVAL_IDS:
            self._approval(run_id, key, name == "go", payload, meta)
        else:
            self._signal(run_id, key, name, payload, step_id, meta)

    def _signal(
        self,
        run_id: str,
        signal_id: str,
        name: str,
        payload: JSON,
        step_id: str | None,
        meta: JSON,
    ) -> None:
        now = self.now
        entry = InboxEntry(
            run_id, InboxKind.SIGNAL, signal_id, name, step_id, payload, meta, now, False
        )
        self._check(
            f"deliver_signal({run_id!r}, {signal_id!r}, {name!r}, step_id={step_id!r})",
            self.store.deliver_signal(
                run_id, signal_id, name, payload, now, step_id=step_id, meta=meta
            ),
            lambda: self.model.deliver(entry),
        )

    def _approval(
        self, run_id: str, approval_id: str, approved: bool, feedback: JSON, meta: JSON
    ) -> None:
        now = self.now
        payload: JSON = {"approved": approved, "feedback": feedback}
        entry = InboxEntry(
            run_id, InboxKind.APPROVAL, approval_id, None, None, payload, meta, now, False
        )
        self._check(
            f"deliver_approval({run_id!r}, {approval_id!r})",
            self.store.deliver_approval(
                run_id, approval_id, approved, now, feedback=feedback, meta=meta
            ),
            lambda: self.model.deliver(entry),
        )

    def _waiting(self) -> list[_ModelRun]:
        return [
            r
            for _, r in sorted(self.model.runs.items())
            if r.status is RunStatus.PAUSED
            and r.wait is not None
            and r.wait.kind in (WaitKind.SIGNAL, WaitKind.APPROVAL)
        ]

    @precondition(lambda self: bool(self._waiting()))
    @rule(pick=_PICK, payload=_JSON, name_step=st.booleans())
    def wake_waiting_run(self, pick: int, payload: JSON, name_step: bool) -> None:
        """Deliver what a paused run waits for (random deliveries rarely match)."""
        waiting = self._waiting()
        run = waiting[pick % len(waiting)]
        wait = run.wait
        assert wait is not None
        if wait.kind is WaitKind.SIGNAL:
            used = {key for kind, key in run.inbox if kind is InboxKind.SIGNAL}
            fresh = [i for i in _SIGNAL_IDS if i not in used]
            step_id = wait.step_id if name_step else None
            signal_id = (fresh or list(_SIGNAL_IDS))[0]
            self._signal(run.run_id, signal_id, str(wait.name), payload, step_id, None)
        else:
            self._approval(run.run_id, str(wait.approval_id), name_step, payload, None)

    def _received(self) -> list[InboxEntry]:
        return [
            e
            for r in sorted(self.model.runs)
            for e in self.model.runs[r].entries(True)
            if e.kind in (InboxKind.SIGNAL, InboxKind.APPROVAL)
        ]

    @precondition(lambda self: bool(self._received()))
    @rule(pick=_PICK, payload=_JSON)
    def redeliver(self, pick: int, payload: JSON) -> None:
        """Deliver a signal or approval id a run already has, with another payload:
        always a Duplicate carrying the first entry, also once the run has ended
        (picks 0-3 prefer those: Duplicate takes precedence over Closed)."""
        received = self._received()
        ended = [e for e in received if self.model.runs[e.run_id].status in _ENDED]
        pool = ended if ended and pick < 4 else received
        entry = pool[pick % len(pool)]
        if entry.kind is InboxKind.SIGNAL:
            name = str(entry.name)
            self._signal(entry.run_id, entry.key, name, payload, entry.step_id, None)
        else:
            self._approval(entry.run_id, entry.key, True, payload, None)

    # schedules
    @rule(
        name=st.sampled_from(_SCHEDULE_NAMES),
        drop=st.sampled_from([False, False, False, True]),
        workflow=_WORKFLOW,
        spec=_SPEC,
        version=st.sampled_from([None, "v1"]),
        overlap=st.sampled_from(list(Overlap)),
        input=_JSON,
        enabled=st.sampled_from([True, True, False]),
    )
    def declare_schedule(
        self,
        name: str,
        drop: bool,
        workflow: str,
        spec: ScheduleSpec,
        version: str | None,
        overlap: Overlap,
        input: JSON,
        enabled: bool,
    ) -> None:
        """upsert_schedule, or (``drop``) get_schedule then delete_schedule."""
        schedule_id = self.prefix + name
        if not drop:
            self._upsert(schedule_id, workflow, spec, version, overlap, input, enabled)
            return
        known = self.model.schedules.get(schedule_id)
        self._check(
            f"get_schedule({schedule_id!r})",
            self.store.get_schedule(schedule_id),
            lambda: None if known is None else known.view(),
        )
        self._check(
            f"delete_schedule({schedule_id!r})",
            self.store.delete_schedule(schedule_id),
            lambda: self.model.schedules.pop(schedule_id, None) is not None,
        )

    def _upsert(
        self,
        schedule_id: str,
        workflow: str,
        spec: ScheduleSpec,
        version: str | None,
        overlap: Overlap,
        input: JSON,
        enabled: bool,
    ) -> None:
        now = self.now
        self._check(
            f"upsert_schedule({schedule_id!r}, {spec!r}, {overlap}, enabled={enabled})",
            self.store.upsert_schedule(
                schedule_id,
                workflow,
                spec,
                now,
                workflow_version=version,
                overlap=overlap,
                input=input,
                enabled=enabled,
            ),
            lambda: self.model.upsert_schedule(
                schedule_id, workflow, spec, now, version, overlap, input, enabled
            ),
        )

    # the whole visible state, after every step
    @invariant()
    def store_matches_model(self) -> None:
        store = self.store
        run_ids = sorted(self.model.runs)

        async def read_all() -> tuple[
            list[Run], list[list[StoredEvent]], list[list[InboxEntry]], list[Schedule]
        ]:
            page = await store.list_runs(limit=1000)
            events = [await store.read_events(r) for r in run_ids]
            inboxes = [await store.read_inbox(r, include_consumed=True) for r in run_ids]
            return page.items, events, inboxes, await store.list_schedules()

        runs, events, inboxes, schedules = self.session.call(read_all())
        _same("list_runs()", runs, self.model.list_runs(None, None))
        for run_id, got_events, got_inbox in zip(run_ids, events, inboxes, strict=True):
            model_run = self.model.runs[run_id]
            _same(f"read_events({run_id!r})", got_events, model_run.events)
            _same(
                f"read_inbox({run_id!r}, include_consumed=True)", got_inbox, model_run.entries(True)
            )
        expected_schedules = [self.model.schedules[s].view() for s in sorted(self.model.schedules)]
        _same("list_schedules()", schedules, expected_schedules)

    def teardown(self) -> None:
        store = self.store
        run_ids = {*self.model.runs, *(self.prefix + n for n in _RUN_NAMES)}
        schedule_ids = {*self.model.schedules, *(self.prefix + n for n in _SCHEDULE_NAMES)}

        async def clean() -> None:
            # Also whatever the store holds beyond the model, so that a failing
            # example cannot leak into the next one while Hypothesis shrinks.
            page = await store.list_runs(limit=1000)
            for run_id in run_ids | {r.run_id for r in page.items}:
                await store.delete_run(run_id)
            for schedule_id in schedule_ids | {s.schedule_id for s in await store.list_schedules()}:
                await store.delete_schedule(schedule_id)

        self.session.call(clean())

    @classmethod
    def on(cls, session: _Session) -> type[_StoreMachine]:
        """The machine class for one test: Hypothesis instantiates it per example."""
        return type("StoreMachine", (cls,), {"session": session})


# Profiles the suite registers (name them in HYPOTHESIS_PROFILE): the default search,
# and a quick one for runs whose point is elsewhere (the lowest-dependency run, `tox -e
# floor`, repeats every case the main runs made at full strength on the same stores).
settings.register_profile(
    "workflow-default", max_examples=60, stateful_step_count=40, database=None
)
settings.register_profile("workflow-quick", max_examples=12, stateful_step_count=40, database=None)


def _settings() -> settings:
    common: dict[str, Any] = {
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow],
    }
    # A registered profile named in HYPOTHESIS_PROFILE (yours, or one of the above)
    # decides how hard to search.
    profile = os.environ.get("HYPOTHESIS_PROFILE") or "workflow-default"
    return settings(settings.get_profile(profile), **common)


class StatefulCases:
    async def test_stateful_model(self, store: ExecutionStore) -> None:
        declared: frozenset[Capability] = getattr(self, "capabilities", frozenset())
        session = _Session(store, asyncio.get_running_loop(), Capability.CHILDREN in declared)
        await asyncio.to_thread(
            run_state_machine_as_test, _StoreMachine.on(session), settings=_settings()
        )
