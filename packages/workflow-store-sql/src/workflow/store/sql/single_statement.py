"""One-statement forms of the writes that touch several tables, for dialects with
data-modifying CTEs (PostgreSQL).

Each builder returns one statement; the store runs it in autocommit, so the
operation is one round trip and atomic. The generic path in
:mod:`workflow.store.sql.store` stays correct by locking the run row first and only
then reading other tables. One statement cannot do that: every table it reads is read
at the statement's snapshot. So:

* Decisions about the run itself use the row returned by a ``MATERIALIZED`` CTE
  ``SELECT … FOR UPDATE`` (or by the guarded ``UPDATE`` itself). Under READ COMMITTED
  both wait for a concurrent writer of the row and then see its *latest* version.
* Only ``settle_run(Pause)`` decides from another table (an unconsumed inbox entry
  matching the new wait). A delivery that commits while the settle waits for the run
  row is not in the settle's snapshot, so every delivery also bumps
  ``runs.inbox_seq`` in the statement that stores its entry. The settle returns the
  locked (latest) and the snapshot value of ``inbox_seq``; when they differ the
  store runs the wake-up check once more in a new statement (:func:`wake_if_matched`).
  That happens only when a delivery races the settle, so the common case stays at
  one round trip.

Data-modifying CTEs always run to completion whether or not the main query reads
them (PostgreSQL docs, "Data-Modifying Statements in WITH"), so they are attached
with ``add_cte``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from workflow.runtime.arguments import Delivery, LogWrite
from workflow.runtime.records import InboxKind, InboxRef, Lease, RunStatus, WaitKind
from workflow.runtime.validation import EncodedOutcome, EncodedWait

from . import rows
from .coltypes import ID, MS, PAYLOAD
from .tables import StoreTables

# Prefixes that keep the columns of the CTEs apart in one result row.
LOCKED = "l_"
DUPLICATE = "d_"
UPDATED = "u_"


def held(t: StoreTables, run_id: str, lease: Lease) -> sa.ColumnElement[bool]:
    runs = t.runs
    return sa.and_(
        runs.c.run_id == run_id,
        runs.c.lease_owner == lease.owner,
        runs.c.lease_token == lease.token,
    )


def _log_writes(t: StoreTables, source: Any, log: LogWrite) -> list[Any]:
    """CTEs inserting ``events`` and consuming ``consume`` for the run in ``source``
    (a CTE with a ``run_id`` column and one row when the guard held, none otherwise)."""
    ctes: list[Any] = []
    expected, events, consume, now = log.expected, log.events, log.consume, log.now
    if events:
        values = sa.values(
            sa.column("event_index", MS),
            sa.column("type", ID),
            sa.column("step_id", ID),
            sa.column("data", PAYLOAD),
            name="new_events",
        ).data([(expected + i, e.type, e.step_id, e.data) for i, e in enumerate(events)])
        rows_ = sa.select(
            source.c.run_id,
            values.c.event_index,
            values.c.type,
            values.c.step_id,
            values.c.data,
            sa.literal(now, MS),
        ).select_from(source.join(values, sa.true()))
        ctes.append(
            sa.insert(t.events)
            .from_select(["run_id", "event_index", "type", "step_id", "data", "created_at"], rows_)
            .returning(t.events.c.event_index)
            .cte("appended")
        )
    if consume:
        inbox = t.inbox
        ctes.append(
            sa.update(inbox)
            .where(inbox.c.run_id == source.c.run_id, consumed_refs(t, consume))
            .values(consumed=True)
            .returning(inbox.c.key)
            .cte("consumed")
        )
    return ctes


def consumed_refs(t: StoreTables, consume: Sequence[InboxRef]) -> sa.ColumnElement[bool]:
    inbox = t.inbox
    return sa.or_(
        *(sa.and_(inbox.c.kind == ref.kind.value, inbox.c.key == ref.key) for ref in consume)
    )


def append_events(t: StoreTables, log: LogWrite) -> sa.Select[Any]:
    """Returns one row (the run id) when the lease and ``expected`` held, else none."""
    runs = t.runs
    bumped = (
        sa.update(runs)
        .where(held(t, log.run_id, log.lease), runs.c.next_event_index == log.expected)
        .values(next_event_index=log.next_index)
        .returning(runs.c.run_id)
        .cte("bumped")
    )
    return sa.select(bumped.c.run_id).add_cte(*_log_writes(t, bumped, log))


def settle_run(
    t: StoreTables,
    log: LogWrite,
    outcome: EncodedOutcome,
    values: dict[str, Any],
    matched: sa.ColumnElement[bool] | None,
) -> sa.Select[Any]:
    """Returns the settled run's columns (prefixed ``u_``) plus ``seq_locked`` and
    ``seq_snapshot``, or no row when the lease or ``expected`` did not hold.

    ``values`` are the run's new column values for the outcome; for a pause,
    ``matched`` says (at the snapshot) whether an unconsumed inbox entry already
    satisfies the wait, in which case the run is queued instead."""
    runs = t.runs
    locked = (
        sa.select(runs.c.run_id, runs.c.inbox_seq)
        .where(held(t, log.run_id, log.lease), runs.c.next_event_index == log.expected)
        .with_for_update()
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )
    assignments: dict[str, Any] = dict(values)
    if outcome.wait is not None and matched is not None:
        # Decided once, on the locked row's run: one EXISTS, not one per column.
        woken = sa.select(locked.c.run_id, matched.label("woken")).cte("woken")
        queued = rows.queued_values(values["updated_at"])
        for name, queued_value in queued.items():
            if name == "updated_at":
                continue
            assignments[name] = sa.case(
                (woken.c.woken, sa.literal(queued_value, runs.c[name].type)),
                else_=sa.literal(values[name], runs.c[name].type),
            )
        where = [runs.c.run_id == woken.c.run_id]
    else:
        where = [runs.c.run_id == locked.c.run_id]
    settled = (
        sa.update(runs)
        .where(*where)
        .values(assignments)
        .returning(*(runs.c[name].label(UPDATED + name) for name in rows.RUN_COLUMNS))
        .cte("settled")
    )
    snapshot = runs.alias("snapshot")
    seq_snapshot = (
        sa.select(snapshot.c.inbox_seq).where(snapshot.c.run_id == log.run_id).scalar_subquery()
    )
    return (
        sa.select(
            *settled.c,
            locked.c.inbox_seq.label("seq_locked"),
            seq_snapshot.label("seq_snapshot"),
        )
        .select_from(settled.join(locked, sa.true()))
        .add_cte(*_log_writes(t, locked, log))
    )


def wake_if_matched(
    t: StoreTables, run_id: str, wait: EncodedWait, matched: sa.ColumnElement[bool], now: int
) -> sa.Update:
    """Queue the run if it is still paused on ``wait`` and a matching entry exists:
    the second look a settle takes after a delivery raced it."""
    runs = t.runs
    return (
        sa.update(runs)
        .where(
            runs.c.run_id == run_id,
            runs.c.status == RunStatus.PAUSED.value,
            runs.c.wait_kind == wait.kind.value,
            runs.c.wait_step_id == wait.step_id,
            sa.exists().where(matched),
        )
        .values(rows.queued_values(now))
        .returning(*(runs.c[name] for name in rows.RUN_COLUMNS))
    )


def _wakes(locked: Any, kind: InboxKind, values: dict[str, Any]) -> sa.ColumnElement[bool]:
    """SQL spelling of ``Wait.matches(entry)`` for the entry being delivered, on the
    locked run's columns."""
    paused = locked.c.status == RunStatus.PAUSED.value
    if kind is InboxKind.SIGNAL:
        match = sa.and_(
            locked.c.wait_kind == WaitKind.SIGNAL.value, locked.c.wait_key == values["name"]
        )
        if values["step_id"] is not None:
            match = sa.and_(match, locked.c.wait_step_id == values["step_id"])
    else:
        match = sa.and_(
            locked.c.wait_kind == WaitKind.APPROVAL.value, locked.c.wait_key == values["key"]
        )
    return sa.and_(paused, match)


