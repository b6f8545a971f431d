"""The runtime driver: starts runs, delivers wake-ups, and drives runs slice by slice.

``Runtime(store, workflows)`` works with any :class:`~workflow.runtime.ExecutionStore`
through the contract alone. :meth:`Runtime.sweep` is one round of work: fire due
schedules, fire due timers, then claim runnable runs (stale ones included) and drive
each, a bounded number at a time. A drive claims, replays, runs until the workflow
pauses, finishes, fails or its slice deadline passes, heartbeats meanwhile, and ends
with exactly one ``settle_run``. A failure in one run never stops the sweep: it is
recorded on that run as a failed attempt with a backoff, and the run ends ``errored``
once ``run_retry.max_attempts`` attempts failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from . import telemetry
from .children import ChildSpec
from .contract import Capability, ExecutionStore
from .definitions import InputT, OutputT, Workflow, WorkflowSet
from .engine import (
    Clock,
    EventListener,
    Execution,
    Journal,
    LeaseBox,
    error_info,
)
from .errors import (
    InvalidArgumentError,
    LeaseLostError,
    RunCancelledError,
    RunTimedOutError,
    WorkflowStoreError,
)
from .history import RUN_RETRY_STEP, EventType, History, error_data
from .queues import check_queues
from .records import (
    DEFAULT_QUEUE,
    JSON,
    ErrorInfo,
    InboxEntry,
    InboxKind,
    NewEvent,
    Run,
    RunStatus,
    Schedule,
    Wait,
)
from .results import (
    CancelResult,
    Claimed,
    Conflict,
    Created,
    CreateResult,
    Delivered,
    DeliveryResult,
    Fail,
    Finish,
    Outcome,
    Pause,
    ScheduleTick,
    Yield,
)
from .retry import DEFAULT_RUN_RETRY, RetryPolicy
from .traced_store import traced
from .validation import MAX_MS, check_int, check_lease_ms, check_limit
from .workflow_errors import (
    ResultTimeoutError,
    RunConflictError,
    RunFailedError,
    RunNotFoundError,
    UnknownWorkflowError,
    WorkflowFailed,
)

log: logging.Logger = logging.getLogger("workflow.runtime")

LEASE_SAFETY_MARGIN = 0.1
"""Part of the lease this worker does not count on: its local deadline (monotonic
clock) is the lease less a tenth from the moment the claim or renewal was sent, so it
stops before another worker can take the run over, as long as the workers' wall clocks
are within that margin of each other (3 s of the default 30 s lease)."""

RELEASE_TIMEOUT_S = 2.0
"""How long a cancelled drive tries to settle (release) its run before giving up."""

UNKNOWN_WORKFLOW_DEFER_MS = 5_000
"""How long a run of a workflow (or version) this worker does not register is put back
for, so that a worker that registers it (mid rolling deploy) can take it."""

MAX_DEFERRALS_REMEMBERED = 10_000
"""Bound on the run ids a runtime remembers having logged as put back."""


class LocalWorker(Protocol):
    """What a :class:`Runtime` asks of a worker attached to it (:meth:`Runtime.attach`)."""

    def wake(self) -> None:
        """Work may have appeared: poll now."""

    def reserve(self) -> bool:
        """Hold a free drive slot for a run about to be created claimed (False: none)."""

    def unreserve(self) -> None:
        """Give back a slot :meth:`reserve` held (the create claimed nothing)."""

    def adopt(self, claim: Claimed) -> None:
        """Drive ``claim`` in the slot :meth:`reserve` held."""

    @property
    def claim_as(self) -> tuple[str, int]:
        """The lease owner and length (ms) of a run created claimed for it."""

    def lend(self, workflow_id: str, version: str | None, queue: str) -> LocalWorker | None:
        """Another worker of the process, serving ``queue``, that reserved a slot for a
        run of that workflow version (``None``: none has one)."""


def _ignore_outcome(call: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned call's outcome (asyncio would log it as never retrieved)."""
    if not call.cancelled():
        call.exception()


def system_clock() -> int:
    """Wall-clock time in ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


def default_owner() -> str:
    """A lease owner id unique to this process (and to this call): host, pid, random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DriveOutcome(enum.StrEnum):
    FINISHED = "finished"
    """The run finished; its output is stored."""
    PAUSED = "paused"
    """The run waits for a timer, a signal or an approval (or was already woken)."""
    YIELDED = "yielded"
    """The slice deadline passed (or the worker is stopping): the run is queued again."""
    FAILED = "failed"
    """The run ended ``errored``."""
    RETRYING = "retrying"
    """The slice failed; the failure is recorded and the run retries after a backoff."""
    LOST = "lost"
    """The lease was lost (taken over after expiry, or the run was deleted)."""
    CANCELLED = "cancelled"
    """The run was cancelled while the slice ran."""
    ABANDONED = "abandoned"
    """The store failed mid-slice; the lease expires and another claim picks it up."""
    DEFERRED = "deferred"
    """This worker does not register the run's workflow or version: the run is put back
    (on a short timer, no failed attempt counted) for a worker that does."""


