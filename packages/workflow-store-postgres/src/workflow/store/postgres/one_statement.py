"""PostgreSQL's one-statement forms of the writes that touch several tables
(data-modifying CTEs).

Each builder returns one SQLAlchemy statement, which the store compiles once and runs
in autocommit, so the operation is one round trip and atomic. The portable bodies of
:mod:`workflow.store.sql.store` stay correct by locking the run row first and only
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

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from workflow.runtime.arguments import Delivery, LogWrite
from workflow.runtime.records import InboxKind, RunStatus, WaitKind
from workflow.runtime.validation import EncodedWait
from workflow.store.sql import queue_sql, rows
from workflow.store.sql.coltypes import ID, MS, PAYLOAD
from workflow.store.sql.store import RUN_INSERT, bound, lease_guard, lease_guard_params
from workflow.store.sql.tables import StoreTables

Params = dict[str, Any]
Prepared = tuple[Hashable, Callable[[], sa.ClauseElement], Params]
"""A statement's cache key (operation and shape), its builder and its values."""

# Prefixes that keep the columns of the CTEs apart in one result row.
LOCKED = "l_"
DUPLICATE = "d_"
UPDATED = "u_"


def _array(name: str, item: sa.types.TypeEngine[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(f"p_{name}", type_=postgresql.ARRAY(item))


def log_params(log: LogWrite) -> dict[str, Any]:
    """The values of the lease guard's and :func:`_log_writes`' parameters."""
    return {
        **lease_guard_params(log),
        "p_next": log.next_index,
        "p_now": log.now,
        "p_ev_index": [log.expected + i for i in range(len(log.events))],
        "p_ev_type": [e.type for e in log.events],
        "p_ev_step": [e.step_id for e in log.events],
        "p_ev_data": [e.data for e in log.events],
        "p_consume_kind": [ref.kind.value for ref in log.consume],
        "p_consume_key": [ref.key for ref in log.consume],
    }


def _log_writes(t: StoreTables, source: Any, events: bool, consume: bool) -> list[Any]:
    """CTEs inserting the events and consuming the inbox entries of
    :func:`log_params` for the run in ``source`` (a CTE with a ``run_id`` column and
    one row when the guard held, none otherwise)."""
    ctes: list[Any] = []
    if events:
        # unnest() of one array per column, not VALUES rows: the SQL is the same
        # whatever the number of events (and VALUES data is not cacheable).
        new = (
            sa.func.unnest(
                _array("ev_index", sa.BigInteger()),
                _array("ev_type", sa.Text()),
                _array("ev_step", sa.Text()),
                _array("ev_data", sa.Text()),
            )
            .table_valued(
                sa.column("event_index", MS),
                sa.column("type", ID),
                sa.column("step_id", ID),
                sa.column("data", PAYLOAD),
                name="new_events",
            )
            .render_derived()
        )
        rows_ = sa.select(
            source.c.run_id,
            new.c.event_index,
            new.c.type,
            new.c.step_id,
            new.c.data,
            bound("now", MS),
        ).select_from(source.join(new, sa.true()))
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
            .where(inbox.c.run_id == source.c.run_id, consumed_refs(t))
            .values(consumed=True)
            .returning(inbox.c.key)
            .cte("consumed")
        )
    return ctes


def consumed_refs(t: StoreTables) -> sa.ColumnElement[bool]:
    """The inbox rows named by ``p_consume_kind``/``p_consume_key`` (pairwise)."""
    inbox = t.inbox
    refs = (
        sa.func.unnest(_array("consume_kind", sa.Text()), _array("consume_key", sa.Text()))
        .table_valued(sa.column("kind", inbox.c.kind.type), sa.column("key", ID), name="refs")
        .render_derived()
    )
    return sa.tuple_(inbox.c.kind, inbox.c.key).in_(sa.select(refs.c.kind, refs.c.key))


def append_events(t: StoreTables, log: LogWrite) -> Prepared:
    """Returns one row (the run id) when the lease and ``expected`` held, else none."""
    shape = (bool(log.events), bool(log.consume))

    def build() -> sa.Select[Any]:
        runs = t.runs
        bumped = (
            sa.update(runs)
            .where(lease_guard(t.runs))
            .values(next_event_index=bound("next", MS))
            .returning(runs.c.run_id)
            .cte("bumped")
        )
        return sa.select(bumped.c.run_id).add_cte(*_log_writes(t, bumped, *shape))

    return ("append", shape), build, log_params(log)


def settle_run(
    t: StoreTables,
    log: LogWrite,
    values: dict[str, Any],
    wait: Hashable,
    matches: Callable[[dict[str, sa.BindParameter[Any]]], sa.ColumnElement[bool]] | None,
    notice: sa.ColumnElement[Any] | None = None,
    guard: Callable[[], sa.ColumnElement[bool]] | None = None,
) -> Prepared:
    """Returns the settled run's columns (prefixed ``u_``) plus ``seq_locked`` and
    ``seq_snapshot``, or no row when the lease or ``expected`` did not hold.

    ``values`` are the run's new column values for the outcome. For a pause, ``wait``
    is the shape of the wait (what :func:`matches` depends on) and ``matches`` builds,
    from the bound parameters of ``values``, the condition that an unconsumed inbox
    entry already satisfies the wait (at the snapshot); the run is then queued
    instead. ``notice`` (:func:`~.listener.notice`) is evaluated when the settled run
    is ``queued`` (a yield, or a pause its inbox already satisfies). ``guard`` builds
    the condition the run's row is locked on (default :func:`lease_guard`; a terminal
    settle also asks for no parent: :func:`workflow.store.sql.children_sql.settle_guard`)."""
    shape = (bool(log.events), bool(log.consume), tuple(values), wait)
    queued = rows.queued_values(log.now)

    def build() -> sa.Select[Any]:
        runs = t.runs
        locked = (
            sa.select(runs.c.run_id, runs.c.inbox_seq)
            .where(lease_guard(t.runs) if guard is None else guard())
            .with_for_update()
            .cte("locked")
            .prefix_with("MATERIALIZED")
        )
        new = {name: bound(f"v_{name}", runs.c[name].type) for name in values}
        assignments: dict[str, Any] = dict(new)
        if matches is not None:
            # Decided once, on the locked row's run: one EXISTS, not one per column.
            woken = sa.select(locked.c.run_id, sa.exists().where(matches(new)).label("woken")).cte(
                "woken"
            )
            for name in queued:
                if name != "updated_at":
                    assignments[name] = sa.case(
                        (woken.c.woken, bound(f"q_{name}", runs.c[name].type)), else_=new[name]
                    )
            where = runs.c.run_id == woken.c.run_id
        else:
            where = runs.c.run_id == locked.c.run_id
        returned = [runs.c[name].label(UPDATED + name) for name in rows.RUN_COLUMNS]
        if notice is not None:
            queued_now = runs.c.status == RunStatus.QUEUED.value
            returned.append(sa.case((queued_now, notice)).label("woke"))
        settled = (
            sa.update(runs).where(where).values(assignments).returning(*returned).cte("settled")
        )
        snapshot = runs.alias("snapshot")
        seq_snapshot = (
            sa.select(snapshot.c.inbox_seq)
            .where(snapshot.c.run_id == bound("run_id", ID))
            .scalar_subquery()
        )
        return (
            sa.select(
                *settled.c,
                locked.c.inbox_seq.label("seq_locked"),
                seq_snapshot.label("seq_snapshot"),
            )
            .select_from(settled.join(locked, sa.true()))
            .add_cte(*_log_writes(t, locked, *shape[:2]))
        )

    params = log_params(log)
    params.update((f"p_v_{name}", value) for name, value in values.items())
    if matches is not None:
        params.update((f"p_q_{name}", v) for name, v in queued.items() if name != "updated_at")
    return ("settle", shape), build, params


def wake_if_matched(
    t: StoreTables,
    run_id: str,
    wait: EncodedWait,
    matched: sa.ColumnElement[bool],
    now: int,
    notice: sa.ColumnElement[Any] | None = None,
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
        .returning(
            *(runs.c[name] for name in rows.RUN_COLUMNS),
            *(() if notice is None else (notice.label("woke"),)),
        )
    )


def _wakes(locked: Any, kind: InboxKind, with_step: bool) -> sa.ColumnElement[bool]:
    """SQL spelling of ``Wait.matches(entry)`` for the entry being delivered (bound as
    ``p_e_*``), on the locked run's columns."""
    paused = locked.c.status == RunStatus.PAUSED.value
    if kind is InboxKind.SIGNAL:
        match = sa.and_(
            locked.c.wait_kind == WaitKind.SIGNAL.value, locked.c.wait_key == bound("e_name", ID)
        )
        if with_step:
            match = sa.and_(match, locked.c.wait_step_id == bound("e_step_id", ID))
    else:
        match = sa.and_(
            locked.c.wait_kind == WaitKind.APPROVAL.value, locked.c.wait_key == bound("e_key", ID)
        )
    return sa.and_(paused, match)


def deliver(
    t: StoreTables,
    d: Delivery,
    terminal: Sequence[str],
    notice: sa.ColumnElement[Any] | None = None,
) -> Prepared:
    """Store an inbox entry and wake the run when it waits for it.

    Returns no row when the run does not exist; otherwise one row with the locked run
    (``l_``), the existing entry of the same key if any (``d_``) and the run after the
    delivery (``u_``, NULL when nothing was stored: duplicate or terminal run).
    ``notice`` is evaluated when the delivery queues the run."""
    values = d.entry_values()
    shape = (d.kind, values["step_id"] is not None, tuple(values))

    def build() -> sa.Select[Any]:
        runs, inbox = t.runs, t.inbox
        run_id = bound("run_id", ID)
        locked = (
            sa.select(*(runs.c[name] for name in rows.RUN_COLUMNS))
            .where(runs.c.run_id == run_id)
            .with_for_update()
            .cte("locked")
            .prefix_with("MATERIALIZED")
        )
        existing = (
            sa.select(*(inbox.c[name] for name in rows.INBOX_COLUMNS))
            .where(
                inbox.c.run_id == run_id,
                inbox.c.kind == d.kind.value,
                inbox.c.key == bound("e_key", ID),
            )
            .cte("existing")
        )
        entry: dict[str, Any] = {
            "run_id": locked.c.run_id,
            "kind": sa.literal(d.kind.value, inbox.c.kind.type),
            "consumed": sa.false(),
            **{name: bound(f"e_{name}", inbox.c[name].type) for name in values},
        }
        insert = postgresql.insert(inbox).from_select(
            list(entry),
            sa.select(*entry.values()).where(
                # Literals, not one expanding IN parameter: compiled once, as text.
                locked.c.status.not_in([sa.literal(s) for s in terminal]),
                ~sa.exists(sa.select(existing.c.key)),
            ),
        )
        stored = insert.on_conflict_do_nothing().returning(inbox.c.run_id).cte("stored")
        wakes = _wakes(locked, d.kind, shape[1])
        assignments: dict[str, Any] = {"inbox_seq": runs.c.inbox_seq + 1}
        for name in rows.queued_values(0):
            assignments[name] = sa.case(
                (wakes, bound(f"q_{name}", runs.c[name].type)), else_=runs.c[name]
            )
        returned = [runs.c[name].label(UPDATED + name) for name in rows.RUN_COLUMNS]
        if notice is not None:
            returned.append(sa.case((wakes, notice)).label("woke"))
        updated = (
            sa.update(runs)
            .where(runs.c.run_id == stored.c.run_id, runs.c.run_id == locked.c.run_id)
            .values(assignments)
            .returning(*returned)
            .cte("delivered")
        )
        return sa.select(
            *(c.label(LOCKED + c.name) for c in locked.c),
            *(c.label(DUPLICATE + c.name) for c in existing.c),
            *updated.c,
        ).select_from(
            locked.outerjoin(existing, sa.true()).outerjoin(updated, sa.true()),
        )

    params = {"p_run_id": d.run_id}
    params.update((f"p_e_{name}", value) for name, value in values.items())
    params.update((f"p_q_{name}", value) for name, value in rows.queued_values(d.now).items())
    return ("deliver", shape), build, params


def fire_due_timers(
    t: StoreTables, now: int, limit: int, notice: sa.ColumnElement[Any] | None = None
) -> Prepared:
    """Fire up to ``limit`` due timers: each due run is queued and gets a fresh timer
    entry (replacing an earlier firing of the same step), and ``notice`` is evaluated
    for it. Rows: the entries, in due order, with their ``run_id``."""
    params = {"p_now": now, "p_limit": limit}
    params.update((f"p_q_{name}", value) for name, value in rows.queued_values(now).items())
    return "fire_due_timers", lambda: _fire_due_timers(t, notice), params


def _fire_due_timers(t: StoreTables, notice: sa.ColumnElement[Any] | None) -> sa.Select[Any]:
    runs, inbox = t.runs, t.inbox
    now = bound("now", MS)
    due = (
        sa.select(
            runs.c.run_id, runs.c.wait_kind, runs.c.wait_step_id, runs.c.wait_key, runs.c.wake_at
        )
        .where(runs.c.wake_at.is_not(None), runs.c.wake_at <= now)
        .order_by(runs.c.wake_at, runs.c.run_id)
        .limit(sa.bindparam("p_limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    woken = (
        sa.update(runs)
        .where(runs.c.run_id == due.c.run_id)
        .values({name: bound(f"q_{name}", runs.c[name].type) for name in rows.queued_values(0)})
        .returning(runs.c.run_id, *(() if notice is None else (notice.label("woke"),)))
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
            now,
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


def fire_schedules(
    t: StoreTables,
    plan: Sequence[dict[str, Any]],
    now: int,
    notice: sa.ColumnElement[Any] | None = None,
) -> Prepared:
    """Apply ``plan`` (one dict per due schedule read at the statement's start: ``sid``,
    the ``next_fire_at``/``updated_at`` it was read with, the new ``nfa``, ``lfa``,
    ``lri`` and whether it ``fires``) in one statement.

    Each schedule moves on only if it still has the values it was read with (a
    compare-and-set: a concurrent firer or a re-declaration wins and this tick is not
    ours); a firing schedule's run is inserted only for the schedules that moved, with
    the workflow and input of the row that was compared (``notice`` is evaluated for
    each run inserted). Returns the moved ids."""
    params: dict[str, Any] = {"p_now": now}
    for name in _PLAN:
        params[f"p_plan_{name}"] = [p[name] for p in plan]
    return "fire_schedules", lambda: _fire_schedules(t, notice), params


_PLAN: dict[str, sa.types.TypeEngine[Any]] = {
    "sid": sa.Text(),
    "seen_nfa": sa.BigInteger(),
    "seen_updated": sa.BigInteger(),
    "nfa": sa.BigInteger(),
    "lfa": sa.BigInteger(),
    "lri": sa.Text(),
    "fires": sa.Boolean(),
}
"""The columns of a schedule-firing plan, each bound as an array (``p_plan_*``)."""
_PLAN_COLUMNS: dict[str, sa.types.TypeEngine[Any]] = {"sid": ID, "lri": ID}


def _fire_schedules(t: StoreTables, notice: sa.ColumnElement[Any] | None) -> sa.Select[Any]:
    schedules, runs = t.schedules, t.runs
    now = bound("now", MS)
    v = (
        sa.func.unnest(*(_array(f"plan_{name}", item) for name, item in _PLAN.items()))
        .table_valued(
            *(sa.column(name, _PLAN_COLUMNS.get(name, item)) for name, item in _PLAN.items()),
            name="plan",
        )
        .render_derived()
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
            now,
            now,
            now,
        )
        .select_from(
            v.join(moved, moved.c.schedule_id == v.c.sid).join(seen, seen.c.schedule_id == v.c.sid)
        )
        .where(v.c.fires)
    )
    inserted = (
        postgresql.insert(runs)
        .from_select(list(RUN_INSERT), new_runs)
        .on_conflict_do_nothing()
        .returning(runs.c.run_id, *(() if notice is None else (notice.label("woke"),)))
        .cte("fired_runs")
    )
    return sa.select(moved.c.schedule_id).add_cte(inserted)


def limited_claim(
    t: StoreTables,
    takes: sa.Select[Any],
    claim_values: Sequence[tuple[sa.Column[Any], Any]],
    returning: Sequence[sa.ColumnElement[Any]],
) -> sa.Select[Any]:
    """A limited claim's decision and writes in one statement (after the statement
    that locks the limited queues, in the same transaction): claim the runs ``takes``
    takes, count them in their queues' rate windows, and answer every picked run
    (``t_*`` columns) with its claim (``returning``; NULL where not taken)."""
    runs = t.runs
    decided = takes.cte("takes")
    claimed = (
        sa.update(runs)
        .where(
            runs.c.run_id == decided.c[f"{queue_sql.TAKE}run_id"],
            decided.c[f"{queue_sql.TAKE}take"] == 1,
        )
        .ordered_values(*claim_values)
        .returning(*returning)
        .cte("claimed")
    )
    # Only the claims of rate-limited queues (``t_rated``) are counted: without a rate
    # limit the UPDATE has nothing to look up, not even the queue's row by its key.
    rated = (
        sa.select(claimed.c.queue)
        .select_from(
            claimed.join(decided, decided.c[f"{queue_sql.TAKE}run_id"] == claimed.c.run_id)
        )
        .where(decided.c[f"{queue_sql.TAKE}rated"] == 1)
        .subquery("rated")
    )
    windows = queue_sql.count_in_windows(t, rated).cte("windows")
    return (
        sa.select(decided, *(c for c in claimed.c))
        .select_from(
            decided.outerjoin(claimed, claimed.c.run_id == decided.c[f"{queue_sql.TAKE}run_id"])
        )
        .add_cte(windows)
    )


def created_in_limited_queue(
    t: StoreTables, columns: Sequence[str], notice: sa.ColumnElement[Any] | None = None
) -> sa.Select[Any]:
    """``create_run(..., owner=)`` in a queue that may have limits, in one statement
    (after the statement that locks the queue's row, in the same transaction): insert
    the run claimed if its queue and key have room, else queued
    (:func:`.queue_sql.decided_insert`), and count a claim in the queue's rate window;
    answers the run's ``status`` and whether its queue has ``limited`` (``notice`` is
    evaluated when the run is inserted queued: claimable)."""
    runs = t.runs
    insert, decision = queue_sql.decided_insert(t, columns)
    new = insert.returning(runs.c.queue, runs.c.status).cte("new")
    claimed = (
        sa.select(new.c.queue).where(new.c.status == RunStatus.RUNNING.value).subquery("claimed")
    )
    windows = queue_sql.count_in_windows(t, claimed).cte("windows")
    answer: list[sa.ColumnElement[Any]] = [new.c.status, decision.c.limited]
    if notice is not None:
        answer.append(sa.case((new.c.status == RunStatus.QUEUED.value, notice)).label("woke"))
    return sa.select(*answer).select_from(new.join(decision, sa.true())).add_cte(windows)
