"""The contract's multi-statement operations as D1 batches.

D1 refuses ``BEGIN``: what the shared bodies do in a transaction, deciding in Python
between statements, is done here as **one batch** (D1 runs a batch atomically, alone
on the database), the decisions made in SQL:

- a write that the rest depends on (the lease-guarded ``UPDATE`` of an append or a
  settle) is followed by :data:`GUARD`, which raises unless that write changed one row
  (``changes()`` still counts the batch's previous write); the error rolls back the
  whole batch, and only then is a second statement sent to say why;
- a write that may or may not apply (a delivery's ``INSERT``, a schedule's
  compare-and-set) is followed by writes conditioned on ``changes() = 1`` in their
  ``WHERE``, and each statement's own ``changes`` says what happened.

The statements themselves are the shared ones where they exist (the log writes, the
run read, the wake-up update, the delivery's read) compiled for SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.dml import ReturningDelete

from workflow.runtime import arguments, codec, validation
from workflow.runtime.errors import InvalidArgumentError
from workflow.runtime.records import (
    InboxEntry,
    InboxKind,
    ParentPolicy,
    Run,
    RunStatus,
    Schedule,
    StoredEvent,
    Timeline,
    WaitKind,
)
from workflow.runtime.results import (
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
    ScheduleTick,
)
from workflow.store.sql import ReturningClaims, children_sql, rows
from workflow.store.sql.compiled import Rows, text_statement
from workflow.store.sql.driver import Body, Query
from workflow.store.sql.failures import operation
from workflow.store.sql.store import (
    MS_TYPE,
    RUN_INSERT,
    bound,
    lease_guard,
    lease_guard_params,
    prefixed,
    unprefixed,
)

from . import child_batches
from .driver import D1Driver
from .http import D1QueryError

GUARD = text_statement(
    "SELECT CASE WHEN changes() = 1 THEN 1 ELSE json('workflow: guard failed') END AS ok"
)
"""Fails the batch (``json()`` of text that is not JSON) unless the write just before
it changed exactly one row."""

_CHANGED_ONE = sa.text("changes() = 1")
_TERMINAL = [s.value for s in RunStatus if s.terminal]
_NO_ROWS = Rows((), [], 0)


def guard_failed(exc: D1QueryError) -> bool:
    """``exc`` is :data:`GUARD` failing (D1 reports json()'s error, not our text)."""
    return "malformed JSON" in exc.message


def queries(body: Body[Any]) -> list[Query]:
    """The queries of a body whose later statements do not depend on the earlier
    ones' rows (the shared log writes): sent together in one batch."""
    found: list[Query] = []
    try:
        query = next(body)
        while True:
            found.append(query)
            query = body.send(_NO_ROWS)
    except StopIteration:
        return found


class D1Batches(ReturningClaims):
    """The operations that :class:`~workflow.store.sql.SQLStore` runs in a transaction,
    as D1 batches (claims and creates are single statements already)."""

    @property
    def _d1(self) -> D1Driver:
        driver = self.driver
        assert isinstance(driver, D1Driver)
        return driver

    async def _guarded(self, queries: Sequence[Query], log: arguments.LogWrite) -> list[Rows]:
        """Run a batch whose second statement is :data:`GUARD` on the lease-guarded
        write before it; the lease failure when the guard failed (nothing was written)."""
        try:
            return await self._d1.batch(queries)
        except D1QueryError as exc:
            if not guard_failed(exc):
                raise
        raise await self._run(self._lease_failure(log.run_id, log.lease, log.expected))

    # -- reads ---------------------------------------------------------------------------
    @operation
    async def get_timeline(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> Timeline | None:
        run_id = validation.check_id(run_id, "run_id")
        from_index = validation.check_index(from_index, "from_index")
        limit = validation.check_optional_limit(limit)
        # One batch: the run and its events are one consistent snapshot.
        run, events = await self._d1.batch(
            [next(self._load(run_id)), next(self._read_events(run_id, from_index, limit))]
        )
        row = run.first()
        if row is None:
            return None
        return Timeline(
            rows.run_from_row(row), [rows.event_from_row(run_id, r) for r in events.mappings()]
        )

    # -- run lifecycle -------------------------------------------------------------------
    @operation
    async def cancel_run(self, run_id: str, reason: str, now: int) -> CancelResult:
        a = arguments.cancellation(run_id, reason, now, max_bytes=self.max_payload_bytes)
        values = self._cancelled_values(a)

        def build() -> sa.Update:
            runs = self.tables.runs
            return (
                sa.update(runs)
                .where(
                    runs.c.run_id == bound("run_id", runs.c.run_id.type),
                    runs.c.status.not_in([sa.literal(s) for s in _TERMINAL]),
                )
                .values({k: bound(f"v_{k}", runs.c[k].type) for k in values})
                .returning(*self._run_cols)
            )

        def missed() -> Body[CancelResult]:
            # A terminal run never leaves its status, so reading it after a miss tells
            # which miss it was.
            current = yield from self._load(a.run_id)
            if current is None:
                return NotFound(a.run_id)
            return AlreadyTerminal(rows.run_from_row(current))

        cancelling = self._q(
            "cancel_unless_terminal", build, {"p_run_id": a.run_id, **prefixed(values, "v_")}
        )
        # One batch: the cancellation, then (only if it applied: GUARD) the child's end
        # in its parent's inbox and the cascade below it (child_batches).
        ending = self._child_end_queries(
            a.run_id, RunStatus.CANCELLED.value, None, values["error"], a.now
        )
        try:
            found = await self._d1.batch(
                [
                    cancelling,
                    Query(GUARD, {}),
                    *ending,
                    self._cascade_query(a.run_id, RunStatus.CANCELLED.value, a.now),
                ]
            )
        except D1QueryError as exc:
            if not guard_failed(exc):
                raise
            return await self._run(missed())
        row = found[0].first()
        assert row is not None  # the guard saw it change
        return Cancelled(rows.run_from_row(row))

    # -- children ------------------------------------------------------------------------
    def _child_end_queries(
        self, child_id: str, status: str, output: str | None, error: str | None, now: int
    ) -> list[Query]:
        """The end of ``child_id`` reaching its live parent (nothing without one)."""
        params = child_batches.child_end_params(child_id, status, output, error, now)
        t = self.tables
        return [
            self._q(
                "child_entry",
                lambda: child_batches.child_entry(t, self._dialect.insert_ignore),
                params,
            ),
            self._q("wake_parent_of", lambda: child_batches.wake_parent(t), params),
        ]

    def _cascade_query(self, root: str, root_status: str, now: int) -> Query:
        return self._q(
            "cascade",
            lambda: child_batches.cascade(self.tables),
            child_batches.cascade_params(root, root_status, now),
        )

    async def _create_child(
        self, a: arguments.NewRun, values: dict[str, Any], queued: dict[str, Any]
    ) -> CreateResult:
        """One batch: the existing run, the child inserted from its parent's row (none
        when the parent is missing or the id is taken), the child read back. Under a
        ``cancel`` policy the parent's status picks the child's columns in SQL."""
        assert a.parent_run_id is not None
        assert a.parent_policy is not None
        runs = self.tables.runs
        row = {
            **values,
            "parent_run_id": a.parent_run_id,
            "parent_policy": a.parent_policy.value,
            "error": None,
            "finished_at": None,
        }
        columns = tuple(row)
        cancel = a.parent_policy is ParentPolicy.CANCEL
        ended = {
            **children_sql.cascaded_values(a.now),
            "lease_token": 0,
        }

        def build() -> sa.Insert:
            parent = runs.alias("parent")
            cascading = parent.c.status.in_(
                [sa.literal(RunStatus.CANCELLED.value), sa.literal(RunStatus.TIMED_OUT.value)]
            )
            picked: list[sa.ColumnElement[Any]] = []
            for c in columns:
                value: sa.ColumnElement[Any] = bound(c, runs.c[c].type)
                if cancel and c == "error":
                    value = sa.case(
                        (
                            parent.c.status == RunStatus.CANCELLED.value,
                            bound("err_cancelled", runs.c.error.type),
                        ),
                        (
                            parent.c.status == RunStatus.TIMED_OUT.value,
                            bound("err_timed_out", runs.c.error.type),
                        ),
                        else_=sa.null(),
                    )
                elif cancel and c in ended:
                    value = sa.case((cascading, bound(f"x_{c}", runs.c[c].type)), else_=value)
                picked.append(value)
            taken = sa.exists().where(runs.c.run_id == bound("run_id", runs.c.run_id.type))
            return sa.insert(runs).from_select(
                list(columns),
                sa.select(*picked).where(
                    parent.c.run_id == bound("parent_run_id", runs.c.run_id.type), ~taken
                ),
            )

        params = {
            **prefixed(row, ""),
            **prefixed(ended, "x_"),
            **{
                f"p_err_{status.value}": codec.encode_error(
                    arguments.parent_ended_error(a.parent_run_id, status.value)
                )
                for status in (RunStatus.CANCELLED, RunStatus.TIMED_OUT)
            },
        }
        before, _, after = await self._d1.batch(
            [
                next(self._load(a.run_id)),
                self._q(("insert_child", cancel, columns), build, params),
                next(self._load(a.run_id)),
            ]
        )
        existing = before.first()
        if existing is not None:
            run = rows.run_from_row(existing)
            return Existing(run) if run.workflow_id == a.workflow_id else Conflict(run)
        created = after.first()
        if created is None:
            raise InvalidArgumentError(
                f"parent_run_id: run {a.parent_run_id!r} does not exist (create the parent first)"
            )
        run = rows.run_from_row(created)
        return Created(run, run.lease)

    @operation
    async def purge_runs(self, terminal_before: int, limit: int) -> int:
        terminal_before = validation.check_time(terminal_before, "terminal_before")
        limit = validation.check_limit(limit)
        runs = self.tables.runs

        def build() -> ReturningDelete[Any]:
            oldest = (
                sa.select(runs.c.run_id)
                .where(runs.c.finished_at < bound("before", runs.c.finished_at.type))
                .order_by(runs.c.finished_at, runs.c.run_id)
                .limit(sa.bindparam("p_limit", type_=sa.Integer()))
            )
            # RETURNING counts the runs: a row count would leave out nothing here, but
            # says nothing of the cascaded events and inbox rows either way.
            return sa.delete(runs).where(runs.c.run_id.in_(oldest)).returning(runs.c.run_id)

        def purge() -> Body[int]:
            found = yield self._q(
                "purge_oldest", build, {"p_before": terminal_before, "p_limit": limit}
            )
            return len(found.rows)

        return await self._run(purge())

    # -- claims --------------------------------------------------------------------------
    # The shared claims hand the inbox and the history over as one JSON text each
    # (json_group_array), which D1 caps at 2 MB (SQLITE_TOOBIG): a long history would
    # make its run unclaimable. Here they come as rows, read in the claim's batch.
    def _claim_update(self, where: sa.ColumnElement[bool]) -> sa.Update:
        runs = self.tables.runs
        return (
            sa.update(runs)
            .where(where, self._claimable())
            .ordered_values(*self._claim_values())
            .returning(*self._run_cols)
        )

    def _claimed_rows(self, picked: sa.ColumnElement[bool], history: bool) -> list[Any]:
        """Reads of the inbox (and history) of the runs ``picked`` selects (columns
        ``run_id`` and the record's)."""
        t = self.tables
        runs, inbox, events = t.runs, t.inbox, t.events
        reads: list[Any] = [
            sa.select(inbox.c.run_id, *self._inbox_cols)
            .join(runs, runs.c.run_id == inbox.c.run_id)
            .where(picked, inbox.c.consumed == sa.false())
            .order_by(inbox.c.run_id, inbox.c.received_at, inbox.c.kind, inbox.c.key)
        ]
        if history:
            reads.append(
                sa.select(events.c.run_id, *self._event_cols)
                .join(runs, runs.c.run_id == events.c.run_id)
                .where(picked)
                .order_by(events.c.run_id, events.c.event_index)
            )
        return reads

    def _claims(self, found: list[Rows], history: bool) -> list[Claimed]:
        """The claims of a batch: claimed runs (RETURNING), their inbox, their history;
        the reads may bring rows of runs this claim did not take (only them are kept)."""
        inboxes: dict[str, list[InboxEntry]] = {}
        histories: dict[str, list[StoredEvent]] = {}
        for r in found[1].mappings():
            inboxes.setdefault(r["run_id"], []).append(rows.entry_from_row(r["run_id"], r))
        if history:
            for r in found[2].mappings():
                histories.setdefault(r["run_id"], []).append(rows.event_from_row(r["run_id"], r))
        claims = []
        for row in found[0].mappings():
            run = rows.run_from_row(row)
            assert run.lease is not None
            claims.append(
                Claimed(
                    run=run,
                    lease=run.lease,
                    inbox=inboxes.get(run.run_id, []),
                    events=histories.get(run.run_id, []) if history else None,
                )
            )
        return claims

    async def _claim(self, a: arguments.Claim) -> ClaimResult:
        runs = self.tables.runs
        run_id = runs.c.run_id == bound("run_id", runs.c.run_id.type)
        params = {"p_run_id": a.run_id, **self._claim_params(a)}

        def reads() -> list[Any]:
            # changes(): only if the UPDATE just before claimed the run.
            return [r.where(_CHANGED_ONE) for r in self._claimed_rows(run_id, a.with_history)]

        statements = [
            self._q("claim_one", lambda: self._claim_update(run_id), params),
            *(
                self._q(("claim_one_read", a.with_history, i), lambda i=i: reads()[i], params)
                for i in range(2 if a.with_history else 1)
            ),
            next(self._load(a.run_id)),
        ]
        found = await self._d1.batch(statements)
        claimed = self._claims(found, a.with_history)
        if claimed:
            return claimed[0]
        current = found[-1].first()
        if current is None:
            return NotFound(a.run_id)
        return NotClaimable(rows.run_from_row(current))

    async def _claim_runnable(self, a: arguments.ClaimMany) -> list[Claimed]:
        runs = self.tables.runs

        def claim() -> sa.Update:
            picked = self._claim_candidates().cte("picked").prefix_with("MATERIALIZED")
            return self._claim_update(runs.c.run_id == picked.c.run_id)

        # The runs this owner holds with this very lease: those just claimed, and any
        # it claimed with the same lease before (left out by _claims).
        held = sa.and_(
            runs.c.status == RunStatus.RUNNING.value,
            runs.c.lease_owner == bound("owner", runs.c.lease_owner.type),
            runs.c.lease_expires_at == bound("expires_at", runs.c.lease_expires_at.type),
        )
        params = {**self._claim_params(a), "p_limit": a.limit}
        found = await self._d1.batch(
            [
                self._q("claim_many", claim, params),
                *(
                    self._q(
                        ("claim_many_read", a.with_history, i),
                        lambda i=i: self._claimed_rows(held, a.with_history)[i],
                        params,
                    )
                    for i in range(2 if a.with_history else 1)
                ),
            ]
        )
        return self._claims(found, a.with_history)

    # -- the log -------------------------------------------------------------------------
    def _log_queries(self, log: arguments.LogWrite) -> list[Query]:
        return queries(self._write_log(log.run_id, log.expected, log.events, log.consume, log.now))

    async def _append_events(self, log: arguments.LogWrite) -> int:
        def build() -> sa.Update:
            runs = self.tables.runs
            return (
                sa.update(runs)
                .where(lease_guard(runs))
                .values(next_event_index=bound("next", runs.c.next_event_index.type))
            )

        bump = self._q("bump_log", build, {**lease_guard_params(log), "p_next": log.next_index})
        await self._guarded([bump, Query(GUARD, {}), *self._log_queries(log)], log)
        return log.next_index

    async def _settle(self, a: arguments.Settlement, values: dict[str, Any]) -> Run:
        log, wait = a.log, a.outcome.wait

        def build() -> sa.Update:
            runs = self.tables.runs
            return (
                sa.update(runs)
                .where(lease_guard(runs))
                .values({k: bound(f"v_{k}", runs.c[k].type) for k in values})
            )

        batch = [
            self._q(
                ("settle", tuple(values)),
                build,
                {**lease_guard_params(log), **prefixed(values, "v_")},
            ),
            Query(GUARD, {}),
            *self._log_queries(log),
        ]
        if wait is not None:
            # In the same batch: D1 runs it alone, so every delivery is either before
            # it (its entry is seen here) or after it (it sees the run paused).
            batch.append(self._wake_query(log.run_id, wait, log.now))
        if "finished_at" in values:
            # The end reaches the parent, if any, in the same batch (no round trip).
            batch += self._child_end_queries(
                log.run_id, values["status"], values["output"], values["error"], log.now
            )
        batch.append(next(self._load(log.run_id)))
        found = await self._guarded(batch, log)
        row = found[-1].first()
        assert row is not None  # the guard saw it a statement earlier, in the same batch
        return rows.run_from_row(row)

    # -- wake-ups ------------------------------------------------------------------------
    async def _deliver(self, d: arguments.Delivery) -> DeliveryResult:
        t = self.tables
        runs, inbox = t.runs, t.inbox
        values = d.entry_values()
        shape = (d.kind, values["step_id"] is not None)

        def store_entry() -> sa.Insert:
            run_id = bound("run_id", runs.c.run_id.type)
            entry = sa.select(
                run_id,
                bound("kind", inbox.c.kind.type),
                *(bound(c, inbox.c[c].type) for c in values),
                sa.false(),
            ).where(
                sa.exists().where(
                    runs.c.run_id == run_id,
                    runs.c.status.not_in([sa.literal(s) for s in _TERMINAL]),
                )
            )
            # Skips an entry whose key the run has (the inbox's primary key), only.
            return self._dialect.insert_ignore(inbox).from_select(
                ["run_id", "kind", *values, "consumed"], entry
            )

        def wake() -> sa.Update:
            return (
                sa.update(runs)
                .where(
                    runs.c.run_id == bound("run_id", runs.c.run_id.type),
                    _CHANGED_ONE,  # the entry was stored just before
                    self._wakes(*shape),
                )
                .values(self._queued())
            )

        params = {
            "p_run_id": d.run_id,
            "p_kind": d.kind.value,
            **prefixed(values, ""),
            **prefixed(rows.queued_values(d.now), "q_"),
        }
        stored, woke, read = await self._d1.batch(
            [
                self._q("deliver_store", store_entry, params),
                self._q(("deliver_wake", shape), wake, params),
                self._q("deliver_lock", self._locking_for_delivery, params),
            ]
        )
        row = read.first()
        if row is None:
            return NotFound(d.run_id)
        if stored.rowcount != 1:
            if row["seen_kind"] is not None:
                return Duplicate(rows.entry_from_row(d.run_id, unprefixed(row, "seen_")))
            return Closed(rows.run_from_row(row))
        entry = rows.entry_from_row(d.run_id, {"kind": d.kind.value, "consumed": False, **values})
        run = rows.run_from_row(row)
        return Delivered(run, entry) if woke.rowcount == 1 else Buffered(run, entry)

    _timers_on_their_own = True

    async def _fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        t = self.tables
        runs, inbox = t.runs, t.inbox

        def due() -> sa.Select[Any]:
            # The same rows in every statement of the batch: nothing else runs in
            # between, and the runs change only in its last statement.
            return (
                sa.select(runs.c.run_id)
                .where(runs.c.wake_at.is_not(None), runs.c.wake_at <= bound("now", MS_TYPE))
                .order_by(runs.c.wake_at, runs.c.run_id)
                .limit(sa.bindparam("p_limit", type_=sa.Integer()))
            )

        def fire() -> sa.Insert:
            # The payload codec.encode({"wake_at": n}) writes, built in SQL.
            payload = (
                sa.literal('{"wake_at":', sa.String())
                + sa.cast(runs.c.wake_at, sa.String())
                + sa.literal("}", sa.String())
            )
            fired = sa.select(
                runs.c.run_id,
                sa.literal(InboxKind.TIMER.value, inbox.c.kind.type),
                runs.c.wait_step_id,
                sa.case(
                    (runs.c.wait_kind == WaitKind.SIGNAL.value, runs.c.wait_key), else_=sa.null()
                ),
                runs.c.wait_step_id,
                payload,
                sa.null(),
                bound("now", MS_TYPE),
                sa.false(),
            ).where(runs.c.run_id.in_(due()))
            # Each firing is a fresh entry, replacing an earlier firing of the same step.
            return self._dialect.upsert(
                inbox, ("name", "payload", "meta", "received_at", "consumed")
            ).from_select(["run_id", *rows.INBOX_COLUMNS], fired)

        def entries() -> sa.Select[Any]:
            return (
                sa.select(inbox.c.run_id, *self._inbox_cols)
                .select_from(
                    runs.join(
                        inbox,
                        sa.and_(
                            inbox.c.run_id == runs.c.run_id,
                            inbox.c.kind == InboxKind.TIMER.value,
                            inbox.c.key == runs.c.wait_step_id,
                        ),
                    )
                )
                .where(runs.c.run_id.in_(due()))
                .order_by(runs.c.wake_at, runs.c.run_id)
            )

        def requeue() -> sa.Update:
            return sa.update(runs).where(runs.c.run_id.in_(due())).values(self._queued())

        params = {"p_now": now, "p_limit": limit, **prefixed(rows.queued_values(now), "q_")}
        _, found, _ = await self._d1.batch(
            [
                self._q("fire_timers", fire, params),
                self._q("fired_entries", entries, params),  # before the runs lose their wait
                self._q("requeue_fired", requeue, params),
            ]
        )
        return [rows.entry_from_row(r["run_id"], r) for r in found.mappings()]

    async def _fire_deadlines(self, now: int, limit: int) -> list[InboxEntry]:
        """The firings happen one after another in due order, each seeing the ones
        before (a child that times out first reaches its parent; a run an earlier
        firing's cascade ended is neither fired nor counted): the due runs are read,
        then each fires in a batch of its own whose GUARD skips a run that ended
        meanwhile (deadline entry, time-out, its end in its parent's inbox, the
        cascade below it)."""
        runs, inbox = self.tables.runs, self.tables.inbox
        values = self._timed_out_values(now)

        def due() -> sa.Select[Any]:
            return self._due_deadlines().add_columns(runs.c.deadline_at)

        def fire() -> sa.Insert:
            return sa.insert(inbox).from_select(
                ["run_id", *rows.INBOX_COLUMNS],
                self._deadline_entries().where(
                    runs.c.run_id == bound("run_id", runs.c.run_id.type),
                    runs.c.finished_at.is_(None),
                    runs.c.deadline_at <= bound("now", MS_TYPE),
                ),
            )

        def end() -> sa.Update:
            return (
                sa.update(runs)
                .where(runs.c.run_id == bound("run_id", runs.c.run_id.type))
                .values({k: bound(f"v_{k}", runs.c[k].type) for k in values})
            )

        fired: list[InboxEntry] = []
        while len(fired) < limit:
            wanted = limit - len(fired)
            found = await self._d1.batch(
                [self._q("due_deadlines_read", due, {"p_now": now, "p_limit": wanted})]
            )
            candidates = list(found[0].mappings())
            for d in candidates:
                run_id = d["run_id"]
                params = {"p_run_id": run_id, "p_now": now, **prefixed(values, "v_")}
                try:
                    await self._d1.batch(
                        [
                            self._q("fire_deadline", fire, params),
                            Query(GUARD, {}),
                            self._q("time_out_one", end, params),
                            *self._child_end_queries(
                                run_id, values["status"], None, values["error"], now
                            ),
                            self._cascade_query(run_id, RunStatus.TIMED_OUT.value, now),
                        ]
                    )
                except D1QueryError as exc:
                    if not guard_failed(exc):
                        raise
                    continue  # ended meanwhile (an earlier firing's cascade, or another)
                fired.append(rows.entry_from_row(run_id, self._deadline_entry(d, now)))
                if len(fired) == limit:
                    break
            if len(candidates) < wanted:
                break
        return fired

    # -- schedules -----------------------------------------------------------------------
    async def _fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        """Two round trips: read the due schedules and plan their moves (the next fire
        time comes from the cron library), then one batch that moves each by
        compare-and-set on the values it was read with and inserts the run of each
        that moved and fires."""
        moves = await self._due_schedule_moves(now, limit)
        if not moves:
            return []
        t = self.tables
        schedules, runs = t.schedules, t.runs
        sid, sid_type = schedules.c.schedule_id, schedules.c.schedule_id.type

        def move() -> sa.Update:
            return (
                sa.update(schedules)
                .where(
                    sid == bound("sid", sid_type),
                    schedules.c.next_fire_at == bound("seen_nfa", MS_TYPE),
                    schedules.c.updated_at == bound("seen_updated", MS_TYPE),
                    schedules.c.enabled == sa.true(),
                )
                .values(
                    next_fire_at=bound("nfa", MS_TYPE),
                    last_fired_at=bound("lfa", MS_TYPE),
                    last_run_id=bound("lri", schedules.c.last_run_id.type),
                )
            )

        def start() -> sa.Insert:
            return self._dialect.insert_ignore(runs).from_select(
                list(RUN_INSERT),
                sa.select(
                    bound("lri", runs.c.run_id.type),
                    schedules.c.workflow_id,
                    schedules.c.workflow_version,
                    sa.literal(RunStatus.QUEUED.value, runs.c.status.type),
                    schedules.c.input,
                    sa.literal(0, MS_TYPE),
                    sa.literal(0, MS_TYPE),
                    bound("now", MS_TYPE),
                    bound("now", MS_TYPE),
                    bound("now", MS_TYPE),
                ).where(
                    sid == bound("sid", sid_type),
                    _CHANGED_ONE,  # this schedule's move just before
                    bound("fires", sa.Boolean()) == sa.true(),
                ),
            )

        batch: list[Query] = []
        for m in moves:
            params = {"p_now": now, **prefixed(m.params(), "")}
            batch += [self._q("move_schedule", move, params), self._q("fire_run", start, params)]
        found = await self._d1.batch(batch)
        return [m.tick for i, m in enumerate(moves) if found[2 * i].rowcount == 1]

    async def _run_schedule_upsert(self, body: Body[Schedule | None]) -> Schedule | None:
        # Without the row lock: the shared body's UPDATE is a compare-and-set on the
        # row it read and its INSERT fails on a duplicate, so a lost race tries again.
        return await self._run(body)
