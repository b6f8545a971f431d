"""The statements of queue limits on the SQL stores (``docs/sql-stores.md``, Queues).

How a claim keeps the limits: the one-statement claims (the hot path) only take runs
of queues without limits, which costs each claimed row one primary-key probe of the
``queues`` table (``unlimited_run``), and a claim of many takes nothing at all while
any queue has limits (``no_limited_queue``: one probe per statement), so that claim
order stays global. ``claim_runnable`` where queues have limits first locks the rows
of the limited queues (``lock_limited_names``: ``SELECT … FOR UPDATE``, in name order,
so claimers never deadlock), then counts their leased runs through
``ix_runs_queue_leases`` and decides in one statement (``takes``), then claims and
counts the claims in the rate windows (``count_in_windows``) before COMMIT; each
dialect sends that as one round trip. ``claim_run`` of a limited queue's run is one
round of that claim for the run. ``create_run(..., owner=)`` in a limited queue locks
that queue's row (``lock_limited_queue``), then one INSERT counts, decides and
inserts the run claimed or queued (``decided_insert``), and the claim is counted in
the rate window; one round trip too. Every claim of a limited queue's runs holds that
queue's row lock from before it counts, so no two of them count at once: the count a
claim sees is the truth until it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def lock_limited_queue(t: StoreTables) -> sa.Select[Any]:
    """The name of queue ``p_queue`` if it has limits, its row locked until COMMIT
    (a run created claimed in it: :func:`decided_insert`)."""
    q = t.queues
    return (
        sa.select(q.c.name)
        .where(q.c.name == bound("queue", q.c.name.type), limited(t))
        .with_for_update()
    )


def lock_limited_names(t: StoreTables) -> sa.Select[Any]:
    """The names of the limited queues, their rows locked until COMMIT (in name order,
    so two claimers never deadlock)."""
    q = t.queues
    return sa.select(q.c.name).where(limited(t)).order_by(q.c.name).with_for_update()


def claim_order(t: StoreTables) -> list[sa.ColumnElement[Any]]:
    runs = t.runs
    return [runs.c.priority.desc(), runs.c.ready_at, runs.c.run_id]


def queued(t: StoreTables) -> sa.ColumnElement[bool]:
    """The first half of what a claim may take: queued runs."""
    return t.runs.c.status == RunStatus.QUEUED.value


def expired(t: StoreTables) -> sa.ColumnElement[bool]:
    """The other half: running runs whose lease expired at ``p_now``."""
    runs = t.runs
    return sa.and_(
        runs.c.status == RunStatus.RUNNING.value,
        runs.c.lease_expires_at <= bound("now", runs.c.lease_expires_at.type),
    )


def claimable_in_claim_order(
    t: StoreTables,
    columns: Sequence[sa.ColumnElement[Any]],
    where: Sequence[sa.ColumnElement[bool]],
    limit: sa.BindParameter[Any],
) -> sa.Select[Any]:
    """The first ``limit`` runs in claim order that are claimable at ``p_now`` and
    match ``where``, locked (SKIP LOCKED): ``columns`` (with ``priority``, ``ready_at``
    and ``run_id``) of each.

    Two halves, each an index range read in the order it returns rows, merged:
    the queued runs (``ix_runs_claim``, in claim order: the first ``limit`` entries)
    and the running runs whose lease expired (``ix_runs_expiry``: only the expired
    ones, sorted; few unless workers died), each limited to ``limit``. One ``OR`` of
    both states is no range: every store read and sorted every ready run for it.
    Each half is a derived table that locks its own rows: PostgreSQL refuses a
    locking clause on a ``UNION``'s own members, not in a ``FROM`` below them, and
    evaluates each once. Up to ``limit`` rows of the half that loses the merge stay
    locked until the claiming statement ends (not claimed, not written): a claimer
    meanwhile skips them."""
    runs = t.runs

    def half(state: sa.ColumnElement[bool], name: str) -> sa.Subquery:
        return (
            sa.select(*columns)
            .where(state, runs.c.ready_at.is_not(None), *where)
            .order_by(*claim_order(t))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .subquery(name)
        )

    both = sa.union_all(
        sa.select(half(queued(t), "queued")), sa.select(half(expired(t), "expired"))
    ).subquery("claimable")
    c = both.c
    return sa.select(*c).order_by(c.priority.desc(), c.ready_at, c.run_id).limit(limit)


def limited_candidates(
    t: StoreTables,
    room: sa.ColumnElement[bool],
    n_queues: int,
    after: bool,
    one_run: bool = False,
) -> sa.Select[Any]:
    """One page (``p_page``) of runs in claim order that are claimable and whose queue
    and key have ``room`` (:func:`has_room`), locked (SKIP LOCKED); ``n_queues``:
    only runs of ``p_qn0..``; ``after``: past the key ``p_after_*``; ``one_run``: only
    the run ``p_run_id`` (``claim_run``: one primary-key probe, no halves)."""
    runs = t.runs
    columns = [runs.c.run_id, runs.c.queue, runs.c.partition_key, runs.c.priority, runs.c.ready_at]
    where: list[sa.ColumnElement[bool]] = [room]
    if n_queues:
        where.append(
            runs.c.queue.in_([bound(f"qn{i}", runs.c.queue.type) for i in range(n_queues)])
        )
    if after:
        p = bound("after_priority", runs.c.priority.type)
        r = bound("after_ready_at", runs.c.ready_at.type)
        i = bound("after_run_id", runs.c.run_id.type)
        where.append(
            sa.or_(
                runs.c.priority < p,
                sa.and_(
                    runs.c.priority == p,
                    sa.or_(runs.c.ready_at > r, sa.and_(runs.c.ready_at == r, runs.c.run_id > i)),
                ),
            )
        )
    page = sa.bindparam("p_page", type_=sa.Integer())
    if not one_run:
        return claimable_in_claim_order(t, columns, where, page)
    return (
        sa.select(*columns)
        .where(
            runs.c.run_id == bound("run_id", runs.c.run_id.type),
            runs.c.ready_at.is_not(None),
            sa.or_(queued(t), expired(t)),
            *where,
        )
        .limit(page)
        .with_for_update(skip_locked=True)
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


# -- the limited claim, decided in SQL ------------------------------------------------
# ``claim_runnable`` where queues have limits: the counting and the decision are SQL
# (no round trip between them), in the order ``LimitGate`` decides. The claimer holds
# the limited queues' row locks (``lock_limited_names``, a statement before this one,
# so this statement's snapshot sees what the previous holder committed); then:
#
# * ``lim``: each limited queue, its leases now (one range of ``ix_runs_queue_leases``)
#   and its rate window at ``p_now`` (a clock behind counts in the latest window);
# * ``keyed``: the leases per key of the queues with a per-key limit (the same ranges);
# * ``picked``: a page of claimable runs in claim order whose queue and key have room
#   now (a full one is filtered out, so it never blocks the runs behind it), locked
#   (SKIP LOCKED) by the dialects that lock rows;
# * ``takes``: each picked run and whether it is taken. A queue-wide limit (concurrency,
#   rate) once reached rejects every later run of its queue, so the runs of a key that
#   are taken are its first ``room`` runs: rank per key first, then per queue among the
#   runs their key lets through, then the first ``p_limit`` of what is left.

TAKE = "t_"
"""Prefix of the ``takes`` columns in a result row that also holds a claim."""


def limit_columns(t: StoreTables) -> list[sa.ColumnElement[Any]]:
    """Of each row of ``queues``: its limits, its rate window at ``p_now`` (``w_start``,
    ``w_used``) and its leases now (``leased``: one range of ``ix_runs_queue_leases``),
    the columns of ``lim``, in this order."""
    q, runs = t.queues, t.runs
    now = bound("now", q.c.window_start.type)
    start = now - now % q.c.rate_period_ms
    fresh = start > q.c.window_start
    leased = (
        sa.select(sa.func.count())
        .where(
            runs.c.queue == q.c.name,
            runs.c.status == RunStatus.RUNNING.value,
            runs.c.lease_expires_at > now,
        )
        .scalar_subquery()
    )
    return [
        q.c.name,
        q.c.concurrency,
        q.c.per_key_concurrency,
        q.c.rate_count,
        sa.case((fresh, start), else_=q.c.window_start).label("w_start"),
        sa.case((fresh, 0), else_=q.c.window_count).label("w_used"),
        leased.label("leased"),
    ]


def limit_state(t: StoreTables) -> sa.CTE:
    """``lim``: the limited queues, their leases at ``p_now`` and their rate window."""
    q = t.queues
    return (
        sa.select(*limit_columns(t))
        .where(limited(t))
        # A no-op (name is the key) that makes ``lim`` an aggregate, which MySQL and
        # MariaDB materialize instead of merging into the statements reading it:
        # merged, MariaDB 10.11 counted the leases again for every candidate run
        # (Handler_read_key 22, _next 918 per claim with 50 leases; grouped: 5, 103).
        .group_by(q.c.name)
        .cte("lim")
    )


def keyed_leases(t: StoreTables, queue: sa.ColumnElement[Any] | None = None) -> sa.CTE:
    """``keyed``: runs leased at ``p_now`` per key, in queues with a per-key limit
    (``queue``: in that one only).

    Written against ``queues``, not joined to ``lim``: joined, both SQLite and
    PostgreSQL read every live lease of every queue (``ix_runs_expiry``) and then
    looked for its queue, at every limited claim (SQLite: 5 VM steps per lease; on
    PostgreSQL, 2,000 leases of an unlimited queue read and thrown away). ``queue IN``
    the per-key queues lets SQLite read one range of ``ix_runs_queue_leases`` per
    such queue; the ``EXISTS`` (one look, evaluated once: PostgreSQL's one-time
    filter) skips the read while no queue has a per-key limit, whatever plan
    PostgreSQL picks for it otherwise."""
    runs, q = t.runs, t.queues
    per_key: sa.ColumnElement[bool] = q.c.per_key_concurrency.is_not(None)
    if queue is not None:
        per_key = sa.and_(per_key, q.c.name == queue)
    return (
        sa.select(runs.c.queue, runs.c.partition_key, sa.func.count().label("n"))
        .where(
            sa.exists().where(per_key),
            runs.c.queue.in_(sa.select(q.c.name).where(per_key)),
            runs.c.status == RunStatus.RUNNING.value,
            runs.c.lease_expires_at > bound("now", runs.c.lease_expires_at.type),
            runs.c.partition_key.is_not(None),
        )
        .group_by(runs.c.queue, runs.c.partition_key)
        .cte("keyed")
    )


def has_room(
    t: StoreTables,
    lim: sa.CTE,
    keyed: sa.CTE,
    queue: sa.ColumnElement[Any] | None = None,
    key: sa.ColumnElement[Any] | None = None,
) -> sa.ColumnElement[bool]:
    """The run's queue and key have room for one more lease (no limit: room); the
    run's by default, else ``queue`` and ``key`` (a run not inserted yet)."""
    runs = t.runs
    queue = runs.c.queue if queue is None else queue
    key = runs.c.partition_key if key is None else key
    queue_full = sa.exists().where(
        lim.c.name == queue,
        sa.or_(lim.c.leased >= lim.c.concurrency, lim.c.w_used >= lim.c.rate_count),
    )
    key_full = sa.exists().where(
        keyed.c.queue == queue,
        keyed.c.partition_key == key,
        lim.c.name == keyed.c.queue,
        keyed.c.n >= lim.c.per_key_concurrency,
    )
    return sa.and_(~queue_full, ~key_full)