def deliver(t: StoreTables, d: Delivery, terminal: Sequence[str]) -> sa.Select[Any]:
    """Store an inbox entry and wake the run when it waits for it.

    Returns no row when the run does not exist; otherwise one row with the locked run
    (``l_``), the existing entry of the same key if any (``d_``) and the run after the
    delivery (``u_``, NULL when nothing was stored: duplicate or terminal run)."""
    runs, inbox = t.runs, t.inbox
    run_id, kind, values, now = d.run_id, d.kind, d.entry_values(), d.now
    locked = (
        sa.select(*(runs.c[name] for name in rows.RUN_COLUMNS))
        .where(runs.c.run_id == run_id)
        .with_for_update()
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )
    existing = (
        sa.select(*(inbox.c[name] for name in rows.INBOX_COLUMNS))
        .where(inbox.c.run_id == run_id, inbox.c.kind == kind.value, inbox.c.key == values["key"])
        .cte("existing")
    )
    entry = {"run_id": run_id, "kind": kind.value, "consumed": False, **values}
    columns = list(entry)
    insert = postgresql.insert(inbox).from_select(
        columns,
        sa.select(
            *(
                locked.c.run_id if name == "run_id" else sa.literal(value, inbox.c[name].type)
                for name, value in entry.items()
            )
        ).where(locked.c.status.not_in(terminal), ~sa.exists(sa.select(existing.c.key))),
    )
    stored = insert.on_conflict_do_nothing().returning(inbox.c.run_id).cte("stored")
    wakes = _wakes(locked, kind, values)
    assignments: dict[str, Any] = {"inbox_seq": runs.c.inbox_seq + 1}
    for name, queued_value in rows.queued_values(now).items():
        assignments[name] = sa.case(
            (wakes, sa.literal(queued_value, runs.c[name].type)), else_=runs.c[name]
        )
    updated = (
        sa.update(runs)
        .where(runs.c.run_id == stored.c.run_id, runs.c.run_id == locked.c.run_id)
        .values(assignments)
        .returning(*(runs.c[name].label(UPDATED + name) for name in rows.RUN_COLUMNS))
        .cte("delivered")
    )
    return sa.select(
        *(c.label(LOCKED + c.name) for c in locked.c),
        *(c.label(DUPLICATE + c.name) for c in existing.c),
        *updated.c,
    ).select_from(
        locked.outerjoin(existing, sa.true()).outerjoin(updated, sa.true()),
    )


