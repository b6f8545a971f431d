"""The replay engine: runs one slice of a workflow run against its recorded log.

A workflow is plain ``async def handler(ctx, input)`` code. Every slice runs it again
from the top; each context operation (:meth:`Context.step`, :meth:`Context.sleep`, the
waits, :meth:`Context.now`, :meth:`Context.uuid`) first looks at the log: an operation
the log already recorded returns its recorded result without running anything again;
the first one the log does not know runs live and is recorded. A wait that cannot be
satisfied yet ends the slice with a ``Pause``; the engine never blocks on one.

Durability rules (what a crash can and cannot repeat):

* Before a step's function runs, everything the slice recorded so far is written:
  the results of earlier steps included.
* A step's result is written with the next write of the slice: before the next step's
  function runs, or with the slice's final ``settle_run`` (so a run's last step and its
  end are one write, not two). A crash while the function runs, or before its result
  is written, runs it again on the next slice: steps are at-least-once, their recorded
  results exactly-once. Make side effects idempotent with :func:`current_step`
  (``run_id`` + ``step_id``).
* The slice's other records (waits, ``now()``, failed attempts) are written the same
  way: with the step that follows them or with the slice's final ``settle_run``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import json
import logging
import math
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar, TypeVarTuple, cast, overload

from . import codec, telemetry
from .children import ChildRun, ChildSpec, ChildStarter, child_run_id_for
from .contract import Capability, ExecutionStore
from .definitions import InputT, OutputT, Workflow
from .errors import (
    InvalidArgumentError,
    LeaseLostError,
    LogConflictError,
    PayloadError,
    StoreUnavailableError,
    WorkflowStoreError,
)
from .history import (
    CHILD_WAIT_STEP_PREFIX,
    MAX_CHILD_WAITS_DIGITS,
    PATCH_STEP_PREFIX,
    RESERVED_PREFIX,
    EventType,
    History,
    OpKind,
    RecordedOp,
    child_wait_step_id,
    error_data,
    error_from,
    field_of,
)
from .records import (
    JSON,
    ErrorInfo,
    InboxEntry,
    InboxKind,
    InboxRef,
    JSONLike,
    Lease,
    NewEvent,
    ParentPolicy,
    Run,
    RunStatus,
    StoredEvent,
    Wait,
)
from .results import Conflict, CreateResult, Fail, Finish, Outcome, Pause, Yield
from .retry import DEFAULT_STEP_RETRY, RetryPolicy
from .validation import MAX_ID_LENGTH, check_id
from .workflow_errors import (
    ChildFailedError,
    ChildrenUnsupportedError,
    ChildTimeoutError,
    NonDeterminismError,
    StepFailedError,
    StepTimeoutError,
    WaitTimeoutError,
    WorkflowDefinitionError,
    WorkflowFailed,
)

R = TypeVar("R", bound=JSONLike)
"""What a step returns: recorded as a payload, so a JSON value."""
Ts = TypeVarTuple("Ts")
"""A step's positional arguments."""
log: logging.Logger = logging.getLogger("workflow.runtime")

Clock = Callable[[], int]
"""Milliseconds since the Unix epoch."""

EventListener = Callable[[StoredEvent], object]
"""Called with every event after it is durably written (progress displays, metrics)."""

MAX_TRACEBACK_CHARS = 8_000
WRITE_RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0)
"""Pauses between retries of a log write the store failed to make (an outage), each
only while the lease outlives it."""
ERROR_ENVELOPE_BYTES = 512
"""Payload bytes an error leaves for the rest of the event that records it."""
MAX_ERROR_TYPE_BYTES = 256
MAX_ERROR_CODE_BYTES = 64


@dataclass(slots=True)
class LeaseBox:
    """The slice's current lease; the driver's heartbeat renews it in place.

    ``deadline``: when (``time.monotonic()``) this worker stops trusting the lease: the
    moment the claim or the last renewal was *sent*, plus the lease, minus a safety
    margin (the driver sets it). Past it no step starts and no write is sent until a
    renewal moves it on; a partitioned worker thus stops before another worker can
    take the run over, whatever its store calls are doing."""

    lease: Lease
    deadline: float = math.inf

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def lost(self, run_id: str) -> LeaseLostError:
        return LeaseLostError(
            run_id,
            f"lease on run {run_id!r} ran out locally (no renewal reached the store "
            "within the lease, less its safety margin): nothing more is started or "
            "written for this slice",
        )

    def check(self, run_id: str) -> None:
        """Raise :class:`LeaseLostError` once the local deadline has passed."""
        if time.monotonic() >= self.deadline:
            raise self.lost(run_id)