def takes(t: StoreTables, picked: sa.CTE, lim: sa.CTE, keyed: sa.CTE) -> sa.Select[Any]:
    """``takes``: the picked runs that are taken, and the last one picked in claim
    order where the next page starts (only if the page was full and fewer than
    ``p_limit`` runs were taken): ``t_run_id``, ``t_priority``, ``t_ready_at``,
    ``t_take`` (1: claim it, else 0), ``t_rated`` (its queue has a rate limit: its
    window is written back), ``t_picked`` (the run's place among the picked runs: the
    last one's is how many were picked) and ``t_limited`` (how many queues have
    limits).

    Three levels of window functions over the page, each reading the one below and
    none joined back to the page (SQLite would scan one level per row of another),
    each one sort of the page: the rank per key; the rank per queue among the runs
    their key lets through (a running count of them); the place in claim order among
    the runs their queue lets through (another running count), with the run's own
    place and whether a run follows it in the same window. Every ordering ends with
    ``run_id``, so a running ``sum`` over the default frame counts exactly the rows up
    to the current one."""
    p = picked.c
    by_key = (
        sa.select(
            p.run_id,
            p.queue,
            p.priority,
            p.ready_at,
            lim.c.concurrency,
            lim.c.leased,
            lim.c.rate_count,
            lim.c.w_used,
            sa.case(
                (
                    sa.or_(
                        lim.c.per_key_concurrency.is_(None),
                        p.partition_key.is_(None),
                        sa.func.coalesce(keyed.c.n, 0)
                        + sa.func.row_number().over(
                            partition_by=[p.queue, p.partition_key],
                            order_by=[p.priority.desc(), p.ready_at, p.run_id],
                        )
                        <= lim.c.per_key_concurrency,
                    ),
                    1,
                ),
                else_=0,
            ).label("key_ok"),
        )
        .select_from(
            picked.outerjoin(lim, lim.c.name == p.queue).outerjoin(
                keyed, sa.and_(keyed.c.queue == p.queue, keyed.c.partition_key == p.partition_key)
            )
        )
        .subquery("by_key")
    )
    k = by_key.c
    by_queue = sa.select(
        *k,
        # Where the key lets the run through: its rank among such runs of its queue.
        sa.func.sum(k.key_ok)
        .over(partition_by=k.queue, order_by=[k.priority.desc(), k.ready_at, k.run_id])
        .label("rk_queue"),
    ).subquery("by_queue")
    b = by_queue.c
    queue_ok = sa.and_(
        b.key_ok == 1,
        sa.or_(b.concurrency.is_(None), b.leased + b.rk_queue <= b.concurrency),
        sa.or_(b.rate_count.is_(None), b.w_used + b.rk_queue <= b.rate_count),
    )
    order = [b.priority.desc(), b.ready_at, b.run_id]
    ranked = sa.select(
        b.run_id,
        b.priority,
        b.ready_at,
        b.rate_count,
        sa.case((queue_ok, 1), else_=0).label("queue_ok"),
        # Where the queue lets the run through: its place among such runs.
        sa.func.sum(sa.case((queue_ok, 1), else_=0)).over(order_by=order).label("taken_pos"),
        sa.func.row_number().over(order_by=order).label("pos"),
        sa.func.lead(b.run_id).over(order_by=order).label("next_run_id"),
    ).subquery("ranked")
    r = ranked.c
    take = sa.and_(r.queue_ok == 1, r.taken_pos <= sa.bindparam("p_limit", type_=sa.Integer()))
    n_limited = sa.select(sa.func.count()).select_from(lim).scalar_subquery()
    return sa.select(
        r.run_id.label(f"{TAKE}run_id"),
        r.priority.label(f"{TAKE}priority"),
        r.ready_at.label(f"{TAKE}ready_at"),
        sa.case((take, 1), else_=0).label(f"{TAKE}take"),
        sa.case((r.rate_count.is_not(None), 1), else_=0).label(f"{TAKE}rated"),
        r.pos.label(f"{TAKE}picked"),
        n_limited.label(f"{TAKE}limited"),
    ).where(
        sa.or_(
            take,
            # The last run picked, where the next page starts: only if the page was
            # full and fewer than p_limit runs were taken (else there is none).
            sa.and_(
                r.next_run_id.is_(None),
                r.pos == sa.bindparam("p_page", type_=sa.Integer()),
                r.taken_pos < sa.bindparam("p_limit", type_=sa.Integer()),
            ),
        )
    )


