"""The statements of queue limits on the SQL stores (``docs/sql-stores.md``, Queues).

How a claim keeps the limits: the one-statement claims (the hot path) only take runs
of queues without limits, which costs each claimed row one primary-key probe of the
``queues`` table (``unlimited_run``), and a claim of many takes nothing at all while
any queue has limits (``no_limited_queue``: one probe per statement), so that claim
order stays global. Runs of limited queues are claimed in a transaction that first
locks the rows of the limited queues it may touch (``SELECT … FOR UPDATE``, in name
order, so claimers never deadlock), then counts their leased runs through
``ix_runs_queue_leases`` (one index range per queue), decides with
:class:`~workflow.runtime.queues.LimitGate`, claims and writes the rate windows back
before COMMIT. Every claim of a limited queue's runs holds that queue's row lock, so
no two of them count at once: the count a claim sees is the truth until it commits.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from workflow.runtime.records import RunStatus

from .tables import StoreTables


def bound(name: str, type_: Any) -> sa.BindParameter[Any]:
    """The parameter ``p_<name>``, typed like the column it is compared with.
    (SQLAlchemy reserves the column names for SET and VALUES clauses.)"""
    return sa.bindparam(f"p_{name}", type_=type_)


def limited(t: StoreTables) -> sa.ColumnElement[bool]:
    """The queue row has a limit (any)."""
    q = t.queues.c
    return sa.or_(
        q.concurrency.is_not(None), q.per_key_concurrency.is_not(None), q.rate_count.is_not(None)
    )


def places_limited(t: StoreTables) -> sa.ColumnElement[bool]:
    """The queue row limits how many runs are leased at once."""
    q = t.queues.c
    return sa.or_(q.concurrency.is_not(None), q.per_key_concurrency.is_not(None))


def unlimited_run(t: StoreTables) -> sa.ColumnElement[bool]:
    """The run's queue has no limit: a claim may take it without counting."""
    q = t.queues
    return ~sa.exists().where(q.c.name == t.runs.c.queue, limited(t))


def no_limited_queue(t: StoreTables) -> sa.ColumnElement[bool]:
    return ~sa.exists().where(limited(t))


def renewable(t: StoreTables) -> sa.ColumnElement[bool]:
    """A heartbeat may renew: the lease has not expired, or its queue holds no places
    (an expired lease gave its place up)."""
    runs, q = t.runs, t.queues
    return sa.or_(
        runs.c.lease_expires_at > bound("now", runs.c.lease_expires_at.type),
        ~sa.exists().where(q.c.name == runs.c.queue, places_limited(t)),
    )


def lock_limited(t: StoreTables, one: bool) -> sa.Select[Any]:
    """The limited queues (``one``: the queue ``p_queue``), locked until COMMIT."""
    q = t.queues
    stmt = sa.select(q).where(limited(t))
    if one:
        stmt = stmt.where(q.c.name == bound("queue", q.c.name.type))
    return stmt.order_by(q.c.name).with_for_update()


def leased_counts(t: StoreTables, one: bool) -> sa.Select[Any]:
    """Runs leased at ``p_now`` per (queue, key), in the limited queues (``one``: in
    ``p_queue``): an index range of ``ix_runs_queue_leases`` per queue."""
    runs, q = t.runs, t.queues
    stmt = (
        sa.select(runs.c.queue, runs.c.partition_key, sa.func.count().label("n"))
        .where(
            runs.c.status == RunStatus.RUNNING.value,
            runs.c.lease_expires_at > bound("now", runs.c.lease_expires_at.type),
        )
        .group_by(runs.c.queue, runs.c.partition_key)
    )
    if one:
        return stmt.where(runs.c.queue == bound("queue", runs.c.queue.type))
    return stmt.where(runs.c.queue.in_(sa.select(q.c.name).where(limited(t))))


def claim_order(t: StoreTables) -> list[sa.ColumnElement[Any]]:
    runs = t.runs
    return [runs.c.priority.desc(), runs.c.ready_at, runs.c.run_id]


def limited_candidates(
    t: StoreTables, claimable: sa.ColumnElement[bool], n_queues: int, after: bool
) -> sa.Select[Any]:
    """One page (``p_page``) of claimable runs in claim order, locked (SKIP LOCKED);
    ``n_queues``: only runs of ``p_qn0..``; ``after``: past the key ``p_after_*``."""
    runs = t.runs
    stmt = sa.select(
        runs.c.run_id, runs.c.queue, runs.c.partition_key, runs.c.priority, runs.c.ready_at
    ).where(runs.c.ready_at.is_not(None), claimable)
    if n_queues:
        stmt = stmt.where(
            runs.c.queue.in_([bound(f"qn{i}", runs.c.queue.type) for i in range(n_queues)])
        )
    if after:
        p = bound("after_priority", runs.c.priority.type)
        r = bound("after_ready_at", runs.c.ready_at.type)
        i = bound("after_run_id", runs.c.run_id.type)
        stmt = stmt.where(
            sa.or_(
                runs.c.priority < p,
                sa.and_(
                    runs.c.priority == p,
                    sa.or_(runs.c.ready_at > r, sa.and_(runs.c.ready_at == r, runs.c.run_id > i)),
                ),
            )
        )
    return (
        stmt.order_by(*claim_order(t))
        .limit(sa.bindparam("p_page", type_=sa.Integer()))
        .with_for_update(skip_locked=True)
    )


def write_window(t: StoreTables) -> sa.Update:
    q = t.queues
    return (
        sa.update(q)
        .where(q.c.name == bound("queue", q.c.name.type))
        .values(
            window_start=bound("window_start", q.c.window_start.type),
            window_count=bound("window_count", q.c.window_count.type),
        )
    )


def update_queue(t: StoreTables) -> sa.Update:
    q = t.queues
    cols = ("concurrency", "per_key_concurrency", "rate_count", "rate_period_ms", "updated_at")
    return (
        sa.update(q)
        .where(q.c.name == bound("name", q.c.name.type))
        .values({c: bound(c, q.c[c].type) for c in cols})
    )


def insert_queue(t: StoreTables) -> sa.Insert:
    q = t.queues
    cols = (
        "name",
        "concurrency",
        "per_key_concurrency",
        "rate_count",
        "rate_period_ms",
        "updated_at",
    )
    return sa.insert(q).values({c: bound(c, q.c[c].type) for c in cols})


def select_queues(t: StoreTables, one: bool) -> sa.Select[Any]:
    q = t.queues
    stmt = sa.select(q)
    if one:
        stmt = stmt.where(q.c.name == bound("name", q.c.name.type))
    return stmt.order_by(q.c.name)
