"""The worker: polls in a loop until told to stop.

* Each poll claims runs into the free drive slots (``runtime.concurrency``); drives run
  as their own tasks, so a long step never holds up timers, schedules or other runs.
  Due schedules and timers are fired when they are due as far as this worker knows
  (a run it drove paused until a time, a schedule's next tick), and at the latest once
  per ``poll_interval`` for what other processes set up.
* Wakes at once, without waiting for a poll, when this process starts a run or
  delivers a signal or an approval that queues one (through its :class:`Runtime`), when
  a drive ends and frees its slot, and when a due time it knows of comes. Other
  processes' work reaches it through the store's wake-up hints, from one listener
  shared by every worker of the process, in turns: one worker with a free slot claims
  per hint (after ``hint_delay``), not every worker (:class:`~.wakeups.Turns`).
* Polls with jitter: after a poll that found work it polls again at once; after an idle
  one it waits ``poll_interval`` seconds spread by ``jitter`` (so many workers do not
  hit the store in lockstep), or less when woken. Store outages back off exponentially.
* Graceful stop (SIGTERM/SIGINT, or :meth:`Worker.stop`): no new claims (a poll in
  flight is cancelled, even one stuck on a store call); running slices yield at their
  next context operation (a step already running finishes) and settle, which releases
  their leases. **Stop means stop**: after ``grace_period`` seconds the slices still
  running are cancelled (each tries to release its lease), and :meth:`run` returns
  after at most :data:`RELEASE_BUDGET_S` more, abandoning a drive stuck beyond that
  (:attr:`Worker.cut_short` says so; its lease then expires). A second signal does the
  same at once, without the grace period, and gives the releases
  :data:`~workflow.runtime.driver.RELEASE_TIMEOUT_S`. Nothing a stop waits on is
  unbounded.
* Retention (``retention``, seconds; off by default): runs that ended longer ago are
  deleted with everything they own, ``limit`` at a time (one bounded store call, oldest
  first), at most once per ``purge_interval`` unless the last batch was full. Without
  it a store keeps every run for ever (Redis: in memory).
* Structured logs: every record carries ``run_id``/``schedule_id``/... as fields;
  :func:`configure_logging` renders them as ``key=value`` text or JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import random
import signal
import time
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, TypeVar

from .driver import RELEASE_TIMEOUT_S, DriveOutcome, DriveReport, Runtime
from .errors import InvalidArgumentError, WorkflowStoreError
from .records import InboxEntry
from .results import Claimed, ScheduleTick
from .validation import check_limit
from .wakeups import Turns, Watch, watch
from .workflow_errors import UnknownWorkflowError

log: logging.Logger = logging.getLogger("workflow.runtime.worker")
T = TypeVar("T")

DEFAULT_GRACE_PERIOD_S = 30.0
"""Seconds a graceful stop lets the running slices finish or yield before cancelling
them."""
DEFAULT_PURGE_INTERVAL_S = 60.0
"""Seconds between two retention purges of a worker (when the last one was not full)."""
DEFAULT_HINT_DELAY_S = 0.002
"""Seconds a worker handed a claim by a store's hint waits before it claims: the hints
of that moment (runs started together elsewhere) then lead to one claim."""
RELEASE_BUDGET_S = 2 * RELEASE_TIMEOUT_S + 1.0
"""Seconds cancelled drives get to end (a drive waits up to ``RELEASE_TIMEOUT_S`` for
its step to stop, then as long again to release its lease); one still running then is
abandoned: its lease expires and another worker takes the run over."""


class Worker:
    """Fires due schedules and timers and drives claimed runs in a loop (see the
    module docs).

    Drives run as their own tasks, up to ``runtime.concurrency`` at once: a poll never
    waits for them, so a long step holds up neither timers and schedules nor the
    claim of other runs into the free slots. ``limit`` bounds the ticks, timers and
    claims of one poll. ``grace_period``: seconds a graceful stop waits for the running
    slices before cancelling them (:data:`DEFAULT_GRACE_PERIOD_S`). ``retention``:
    seconds a run is kept after it ended; polls then purge older ones, ``limit`` at a
    time and at most once per ``purge_interval`` seconds unless a batch was full
    (``None``, the default: nothing is purged). ``hint_delay``: seconds between the
    store's hint handing this worker its process's next claim and the claim
    (:data:`DEFAULT_HINT_DELAY_S`), so that hints of that moment make one claim.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        poll_interval: float = 1.0,
        jitter: float = 0.2,
        limit: int = 100,
        max_backoff: float = 30.0,
        grace_period: float = DEFAULT_GRACE_PERIOD_S,
        retention: float | None = None,
        purge_interval: float = DEFAULT_PURGE_INTERVAL_S,
        hint_delay: float = DEFAULT_HINT_DELAY_S,
    ) -> None:
        self.runtime = runtime
        self.hint_delay: float = _seconds(hint_delay, "hint_delay")
        """Seconds between a store's hint handing this worker a claim and the claim."""
        self.grace_period: float = _seconds(grace_period, "grace_period")
        self.retention: float | None = (
            None if retention is None else _seconds(retention, "retention")
        )
        """Seconds a run is kept after it ended (``None``: for ever)."""
        self.purge_interval: float = _seconds(purge_interval, "purge_interval")
        self._purge_after = 0.0
        """When (``time.monotonic``) the next poll purges at the earliest."""
        self.purged: int = 0
        """Runs this worker's retention has deleted."""
        self.poll_interval = poll_interval
        self.jitter = jitter
        self.limit: int = check_limit(limit)
        self.max_backoff = max_backoff
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._drives: set[asyncio.Task[DriveReport]] = set()
        self._fire_after = 0.0
        """When (``time.monotonic``) the next poll fires due schedules and timers at the
        latest (for what other processes set up)."""
        self._due: list[float] = []
        """Heap of times (``time.monotonic``) when something this worker knows of falls
        due: a timer of a run it paused, a schedule's next tick."""
        self._schedules_seen = False
        self._stopped_at = 0.0
        """When (``time.monotonic``) :meth:`stop` was first called: the grace period
        counts from there."""
        self._reserved = 0
        """Slots held for runs the runtime is creating claimed (see :meth:`reserve`)."""
        self._maybe_more = True
        """Whether the store may hold runs this worker could claim that its last claim
        did not return (cleared by a claim that got fewer than it asked for)."""
        self._told = False
        """Whether the store tells this worker when other processes make runs
        claimable (then a drive that ends claims only if there may be more)."""
        self._turns: Turns | None = None
        """This worker's share of its process's listener, when the store's watcher
        hands hints out in turns (:class:`~workflow.runtime.wakeups.Watch`): then the
        store's news reach it as a granted turn, not as :attr:`_maybe_more`."""
        self._wakes = 0
        """Counts :meth:`_more`: a claim that came back short clears
        :attr:`_maybe_more` only when nothing set it meanwhile."""
        self.sweeps: int = 0
        self.cut_short: bool = False
        """Whether the last stop cancelled slices (the grace period ran out, or a second
        signal): a step in a thread may still be running, and a drive that did not end
        within :data:`RELEASE_BUDGET_S` was abandoned. ``workflow worker`` then exits
        without waiting for them."""
        self._hard = asyncio.Event()
        self._stray: set[asyncio.Future[Any]] = set()
        """Polls cancelled by a stop, still ending (a driver's own cancellation may take
        a while): waited for with the drives, within the same bound."""

    def wake(self) -> None:
        """Poll now rather than at the end of the idle wait (work may have appeared).

        Safe to call from the worker's event loop only; the :class:`Runtime` calls it
        when this process starts a run or a delivery queues one."""
        self._more()
        self._wake.set()

    def _more(self) -> None:
        self._maybe_more = True
        self._wakes += 1

    def _free(self) -> int:
        """Drive slots free right now (0 once stopping)."""
        if self._stop.is_set():
            return 0
        running = sum(1 for task in self._drives if not task.done())
        return max(0, self.runtime.concurrency - running - self._reserved)

    async def _listen(self, hints: AsyncGenerator[None, None]) -> None:
        """Wake on the store's hints that other processes made runs claimable
        (``Capability.NOTIFY_RUNNABLE``); once listening, a drive that ends claims only
        when there may be more. Polling stays the guarantee: a watcher that fails only
        takes the hints away."""
        turns = hints if isinstance(hints, Watch) else None
        if turns is not None:
            # One claim per hint in this process, by a worker with a free slot, rather
            # than one by every worker (see wakeups.Turns).
            turns.take_turns(self._free, self)
        try:
            async for _ in hints:
                self._told = True
                if turns is None:
                    self.wake()
                    continue
                self._turns = turns.turns
                if self._turns is not None and self._turns.granted:
                    self._claim_soon()
        except Exception as exc:
            log.warning(
                "wake-up hints stopped (polling every %.1f s): %s",
                self.poll_interval,
                exc,
                extra={"owner": self.runtime.owner},
            )
        finally:
            self._told = False
            self._turns = None
            await hints.aclose()

    def _claim_soon(self) -> None:
        """Poll after :attr:`hint_delay` (the poll claims with the granted turn)."""
        if self.hint_delay <= 0:
            self._wake.set()
        else:
            asyncio.get_running_loop().call_later(self.hint_delay, self._wake.set)

    def reserve(self) -> bool:
        """Hold a free slot for a run the runtime is about to create claimed."""
        if self._stop.is_set() or len(self._drives) + self._reserved >= self.runtime.concurrency:
            return False
        self._reserved += 1
        return True

    def unreserve(self) -> None:
        self._reserved -= 1

    @property
    def claim_as(self) -> tuple[str, int]:
        """The lease owner and length of a run created claimed for this worker."""
        return self.runtime.owner, self.runtime.lease_ms

    def lend(self, workflow_id: str, version: str | None, queue: str) -> Worker | None:
        """Another worker of this process, on the same store listener, that registers
        ``workflow_id`` at ``version``, serves ``queue`` and reserved a slot for a run
        about to be created claimed for it (``None``: none has one). So a process whose
        starting runtime's own slots are full still creates its runs claimed (one store
        call, no hint, no claim) while any of its workers has a free slot."""
        turns = self._turns
        if turns is None:
            return None
        for peer in turns.peers():
            if (
                isinstance(peer, Worker)
                and peer.runtime.serves(queue)
                and peer.registers(workflow_id, version)
                and peer.reserve()
            ):
                return peer
        return None

    def registers(self, workflow_id: str, version: str | None) -> bool:
        try:
            self.runtime.workflows.get(workflow_id, version)
        except UnknownWorkflowError:
            return False
        return True

    @property
    def listening(self) -> bool:
        """Whether the store's wake-up hints reach this worker (``NOTIFY_RUNNABLE``)."""
        return self._told

    @property
    def reserved(self) -> int:
        """Slots held for runs being created claimed (0 between starts)."""
        return self._reserved

    def adopt(self, claim: Claimed) -> None:
        """Drive a run the runtime created claimed, in the slot it reserved."""
        self._reserved -= 1
        self._start_drive(claim)

    def _start_drive(self, claim: Claimed) -> None:
        # Its deadline is fired by this worker's fire_due_timers when it falls due.
        self._due_in(claim.run.deadline_at)
        task = asyncio.create_task(self.runtime.drive(claim))
        task.add_done_callback(self._drive_ended)
        self._drives.add(task)

    def _due_in(self, at_ms: int | None) -> None:
        """Remember that something falls due at ``at_ms`` (the runtime's clock), so
        the worker fires it then instead of at its next periodic firing."""
        if at_ms is None:
            return
        # 1 ms late: the store fires what is due at ``now``, never a moment before.
        delay = (at_ms - self.runtime.clock() + 1) / 1000
        heapq.heappush(self._due, time.monotonic() + max(0.0, delay))
        if delay <= 0:
            self._wake.set()

    def _drive_ended(self, task: asyncio.Task[DriveReport]) -> None:
        # A slot is free: the loop looks at once whether to refill it (not setting
        # _maybe_more: that is the store's to tell, or the hub's to hand out).
        self._wake.set()
        if self._turns is not None:
            self._turns.slot_freed()
        if task.cancelled() or task.exception() is not None:
            return
        report = task.result()
        if report.outcome is DriveOutcome.YIELDED:
            self._more()  # the run is claimable again at once
        run = report.run
        if run is not None and run.wait is not None:
            self._due_in(run.wait.wake_at)
        if run is not None and not run.status.terminal:
            self._due_in(run.deadline_at)

    def stop(self) -> None:
        """Graceful stop: finish or yield the current slices, then return from run()."""
        if not self._stop.is_set():
            log.info(
                "stopping: no new claims, current slices yield and release their leases",
                extra={"owner": self.runtime.owner},
            )
        if not self._stop.is_set():
            self._stopped_at = time.monotonic()
        self.runtime.request_stop()
        self._stop.set()
        self._wake.set()
        if self._turns is not None:
            # It claims nothing more: the process's next claim is another worker's (its
            # watcher, and with it its place among the claimers, ends after the grace).
            self._turns.pass_on()

    def stop_now(self) -> None:
        """Hard stop: as :meth:`stop`, and cancel the running slices at once (no grace
        period); :meth:`run` returns within :data:`RELEASE_BUDGET_S`."""
        self.stop()
        self._hard.set()

    def _delay(self, base: float) -> float:
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

    async def _poll(self) -> bool:
        """Fire due schedules and timers (at most once per poll interval, unless the
        last firing left more due), claim runs into the free slots and start driving
        them. True when it should poll again at once.

        A poll also follows every drive that ends, to refill its slot: firing on each
        of those would cost two store calls per run for nothing new."""
        rt = self.runtime
        ticks: list[ScheduleTick] = []
        timers: list[InboxEntry] = []
        more = False
        now = time.monotonic()
        if now >= self._next_firing():
            while self._due and self._due[0] <= now:
                heapq.heappop(self._due)
            ticks, timers = await rt.fire_due(self.limit)
            more = len(ticks) >= self.limit or len(timers) >= self.limit
            self._fire_after = now if more else now + self._delay(self.poll_interval)
            self._more()  # fired or periodic: look for others' work too
            for tick in ticks:
                self._due_in(tick.next_fire_at)
            if not self._schedules_seen:
                # The first firing declared the code's schedules: their first ticks.
                self._schedules_seen = True
                for schedule in rt.declared_schedules:
                    if schedule.enabled:
                        self._due_in(schedule.next_fire_at)
        if self.retention is not None and now >= self._purge_after:
            more = await self._purge(now, self.retention) or more
        free = min(self._free(), self.limit)
        turns = self._turns
        turn = turns is not None and turns.granted
        if self._told and not (self._maybe_more or turn):
            # Woken by a drive ending, and the store told of nothing new since a claim
            # came back short (nor handed this worker a turn): a claim would find nothing.
            free = 0
        claims = await self._claim(free, turns) if free > 0 else []
        if turns is not None and turns.granted and free <= 0:
            turns.pass_on()  # no slot after all: another worker's turn
        for claim in claims:
            self._start_drive(claim)
        # Again at once only when there may be more to do right now: more due than one
        # firing takes, or a full batch of claims with slots still free. Fewer claims
        # than asked means nothing else was runnable: new work wakes the worker (a start
        # or delivery in this process, a drive ending, a due time), or the next poll
        # finds it; one more claim now would only cost a round trip.
        return more or (
            free > 0 and len(claims) == free and len(self._drives) + self._reserved < rt.concurrency
        )

    async def _claim(self, free: int, turns: Turns | None) -> list[Claimed]:
        """Claim up to ``free`` runs, telling the hub (if any) what the claim found."""
        token = turns.claiming() if turns is not None else 0
        wakes = self._wakes
        try:
            claims = await self.runtime.claim(free)
        except BaseException:
            if turns is not None:
                turns.claimed(token, None)
            raise
        full = len(claims) == free
        if turns is not None:
            turns.claimed(token, full)
        if full:
            # There may be more: this worker looks again when a slot frees, unless the
            # hub hands the rest out (to whichever worker has a free slot first).
            self._maybe_more = turns is None or self._wakes != wakes
        elif self._wakes == wakes:
            # Nothing else was runnable (a wake-up during the claim, which may have come
            # after the claim's snapshot, keeps the flag).
            self._maybe_more = False
        return claims

    async def _purge(self, now: float, retention: float) -> bool:
        """One retention batch; True when it was full (more may be due)."""
        purged = await self.runtime.purge_finished(round(retention * 1000), self.limit)
        self.purged += purged
        full = purged >= self.limit
        self._purge_after = now if full else now + self._delay(self.purge_interval)
        if purged:
            log.info(
                "purged %d runs that ended more than %g s ago",
                purged,
                retention,
                extra={"owner": self.runtime.owner, "purged": purged},
            )
        return full

    def _next_firing(self) -> float:
        return min(self._fire_after, self._due[0]) if self._due else self._fire_after

    async def _idle(self, delay: float) -> None:
        """Wait ``delay`` seconds, or less: until a drive ends (its slot is free),
        something known falls due, :meth:`wake` or :meth:`stop` is called."""
        delay = min(delay, max(0.0, self._next_firing() - time.monotonic()))
        if not self._wake.is_set():
            # Drives that end set the event too (_drive_ended).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()
        self._drives = {task for task in self._drives if not task.done()}

    async def run(self) -> None:
        """Poll until :meth:`stop`, then let the running drives finish or yield; failed
        polls are logged and backed off, never fatal."""
        failures = 0
        log.info(
            "worker started",
            extra={
                "owner": self.runtime.owner,
                "workflows": ",".join(sorted(self.runtime.workflows.ids)),
                "concurrency": self.runtime.concurrency,
            },
        )
        self.runtime.attach(self)
        hints = watch(self.runtime.store)
        listening = None if hints is None else asyncio.create_task(self._listen(hints))
        try:
            while not self._stop.is_set():
                try:
                    again = await self._until_stopped(self._poll())
                except _Stopped:
                    break
                except Exception as exc:
                    # A worker outlives store outages and its own bugs alike: log, back
                    # off. Drives already running hold their leases and go on.
                    failures += 1
                    if self._turns is not None:
                        self._turns.pass_on()  # not hold the process's claim while backing off
                    delay = min(self.max_backoff, self.poll_interval * 2 ** min(failures, 10))
                    log.warning(
                        "sweep failed (retrying in %.1f s): %s",
                        delay,
                        exc,
                        exc_info=not isinstance(exc, WorkflowStoreError),
                        extra={"owner": self.runtime.owner},
                    )
                    # Not woken by ending drives: a failing store is not polled faster.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self._delay(delay))
                    self._drives = {task for task in self._drives if not task.done()}
                    continue
                failures = 0
                self.sweeps += 1
                if again:
                    await asyncio.sleep(0)  # let signal handlers and drives in
                    self._drives = {task for task in self._drives if not task.done()}
                    continue
                await self._idle(self._delay(self.poll_interval))
            # Graceful stop: the slices yield at their next context operation (a
            # running step finishes) and settle, which releases their leases; those
            # still running after the grace period (or a hard stop) are cancelled.
            await self._grace()
        finally:
            self.runtime.detach(self)
            if listening is not None:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)
            # The grace period ran out, a hard stop, a cancellation or a bug: stop the
            # drives with the loop; each tries to release its lease on the way out,
            # within a bounded time.
            await self._cancel_drives()
        log.info("worker stopped", extra={"owner": self.runtime.owner})

    async def _grace(self) -> None:
        """Wait for the running drives, at most ``grace_period`` seconds, or until a
        hard stop."""
        # Counted from the stop, so that a poll that used part of it leaves the rest.
        deadline = self._stopped_at + self.grace_period
        hard = asyncio.ensure_future(self._hard.wait())
        try:
            while not self._hard.is_set():
                pending = {task for task in self._drives if not task.done()}
                left = deadline - time.monotonic()
                if not pending or left <= 0:
                    return
                await asyncio.wait(
                    {hard, *pending}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            hard.cancel()

    async def _until_stopped(self, call: Awaitable[T]) -> T:
        """``call``; if the worker is stopped meanwhile, it gets the grace period to
        end (its store calls are bounded by the store's ``operation_timeout``) and is
        cancelled after it or on a hard stop. A poll stuck on a store call must not
        hold up a stop; but one cancelled at once would leave what its claim took
        (the store still runs a statement whose caller was cancelled) leased to a
        stopped worker until the lease expires, while one that ends hands its claims
        to drives that yield them back at once."""
        task = asyncio.ensure_future(call)
        stopped = asyncio.ensure_future(self._stop.wait())
        hard = asyncio.ensure_future(self._hard.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and not self._hard.is_set():
                left = self._stopped_at + self.grace_period - time.monotonic()
                if left > 0:
                    await asyncio.wait(
                        {task, hard}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                    )
        except BaseException:
            task.cancel()  # the worker itself is cancelled: the poll with it
            raise
        finally:
            stopped.cancel()
            hard.cancel()
        if not task.done():
            task.cancel()
            self._stray.add(task)
            raise _Stopped
        return task.result()

    async def _cancel_drives(self) -> None:
        running = [task for task in self._drives if not task.done()]
        stray = [task for task in self._stray if not task.done()]
        self._drives.clear()
        self._stray.clear()
        # A hard stop gives releases one store round trip's worth of time, not two.
        budget = RELEASE_TIMEOUT_S if self._hard.is_set() else RELEASE_BUDGET_S
        if not running:
            if stray:
                await asyncio.wait(stray, timeout=budget)
            return
        self.cut_short = True
        log.warning(
            "cancelling %d running slices (%s); each releases its lease if the store lets it",
            len(running),
            "hard stop" if self._hard.is_set() else f"grace period of {self.grace_period:g} s over",
            extra={"owner": self.runtime.owner},
        )
        for task in running:
            task.cancel()
        _, stuck = await asyncio.wait([*running, *stray], timeout=budget)
        stuck -= set(stray)
        if stuck:
            log.warning(
                "abandoning %d drives that did not end within %.0f s of their cancellation "
                "(their leases expire)",
                len(stuck),
                budget,
                extra={"owner": self.runtime.owner},
            )

    async def run_until_signalled(self) -> None:
        """:meth:`run`, stopping gracefully on the first SIGTERM/SIGINT (slices still
        running after ``grace_period`` are cancelled) and hard on the second (the
        slices are cancelled at once; their leases are released if the store answers
        within :data:`RELEASE_BUDGET_S`)."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        seen: list[int] = []

        def on_signal(signum: int) -> None:
            seen.append(signum)
            if len(seen) == 1:
                log.info("received %s", signal.Signals(signum).name)
                self.stop()
            else:
                log.warning(
                    "received %s again: cancelling running slices", signal.Signals(signum).name
                )
                self.stop_now()

        for signum in signals:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await self.run()
            if len(seen) >= 2:
                log.warning("worker stopped hard", extra={"owner": self.runtime.owner})
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)


def _seconds(value: object, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise InvalidArgumentError(f"{what} must be a number of seconds >= 0, got {value!r}")
    return float(value)


class _Stopped(Exception):
    """The worker was stopped while a poll was in flight (the poll was cancelled)."""