def count_in_windows(t: StoreTables, claimed: sa.FromClause) -> sa.Update:
    """Count this call's claims in their queues' rate windows (``claimed``: a source
    with the ``queue`` of each run claimed). Assignments in this order: MySQL evaluates
    them left to right, and ``window_count`` reads the old ``window_start``."""
    q = t.queues
    now = bound("now", q.c.window_start.type)
    start = now - now % q.c.rate_period_ms
    fresh = start > q.c.window_start
    n = (
        sa.select(sa.func.count())
        .select_from(claimed)
        .where(claimed.c.queue == q.c.name)
        .scalar_subquery()
    )
    return (
        sa.update(q)
        .where(q.c.rate_count.is_not(None), q.c.name.in_(sa.select(claimed.c.queue)))
        .ordered_values(
            (q.c.window_count, sa.case((fresh, 0), else_=q.c.window_count) + n),
            (q.c.window_start, sa.case((fresh, start), else_=q.c.window_start)),
        )
    )


# -- a run created claimed in a limited queue ------------------------------------------
# ``create_run(..., owner=)`` where the run's queue has limits: the creator holds that
# queue's row lock (``lock_limited_queue``, a statement before this one, as for the
# limited claim), then one INSERT decides with the same pieces as the limited claim
# (``lim`` restricted to the queue, ``keyed``, ``has_room`` for the new run's queue and
# key) and inserts the run claimed if there is room, else queued. Counting the claim in
# the rate window reads the inserted row (``count_in_windows`` of :func:`created_claimed`,
# or of the INSERT's RETURNING on PostgreSQL).