def fire_due_timers(t: StoreTables, now: int, limit: int) -> sa.Select[Any]:
    """Fire up to ``limit`` due timers: each due run is queued and gets a fresh timer
    entry (replacing an earlier firing of the same step). Rows: the entries, in due
    order, with their ``run_id``."""
    runs, inbox = t.runs, t.inbox
    due = (
        sa.select(
            runs.c.run_id, runs.c.wait_kind, runs.c.wait_step_id, runs.c.wait_key, runs.c.wake_at
        )
        .where(runs.c.wake_at.is_not(None), runs.c.wake_at <= now)
        .order_by(runs.c.wake_at, runs.c.run_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    woken = (
        sa.update(runs)
        .where(runs.c.run_id == due.c.run_id)
        .values(rows.queued_values(now))
        .returning(runs.c.run_id)
        .cte("woken")
    )
    # The payload codec.encode({"wake_at": n}) would produce, built in SQL.
    payload = sa.literal('{"wake_at":', PAYLOAD) + sa.cast(due.c.wake_at, sa.Text) + "}"
    insert = postgresql.insert(inbox).from_select(
        ["run_id", "kind", "key", "name", "step_id", "payload", "meta", "received_at", "consumed"],
        sa.select(
            due.c.run_id,
            sa.literal(InboxKind.TIMER.value, inbox.c.kind.type),
            due.c.wait_step_id,
            sa.case((due.c.wait_kind == WaitKind.SIGNAL.value, due.c.wait_key), else_=sa.null()),
            due.c.wait_step_id,
            payload,
            sa.null(),
            sa.literal(now, MS),
            sa.false(),
        ),
    )
    fired = (
        insert.on_conflict_do_update(
            index_elements=list(inbox.primary_key.columns),
            set_={
                c: insert.excluded[c]
                for c in ("name", "payload", "meta", "received_at", "consumed")
            },
        )
        .returning(inbox.c.run_id, *(inbox.c[name] for name in rows.INBOX_COLUMNS))
        .cte("fired")
    )
    return (
        sa.select(*fired.c)
        .select_from(fired.join(due, fired.c.run_id == due.c.run_id))
        .order_by(due.c.wake_at, due.c.run_id)
        .add_cte(woken)
    )


def unprefixed(row: rows.Row, prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}


def fire_schedules(t: StoreTables, plan: Sequence[dict[str, Any]], now: int) -> sa.Select[Any]:
    """Apply ``plan`` (one dict per due schedule read at the statement's start: ``sid``,
    the ``next_fire_at``/``updated_at`` it was read with, the new ``nfa``, ``lfa``,
    ``lri`` and whether it ``fires``) in one statement.

    Each schedule moves on only if it still has the values it was read with (a
    compare-and-set: a concurrent firer or a re-declaration wins and this tick is not
    ours); a firing schedule's run is inserted only for the schedules that moved, with
    the workflow and input of the row that was compared. Returns the moved ids."""
    schedules, runs = t.schedules, t.runs
    v = sa.values(
        sa.column("sid", ID),
        sa.column("seen_nfa", MS),
        sa.column("seen_updated", MS),
        sa.column("nfa", MS),
        sa.column("lfa", MS),
        sa.column("lri", ID),
        sa.column("fires", sa.Boolean),
        name="plan",
    ).data(
        [
            (p["sid"], p["seen_nfa"], p["seen_updated"], p["nfa"], p["lfa"], p["lri"], p["fires"])
            for p in plan
        ]
    )
    moved = (
        sa.update(schedules)
        .where(
            schedules.c.schedule_id == v.c.sid,
            schedules.c.next_fire_at == v.c.seen_nfa,
            schedules.c.updated_at == v.c.seen_updated,
            schedules.c.enabled == sa.true(),
        )
        .values(next_fire_at=v.c.nfa, last_fired_at=v.c.lfa, last_run_id=v.c.lri)
        .returning(schedules.c.schedule_id)
        .cte("moved")
    )
    # The schedule row as read (the statement's snapshot): the one the CAS compared.
    seen = schedules.alias("seen")
    new_runs = (
        sa.select(
            v.c.lri,
            seen.c.workflow_id,
            seen.c.workflow_version,
            sa.literal(RunStatus.QUEUED.value, runs.c.status.type),
            seen.c.input,
            sa.literal(0, MS),
            sa.literal(0, MS),
            sa.literal(now, MS),
            sa.literal(now, MS),
            sa.literal(now, MS),
        )
        .select_from(
            v.join(moved, moved.c.schedule_id == v.c.sid).join(seen, seen.c.schedule_id == v.c.sid)
        )
        .where(v.c.fires)
    )
    inserted = (
        postgresql.insert(runs)
        .from_select(
            [
                "run_id",
                "workflow_id",
                "workflow_version",
                "status",
                "input",
                "lease_token",
                "next_event_index",
                "created_at",
                "updated_at",
                "ready_at",
            ],
            new_runs,
        )
        .on_conflict_do_nothing()
        .returning(runs.c.run_id)
        .cte("fired_runs")
    )
    return sa.select(moved.c.schedule_id).add_cte(inserted)
