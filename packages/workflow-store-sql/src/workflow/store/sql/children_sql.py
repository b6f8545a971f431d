"""The statements of child runs on the SQL stores (``docs/sql-stores.md``, Children).

A child's row names its parent (``runs.parent_run_id``, no foreign key: the link
outlives the parent) and its ``parent_policy``. What a child's end or a parent's
cancellation does happens in the transaction of the operation that causes it, under
one **lock order: a parent's row before its children's rows**, everywhere:

* a child's terminal ``settle_run`` first tries the one-statement (or one-batch)
  settle with ``parent_run_id IS NULL`` in its guard (:func:`settle_guard`): a run
  without a parent settles exactly as before, and a run with one matches nothing,
  locks nothing, and is settled again in a transaction that locks the parent first;
* ``cancel_run`` locks its run at once only if it has no parent (:func:`lock_orphan`);
  otherwise it reads the parent's id, locks the parent, then the run;
* a cascade locks the children of the runs it has just ended, level by level
  (:func:`cancel_children`), so it only ever waits for rows below the ones it holds;
* ``fire_due_timers`` picks due deadlines with ``SKIP LOCKED`` (as before) and locks
  their parents with ``SKIP LOCKED`` too: a run whose parent another transaction holds
  is left for the next sweep, so the firing never waits for a parent while it holds a
  child;
* ``create_run`` with a parent locks the parent's row shared while it reads the
  parent's status and inserts the child, so a concurrent cancellation of the parent
  either sees the child (and cascades) or is seen by it (created cancelled).

Two transactions that each follow it cannot wait for each other in a cycle, so a
child settling while its parent is cancelled never deadlocks.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from workflow.runtime.records import ParentPolicy, RunStatus

from .queue_sql import bound
from .tables import StoreTables


def settle_guard(
    guard: sa.ColumnElement[bool], t: StoreTables, values: dict[str, Any]
) -> sa.ColumnElement[bool]:
    """``guard`` (the lease guard of a settle), plus, for a settle that ends the run
    (``values`` sets ``finished_at``), ``parent_run_id IS NULL``: a child's end also
    writes to its parent, which must be locked first (the settle is done again in a
    transaction that does; see :meth:`SQLStore._settle_child`)."""
    if "finished_at" not in values:
        return guard
    return sa.and_(guard, t.runs.c.parent_run_id.is_(None))


def lock_orphan(t: StoreTables, columns: list[sa.Column[Any]]) -> sa.Select[Any]:
    """The run ``p_run_id``, row-locked, if it has no parent (a child's parent is locked
    before it: the lock order above)."""
    runs = t.runs
    return (
        sa.select(*columns)
        .where(runs.c.run_id == bound("run_id", runs.c.run_id.type), runs.c.parent_run_id.is_(None))
        .with_for_update()
    )


def lock_share(t: StoreTables, columns: list[sa.Column[Any]]) -> sa.Select[Any]:
    """The run ``p_run_id`` under a shared row lock (a new child's parent: its
    cancellation waits until the child is inserted)."""
    runs = t.runs
    return (
        sa.select(*columns)
        .where(runs.c.run_id == bound("run_id", runs.c.run_id.type))
        .with_for_update(read=True)
    )


def lock_parents(t: StoreTables, columns: list[sa.Column[Any]], n: int) -> sa.Select[Any]:
    """The runs ``p_par0..`` that no other transaction holds, row-locked (``SKIP
    LOCKED``: a deadline sweep holds children already and must not wait for a parent)."""
    runs = t.runs
    return (
        sa.select(*columns)
        .where(runs.c.run_id.in_([bound(f"par{i}", runs.c.run_id.type) for i in range(n)]))
        .order_by(runs.c.run_id)
        .with_for_update(skip_locked=True)
    )


def live_cancel_children(t: StoreTables, n: int) -> sa.Select[Any]:
    """The live ``cancel``-policy children of the runs ``p_par0..``, row-locked (their
    parents are held already), in id order: an index range of ``ix_runs_parent``
    per parent."""
    runs = t.runs
    return (
        sa.select(runs.c.run_id, runs.c.parent_run_id)
        .where(
            runs.c.parent_run_id.in_([bound(f"par{i}", runs.c.run_id.type) for i in range(n)]),
            runs.c.parent_policy == ParentPolicy.CANCEL.value,
            runs.c.finished_at.is_(None),
        )
        .order_by(runs.c.run_id)
        .with_for_update()
        # InnoDB locks every row a locking read reads, and waits for those another
        # transaction holds, matching or not: on a small table MariaDB reads this
        # one in primary-key order (no sort for the ORDER BY), so a cascade waited for
        # the row locks of unrelated runs and deadlocked with their settles. The
        # index reads only the parents' children (named as tables.py names it; the
        # prefix is validated).
        .with_hint(runs, f"FORCE INDEX (ix_{t.prefix}runs_parent)", dialect_name="mysql")
    )


def cancel_children(t: StoreTables, n_parents: int, n_ids: int) -> sa.Update:
    """End the runs ``p_id0..`` ``cancelled`` (values ``p_v_*``), each with the error
    of its parent: ``p_err<i>`` for the children of ``p_par<i>``."""
    runs = t.runs
    error = sa.case(
        *(
            (
                runs.c.parent_run_id == bound(f"par{i}", runs.c.run_id.type),
                bound(f"err{i}", runs.c.error.type),
            )
            for i in range(n_parents)
        ),
        else_=runs.c.error,
    )
    values: dict[str, Any] = {
        k: bound(f"v_{k}", runs.c[k].type) for k in cancelled_columns() if k != "error"
    }
    values["error"] = error
    return (
        sa.update(runs)
        .where(runs.c.run_id.in_([bound(f"id{i}", runs.c.run_id.type) for i in range(n_ids)]))
        .values(values)
    )


def cancelled_columns() -> tuple[str, ...]:
    """The columns a cascade sets on a child it ends (``p_v_*``; ``error`` per parent)."""
    return (
        "status",
        "error",
        "lease_owner",
        "lease_expires_at",
        "ready_at",
        "finished_at",
        "updated_at",
        "wait_kind",
        "wait_step_id",
        "wait_key",
        "wait_meta",
        "wake_at",
    )


def cascaded_values(now: int) -> dict[str, Any]:
    """The values of :func:`cancelled_columns` but ``error``, for a cascade at ``now``."""
    return {
        "status": RunStatus.CANCELLED.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "ready_at": None,
        "finished_at": now,
        "updated_at": now,
        "wait_kind": None,
        "wait_step_id": None,
        "wait_key": None,
        "wait_meta": None,
        "wake_at": None,
    }


def children_page(t: StoreTables) -> sa.ColumnElement[bool]:
    """``list_runs(parent_run_id=)``'s filter: ``ix_runs_parent`` serves it in order."""
    runs = t.runs
    return runs.c.parent_run_id == bound("parent_run_id", runs.c.parent_run_id.type)
