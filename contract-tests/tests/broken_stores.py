"""Deliberately broken variants of the reference store.

Each class breaks exactly one rule of the contract, the way real adapters get it
wrong. ``test_suite_catches_broken_stores.py`` runs the whole suite against each
one and requires it to fail. They reuse the reference store and corrupt one step,
so each variant is a few lines and obviously wrong in just one way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from workflow.runtime import (
    JSON,
    Buffered,
    Cancelled,
    CancelResult,
    Claimed,
    ClaimResult,
    Created,
    CreateResult,
    DeliveryResult,
    InboxEntry,
    InboxKind,
    InboxRef,
    InMemoryStore,
    Lease,
    LeaseLostError,
    NewEvent,
    Outcome,
    Overlap,
    Page,
    Run,
    RunStatus,
    Schedule,
    ScheduleSpec,
    ScheduleTick,
    StoredEvent,
)
from workflow.runtime.arguments import Delivery, LogWrite, NewRun
from workflow.runtime.cursor import decode_cursor, encode_cursor
from workflow.runtime.memory import _Data, _InboxRow, _RunRow


class NoCompareAndSwap(InMemoryStore):
    """Appends at the end of the log whatever index the caller expected."""

    @staticmethod
    def _append(row: _RunRow, log: LogWrite) -> None:
        InMemoryStore._append(row, replace(log, expected=len(row.events)))


class NoFencing(InMemoryStore):
    """Accepts writes from any lease of the run, superseded ones included."""

    def _held(self, data: _Data, run_id: str, lease: Lease) -> _RunRow:
        row = self._data.runs.get(run_id)
        if row is None:
            return super()._held(self._data, run_id, lease)
        if row.lease is None:
            row.lease = lease
        return row


class ReentrantClaim(InMemoryStore):
    """Lets the owner of a live lease claim its run again (shared owner strings)."""

    async def claim_run(
        self, run_id: str, owner: str, lease_ms: int, now: int, *, with_history: bool = False
    ) -> ClaimResult:
        row = self._data.runs.get(run_id)
        if row is not None and row.lease is not None and row.lease.owner == owner:
            return self._claim(row, owner, lease_ms, now, with_history)
        return await super().claim_run(run_id, owner, lease_ms, now, with_history=with_history)


class ExpiryExclusive(InMemoryStore):
    """Treats a lease as expired only strictly after ``expires_at`` (off by one)."""

    async def claim_run(
        self, run_id: str, owner: str, lease_ms: int, now: int, *, with_history: bool = False
    ) -> ClaimResult:
        if type(now) is int and now > 0:
            now -= 1
        return await super().claim_run(run_id, owner, lease_ms, now, with_history=with_history)


class TokenNotIncremented(InMemoryStore):
    """Hands out token 1 on every claim, so fencing cannot tell holders apart."""

    def _claim(self, row: _RunRow, owner: str, lease_ms: int, now: int, history: bool) -> Claimed:
        row.last_token = 0
        return super()._claim(row, owner, lease_ms, now, history)


class DoubleFiringTimers(InMemoryStore):
    """Fires a timer but leaves the run waiting on it, so it fires again."""

    async def fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        waits = {r.run_id: r.wait for r in self._data.runs.values() if r.wait is not None}
        fired = await super().fire_due_timers(now, limit)
        for entry in fired:
            row = self._data.runs[entry.run_id]
            row.status = RunStatus.PAUSED
            row.wait = waits[entry.run_id]
            row.inbox.pop((entry.kind, entry.key), None)
        return fired


class LostBufferedSignal(InMemoryStore):
    """Answers ``Buffered`` but keeps nothing for a run that is not waiting yet."""

    def _deliver(self, d: Delivery) -> DeliveryResult:
        result = super()._deliver(d)
        if isinstance(result, Buffered):
            del self._data.runs[d.run_id].inbox[(d.kind, d.key)]
        return result


class BufferedAfterTerminal(InMemoryStore):
    """Stores deliveries for finished runs instead of answering ``Closed``."""

    def _deliver(self, d: Delivery) -> DeliveryResult:
        row = self._data.runs.get(d.run_id)
        if row is not None and row.status.terminal and (d.kind, d.key) not in row.inbox:
            entry = _InboxRow(d.kind, d.key, d.name, d.step_id, d.payload, d.meta, d.now)
            row.inbox[(d.kind, d.key)] = entry
            return Buffered(self._run(row), self._entry(d.run_id, entry))
        return super()._deliver(d)


class OffsetCursor(InMemoryStore):
    """Pages with an offset, which shifts when rows are inserted while paging."""

    async def list_runs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        **filters: Any,
    ) -> Page:
        offset = 0 if cursor is None else decode_cursor(cursor)[0]
        everything = await super().list_runs(limit=1000, **filters)
        items = everything.items[offset : offset + limit]
        more = len(everything.items) > offset + limit
        return Page(items, encode_cursor(offset + limit, "offset") if more else None)


class OverwritingCreate(InMemoryStore):
    """Replaces an existing run on create instead of answering ``Existing``."""

    async def create_run(
        self,
        run_id: str,
        workflow_id: str,
        workflow_version: str | None,
        input: JSON,
        now: int,
        **options: Any,
    ) -> CreateResult:
        if isinstance(run_id, str):
            self._data.runs.pop(run_id, None)
        return await super().create_run(
            run_id,
            workflow_id,
            workflow_version,
            input,
            now,
            **options,
        )


class SettleKeepsLease(InMemoryStore):
    """Forgets to release the lease when a slice settles."""

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
        run = await super().settle_run(
            run_id, lease, expected_next_index, events, outcome, now, consume=consume
        )
        self._data.runs[run_id].lease = lease
        return run


class NoValidation(InMemoryStore):
    """Accepts empty ids and silently clamps bad limits."""

    async def create_run(
        self,
        run_id: str,
        workflow_id: str,
        workflow_version: str | None,
        input: JSON,
        now: int,
        **options: Any,
    ) -> CreateResult:
        if run_id == "":
            row = _RunRow("", workflow_id, workflow_version, RunStatus.QUEUED, None, now, now, now)
            self._data.runs[""] = row
            return Created(self._run(row))
        return await super().create_run(
            run_id,
            workflow_id,
            workflow_version,
            input,
            now,
            **options,
        )


class LossyNumbers(InMemoryStore):
    """Reads numbers back as doubles, like a JSON column that loses 64-bit integers."""

    def _run(self, row: _RunRow) -> Run:
        lossy = None if row.input is None else json.loads(row.input, parse_int=float)
        return replace(super()._run(row), input=lossy)


class RepeatingSchedules(InMemoryStore):
    """Fires a due schedule without advancing it, so every sweep fires it again."""

    async def fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        before = {s.schedule_id: s.next_fire_at for s in self._data.schedules.values()}
        ticks = await super().fire_due_schedules(now, limit)
        for tick in ticks:
            self._data.schedules[tick.schedule_id].next_fire_at = before[tick.schedule_id]
        return ticks


class PurgesLiveRuns(InMemoryStore):
    """Retention that deletes runs that are still going."""

    async def purge_runs(self, terminal_before: int, limit: int) -> int:
        count = await super().purge_runs(terminal_before, limit)
        live = [r for r in self._data.runs.values() if r.updated_at < terminal_before][
            : limit - count
        ]
        for row in live:
            del self._data.runs[row.run_id]
        return count + len(live)


# -- lease identity, tie-breaks and argument forms (issue 17) ------------------------------
# Each breaks a rule only on valid input the older cases never sent: a lease with the
# right token but another owner, ties on the first sort key, a second accepted form.


class TokenOnlyFencing(InMemoryStore):
    """Fences by token alone: a stale worker of a deleted and recreated run gets in."""

    def _held(self, data: _Data, run_id: str, lease: Lease) -> _RunRow:
        row = data.runs.get(run_id)
        if row is not None and row.lease is not None and row.lease.token == lease.token:
            lease = replace(lease, owner=row.lease.owner)
        return super()._held(data, run_id, lease)


class OwnerOnlyLogFencing(InMemoryStore):
    """Appends and settles check the owner only (heartbeats still check the token)."""

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
        return await super().append_events(
            run_id, self._current(run_id, lease), expected_next_index, events, now, consume=consume
        )

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
        return await super().settle_run(
            run_id,
            self._current(run_id, lease),
            expected_next_index,
            events,
            outcome,
            now,
            consume=consume,
        )

    def _current(self, run_id: str, lease: Lease) -> Lease:
        row = self._data.runs.get(run_id) if isinstance(run_id, str) else None
        held = None if row is None else row.lease
        if isinstance(lease, Lease) and held is not None and held.owner == lease.owner:
            return held
        return lease


class ExpiryComparedFencing(InMemoryStore):
    """Compares the whole lease, expires_at included, on appends and settles."""

    @staticmethod
    def _append(row: _RunRow, log: LogWrite) -> None:
        if row.lease != log.lease:
            raise LeaseLostError(row.run_id)
        InMemoryStore._append(row, log)


class InboxTiesByKey(InMemoryStore):
    """Orders the inbox by (received_at, key), forgetting the kind."""

    def _inbox(self, row: _RunRow, include_consumed: bool) -> list[InboxEntry]:
        entries = super()._inbox(row, include_consumed)
        return sorted(entries, key=lambda e: (e.received_at, e.key))


class ClaimTiesByArrival(InMemoryStore):
    """Claims the right runs but returns ties on ready_at in creation order."""

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
        claims = await super().claim_runnable(
            owner, lease_ms, limit, now, with_history=with_history, queues=queues
        )
        order = list(self._data.runs)
        return sorted(claims, key=lambda c: (c.run.ready_at, order.index(c.run.run_id)))


class TimerTiesByArrival(InMemoryStore):
    """Fires the right timers but returns ties on wake_at in creation order."""

    async def fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        fired = await super().fire_due_timers(now, limit)
        order = list(self._data.runs)
        return sorted(fired, key=lambda e: (json.dumps(e.payload), order.index(e.run_id)))


class ScheduleTiesByArrival(InMemoryStore):
    """Returns a batch of ticks by fire_at alone; ties in declaration order."""

    async def fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        ticks = await super().fire_due_schedules(now, limit)
        order = list(self._data.schedules)
        return sorted(ticks, key=lambda t: (t.fire_at, order.index(t.schedule_id)))


class EventsByCreatedAt(InMemoryStore):
    """Reads the log ordered by created_at (then index), not by index."""

    @staticmethod
    def _events(row: _RunRow, from_index: int, limit: int | None) -> list[StoredEvent]:
        events = InMemoryStore._events(row, 0, None)
        events.sort(key=lambda e: (e.created_at, e.index))
        end = None if limit is None else from_index + limit
        return events[from_index:end]


class PlainStatusStringIgnored(InMemoryStore):
    """Takes a status filter given as a plain string for no filter at all."""

    async def list_runs(
        self,
        *,
        status: RunStatus | Collection[RunStatus] | None = None,
        **options: Any,
    ) -> Page:
        # The contract's type says RunStatus; a plain value is accepted at run time.
        plain: object = status
        if isinstance(plain, str) and not isinstance(plain, RunStatus):
            status = None
        return await super().list_runs(status=status, **options)


class TupleConsumeIgnored(InMemoryStore):
    """Appends consume only a list; a tuple passes validation and is then dropped."""

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
        kept = () if isinstance(consume, tuple) else consume
        return await super().append_events(
            run_id, lease, expected_next_index, events, now, consume=kept
        )


class PlainOverlapIsSkip(InMemoryStore):
    """Stores an overlap given as its plain value as the default policy (skip)."""

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
        plain: object = overlap
        if isinstance(plain, str) and not isinstance(plain, Overlap):
            overlap = Overlap.SKIP
        return await super().upsert_schedule(
            schedule_id,
            workflow_id,
            spec,
            now,
            workflow_version=workflow_version,
            overlap=overlap,
            input=input,
            enabled=enabled,
        )


class QueueLimitsIgnoredByClaimRunnable(InMemoryStore):
    """Checks queue limits on claim_run and create, but not in claim_runnable."""

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
        configured, self._data.queues = self._data.queues, {}
        try:  # no await in between: no other caller sees the queues gone
            return await super().claim_runnable(
                owner, lease_ms, limit, now, with_history=with_history, queues=queues
            )
        finally:
            self._data.queues = configured


# -- child runs (issue 16 item 2) ------------------------------------------------------------
# Each forgets one half of a parent link, or makes one of its steps two.


class NoCascade(InMemoryStore):
    """Cancels or times out a parent and leaves its ``cancel``-policy children going."""

    @staticmethod
    def _cascade(data: _Data, parent: _RunRow, now: int) -> None:
        return None


class DropsChildEntry(InMemoryStore):
    """Wakes a parent paused on a child that ended, but stores no child entry."""

    def _tell_parent(self, data: _Data, child: _RunRow, now: int) -> None:
        parent = None if child.parent_run_id is None else data.runs.get(child.parent_run_id)
        known = set() if parent is None else set(parent.inbox)
        super()._tell_parent(data, child, now)
        if parent is not None:
            for key in set(parent.inbox) - known:
                del parent.inbox[key]


class ChildEndWakesNobody(InMemoryStore):
    """Stores the child entry but leaves a parent paused on that child paused."""

    def _tell_parent(self, data: _Data, child: _RunRow, now: int) -> None:
        parent = None if child.parent_run_id is None else data.runs.get(child.parent_run_id)
        wait = None if parent is None else parent.wait
        super()._tell_parent(data, child, now)
        if parent is not None and wait is not None and parent.status is RunStatus.QUEUED:
            parent.status, parent.wait, parent.ready_at = RunStatus.PAUSED, wait, None


class KeptChildEntryWakesNobody(InMemoryStore):
    """Keeps a child entry already there, and then forgets to wake the parent."""

    def _tell_parent(self, data: _Data, child: _RunRow, now: int) -> None:
        parent = None if child.parent_run_id is None else data.runs.get(child.parent_run_id)
        if parent is not None and (InboxKind.CHILD, child.run_id) in parent.inbox:
            return
        super()._tell_parent(data, child, now)


class LateChildOfCancelledParentRuns(InMemoryStore):
    """Creates a child of a cancelled parent queued: the cascade it came too late for
    never reaches it."""

    @staticmethod
    def _parent_ended(data: _Data, a: NewRun) -> str | None:
        InMemoryStore._parent_ended(data, a)  # still refuses an unknown parent
        return None


class CascadedChildrenCountInLimit(InMemoryStore):
    """Picks the first ``limit`` due deadlines as one batch before firing any, so a
    child its parent's cascade cancelled takes a place in ``limit``."""

    def _fire_deadlines(self, now: int, limit: int) -> list[InboxEntry]:
        due = sorted(
            (
                r
                for r in self._data.runs.values()
                if not r.status.terminal and r.deadline_at is not None and r.deadline_at <= now
            ),
            key=lambda r: (r.deadline_at or 0, r.run_id),
        )[limit:]
        later = {row.run_id: row.deadline_at for row in due}
        for row in due:
            row.deadline_at = None
        try:
            return super()._fire_deadlines(now, limit)
        finally:
            for row in due:
                row.deadline_at = later[row.run_id]


