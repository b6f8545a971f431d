"""The statements of child runs in D1 batches (``docs/stores/d1.md``, Children).

The SQL stores lock a parent, read its status and wait, then decide in Python what to
write (:mod:`workflow.store.sql.children_sql`). A D1 batch runs alone on the database
and atomically, so there is nothing to lock, but it cannot branch on what it read:
each decision is a condition in the statement that acts on it.

- A child's end (:func:`child_entry`, :func:`wake_parent`): the entry is inserted from
  the parent's row only while the parent is live (``INSERT OR IGNORE``: an entry already
  there is kept), and the parent is queued only while it is paused on a ``child`` wait
  naming this child. The child's parent is found by a subquery on its own row, so a
  run without a parent writes nothing. The entry's payload is computed in Python from
  the values the batch's earlier statement wrote.
- A cascade (:func:`cascade`): one ``UPDATE`` of the live ``cancel``-policy descendants
  of the run just ended, found by a recursive CTE, each with the ``ParentEnded`` error
  that names its own parent (built with ``json_object``; the root's children name the
  root's status, the deeper ones ``cancelled``). Locks play no part: D1 runs one batch
  at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from workflow.runtime import arguments, codec
from workflow.runtime.records import InboxKind, ParentPolicy, RunStatus, WaitKind
from workflow.store.sql import rows
from workflow.store.sql.children_sql import cascaded_values
from workflow.store.sql.coltypes import SHORT
from workflow.store.sql.store import bound
from workflow.store.sql.tables import StoreTables

_TERMINAL = [s.value for s in RunStatus if s.terminal]


def _parent_of_child(t: StoreTables) -> sa.ScalarSelect[Any]:
    """The parent id of the run ``p_child_id`` (NULL without one)."""
    child = t.runs.alias("child")
    return (
        sa.select(child.c.parent_run_id)
        .where(child.c.run_id == bound("child_id", child.c.run_id.type))
        .scalar_subquery()
    )


def child_entry(t: StoreTables, insert_ignore: Callable[[sa.Table], sa.Insert]) -> sa.Insert:
    """The ``child`` entry of ``p_child_id`` (payload ``p_payload``, at ``p_now``) in its
    parent's inbox, if the parent exists and is live; an entry already there is kept."""
    runs, inbox = t.runs, t.inbox
    source = sa.select(
        runs.c.run_id,
        sa.literal(InboxKind.CHILD.value, inbox.c.kind.type),
        bound("child_id", inbox.c.key.type),
        sa.null(),
        sa.null(),
        bound("payload", inbox.c.payload.type),
        sa.null(),
        bound("now", inbox.c.received_at.type),
        sa.false(),
    ).where(
        runs.c.run_id == _parent_of_child(t),
        runs.c.status.not_in([sa.literal(s) for s in _TERMINAL]),
    )
    return insert_ignore(inbox).from_select(["run_id", *rows.INBOX_COLUMNS], source)


def wake_parent(t: StoreTables) -> sa.Update:
    """Queue (values ``p_q_*``) the parent of ``p_child_id`` if it is paused on a
    ``child`` wait naming that child."""
    runs = t.runs
    return (
        sa.update(runs)
        .where(
            runs.c.run_id == _parent_of_child(t),
            runs.c.status == RunStatus.PAUSED.value,
            runs.c.wait_kind == WaitKind.CHILD.value,
            runs.c.wait_key == bound("child_id", runs.c.wait_key.type),
        )
        .values({k: bound(f"q_{k}", runs.c[k].type) for k in rows.queued_values(0)})
    )


def child_end_params(
    child_id: str, status: str, output: str | None, error: str | None, now: int
) -> dict[str, Any]:
    """The values of :func:`child_entry` and :func:`wake_parent` for a child that ended
    ``status`` with the encoded ``output`` and ``error`` it was written with."""
    payload = arguments.child_payload(status, codec.decode(output), codec.decode_error(error))
    return {
        "p_child_id": child_id,
        "p_payload": codec.encode(payload, max_bytes=2**31),
        "p_now": now,
        **{f"p_q_{k}": v for k, v in rows.queued_values(now).items()},
    }


def cascade(t: StoreTables) -> sa.Update:
    """End ``cancelled`` (values ``p_c_*``) the live ``cancel``-policy descendants of
    ``p_root`` (which just ended ``p_root_status``), each with its parent's
    ``ParentEnded`` error."""
    runs = t.runs
    live_cancel = sa.and_(
        runs.c.parent_policy == ParentPolicy.CANCEL.value, runs.c.finished_at.is_(None)
    )
    tree = (
        sa.select(
            runs.c.run_id.label("id"),
            runs.c.parent_run_id.label("parent"),
            sa.cast(bound("root_status", SHORT), SHORT).label("parent_status"),
        )
        .where(runs.c.parent_run_id == bound("root", runs.c.run_id.type), live_cancel)
        .cte("tree", recursive=True)
    )
    below = runs.alias("below")
    tree = tree.union(
        sa.select(
            below.c.run_id,
            below.c.parent_run_id,
            sa.literal(RunStatus.CANCELLED.value, SHORT),
        ).where(
            below.c.parent_run_id == tree.c.id,
            below.c.parent_policy == ParentPolicy.CANCEL.value,
            below.c.finished_at.is_(None),
        )
    )
    message = sa.literal("parent run ", SHORT) + tree.c.parent + " ended " + tree.c.parent_status
    error = (
        sa.select(
            sa.func.json_object(
                "type", arguments.PARENT_ENDED_TYPE, "message", message, "code", "cancelled"
            )
        )
        .where(tree.c.id == runs.c.run_id)
        .limit(1)
        .scalar_subquery()
    )
    values: dict[str, Any] = {k: bound(f"c_{k}", runs.c[k].type) for k in cascaded_values(0)}
    values["error"] = error
    return sa.update(runs).where(runs.c.run_id.in_(sa.select(tree.c.id))).values(values)


def cascade_params(root: str, root_status: str, now: int) -> dict[str, Any]:
    return {
        "p_root": root,
        "p_root_status": root_status,
        **{f"p_c_{k}": v for k, v in cascaded_values(now).items()},
    }