@dataclass(frozen=True, slots=True)
class DriveReport:
    run_id: str
    workflow_id: str
    outcome: DriveOutcome
    run: Run | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class SweepReport:
    ticks: list[ScheduleTick] = field(default_factory=list)
    timers: list[InboxEntry] = field(default_factory=list)
    drives: list[DriveReport] = field(default_factory=list)

    @property
    def did_work(self) -> bool:
        return bool(self.ticks or self.timers or self.drives)


class Runtime:
    """Runs workflows on a store.

    ``workflows``: the :class:`Workflow` objects this runtime can run. ``owner``: the
    lease owner id (default: unique per process). ``lease_ms``: lease length, renewed
    every ``heartbeat_ms`` (default a third of it; it must be shorter than the lease,
    else :class:`InvalidArgumentError`) while a slice runs.
    ``slice_ms``: a slice yields at the next operation after this long.
    ``concurrency``: runs driven at once by one sweep (or one worker).
    ``run_retry``: attempts and backoff for failing slices.
    ``clock``: ms since the epoch (tests pass a fake one).
    ``listener``: called with every event once it is durably written.
    ``queues``: claim only runs of these queues (``None``: every queue); a run this
    runtime starts in another queue is left to the workers that serve it.

    With OpenTelemetry installed (the ``otel`` extra), :attr:`store` is the store given
    inside a :class:`~workflow.runtime.traced_store.TracedStore` (the same operations,
    each in a span; the store itself is its ``inner``).
    """

    def __init__(
        self,
        store: ExecutionStore | None = None,
        workflows: Iterable[Workflow[Any, Any]] = (),
        *,
        owner: str | None = None,
        lease_ms: int = 30_000,
        heartbeat_ms: int | None = None,
        slice_ms: int = 60_000,
        concurrency: int = 8,
        run_retry: RetryPolicy = DEFAULT_RUN_RETRY,
        clock: Clock = system_clock,
        listener: EventListener | None = None,
        queues: Collection[str] | None = None,
    ) -> None:
        # In a span per operation when OpenTelemetry is installed (telemetry.py).
        self._store = None if store is None else traced(store)
        self.workflows: WorkflowSet = (
            workflows if isinstance(workflows, WorkflowSet) else WorkflowSet(workflows)
        )
        self.owner: str = owner or default_owner()
        self.lease_ms: int = check_lease_ms(lease_ms)
        self.heartbeat_ms: int = check_lease_ms(heartbeat_ms or max(1, self.lease_ms // 3))
        if self.heartbeat_ms >= self.lease_ms:
            # Each renewal would come after the lease it renews had expired.
            raise InvalidArgumentError(
                f"heartbeat_ms ({self.heartbeat_ms}) must be less than lease_ms "
                f"({self.lease_ms}); a third of it is the default"
            )
        self.slice_ms: int = check_lease_ms(slice_ms)
        self.concurrency: int = check_limit(concurrency, "concurrency")
        self.run_retry = run_retry
        self.clock = clock
        self.listener = listener
        self.queues: frozenset[str] | None = check_queues(queues)
        """The queues this runtime's sweeps and workers claim from (``None``: all)."""
        self._options: dict[str, Any] = {
            "queues": queues,
            "lease_ms": lease_ms,
            "heartbeat_ms": heartbeat_ms,
            "slice_ms": slice_ms,
            "concurrency": concurrency,
            "run_retry": run_retry,
            "clock": clock,
            "listener": listener,
        }
        self._stopping = False
        self._reconciled = False
        self._deferrals_logged: set[str] = set()
        self._workers: list[LocalWorker] = []
        self.declared_schedules: list[Schedule] = []
        """The schedules the last :meth:`reconcile_schedules` declared."""

    # -- the workers of this process -----------------------------------------------------
    def attach(self, worker: LocalWorker) -> None:
        """Tell ``worker`` (on this event loop) of the work this runtime makes: a run it
        starts is created already claimed and handed to a worker with a free slot
        (stores declaring ``CLAIM_ON_CREATE``; else the worker is woken to claim it), and
        a signal or approval that queues a run wakes the workers. A
        :class:`~workflow.runtime.worker.Worker` attaches itself while it runs."""
        self._workers.append(worker)

    def detach(self, worker: LocalWorker) -> None:
        with contextlib.suppress(ValueError):
            self._workers.remove(worker)

    def _work_appeared(self) -> None:
        for worker in self._workers:
            worker.wake()

    def _free_worker(self, wf: Workflow[Any, Any], queue: str) -> LocalWorker | None:
        """A worker of this process that serves ``queue`` and reserved a slot for a run
        about to be created (None: none has one, or the store cannot claim at create):
        this runtime's own first, else one its workers know (:meth:`LocalWorker.lend`).
        A run of a queue no such worker serves is left to the workers that do."""
        if self._stopping or Capability.CLAIM_ON_CREATE not in self.store.capabilities:
            return None
        if self.serves(queue):
            own = next((w for w in self._workers if w.reserve()), None)
            if own is not None:
                return own
        for worker in self._workers:
            lent = worker.lend(wf.workflow_id, wf.version, queue)
            if lent is not None:
                return lent
        return None

    def serves(self, queue: str) -> bool:
        """Whether this runtime's workers claim runs of ``queue``."""
        return self.queues is None or queue in self.queues

    @property
    def store(self) -> ExecutionStore:
        if self._store is None:
            raise InvalidArgumentError(
                "this Runtime has no store: pass one (Runtime(store, workflows)), use "
                "runtime.bind(store), or run it with `workflow worker module:runtime --url URL`"
            )
        return self._store

    def bind(self, store: ExecutionStore, **options: Any) -> Runtime:
        """The same workflows and options on ``store`` (``options`` override), with a
        new owner id unless one is given."""
        merged = {**self._options, **options}
        return Runtime(store, self.workflows, **merged)

    # -- client side -----------------------------------------------------------------
    @overload
    async def start(
        self,
        workflow: Workflow[InputT, Any],
        /,
        input: InputT,
        *,
        run_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the run's deadline, not this call's
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        partition_key: str | None = None,
    ) -> Run: ...

    @overload
    async def start(
        self,
        workflow_id: str,
        input: JSON = None,
        *,
        run_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the run's deadline, not this call's
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        partition_key: str | None = None,
    ) -> Run: ...

    async def start(
        self,
        workflow_id: str | Workflow[Any, Any],
        input: JSON = None,
        *,
        run_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the run's deadline, not this call's
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        partition_key: str | None = None,
    ) -> Run:
        """Start a run of the latest registered version of ``workflow_id`` (or of the
        given :class:`Workflow`'s id, ``input`` then checked against its handler's type).

        ``queue``, ``priority`` and ``partition_key`` place the run (stores declaring
        ``Capability.QUEUES``; see docs/runtime.md, Queues): its queue's limits decide
        when a worker may claim it, higher priorities are claimed first.

        Idempotent on ``run_id``: starting it again returns the existing run (with its
        original input, placement and deadline). Raises :class:`RunConflictError` when a
        run of another workflow has that id.

        ``timeout`` (seconds) gives the run a deadline, ``now + timeout``: a worker's
        ``fire_due_timers`` ends it ``timed_out`` then, whatever it is doing (stores
        declaring ``Capability.DEADLINES``).
        """
        if isinstance(workflow_id, Workflow):
            workflow_id = workflow_id.workflow_id
        wf = self.workflows.latest(workflow_id)
        run_id = run_id if run_id is not None else uuid.uuid4().hex
        # One reading of the clock: the deadline is exactly ``timeout`` after creation.
        now = self.clock()
        deadline: dict[str, Any] = {}
        if timeout is not None:
            deadline["deadline_at"] = now + _timeout_ms(timeout)
        with telemetry.start_span(wf.workflow_id, run_id) as trace_context:
            placement = {
                "queue": queue,
                "priority": priority,
                "partition_key": partition_key,
                **deadline,
            }
            result = await self._create(wf, run_id, input, trace_context, placement, now)
        if isinstance(result, Conflict):
            raise RunConflictError(result.run, workflow_id)
        if isinstance(result, Created):
            telemetry.run_started(wf.workflow_id)
            if result.lease is None:
                self._work_appeared()
        return result.run

    async def _create(
        self,
        wf: Workflow[Any, Any],
        run_id: str,
        input: JSON,
        trace_context: dict[str, str] | None,
        placement: dict[str, Any],
        now: int | None = None,
    ) -> CreateResult:
        """``placement``: the run's queue, priority and partition key, and
        ``deadline_at`` when it has a deadline (stores without deadlines never see that
        keyword); ``now``: its creation time (default: the clock's)."""
        now = self.clock() if now is None else now
        if trace_context is not None:
            return await self._create_traced(wf, run_id, input, trace_context, placement, now)
        worker = self._free_worker(wf, placement["queue"])
        if worker is None:
            result = await self.store.create_run(
                run_id, wf.workflow_id, wf.version, input, now, **placement
            )
        else:
            # A worker of this process has a slot: the run is created claimed for its
            # runtime's owner (one round trip, no wait for a poll) and driven there.
            owner, lease_ms = worker.claim_as
            try:
                result = await self.store.create_run(
                    run_id,
                    wf.workflow_id,
                    wf.version,
                    input,
                    now,
                    owner=owner,
                    lease_ms=lease_ms,
                    **placement,
                )
            except BaseException:
                worker.unreserve()
                raise
            if isinstance(result, Created) and result.lease is not None:
                worker.adopt(Claimed(result.run, result.lease, [], []))
            else:
                # Existing, or created queued because its queue is at a limit: a
                # worker claims it once the queue has room.
                worker.unreserve()
        return result

    async def _start_child(self, spec: ChildSpec) -> CreateResult:
        """Create the child run ``ctx.start_child`` asks for (the engine's ``children``):
        like :meth:`start` (the trace context included), with the parent's link, in the
        parent's queue unless another is named; a worker of this process with a free
        slot drives it at once."""
        if isinstance(spec.workflow, Workflow):
            wf: Workflow[Any, Any] = spec.workflow
        else:
            wf = self.workflows.latest(spec.workflow)
        placement: dict[str, Any] = {
            "queue": spec.parent.queue if spec.queue is None else spec.queue,
            "priority": spec.priority,
            "partition_key": spec.partition_key,
            "parent_run_id": spec.parent.run_id,
            "parent_policy": spec.policy,
        }
        if spec.deadline_at is not None:
            placement["deadline_at"] = spec.deadline_at
        # Inside the parent's slice span: the child's trace continues the parent's.
        with telemetry.start_span(wf.workflow_id, spec.run_id) as trace_context:
            result = await self._create(wf, spec.run_id, spec.input, trace_context, placement)
        if isinstance(result, Created):
            telemetry.run_started(wf.workflow_id)
            if result.lease is None:
                self._work_appeared()
        return result

    async def _create_traced(
        self,
        wf: Workflow[Any, Any],
        run_id: str,
        input: JSON,
        trace_context: dict[str, str],
        placement: dict[str, Any],
        now: int,
    ) -> CreateResult:
        """Create the run with ``trace_context`` as its first event, so that the worker
        that drives it, in any process, continues the caller's trace. The contract has
        no create with events: the run is created claimed by this runtime (or claimed
        right after, on stores without ``CLAIM_ON_CREATE``), and one ``settle_run``
        writes the event and queues it. Only while tracing is on: one more round trip.
        """
        claim_on_create = Capability.CLAIM_ON_CREATE in self.store.capabilities
        lease_args: dict[str, Any] = (
            {"owner": self.owner, "lease_ms": self.lease_ms} if claim_on_create else {}
        )
        result = await self.store.create_run(
            run_id, wf.workflow_id, wf.version, input, now, **lease_args, **placement
        )
        if not isinstance(result, Created):
            return result
        events = [NewEvent(EventType.TRACE_CONTEXT, dict(trace_context))]
        try:
            lease, next_index = result.lease, 0
            if lease is None:
                claim = await self.store.claim_run(run_id, self.owner, self.lease_ms, self.clock())
                if not isinstance(claim, Claimed):
                    return result  # a worker took it first: it runs without the context
                lease, next_index = claim.lease, claim.run.next_event_index
                if next_index != 0:
                    events = []  # and drove a slice already: only hand it back
            run = await self.store.settle_run(
                run_id, lease, next_index, events, Yield(), self.clock()
            )
        except WorkflowStoreError as exc:
            # The run exists: the context is best effort (a lease this left behind
            # expires, and a worker claims the run then).
            log.warning(
                "run %s started without its trace context: %s",
                run_id,
                exc,
                extra={"run_id": run_id},
            )
            return Created(result.run)
        return Created(run)

    async def signal(
        self,
        run_id: str,
        name: str,
        payload: JSON = None,
        *,
        signal_id: str | None = None,
        step_id: str | None = None,
    ) -> DeliveryResult:
        """Deliver a signal. ``signal_id`` makes retries of the delivery idempotent
        (default: a new random id)."""
        result = await self.store.deliver_signal(
            run_id,
            signal_id if signal_id is not None else uuid.uuid4().hex,
            name,
            payload,
            self.clock(),
            step_id=step_id,
        )
        if isinstance(result, Delivered):
            self._work_appeared()
        return result

    async def approve(
        self, run_id: str, approval_id: str, approved: bool = True, *, feedback: JSON = None
    ) -> DeliveryResult:
        """Answer an approval (the first answer wins; later ones are ``Duplicate``)."""
        result = await self.store.deliver_approval(
            run_id, approval_id, approved, self.clock(), feedback=feedback
        )
        if isinstance(result, Delivered):
            self._work_appeared()
        return result

    async def cancel(self, run_id: str, reason: str = "cancelled") -> CancelResult:
        """Cancel a run; a worker driving it stops at its next write."""
        return await self.store.cancel_run(run_id, reason, self.clock())

    @overload
    async def result(
        self,
        run_id: str,
        *,
        workflow: Workflow[Any, OutputT],
        wait: float | None = 0.0,
        poll: float = 0.1,
    ) -> OutputT: ...

    @overload
    async def result(
        self, run_id: str, *, workflow: None = None, wait: float | None = 0.0, poll: float = 0.1
    ) -> JSON: ...

    async def result(
        self,
        run_id: str,
        *,
        workflow: Workflow[Any, Any] | None = None,
        wait: float | None = 0.0,
        poll: float = 0.1,
    ) -> JSON:
        """The output of a finished run.

        ``workflow``: the run's :class:`Workflow`, which types the output as its
        handler's; a run of another workflow raises :class:`InvalidArgumentError`.
        ``wait``: seconds to wait for the run to end (``None``: no limit; ``0``: look
        once). Raises :class:`RunFailedError` (errored or cancelled),
        :class:`RunNotFoundError`, or :class:`ResultTimeoutError`.
        """
        started = time.monotonic()
        while True:
            run = await self.store.load_run(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            if workflow is not None and run.workflow_id != workflow.workflow_id:
                # The output would not be of the type the caller's workflow declares.
                raise InvalidArgumentError(
                    f"run {run_id!r} is a run of workflow {run.workflow_id!r}, "
                    f"not of {workflow.workflow_id!r}"
                )
            if run.status is RunStatus.FINISHED:
                return run.output
            if run.status.terminal:
                raise RunFailedError(run)
            waited = time.monotonic() - started
            if wait is not None and waited >= wait:
                raise ResultTimeoutError(run, waited)
            await asyncio.sleep(poll if wait is None else max(0.0, min(poll, wait - waited)))

    async def purge_finished(self, older_than_ms: int, limit: int = 100) -> int:
        """Delete up to ``limit`` runs that ended (finished, failed or cancelled) more
        than ``older_than_ms`` ago, oldest first, with everything they own; returns how
        many. One bounded store call: call again while it returns ``limit``."""
        older_than_ms = check_int(older_than_ms, "older_than_ms", 0, MAX_MS)
        before = max(0, self.clock() - older_than_ms)
        return await self.store.purge_runs(before, check_limit(limit))

    # -- schedules -------------------------------------------------------------------
    async def reconcile_schedules(self, now: int | None = None) -> list[Schedule]:
        """Declare every schedule of the registered workflows (latest versions) in the
        store, and disable stored schedules of these workflows that the code no longer
        declares. Schedules of workflows this runtime does not know are left alone
        (another deployment may own them). Returns the declared schedules."""
        now = self.clock() if now is None else now
        declared: dict[str, Schedule] = {}
        latest = {wf.workflow_id: wf for wf in self.workflows}
        for wf in latest.values():
            for scheduled in wf.schedules:
                schedule_id = scheduled.resolved_id(wf.workflow_id)
                declared[schedule_id] = await self.store.upsert_schedule(
                    schedule_id,
                    wf.workflow_id,
                    scheduled.spec,
                    now,
                    workflow_version=wf.version,
                    overlap=scheduled.overlap,
                    input=scheduled.input,
                    enabled=True,
                )
        for stored in await self.store.list_schedules():
            if stored.schedule_id in declared or not stored.enabled:
                continue
            if stored.workflow_id in latest:
                await self.store.upsert_schedule(
                    stored.schedule_id,
                    stored.workflow_id,
                    stored.spec,
                    now,
                    workflow_version=stored.workflow_version,
                    overlap=stored.overlap,
                    input=stored.input,
                    enabled=False,
                )
                log.info(
                    "disabled schedule %s: no longer declared in code",
                    stored.schedule_id,
                    extra={"schedule_id": stored.schedule_id},
                )
            else:
                log.warning(
                    "schedule %s belongs to workflow %s, which this runtime does not register; "
                    "left as it is",
                    stored.schedule_id,
                    stored.workflow_id,
                    extra={"schedule_id": stored.schedule_id},
                )
        self._reconciled = True
        self.declared_schedules = list(declared.values())
        return list(self.declared_schedules)

    # -- the work loop -----------------------------------------------------------------
    def request_stop(self) -> None:
        """Graceful stop: no new claims; running slices yield at their next operation."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def sweep(self, now: int | None = None, limit: int = 100) -> SweepReport:
        """One round: fire due schedules and timers, then drive up to ``limit``
        claimable runs, ``concurrency`` at a time.

        ``now`` (ms) pins the time the round starts at (tests); the round's clock
        advances from there with the runtime's clock.
        """
        check_limit(limit)
        clock = self.clock
        if now is not None:
            offset = now - self.clock()

            def clock() -> int:
                return self.clock() + offset

        if self._stopping:
            return SweepReport()
        ticks, timers = await self.fire_due(limit, clock=clock)
        drives = await self._drive_claimable(clock, limit)
        return SweepReport(ticks, timers, drives)

    # -- the steps of a sweep, for drivers of their own (the Worker) -------------------
    async def fire_due(
        self, limit: int, *, clock: Clock | None = None
    ) -> tuple[list[ScheduleTick], list[InboxEntry]]:
        """Fire up to ``limit`` due schedule ticks and due timers (the part of a sweep
        that the worker also runs while drives are in flight)."""
        clock = clock or self.clock
        if not self._reconciled:
            await self.reconcile_schedules(clock())
        ticks = await self.store.fire_due_schedules(clock(), limit)
        for tick in ticks:
            log.info(
                "schedule %s tick at %d: %s",
                tick.schedule_id,
                tick.fire_at,
                tick.outcome.value,
                extra={"schedule_id": tick.schedule_id, "run_id": tick.run_id},
            )
        timers = await self.store.fire_due_timers(clock(), limit)
        return ticks, timers

    async def claim(self, want: int, *, clock: Clock | None = None) -> list[Claimed]:
        """Claim up to ``want`` runnable runs, with their history (none once stopping);
        hand each to :meth:`drive`."""
        clock = clock or self.clock
        if self._stopping or want <= 0:
            return []
        return await self.store.claim_runnable(
            self.owner, self.lease_ms, want, clock(), with_history=True, queues=self.queues
        )

    async def run_until_idle(self, *, max_sweeps: int = 1000, now: int | None = None) -> int:
        """Sweep until a sweep finds nothing to do (due sleeps not yet due stay
        paused). Returns the number of sweeps that did work."""
        for n in range(max_sweeps):
            if not (await self.sweep(now)).did_work:
                return n
        return max_sweeps

    async def _drive_claimable(self, clock: Clock, limit: int) -> list[DriveReport]:
        reports: list[DriveReport] = []
        active: set[asyncio.Task[DriveReport]] = set()
        claimed = 0
        exhausted = False
        try:
            while True:
                while (
                    not exhausted
                    and not self._stopping
                    and claimed < limit
                    and len(active) < self.concurrency
                ):
                    want = min(self.concurrency - len(active), limit - claimed)
                    try:
                        claims = await self.claim(want, clock=clock)
                    except WorkflowStoreError as exc:
                        if not active:
                            raise  # nothing to finish: the worker logs it and backs off
                        # The drives already running hold valid leases: let them finish
                        # rather than abandon them to lease expiry.
                        log.warning(
                            "claiming runs failed (finishing the %d running drives, "
                            "no new claims this sweep): %s",
                            len(active),
                            exc,
                        )
                        exhausted = True
                        break
                    claimed += len(claims)
                    active.update(asyncio.create_task(self.drive(c, clock=clock)) for c in claims)
                    # Fewer than asked: nothing else is runnable right now (or the
                    # rest wait for room in their queues). Runs that become runnable
                    # during this sweep wait for the next one.
                    exhausted = len(claims) < want
                if not active:
                    return reports
                done, active = await asyncio.wait(active, return_when=asyncio.FIRST_COMPLETED)
                reports.extend(task.result() for task in done)
        except BaseException:
            # A hard stop of the sweep (cancellation): stop the drives with it.
            for task in active:
                task.cancel()
            if active:
                await asyncio.gather(*active, return_exceptions=True)
            raise

    # -- one drive ---------------------------------------------------------------------
    async def drive(self, claim: Claimed, *, clock: Clock | None = None) -> DriveReport:
        """Drive a claimed run until it pauses, finishes or its slice ends (never raises
        for the run's own failures: the report says what happened)."""
        clock = clock or self.clock
        with telemetry.slice_span(claim.run, claim.events, clock()) as span:
            report = await self._drive_guarded(claim, clock)
            span.ended(report.outcome.value)
            return report

    async def _drive_guarded(self, claim: Claimed, clock: Clock) -> DriveReport:
        run = claim.run
        try:
            return await self._drive_claimed(claim, clock)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not take the sweep down
            log.exception("drive of run %s crashed", run.run_id, extra={"run_id": run.run_id})
            return DriveReport(run.run_id, run.workflow_id, DriveOutcome.ABANDONED, None, str(exc))

    async def _drive_claimed(self, claim: Claimed, clock: Clock) -> DriveReport:
        run = claim.run
        # The claim was sent at the latest now (its ``now`` was read before it): a
        # deadline counted from here errs on the safe side.
        box = LeaseBox(
            claim.lease,
            time.monotonic()
            + (claim.lease.expires_at - clock()) / 1000
            - self.lease_ms * LEASE_SAFETY_MARGIN / 1000,
        )
        events = claim.events
        if events is None:
            events = await self.store.read_events(run.run_id)
        history = History.read(events)
        journal = Journal(self.store, run.run_id, box, run.next_event_index, clock, self.listener)
        # The timer that woke a run from its between-attempts backoff is spent now;
        # left unconsumed it would satisfy the next backoff at once.
        for entry in claim.inbox:
            if entry.kind is InboxKind.TIMER and entry.key == RUN_RETRY_STEP:
                journal.consume.append(entry.ref)
        deadline = clock() + self.slice_ms
        log.debug(
            "driving run %s (token %d, %d events)",
            run.run_id,
            box.lease.token,
            len(events),
            extra={"run_id": run.run_id},
        )
        try:
            workflow = self.workflows.get(run.workflow_id, run.workflow_version)
        except UnknownWorkflowError as exc:
            return await self._defer(run, journal, exc, clock)
        except Exception as exc:
            return await self._failed_attempt(run, journal, history, exc, clock)
        execution = Execution(
            run=run,
            journal=journal,
            history=history,
            inbox=claim.inbox,
            workflow=workflow,
            clock=clock,
            should_yield=lambda: self._stopping or clock() >= deadline,
            children=self._start_child,
        )
        task = asyncio.create_task(execution.run())
        stop_beat = asyncio.Event()
        beat = asyncio.create_task(
            self._heartbeat(run.run_id, box, clock, stop_beat, execution, task)
        )
        try:
            # asyncio.wait never cancels what it waits on: a hard stop of this drive is
            # handled below, not by cancelling the slice half-way through a store call.
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # A hard stop: end the workflow code, then try to hand the run back at once
            # rather than leave it to lease expiry.
            execution.abort(asyncio.CancelledError())
            stop_beat.set()
            await asyncio.wait({task, beat}, timeout=RELEASE_TIMEOUT_S)
            task.cancel()
            beat.cancel()
            await asyncio.gather(task, beat, return_exceptions=True)
            release = asyncio.ensure_future(journal.settle(Yield()))
            done, _ = await asyncio.wait({release}, timeout=RELEASE_TIMEOUT_S)
            if not done:
                release.cancel()
            elif not release.cancelled() and release.exception() is None:
                log.info("run %s released on cancel", run.run_id, extra={"run_id": run.run_id})
            raise
        stop_beat.set()
        await asyncio.gather(beat, return_exceptions=True)
        if task.cancelled():
            return self._lost(run, execution.fatal)
        try:
            outcome = task.result()
        except LeaseLostError as exc:
            return self._lost(run, exc)
        except InvalidArgumentError as exc:
            # The store refused what the slice wrote (nothing was written): the run's
            # fault, not the store's.
            return await self._failed_attempt(run, journal, history, exc, clock)
        except WorkflowStoreError as exc:
            return self._abandoned(run, exc)
        except Exception as exc:
            return await self._failed_attempt(run, journal, history, exc, clock)
        return await self._settle(run, journal, history, outcome, clock)

    def _local_deadline(self, sent: float) -> float:
        """When (``time.monotonic()``) a lease claimed or renewed by a call sent at
        ``sent`` stops being trusted here: the lease, less the safety margin."""
        return sent + self.lease_ms * (1 - LEASE_SAFETY_MARGIN) / 1000

    async def _heartbeat(
        self,
        run_id: str,
        box: LeaseBox,
        clock: Clock,
        stop: asyncio.Event,
        execution: Execution,
        task: asyncio.Task[Outcome],
    ) -> None:
        """Renew the lease every ``heartbeat_ms`` until ``stop`` is set. When the lease
        is lost, or runs out locally (``box.deadline``: no renewal within the lease,
        less its margin, whether the renewals fail or hang), abort the slice: the
        running step is cancelled at once; if workflow code still runs a lease later,
        its task is cancelled."""
        lost: LeaseLostError | None = None
        while lost is None and not stop.is_set():
            # Never sleep past the local deadline: it is checked on waking.
            left = box.deadline - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, min(self.heartbeat_ms / 1000, left)))
            if stop.is_set():
                return
            if box.expired():
                lost = box.lost(run_id)
                break
            sent = time.monotonic()
            # A renewal that hangs is given up at the deadline, not cancelled (a
            # driver's cancellation may itself wait on the dead network): it ends
            # within the store's operation_timeout, and its answer is ignored.
            call = asyncio.ensure_future(
                self.store.heartbeat(run_id, box.lease, self.lease_ms, clock())
            )
            await asyncio.wait({call}, timeout=max(0.0, box.deadline - sent))
            if not call.done():
                call.add_done_callback(_ignore_outcome)
                lost = box.lost(run_id)
                log.warning(
                    "heartbeat of run %s got no answer before its lease ran out locally",
                    run_id,
                    extra={"run_id": run_id},
                )
                break
            try:
                renewed = call.result()
                box.lease, box.deadline = renewed, self._local_deadline(sent)
            except LeaseLostError as exc:
                lost = exc
            except Exception as exc:
                # Keep trying while the lease lasts: it may outlive a short outage. Any
                # exception, so that this task never dies silently and leaves the slice
                # running unguarded.
                log.warning("heartbeat of run %s failed: %s", run_id, exc, extra={"run_id": run_id})
                # The next renewal would come too late: the lease is as good as gone
                # (another worker may claim the run), so the step must not run on.
                if clock() >= box.lease.expires_at - self.heartbeat_ms:
                    lost = LeaseLostError(
                        run_id,
                        f"lease on run {run_id!r} expires without a successful heartbeat "
                        f"(last error: {exc}); stopping the slice",
                    )
        if lost is not None:
            execution.abort(lost)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.lease_ms / 1000)
            if not stop.is_set():
                # Workflow code awaiting something other than the context: the
                # last resort is to cancel it.
                task.cancel()

    async def _settle(
        self, run: Run, journal: Journal, history: History, outcome: Outcome, clock: Clock
    ) -> DriveReport:
        events: list[NewEvent] = []
        if isinstance(outcome, Finish):
            events.append(NewEvent(EventType.RUN_FINISHED))
        elif isinstance(outcome, Fail):
            events.append(NewEvent(EventType.RUN_FAILED, {"error": error_data(outcome.error)}))
        try:
            settled = await journal.settle(outcome, *events)
        except LeaseLostError as exc:
            return self._lost(run, exc)
        except InvalidArgumentError as exc:
            # E.g. an output over the store's payload limit: nothing was written.
            return await self._failed_attempt(run, journal, history, exc, clock)
        except WorkflowStoreError as exc:
            return self._abandoned(run, exc)
        kind = {
            Finish: DriveOutcome.FINISHED,
            Fail: DriveOutcome.FAILED,
            Yield: DriveOutcome.YIELDED,
            Pause: DriveOutcome.PAUSED,
        }[type(outcome)]
        detail = outcome.error.message if isinstance(outcome, Fail) else None
        log.info(
            "run %s %s",
            run.run_id,
            kind.value,
            extra={"run_id": run.run_id, "outcome": kind.value, "status": settled.status.value},
        )
        return DriveReport(run.run_id, run.workflow_id, kind, settled, detail)

    async def _failed_attempt(
        self, run: Run, journal: Journal, history: History, exc: Exception, clock: Clock
    ) -> DriveReport:
        # Only consecutive failures count (see History.run_attempts_failed): records this
        # slice wrote, or writes with its failure, are progress that starts a new count.
        progressed = journal.next_index > run.next_event_index or bool(journal.pending)
        attempt = 1 if progressed else history.run_attempts_failed + 1
        error = error_info(exc, "run_error", max_bytes=self.store.max_payload_bytes)
        retry = not isinstance(exc, WorkflowFailed) and self.run_retry.should_retry(exc, attempt)
        outcome: Outcome
        if retry:
            retry_at = clock() + self.run_retry.delay_ms(attempt)
            outcome = Pause(Wait.sleep(RUN_RETRY_STEP, retry_at, meta={"attempt": attempt + 1}))
            event = NewEvent(
                EventType.RUN_ATTEMPT_FAILED,
                {"attempt": attempt, "error": error_data(error), "retry_at": retry_at},
            )
        else:
            outcome = Fail(error)
            event = NewEvent(EventType.RUN_FAILED, {"attempt": attempt, "error": error_data(error)})
        log.warning(
            "run %s attempt %d failed: %s: %s%s",
            run.run_id,
            attempt,
            error.type,
            error.message,
            " (retrying)" if retry else " (giving up)",
            extra={"run_id": run.run_id, "attempt": attempt},
        )
        settled: Run | None = None
        for keep_records in (True, False):
            if not keep_records:
                # The slice's own records were what the store refused: drop them (and
                # leave the inbox entries they would have consumed for the retry).
                journal.pending.clear()
                journal.consume[:] = [ref for ref in journal.consume if ref.key == RUN_RETRY_STEP]
            try:
                settled = await journal.settle(outcome, event)
                break
            except LeaseLostError as lost:
                return self._lost(run, lost)
            except InvalidArgumentError as refused:
                if not keep_records:
                    return await self._last_resort(run, journal, exc, refused)
            except WorkflowStoreError as store_error:
                return self._abandoned(run, store_error)
        return DriveReport(
            run.run_id,
            run.workflow_id,
            DriveOutcome.RETRYING if retry else DriveOutcome.FAILED,
            settled,
            f"{error.type}: {error.message}",
        )

    async def _defer(
        self, run: Run, journal: Journal, exc: UnknownWorkflowError, clock: Clock
    ) -> DriveReport:
        """Put back a run this worker cannot run: during a rolling deploy (or with
        several applications on one store) it belongs to another worker, so it must not
        count as a failure. It waits on the run-retry timer, which the next drive spends."""
        # Logged once per run, not on every sweep that meets it again.
        if run.run_id not in self._deferrals_logged:
            if len(self._deferrals_logged) >= MAX_DEFERRALS_REMEMBERED:
                self._deferrals_logged.clear()
            self._deferrals_logged.add(run.run_id)
            log.warning(
                "run %s put back for another worker: %s",
                run.run_id,
                exc,
                extra={"run_id": run.run_id},
            )
        wake_at = clock() + UNKNOWN_WORKFLOW_DEFER_MS
        outcome = Pause(Wait.sleep(RUN_RETRY_STEP, wake_at, meta={"deferred": True}))
        try:
            settled = await journal.settle(outcome)
        except LeaseLostError as lost:
            return self._lost(run, lost)
        except WorkflowStoreError as store_error:
            return self._abandoned(run, store_error)
        return DriveReport(run.run_id, run.workflow_id, DriveOutcome.DEFERRED, settled, str(exc))

    async def _last_resort(
        self, run: Run, journal: Journal, exc: Exception, refused: InvalidArgumentError
    ) -> DriveReport:
        """End the run with the smallest error there is when the store refused even the
        failure record: re-raising would leave the run leased and failing for ever."""
        error = ErrorInfo(type(exc).__name__[:64], "", "run_error")
        log.error(
            "run %s: the store refused the record of its failure (%s); ending it errored",
            run.run_id,
            refused,
            extra={"run_id": run.run_id},
        )
        try:
            settled = await journal.settle(Fail(error), NewEvent(EventType.RUN_FAILED))
        except LeaseLostError as lost:
            return self._lost(run, lost)
        except WorkflowStoreError as store_error:
            return self._abandoned(run, store_error)
        return DriveReport(run.run_id, run.workflow_id, DriveOutcome.FAILED, settled, error.type)

    def _lost(self, run: Run, exc: BaseException | None) -> DriveReport:
        cancelled = isinstance(exc, RunCancelledError)
        log.info(
            "run %s: %s",
            run.run_id,
            (
                "timed out while running (its deadline fired)"
                if isinstance(exc, RunTimedOutError)
                else "cancelled while running"
            )
            if cancelled
            else f"lease lost ({exc})",
            extra={"run_id": run.run_id},
        )
        return DriveReport(
            run.run_id,
            run.workflow_id,
            DriveOutcome.CANCELLED if cancelled else DriveOutcome.LOST,
            None,
            str(exc) if exc else None,
        )

    def _abandoned(self, run: Run, exc: BaseException) -> DriveReport:
        log.warning(
            "run %s abandoned after a store error (its lease will expire): %s",
            run.run_id,
            exc,
            extra={"run_id": run.run_id},
        )
        return DriveReport(run.run_id, run.workflow_id, DriveOutcome.ABANDONED, None, str(exc))


def _timeout_ms(timeout: object) -> int:
    """A run's ``timeout`` (seconds, > 0, finite) in whole milliseconds (at least 1)."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return max(1, round(timeout * 1000))