CLAIM_ONLY: dict[str, Any] = {
    "status": RunStatus.QUEUED.value,
    "lease_token": 0,
    "lease_owner": None,
    "lease_expires_at": None,
}
"""The columns a run created claimed has other values in, and their values when it is
inserted queued instead (no room)."""


def room_decision(t: StoreTables) -> sa.CTE:
    """``decision``: one row for the new run (queue ``p_queue``, key
    ``p_partition_key``) at ``p_now``: ``room`` (1: its queue and key have room for one
    more lease, every limit counted as the limited claim counts it), ``rated`` (1: the
    queue has a rate limit, so a claim counts in its window) and ``limited`` (1: the
    queue has limits at all)."""
    q = t.queues
    # limit_state for this one queue: a range of ix_runs_queue_leases for it alone, not
    # one per limited queue.
    state = limit_state(t).element
    assert isinstance(state, sa.Select)
    lim = state.where(q.c.name == bound("queue", q.c.name.type)).cte("lim")
    keyed = keyed_leases(t, bound("queue", q.c.name.type))
    room = has_room(
        t,
        lim,
        keyed,
        bound("queue", q.c.name.type),
        bound("partition_key", t.runs.c.partition_key.type),
    )
    return sa.select(
        sa.case((room, 1), else_=0).label("room"),
        sa.case((sa.exists().where(lim.c.rate_count.is_not(None)), 1), else_=0).label("rated"),
        sa.case((sa.exists().select_from(lim), 1), else_=0).label("limited"),
    ).cte("decision")