@dataclass(frozen=True, slots=True)
class StepCall:
    """The step attempt running now (see :func:`current_step`)."""

    run_id: str
    step_id: str
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts and replays of this step: pass it to payment APIs.

        ``run_id/step_id`` when the run id holds no ``/`` (the first ``/`` then
        separates the two); otherwise ``idk-`` and a digest of the pair, which has no
        ``/`` and so never equals a key of the first form."""
        if "/" not in self.run_id:
            return f"{self.run_id}/{self.step_id}"
        digest = hashlib.sha256(json.dumps([self.run_id, self.step_id]).encode()).hexdigest()
        return f"idk-{digest[:32]}"


_CURRENT_STEP: contextvars.ContextVar[StepCall | None] = contextvars.ContextVar(
    "workflow_current_step", default=None
)


def current_step() -> StepCall:
    """The step attempt whose function is running (call it from inside a step)."""
    call = _CURRENT_STEP.get()
    if call is None:
        raise WorkflowDefinitionError("current_step() is only available inside a step function")
    return call


@dataclass(frozen=True, slots=True)
class Approval:
    """The decision an approval wait returns."""

    approval_id: str
    approved: bool
    feedback: JSON = None


def approval_id_for(run_id: str, step_id: str) -> str:
    """The approval id of ``step_id`` in ``run_id``: deterministic, so every replay
    (and every operator tool) derives the same one, and unique across runs."""
    # JSON of the pair: an unambiguous encoding, whatever characters the ids hold.
    digest = hashlib.sha256(json.dumps([run_id, step_id]).encode()).hexdigest()
    return f"apr-{digest[:20]}"


@dataclass(frozen=True, slots=True)
class _ChildEnd:
    """How a child ended, as its ``child`` inbox entry (or its record) says."""

    status: RunStatus
    output: JSON
    error: ErrorInfo | None

    @classmethod
    def read(cls, data: JSON) -> _ChildEnd:
        body = data if isinstance(data, dict) else {}
        try:
            status = RunStatus(str(body.get("status")))
        except ValueError:
            status = RunStatus.ERRORED
        error = body.get("error")
        return cls(status, body.get("output"), error_from(error) if error is not None else None)

    @classmethod
    def recorded(cls, event: StoredEvent) -> _ChildEnd:
        """The end a ``CHILD_FINISHED`` or ``CHILD_FAILED`` event recorded."""
        if event.type == EventType.CHILD_FINISHED:
            return cls(RunStatus.FINISHED, event.data, None)
        return cls.read(event.data)

    def record(self, step_id: str) -> NewEvent:
        """The event that records this end. A finished child's output is the event's
        data as it is: the store took it as the child's output, so it fits a payload
        (an envelope around it could push it over the store's limit)."""
        if self.status is RunStatus.FINISHED:
            return NewEvent(EventType.CHILD_FINISHED, self.output, step_id)
        error = None if self.error is None else error_data(self.error)
        return NewEvent(
            EventType.CHILD_FAILED, {"status": self.status.value, "error": error}, step_id
        )

    def outcome(self, step_id: str, child_run_id: str) -> JSON:
        """The child's output, or :class:`ChildFailedError` when it did not finish."""
        if self.status is RunStatus.FINISHED:
            return self.output
        raise ChildFailedError(step_id, child_run_id, self.status, self.error)


MAX_CHILD_STEP_ID_LENGTH = (
    MAX_ID_LENGTH - len(CHILD_WAIT_STEP_PREFIX) - len("#") - MAX_CHILD_WAITS_DIGITS
)
"""The step id of a child's start leaves room for the step ids of its waits."""


class _Suspend(BaseException):
    """Unwinds workflow code when the slice ends early (a wait, a yield).

    A ``BaseException`` so that ``except Exception`` in workflow code lets it through.
    """

    def __init__(self, outcome: Yield | Pause) -> None:
        super().__init__(type(outcome).__name__)
        self.outcome = outcome


def error_info(
    exc: BaseException, code: str = "error", *, max_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES
) -> ErrorInfo:
    """An exception as the log records it, cut to fit a payload of ``max_bytes``."""
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…" + text[-MAX_TRACEBACK_CHARS:]
    message = str(exc) or repr(exc)
    return fit_error(ErrorInfo(type(exc).__qualname__, message, code, text), max_bytes)


def fit_error(error: ErrorInfo, max_bytes: int) -> ErrorInfo:
    """``error`` cut so that it is stored whole in a payload of ``max_bytes``, with
    :data:`ERROR_ENVELOPE_BYTES` left for the event's other fields.

    An error too large to store would fail the very write that records the failure,
    and the run would never end. The type name is cut first to a short prefix, then
    the traceback (its end is kept) and the message (its start is kept) share the rest.
    """
    budget = max_bytes - ERROR_ENVELOPE_BYTES
    if _json_size(error_data(error)) <= budget:
        return error
    code = _cut(error.code, min(MAX_ERROR_CODE_BYTES, max(0, budget) // 4), keep_end=False)
    bare = ErrorInfo("", "", code, None if error.traceback is None else "")
    room = max(0, budget - _json_size(error_data(bare)))
    type_name = _cut(error.type, min(MAX_ERROR_TYPE_BYTES, room // 4), keep_end=False)
    room -= _json_size(type_name) - 2
    tb: str | None = None
    if error.traceback is not None:
        tb = _cut(error.traceback, room // 2, keep_end=True)
        room -= _json_size(tb) - 2
    return ErrorInfo(type_name, _cut(error.message, room, keep_end=False), code, tb)


def _json_size(value: JSON) -> int:
    """Bytes of ``value`` as the codec encodes it (escapes included)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _cut(text: str, max_bytes: int, *, keep_end: bool) -> str:
    """The longest cut of ``text`` (marked with "…") whose JSON text, quotes aside,
    takes at most ``max_bytes``."""

    def piece(n: int) -> str:
        if n == len(text):
            return text
        return "…" + text[len(text) - n :] if keep_end else text[:n] + "…"

    def fits(n: int) -> bool:
        return _json_size(piece(n)) - 2 <= max_bytes

    if fits(len(text)):
        return text
    if not fits(0):
        return ""
    low, high = 0, len(text)  # fits(low) and not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return piece(low)


class Journal:
    """The slice's writer: buffers records, writes them with the log's compare-and-swap
    index and the lease, and tells the listener what became durable."""

    def __init__(
        self,
        store: ExecutionStore,
        run_id: str,
        lease: LeaseBox,
        next_index: int,
        clock: Clock,
        listener: EventListener | None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.lease = lease
        self.next_index: int = next_index
        self.clock = clock
        self.listener = listener
        self.pending: list[NewEvent] = []
        self.consume: list[InboxRef] = []

    def add(self, event: NewEvent, consume: InboxRef | None = None) -> None:
        self.pending.append(event)
        if consume is not None:
            self.consume.append(consume)

    async def flush(self, *events: NewEvent) -> None:
        """Write the buffered records plus ``events`` (all or none)."""
        batch = [*self.pending, *events]
        if not batch and not self.consume:
            return
        now = self.clock()
        new_index = await self._append(batch, now)
        self._written(batch, now)
        self.next_index = new_index
        self.pending.clear()
        self.consume.clear()

    async def _append(self, batch: list[NewEvent], now: int) -> int:
        """Append ``batch``, riding out a short store outage while the lease lasts.

        Giving up would abandon the slice, and the next claim would run again the step
        whose result this write records. Retrying is safe: the write is fenced by the
        expected index. A retry that finds the log already ``len(batch)`` further (an
        earlier attempt was applied but its answer lost) reads the events back and
        counts the write as done when they are the ones it wrote.
        """
        delays = iter(WRITE_RETRY_DELAYS_S)
        maybe_applied = False
        while True:
            self.lease.check(self.run_id)
            try:
                return await self.store.append_events(
                    self.run_id, self.lease.lease, self.next_index, batch, now, consume=self.consume
                )
            except LogConflictError as exc:
                if (
                    maybe_applied
                    and exc.current == self.next_index + len(batch)
                    and await self._holds(batch)
                ):
                    return exc.current
                raise
            except StoreUnavailableError as exc:
                delay = next(delays, None)
                if delay is None or self.clock() + round(delay * 1000) >= (
                    self.lease.lease.expires_at
                ):
                    raise
                log.warning(
                    "writing to the log of run %s failed (retrying in %.2f s): %s",
                    self.run_id,
                    delay,
                    exc,
                    extra={"run_id": self.run_id},
                )
                maybe_applied = True
                await asyncio.sleep(delay)

    async def _holds(self, batch: list[NewEvent]) -> bool:
        """Whether the log holds ``batch`` from :attr:`next_index` on."""
        stored = await self.store.read_events(self.run_id, self.next_index, len(batch))
        return [(e.type, e.step_id, e.data) for e in stored] == [
            (e.type, e.step_id, e.data) for e in batch
        ]

    async def settle(self, outcome: Outcome, *events: NewEvent) -> Run:
        """End the slice: write everything left, apply ``outcome``, release the lease."""
        batch = [*self.pending, *events]
        now = self.clock()
        self.lease.check(self.run_id)
        run = await self.store.settle_run(
            self.run_id,
            self.lease.lease,
            self.next_index,
            batch,
            outcome,
            now,
            consume=self.consume,
        )
        self._written(batch, now)
        self.next_index = run.next_event_index
        self.pending.clear()
        self.consume.clear()
        return run

    def _written(self, batch: list[NewEvent], now: int) -> None:
        if self.listener is None:
            return
        for offset, event in enumerate(batch):
            self._tell(
                StoredEvent(
                    self.run_id,
                    self.next_index + offset,
                    event.type,
                    event.step_id,
                    event.data,
                    now,
                )
            )

    def _tell(self, event: StoredEvent) -> None:
        assert self.listener is not None
        try:
            self.listener(event)
        except Exception:
            # The event is stored whatever a progress display thinks of it.
            log.exception("event listener failed", extra={"run_id": self.run_id})


@dataclass(slots=True)
class _Counters:
    by_kind: dict[str, int] = field(default_factory=dict)

    def next(self, kind: str) -> int:
        n = self.by_kind.get(kind, 0) + 1
        self.by_kind[kind] = n
        return n


class Execution:
    """One slice of one run: replays the log, runs live operations, and returns the
    outcome the driver settles with (or raises what made the slice fail)."""

    def __init__(
        self,
        *,
        run: Run,
        journal: Journal,
        history: History,
        inbox: list[InboxEntry],
        workflow: Workflow[Any, Any],
        clock: Clock,
        should_yield: Callable[[], bool] = lambda: False,
        children: ChildStarter | None = None,
    ) -> None:
        self.run_record = run
        self.children = children
        self.workflow = workflow
        self.history = history
        self.journal = journal
        self.clock = clock
        self.should_yield = should_yield
        self._inbox = inbox
        self._taken: set[tuple[InboxKind, str]] = set()
        self._position = 0
        self._seen: set[str] = set()
        self._busy = False
        self._counters = _Counters()
        self._patches: dict[str, bool] = {}
        """``ctx.patched`` answers so far: the same for every call with one id."""
        self._child_waits: dict[str, int] = {}
        """Waits so far per child run id: numbers each wait's own step id."""
        self._child_ends: dict[str, _ChildEnd] = {}
        """The ends of children this slice met (recorded or consumed): a later wait for
        one of them answers from here (its inbox entry is spent)."""
        self._started: set[str] = set()
        """The child run ids this run's code started so far (replayed or live)."""
        self._suspension: Yield | Pause | None = None
        self._fatal: BaseException | None = None
        self._step_task: asyncio.Future[Any] | None = None
        self._max_bytes = journal.store.max_payload_bytes

    @property
    def run_id(self) -> str:
        return self.run_record.run_id

    @property
    def replaying(self) -> bool:
        return self._position < len(self.history.ops)

    async def run(self) -> Outcome:
        """Run the workflow code until it pauses, yields, finishes or fails.

        Returns ``Yield``/``Pause``/``Finish``, or ``Fail`` for failures the log
        determines (a recorded step failure or wait timeout, :class:`WorkflowFailed`).
        Any other exception propagates: the driver counts it as a failed attempt.
        """
        ctx = Context(self)
        failure: Exception | None = None
        output: Any = None
        try:
            output = await self.workflow.handler(ctx, self.run_record.input)
        except _Suspend:
            pass
        except Exception as exc:
            failure = exc
        finally:
            await self._end_step_task()
        # Misuse and non-determinism win even if workflow code caught them.
        if self._fatal is not None:
            raise self._fatal
        if self._suspension is not None:
            return self._suspension
        if failure is not None:
            if self.replaying and isinstance(
                failure, StepFailedError | WaitTimeoutError | WorkflowFailed | ChildFailedError
            ):
                # The log holds operations past this failure: the code failed where it
                # once went on. Changed code, not a result the log determines.
                op = self.history.ops[self._position]
                raise NonDeterminismError(
                    self.run_id, self._position, (op.kind.value, op.step_id), None
                ) from failure
            if isinstance(failure, StepFailedError):
                return Fail(self._error_info(failure, "step_failed"))
            if isinstance(failure, WaitTimeoutError):
                return Fail(self._error_info(failure, "wait_timeout"))
            if isinstance(failure, ChildFailedError):
                return Fail(self._error_info(failure, "child_failed"))
            if isinstance(failure, WorkflowFailed):
                return Fail(self._error_info(failure, failure.code))
            raise failure
        if self.replaying:
            op = self.history.ops[self._position]
            raise NonDeterminismError(
                self.run_id, self._position, (op.kind.value, op.step_id), None
            )
        try:
            return Finish(codec.decode(codec.encode(output, what="workflow output")))
        except PayloadError as exc:
            raise WorkflowDefinitionError(
                f"workflow {self.workflow.workflow_id!r} returned a value that is not a "
                f"payload: {exc}"
            ) from None

    async def _end_step_task(self) -> None:
        """Workflow code can end while a step it started still runs (an exception out
        of ``asyncio.gather`` leaves the other awaitables running): cancel that step and
        wait for it, so that no step code runs on after the slice is settled."""
        task = self._step_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def fatal(self) -> BaseException | None:
        """What ended the slice from outside or by misuse (see :meth:`abort`)."""
        return self._fatal

    def abort(self, reason: BaseException) -> None:
        """Stop the slice from outside (its lease is gone): a running step function is
        cancelled, and the next context operation raises ``reason``. Store calls in
        flight are never cancelled (that could leave a transaction open); they fail on
        their own, fenced by the lease."""
        if self._fatal is None:
            self._fatal = reason
        if self._step_task is not None and not self._step_task.done():
            self._step_task.cancel()

    # -- bookkeeping shared by the operations ---------------------------------------
    def _error_info(self, exc: BaseException, code: str) -> ErrorInfo:
        return error_info(exc, code, max_bytes=self.journal.store.max_payload_bytes)

    def _fail(self, exc: BaseException) -> NoReturn:
        self._fatal = exc
        raise exc

    def _suspend(self, outcome: Yield | Pause) -> NoReturn:
        self._suspension = outcome
        raise _Suspend(outcome)

    def _auto_id(self, kind: str) -> str:
        return f"{kind}#{self._counters.next(kind)}"

    def _begin(self, kind: OpKind, step_id: str, *, internal: bool = False) -> RecordedOp | None:
        if self._fatal is not None:
            raise self._fatal
        if self._suspension is not None:
            raise _Suspend(self._suspension)
        if self.journal.lease.expired():
            self._fail(self.journal.lease.lost(self.run_id))
        if self._busy:
            self._fail(
                WorkflowDefinitionError(
                    f"{kind.value} {step_id!r} started while another context operation of run "
                    f"{self.run_id!r} was still running; await context operations one at a "
                    "time (no asyncio.gather over ctx.step, no ctx calls inside a step)"
                )
            )
        try:
            check_id(step_id, "step_id")
        except InvalidArgumentError as exc:
            self._fail(WorkflowDefinitionError(str(exc)))
        if not internal and step_id.startswith(RESERVED_PREFIX):
            self._fail(
                WorkflowDefinitionError(
                    f"step id {step_id!r} starts with {RESERVED_PREFIX!r}, which the engine "
                    "reserves for its own records"
                )
            )
        if step_id in self._seen:
            self._fail(
                WorkflowDefinitionError(
                    f"step id {step_id!r} is used twice in run {self.run_id!r}; give every "
                    "operation its own id (in loops, e.g. f'charge-{i}')"
                )
            )
        self._seen.add(step_id)
        position = self._position
        self._position += 1
        if position < len(self.history.ops):
            op = self.history.ops[position]
            if (op.kind, op.step_id) != (kind, step_id):
                self._fail(
                    NonDeterminismError(
                        self.run_id,
                        position,
                        (op.kind.value, op.step_id),
                        (kind.value, step_id),
                    )
                )
            return op
        return None

    def _check_yield(self) -> None:
        if self.should_yield():
            self._suspend(Yield())

    def _take(self, wait: Wait) -> InboxEntry | None:
        """The first unconsumed inbox entry (in arrival order) that satisfies ``wait``."""
        for entry in self._inbox:
            key = (entry.kind, entry.key)
            if key not in self._taken and wait.matches(entry):
                self._taken.add(key)
                return entry
        return None

    # -- operations ------------------------------------------------------------------
    async def step(
        self,
        step_id: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        retry: RetryPolicy | None,
        timeout_s: float | None,
    ) -> Any:
        op = self._begin(OpKind.STEP, step_id)
        self._busy = True
        try:
            return await self._step(op, step_id, fn, args, retry or DEFAULT_STEP_RETRY, timeout_s)
        finally:
            self._busy = False

    async def _step(
        self,
        op: RecordedOp | None,
        step_id: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        policy: RetryPolicy,
        timeout_s: float | None,
    ) -> Any:
        failed = 0
        if op is not None:
            done = op.last(EventType.STEP_COMPLETED)
            if done is not None:
                return field_of(done, "result")
            final = op.last(EventType.STEP_FAILED)
            if final is not None:
                attempts = field_of(final, "attempt")
                raise StepFailedError(
                    step_id,
                    error_from(field_of(final, "error")),
                    attempts if isinstance(attempts, int) else 0,
                )
            failed = op.count(EventType.STEP_ATTEMPT_FAILED)
            retry_at = field_of(op.last(EventType.STEP_ATTEMPT_FAILED), "retry_at")
            if isinstance(retry_at, int):
                wait = Wait.sleep(step_id, retry_at, meta={"retry": failed + 1})
                timer = self._take(wait)
                if timer is not None:
                    self.journal.consume.append(timer.ref)
                elif self.clock() < retry_at:
                    self._suspend(Pause(wait))
        attempt = failed + 1
        self._check_yield()
        # Whatever this slice recorded so far must not be lost if the step's side
        # effect happens and the process then dies.
        await self._write()
        token = _CURRENT_STEP.set(StepCall(self.run_id, step_id, attempt))
        try:
            # Its own task (which copies the context, current_step() included), so that
            # abort() can cancel the step's code without touching anything else.
            self._step_task = asyncio.ensure_future(
                telemetry.traced_step(
                    self.run_id, step_id, attempt, _call(fn, args, step_id, timeout_s)
                )
            )
            result = await self._step_task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._fatal is not None and (current is None or not current.cancelling()):
                raise self._fatal from None
            raise
        except Exception as exc:
            if self._fatal is not None:
                # Misuse from inside the step (a ctx call): the run's error, not a
                # failure of the step to record and retry.
                raise self._fatal from None
            return self._step_failed(step_id, attempt, exc, policy)
        finally:
            self._step_task = None
            _CURRENT_STEP.reset(token)
        try:
            # Checked here against the store's limit, since the record is written later
            # (with the next write of the slice): a refusal then would blame that write.
            data = codec.decode(
                codec.encode(
                    {"result": result, "attempt": attempt},
                    max_bytes=self._max_bytes,
                    what=f"result of step {step_id!r}",
                )
            )
        except PayloadError as exc:
            # Not a payload (or too large for the store): retrying cannot help.
            return self._step_failed(step_id, attempt, exc, RetryPolicy.never())
        self.journal.add(NewEvent(EventType.STEP_COMPLETED, data, step_id))
        return cast("dict[str, JSON]", data)["result"]

    async def _write(self, *events: NewEvent) -> None:
        try:
            await self.journal.flush(*events)
        except PayloadError:
            raise  # the caller records it as the step's failure
        except WorkflowStoreError as exc:
            # A lost lease or a failing store ends the slice even if workflow code
            # catches the exception.
            self._fail(exc)

    def _step_failed(
        self, step_id: str, attempt: int, exc: Exception, policy: RetryPolicy
    ) -> NoReturn:
        error = self._error_info(exc, "step_error")
        if policy.should_retry(exc, attempt):
            retry_at = self.clock() + policy.delay_ms(attempt)
            self.journal.add(
                NewEvent(
                    EventType.STEP_ATTEMPT_FAILED,
                    {"attempt": attempt, "error": error_data(error), "retry_at": retry_at},
                    step_id,
                )
            )
            self._suspend(Pause(Wait.sleep(step_id, retry_at, meta={"retry": attempt + 1})))
        self.journal.add(
            NewEvent(
                EventType.STEP_FAILED, {"attempt": attempt, "error": error_data(error)}, step_id
            )
        )
        raise StepFailedError(step_id, error, attempt) from exc

    async def sleep_until(self, wake_at: int | None, delay_ms: int, step_id: str | None) -> None:
        step_id = step_id or self._auto_id("sleep")
        op = self._begin(OpKind.SLEEP, step_id)
        if op is not None:
            if op.last(EventType.SLEEP_COMPLETED) is not None:
                return
            recorded = field_of(op.last(EventType.SLEEP_STARTED), "wake_at")
            wake_at = recorded if isinstance(recorded, int) else 0
        else:
            self._check_yield()
            if wake_at is None:
                wake_at = self.clock() + max(0, delay_ms)
            self.journal.add(NewEvent(EventType.SLEEP_STARTED, {"wake_at": wake_at}, step_id))
        wait = Wait.sleep(step_id, wake_at)
        timer = self._take(wait)
        if timer is not None or self.clock() >= wake_at:
            self.journal.add(
                NewEvent(EventType.SLEEP_COMPLETED, None, step_id),
                timer.ref if timer else None,
            )
            return
        self._suspend(Pause(wait))

    async def wait_for_signal(
        self, name: str, timeout_s: float | None, step_id: str | None
    ) -> JSON:
        try:
            check_id(name, "signal name")
        except InvalidArgumentError as exc:
            self._fail(WorkflowDefinitionError(str(exc)))
        step_id = step_id or self._auto_id(f"signal:{name}")
        op = self._begin(OpKind.SIGNAL, step_id)
        timeout_at: int | None
        if op is not None:
            got = op.last(EventType.SIGNAL_RECEIVED)
            if got is not None:
                return field_of(got, "payload")
            if op.last(EventType.SIGNAL_TIMED_OUT) is not None:
                raise WaitTimeoutError(step_id, f"signal {name!r}")
            recorded = field_of(op.last(EventType.SIGNAL_WAITING), "timeout_at")
            timeout_at = recorded if isinstance(recorded, int) else None
        else:
            self._check_yield()
            timeout_at = None if timeout_s is None else self.clock() + round(timeout_s * 1000)
            self.journal.add(
                NewEvent(
                    EventType.SIGNAL_WAITING, {"name": name, "timeout_at": timeout_at}, step_id
                )
            )
        wait = Wait.signal(step_id, name, timeout_at=timeout_at)
        entry = self._take(wait)
        if entry is not None and entry.kind is InboxKind.SIGNAL:
            self.journal.add(
                NewEvent(
                    EventType.SIGNAL_RECEIVED,
                    {"name": name, "signal_id": entry.key, "payload": entry.payload},
                    step_id,
                ),
                entry.ref,
            )
            return entry.payload
        if entry is not None or (timeout_at is not None and self.clock() >= timeout_at):
            self.journal.add(
                NewEvent(EventType.SIGNAL_TIMED_OUT, {"name": name}, step_id),
                entry.ref if entry else None,
            )
            raise WaitTimeoutError(step_id, f"signal {name!r}")
        self._suspend(Pause(wait))

    async def wait_for_approval(
        self,
        title: str,
        description: str | None,
        timeout_s: float | None,
        step_id: str | None,
        meta: JSON,
    ) -> Approval:
        step_id = step_id or self._auto_id("approval")
        op = self._begin(OpKind.APPROVAL, step_id)
        approval_id = approval_id_for(self.run_id, step_id)
        timeout_at: int | None
        if op is not None:
            decided = op.last(EventType.APPROVAL_DECIDED)
            if decided is not None:
                return Approval(
                    approval_id,
                    field_of(decided, "approved") is True,
                    field_of(decided, "feedback"),
                )
            if op.last(EventType.APPROVAL_TIMED_OUT) is not None:
                raise WaitTimeoutError(step_id, f"approval {title!r}")
            recorded = field_of(op.last(EventType.APPROVAL_REQUESTED), "timeout_at")
            timeout_at = recorded if isinstance(recorded, int) else None
        else:
            self._check_yield()
            try:
                codec.encode(
                    meta,
                    max_bytes=self.journal.store.max_payload_bytes,
                    what=f"meta of approval {step_id!r}",
                )
            except PayloadError as exc:
                # Refused here, where the code is at fault, not later by the write of
                # some unrelated operation that flushes this record.
                self._fail(WorkflowDefinitionError(str(exc)))
            timeout_at = None if timeout_s is None else self.clock() + round(timeout_s * 1000)
            self.journal.add(
                NewEvent(
                    EventType.APPROVAL_REQUESTED,
                    {
                        "approval_id": approval_id,
                        "title": title,
                        "description": description,
                        "timeout_at": timeout_at,
                        "meta": meta,
                    },
                    step_id,
                )
            )
        wait = Wait.approval(
            step_id,
            approval_id,
            timeout_at=timeout_at,
            meta={"title": title, "description": description},
        )
        entry = self._take(wait)
        if entry is not None and entry.kind is InboxKind.APPROVAL:
            payload = entry.payload if isinstance(entry.payload, dict) else {}
            decision = Approval(
                approval_id, payload.get("approved") is True, payload.get("feedback")
            )
            self.journal.add(
                NewEvent(
                    EventType.APPROVAL_DECIDED,
                    {
                        "approval_id": approval_id,
                        "approved": decision.approved,
                        "feedback": decision.feedback,
                    },
                    step_id,
                ),
                entry.ref,
            )
            return decision
        if entry is not None or (timeout_at is not None and self.clock() >= timeout_at):
            self.journal.add(
                NewEvent(EventType.APPROVAL_TIMED_OUT, {"approval_id": approval_id}, step_id),
                entry.ref if entry else None,
            )
            raise WaitTimeoutError(step_id, f"approval {title!r}")
        self._suspend(Pause(wait))

    async def start_child(
        self,
        workflow: Workflow[Any, Any] | str,
        input: JSON,
        step_id: str | None,
        policy: ParentPolicy,
        run_timeout_s: float | None,
        queue: str | None,
        priority: int,
        partition_key: str | None,
    ) -> ChildRun[Any]:
        # Before the operation counts: a refusal that code catches must leave the
        # replay's positions as they were (the capability never changes under a run).
        if Capability.CHILDREN not in self.journal.store.capabilities or self.children is None:
            raise ChildrenUnsupportedError(
                f"run {self.run_id!r} cannot start a child run: this store does not "
                "declare Capability.CHILDREN (see docs/runtime.md, Children)"
            )
        step_id = step_id or self._auto_id("child")
        workflow_id = workflow.workflow_id if isinstance(workflow, Workflow) else workflow
        self._check_child_args(step_id, workflow_id, policy, run_timeout_s)
        op = self._begin(OpKind.CHILD, step_id)
        child_run_id = child_run_id_for(self.run_id, step_id, workflow_id)
        if op is not None:
            started = op.last(EventType.CHILD_STARTED)
            recorded = field_of(started, "workflow_id")
            if recorded != workflow_id:
                self._fail(
                    NonDeterminismError(
                        self.run_id,
                        op.position,
                        None,
                        None,
                        detail=(
                            f"step {step_id!r} started a child run of workflow {recorded!r}, "
                            f"but the code now starts one of {workflow_id!r}"
                        ),
                    )
                )
            child_id = field_of(started, "child_run_id")
            if isinstance(child_id, str):
                child_run_id = child_id
            self._started.add(child_run_id)
            return ChildRun(child_run_id, step_id, workflow_id)
        try:
            check_id(child_run_id, "child run id")
            codec.encode(input, max_bytes=self._max_bytes, what=f"input of child {step_id!r}")
        except InvalidArgumentError as exc:
            self._fail(WorkflowDefinitionError(str(exc)))
        self._check_yield()
        # Store calls follow: another context operation meanwhile is misuse.
        self._busy = True
        try:
            result = await self._create_child(
                step_id,
                child_run_id,
                workflow,
                input,
                policy,
                run_timeout_s,
                queue,
                priority,
                partition_key,
            )
        finally:
            self._busy = False
        if isinstance(result, Conflict) or result.run.parent_run_id != self.run_id:
            self._fail(
                WorkflowDefinitionError(
                    f"child run id {child_run_id!r} of step {step_id!r} is taken by a run "
                    f"that is not this run's child (workflow {result.run.workflow_id!r})"
                )
            )
        self._started.add(child_run_id)
        self.journal.add(
            NewEvent(
                EventType.CHILD_STARTED,
                {"child_run_id": child_run_id, "workflow_id": workflow_id},
                step_id,
            )
        )
        return ChildRun(child_run_id, step_id, workflow_id)

    async def _create_child(
        self,
        step_id: str,
        child_run_id: str,
        workflow: Workflow[Any, Any] | str,
        input: JSON,
        policy: ParentPolicy,
        run_timeout_s: float | None,
        queue: str | None,
        priority: int,
        partition_key: str | None,
    ) -> CreateResult:
        # What the slice recorded so far (the results the child's input came from)
        # must be durable before the child exists: a replay must not compute another
        # input for a child that is already running with this one.
        await self._write()
        self.journal.lease.check(self.run_id)
        assert self.children is not None  # checked by start_child
        deadline_at = None
        if run_timeout_s is not None:
            deadline_at = self.clock() + max(1, round(run_timeout_s * 1000))
        spec = ChildSpec(
            self.run_record,
            child_run_id,
            workflow,
            input,
            policy,
            deadline_at,
            queue,
            priority,
            partition_key,
        )
        try:
            # Idempotent by the id: a replay after a crash before CHILD_STARTED was
            # written gets Existing and records it then.
            return await self.children(spec)
        except Exception as exc:
            # Whatever the runtime or the store refused ends the slice: workflow code
            # catching it would take a path no replay can repeat.
            self._fail(exc)

    def _check_child_args(
        self, step_id: str, workflow_id: object, policy: object, run_timeout_s: object
    ) -> None:
        try:
            check_id(step_id, "step_id", max_length=MAX_CHILD_STEP_ID_LENGTH)
            check_id(workflow_id, "workflow_id")
            if not isinstance(policy, ParentPolicy):
                raise InvalidArgumentError(
                    f"policy must be a ParentPolicy, not {type(policy).__name__}"
                )
            for name, value in (("run_timeout", run_timeout_s),):
                if value is not None and not _positive_seconds(value):
                    raise InvalidArgumentError(
                        f"{name} must be a positive number of seconds, not {value!r}"
                    )
        except InvalidArgumentError as exc:
            self._fail(WorkflowDefinitionError(str(exc)))

    def check_child_timeout(self, timeout_s: object) -> None:
        """A wait's ``timeout``: ``None`` or a positive number of seconds."""
        if timeout_s is not None and not _positive_seconds(timeout_s):
            self._fail(
                WorkflowDefinitionError(
                    f"timeout must be a positive number of seconds, not {timeout_s!r}"
                )
            )

    async def child_result(self, handle: ChildRun[Any], timeout_s: float | None) -> JSON:
        if not isinstance(handle, ChildRun) or handle.run_id not in self._started:
            self._fail(
                WorkflowDefinitionError(
                    f"child_result needs the handle ctx.start_child returned in run "
                    f"{self.run_id!r}, got {handle!r}"
                )
            )
        self.check_child_timeout(timeout_s)
        child_run_id = handle.run_id
        known = self._child_ends.get(child_run_id)
        if known is not None:
            return known.outcome(handle.step_id, child_run_id)
        n = self._child_waits.get(child_run_id, 0) + 1
        self._child_waits[child_run_id] = n
        step_id = child_wait_step_id(handle.step_id, n)
        op = self._begin(OpKind.CHILD_WAIT, step_id, internal=True)
        timeout_at: int | None
        if op is not None:
            ended = op.last(EventType.CHILD_FINISHED, EventType.CHILD_FAILED)
            if ended is not None:
                end = _ChildEnd.recorded(ended)
                self._child_ends[child_run_id] = end
                return end.outcome(handle.step_id, child_run_id)
            if op.last(EventType.CHILD_WAIT_TIMED_OUT) is not None:
                raise ChildTimeoutError(handle.step_id, child_run_id)
            recorded = field_of(op.last(EventType.CHILD_WAITING), "timeout_at")
            timeout_at = recorded if isinstance(recorded, int) else None
        else:
            self._check_yield()
            timeout_at = None if timeout_s is None else self.clock() + round(timeout_s * 1000)
            self.journal.add(
                NewEvent(
                    EventType.CHILD_WAITING,
                    {"child_run_id": child_run_id, "timeout_at": timeout_at},
                    step_id,
                )
            )
        wait = Wait.child(
            step_id, child_run_id, timeout_at=timeout_at, meta={"workflow_id": handle.workflow_id}
        )
        entry = self._take(wait)
        if entry is not None and entry.kind is InboxKind.CHILD:
            end = _ChildEnd.read(entry.payload)
            self.journal.add(end.record(step_id), entry.ref)
            self._child_ends[child_run_id] = end
            return end.outcome(handle.step_id, child_run_id)
        if entry is not None or (timeout_at is not None and self.clock() >= timeout_at):
            self.journal.add(
                NewEvent(EventType.CHILD_WAIT_TIMED_OUT, {"child_run_id": child_run_id}, step_id),
                entry.ref if entry else None,
            )
            raise ChildTimeoutError(handle.step_id, child_run_id)
        self._suspend(Pause(wait))

    def now(self) -> int:
        step_id = f"{RESERVED_PREFIX}now#{self._counters.next(RESERVED_PREFIX + 'now')}"
        op = self._begin(OpKind.NOW, step_id, internal=True)
        if op is not None:
            value = field_of(op.events[0], "now")
            return value if isinstance(value, int) else 0
        value = self.clock()
        self.journal.add(NewEvent(EventType.NOW_RECORDED, {"now": value}, step_id))
        return value

    def patched(self, patch_id: str) -> bool:
        """Whether this run takes the patched path (see :meth:`Context.patched`)."""
        known = self._patches.get(patch_id)
        if known is not None:
            return known
        self._check_patch_id(patch_id)
        if patch_id in self.history.patches:
            taken = True  # recorded under the patched code
        elif self.replaying:
            taken = False  # recorded under the old code, which is being replayed
        else:
            # Past the end of the log: what happens from here on is recorded by this
            # code, so the run takes the new path, and says so in its log.
            taken = True
            self.journal.add(
                NewEvent(
                    EventType.PATCH_APPLIED,
                    {"patch_id": patch_id},
                    PATCH_STEP_PREFIX + patch_id,
                )
            )
        self._patches[patch_id] = taken
        return taken

    def deprecate_patch(self, patch_id: str) -> None:
        """Fail fast on a run recorded before the patch (see
        :meth:`Context.deprecate_patch`)."""
        if patch_id in self._patches:
            return
        self._check_patch_id(patch_id)
        if patch_id not in self.history.patches and self.replaying:
            self._fail(
                NonDeterminismError(
                    self.run_id,
                    self._position,
                    None,
                    None,
                    detail=(
                        f"the run was recorded before patch {patch_id!r} and is still "
                        "replaying that code, but the code now calls "
                        f"ctx.deprecate_patch({patch_id!r}), which drops the old path; "
                        "keep ctx.patched(...) until every run started before the patch "
                        "has ended"
                    ),
                )
            )
        self._patches[patch_id] = True

    def _check_patch_id(self, patch_id: str) -> None:
        if self._fatal is not None:
            raise self._fatal
        try:
            # Its event's step id is the prefix and the patch id: both fit an id.
            check_id(patch_id, "patch_id", max_length=MAX_ID_LENGTH - len(PATCH_STEP_PREFIX))
        except InvalidArgumentError as exc:
            self._fail(WorkflowDefinitionError(str(exc)))

    def uuid(self) -> str:
        step_id = f"{RESERVED_PREFIX}uuid#{self._counters.next(RESERVED_PREFIX + 'uuid')}"
        op = self._begin(OpKind.UUID, step_id, internal=True)
        if op is not None:
            return str(field_of(op.events[0], "uuid"))
        value = str(uuid.uuid4())
        self.journal.add(NewEvent(EventType.UUID_RECORDED, {"uuid": value}, step_id))
        return value


def _positive_seconds(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


def _is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` only creates a coroutine (``functools.partial`` and
    objects with an ``async def __call__`` included)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


async def _call(
    fn: Callable[..., Any], args: tuple[Any, ...], step_id: str, timeout_s: float | None
) -> Any:
    async def invoke() -> Any:
        if _is_async(fn):
            result = fn(*args)
        else:
            # A plain function runs in a worker thread so that it cannot block the event
            # loop (heartbeats, timeouts, other runs). to_thread copies the context, so
            # current_step() works inside it. A thread cannot be killed: on timeout or
            # abort its eventual result is discarded, but it runs on to its end.
            result = await asyncio.to_thread(fn, *args)
        if inspect.isawaitable(result):
            result = await result
        return result

    if timeout_s is None:
        return await invoke()
    try:
        async with asyncio.timeout(timeout_s) as scope:
            return await invoke()
    except TimeoutError:
        if scope.expired():
            raise StepTimeoutError(step_id, timeout_s) from None
        raise


class Context:
    """What workflow code uses to do anything that is not pure computation.

    Each operation takes a ``step_id``: unique within the run and the same on every
    replay. Waits, ``now()`` and ``uuid()`` number themselves when no id is given (in
    call order, which replay repeats). Await operations one at a time.
    """

    __slots__ = ("_x",)

    def __init__(self, execution: Execution) -> None:
        self._x = execution

    @property
    def run_id(self) -> str:
        return self._x.run_id

    @property
    def workflow_id(self) -> str:
        return self._x.run_record.workflow_id

    @property
    def workflow_version(self) -> str | None:
        return self._x.run_record.workflow_version

    @property
    def replaying(self) -> bool:
        """``True`` while the code is still catching up with the recorded log."""
        return self._x.replaying

    # The step's arguments are typed with a TypeVarTuple, not a ParamSpec: step takes
    # its own keyword options (retry=, timeout=) next to fn's positional arguments, and
    # a ParamSpec's P.args cannot be followed by keyword parameters without P.kwargs
    # (fn's keywords), which would take retry= and timeout= away from step. So fn is
    # called with positional arguments only (functools.partial binds keywords).
    @overload
    async def step(
        self,
        step_id: str,
        fn: Callable[[*Ts], Awaitable[R]],
        *args: *Ts,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - bounds each attempt (asyncio.timeout inside)
    ) -> R: ...

    @overload
    async def step(
        self,
        step_id: str,
        fn: Callable[[*Ts], R],
        *args: *Ts,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - bounds each attempt (asyncio.timeout inside)
    ) -> R: ...

    async def step(
        self,
        step_id: str,
        fn: Callable[[*Ts], Any],
        *args: *Ts,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - bounds each attempt (asyncio.timeout inside)
    ) -> Any:
        """Run ``fn(*args)`` once and record its result (a payload), or its final error.

        Replays return the recorded result without calling ``fn``. A failing attempt is
        retried by ``retry`` (default: 3 attempts with backoff); the backoff is a
        durable timer, so the worker is free meanwhile. The final failure raises
        :class:`StepFailedError` here, on every replay alike. ``timeout`` (seconds)
        bounds each attempt.

        A plain (non-``async``) ``fn`` runs in a worker thread (:func:`asyncio.to_thread`),
        so it does not block heartbeats or other runs. A thread cannot be killed: when
        its attempt times out (or the slice is aborted) the attempt fails at once, but
        the thread runs on and its result is discarded.
        """
        return await self._x.step(step_id, fn, args, retry, timeout)

    async def sleep(self, seconds: float, *, step_id: str | None = None) -> None:
        """Sleep durably: the run pauses and a timer wakes it (no worker is held)."""
        await self._x.sleep_until(None, round(seconds * 1000), step_id)

    async def sleep_until(self, wake_at_ms: int, *, step_id: str | None = None) -> None:
        """Sleep until ``wake_at_ms`` (ms since the Unix epoch)."""
        await self._x.sleep_until(int(wake_at_ms), 0, step_id)

    async def wait_for_signal(
        self,
        name: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a durable timer, not an in-process wait
        step_id: str | None = None,
    ) -> JSON:
        """Wait for a signal called ``name`` and return its payload. A signal that came
        before the wait is kept and returned at once. Raises :class:`WaitTimeoutError`
        after ``timeout`` seconds."""
        return await self._x.wait_for_signal(name, timeout, step_id)

    async def wait_for_approval(
        self,
        title: str,
        *,
        description: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a durable timer, not an in-process wait
        step_id: str | None = None,
        meta: JSON = None,
    ) -> Approval:
        """Ask a person to approve. The approval id is derived from the run and the step
        (:func:`approval_id_for`); operators answer with ``workflow approve RUN_ID
        APPROVAL_ID --yes|--no``. Raises :class:`WaitTimeoutError` after ``timeout``."""
        return await self._x.wait_for_approval(title, description, timeout, step_id, meta)

    @overload
    async def child(
        self,
        workflow: Workflow[InputT, OutputT],
        /,
        input: InputT,
        *,
        step_id: str | None = None,
        policy: ParentPolicy = ParentPolicy.CANCEL,
        timeout: float | None = None,  # noqa: ASYNC109 - a durable timer, not an in-process wait
        run_timeout: float | None = None,
        queue: str | None = None,
        priority: int = 0,
        partition_key: str | None = None,
    ) -> OutputT: ...

    @overload
    async def child(
        self,
        workflow: str,
        /,
        input: JSON = None,
        *,
        step_id: str | None = None,
        policy: ParentPolicy = ParentPolicy.CANCEL,
        timeout: float | None = None,  # noqa: ASYNC109 - a durable timer, not an in-process wait
        run_timeout: float | None = None,
        queue: str | None = None,
        priority: int = 0,
        partition_key: str | None = None,
    ) -> JSON: ...

    async def child(
        self,
        workflow: Workflow[Any, Any] | str,
        /,
        input: JSON = None,
        *,
        step_id: str | None = None,
        policy: ParentPolicy = ParentPolicy.CANCEL,
        timeout: float | None = None,  # noqa: ASYNC109 - a durable timer, not an in-process wait
        run_timeout: float | None = None,
        queue: str | None = None,
        priority: int = 0,
        partition_key: str | None = None,
    ) -> Any:
        """Run ``workflow`` (a :class:`Workflow`, or a registered workflow id) as a child
        run and return its output: :meth:`start_child` and then :meth:`child_result`.
        Raises :class:`ChildFailedError` when the child ends ``errored``, ``cancelled``
        or ``timed_out``, :class:`ChildTimeoutError` when ``timeout`` seconds pass first
        (the child runs on). See :meth:`start_child` for the other options."""
        self._x.check_child_timeout(timeout)  # before the child exists
        handle = await self.start_child(
            workflow,
            input,
            step_id=step_id,
            policy=policy,
            run_timeout=run_timeout,
            queue=queue,
            priority=priority,
            partition_key=partition_key,
        )
        return await self._x.child_result(handle, timeout)

    @overload
    async def start_child(
        self,
        workflow: Workflow[InputT, OutputT],
        /,
        input: InputT,
        *,
        step_id: str | None = None,
        policy: ParentPolicy = ParentPolicy.CANCEL,
        run_timeout: float | None = None,
        queue: str | None = None,
        priority: int = 0,
        partition_key: str | None = None,
    ) -> ChildRun[OutputT]: ...

    @overload
    async def start_child(
        self,
        workflow: str,
        /,
        input: JSON = None,
        *,
        step_id: str | None = None,
        policy: ParentPolicy = ParentPolicy.CANCEL,
        run_timeout: float | None = None,
        queue: str | None = None,
        priority: int = 0,
        partition_key: str | None = None,
    ) -> ChildRun[JSON]: ...

    async def start_child(
        self,
        workflow: Workflow[Any, Any] | str,
        /,
        input: JSON = None,
        *,
        step_id: str | None = None,
        policy: ParentPolicy = ParentPolicy.CANCEL,
        run_timeout: float | None = None,
        queue: str | None = None,
        priority: int = 0,
        partition_key: str | None = None,
    ) -> ChildRun[Any]:
        """Start ``workflow`` as a child run of this one and return its handle at once
        (wait for it with :meth:`child_result`; several may run at the same time).

        The child's id is derived from this run's id, ``step_id`` (numbered
        ``child#1``, ``child#2``, ... when not given) and the workflow's id
        (:func:`~workflow.runtime.children.child_run_id_for`), so a replay creates
        nothing new. A :class:`Workflow` runs at its version; an id, at the latest
        version this runtime registers. ``policy``: what the parent's cancellation or
        time-out does to the child (:attr:`ParentPolicy.CANCEL`: it is cancelled too;
        :attr:`ParentPolicy.ABANDON`: it goes on). ``run_timeout`` (seconds): the
        child's own deadline. ``queue`` (default: this run's queue), ``priority`` and
        ``partition_key`` place it as :meth:`Runtime.start` does.

        Raises :class:`ChildrenUnsupportedError` on a store without
        ``Capability.CHILDREN``."""
        return await self._x.start_child(
            workflow, input, step_id, policy, run_timeout, queue, priority, partition_key
        )

    async def child_result(
        self,
        handle: ChildRun[OutputT],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a durable timer, not an in-process wait
    ) -> OutputT:
        """Wait durably for the child ``handle`` names to end and return its output. The
        child's end reaches this run's inbox (nothing polls it): the run pauses, and
        resumes when it arrives. Raises :class:`ChildFailedError` when the child ended
        ``errored``, ``cancelled`` or ``timed_out``, and :class:`ChildTimeoutError`
        after ``timeout`` seconds (the child runs on; wait again, or let it be)."""
        return cast("OutputT", await self._x.child_result(handle, timeout))

    def now(self) -> int:
        """The current time in ms since the Unix epoch, recorded: replays see the same."""
        return self._x.now()

    def uuid(self) -> str:
        """A random UUID (text), recorded: replays see the same."""
        return self._x.uuid()

    def patched(self, patch_id: str) -> bool:
        """Change a workflow's code under runs in flight: ``True`` where the run may take
        the new path, ``False`` where it must replay the old one::

            if ctx.patched("fraud-check"):
                await ctx.step("fraud-check", check, order)

        A run that reaches the call with nothing of its log left to replay (a new run,
        or one that stopped before this point) takes the new path and records that it
        did (a ``PATCH_APPLIED`` event, written with its next write); a run replaying a
        log recorded by the old code gets ``False`` and replays it. Every call with one
        id in one run gives the same answer. Once no run started before the patch is in
        flight, replace the call with :meth:`deprecate_patch` and the old path can go.
        """
        return self._x.patched(patch_id)

    def deprecate_patch(self, patch_id: str) -> None:
        """The step after :meth:`patched`, once every run started before the patch has
        ended: the code keeps only the new path, and a run recorded before the patch
        that would still need the old one fails at once with
        :class:`NonDeterminismError` naming the patch (instead of a mismatch further
        on). Records nothing; remove the call when no such run can remain."""
        self._x.deprecate_patch(patch_id)


__all__ = [
    "Approval",
    "Clock",
    "Context",
    "EventListener",
    "Execution",
    "Journal",
    "LeaseBox",
    "StepCall",
    "approval_id_for",
    "current_step",
    "error_info",
    "fit_error",
]