class CascadeInTwoSteps(InMemoryStore):
    """Cancels the parent, then its children in a second write: a child's settle that
    lands in between ends it under a parent that gets nothing."""

    @staticmethod
    def _cascade(data: _Data, parent: _RunRow, now: int) -> None:
        return None

    async def cancel_run(self, run_id: str, reason: str, now: int) -> CancelResult:
        result = await super().cancel_run(run_id, reason, now)
        if isinstance(result, Cancelled):
            await asyncio.sleep(0)  # the second write: others get in between
            row = self._data.runs.get(result.run.run_id)
            if row is not None:
                InMemoryStore._cascade(self._data, row, now)
        return result


BROKEN_STORES: dict[str, type[InMemoryStore]] = {
    cls.__name__: cls
    for cls in (
        NoCompareAndSwap,
        NoFencing,
        QueueLimitsIgnoredByClaimRunnable,
        ReentrantClaim,
        ExpiryExclusive,
        TokenNotIncremented,
        DoubleFiringTimers,
        LostBufferedSignal,
        BufferedAfterTerminal,
        OffsetCursor,
        OverwritingCreate,
        SettleKeepsLease,
        NoValidation,
        LossyNumbers,
        RepeatingSchedules,
        PurgesLiveRuns,
        TokenOnlyFencing,
        OwnerOnlyLogFencing,
        ExpiryComparedFencing,
        InboxTiesByKey,
        ClaimTiesByArrival,
        TimerTiesByArrival,
        ScheduleTiesByArrival,
        EventsByCreatedAt,
        PlainStatusStringIgnored,
        TupleConsumeIgnored,
        PlainOverlapIsSkip,
        NoCascade,
        DropsChildEntry,
        ChildEndWakesNobody,
        KeptChildEntryWakesNobody,
        LateChildOfCancelledParentRuns,
        CascadedChildrenCountInLimit,
        CascadeInTwoSteps,
    )
}