def decided_insert(t: StoreTables, columns: Sequence[str]) -> tuple[sa.Insert, sa.CTE]:
    """The INSERT of a new run with ``columns`` (each bound as ``p_<column>``: the run
    claimed) that takes the :data:`CLAIM_ONLY` values instead where
    :func:`room_decision` finds no room; and that decision (the statement's CTE, for
    ``RETURNING`` its columns where the dialect can)."""
    runs = t.runs
    decision = room_decision(t)
    room = decision.c.room == 1
    values = [
        sa.case((room, bound(c, runs.c[c].type)), else_=sa.literal(CLAIM_ONLY[c], runs.c[c].type))
        if c in CLAIM_ONLY
        else bound(c, runs.c[c].type)
        for c in columns
    ]
    return sa.insert(runs).from_select(
        list(columns), sa.select(*values).select_from(decision)
    ), decision


def created_claimed(t: StoreTables) -> sa.Subquery:
    """The queue of run ``p_run_id`` if it is running: after :func:`decided_insert` in
    the same transaction, the new run's queue if it was inserted claimed (the source of
    :func:`count_in_windows`)."""
    runs = t.runs
    return (
        sa.select(runs.c.queue)
        .where(
            runs.c.run_id == bound("run_id", runs.c.run_id.type),
            runs.c.status == RunStatus.RUNNING.value,
        )
        .subquery("claimed")
    )
