"""Statements built once per store and shape, run with bound values.

Building a SQLAlchemy statement costs more CPU than sending it (PostgreSQL's
one-statement deliver took about 2 ms to build). The hot statements are therefore
built once, with bound parameters named ``p_*`` (SQLAlchemy reserves the column names
for the SET and VALUES clauses), kept in the store's :data:`Statements`, and each call
only supplies a dict of values. A statement's *shape* (which optional parts it has:
events to insert, a wait to match, ...) is part of its key; values never are.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from workflow.runtime.arguments import LogWrite

T = TypeVar("T")

Statements = dict[Hashable, Any]
"""A store's built statements, by operation and shape."""

Prepared = tuple[Any, dict[str, Any]]
"""A statement and the values of its parameters."""


def built(cache: Statements, key: Hashable, build: Callable[[], T]) -> T:
    """The statement of ``key``, built on first use."""
    found = cache.get(key)
    if found is None:
        found = cache[key] = build()
    return cast(T, found)


def bound(name: str, type_: Any) -> sa.BindParameter[Any]:
    """The parameter ``p_<name>``, typed like the column it is compared with."""
    return sa.bindparam(f"p_{name}", type_=type_)


def lease_guard(runs: sa.Table) -> sa.ColumnElement[bool]:
    """The guard of every log write: run ``p_run_id`` is held by ``p_owner`` with
    ``p_token`` (the fencing token) and its log ends at ``p_expected``."""
    return sa.and_(
        runs.c.run_id == bound("run_id", runs.c.run_id.type),
        runs.c.lease_owner == bound("owner", runs.c.lease_owner.type),
        runs.c.lease_token == bound("token", runs.c.lease_token.type),
        runs.c.next_event_index == bound("expected", runs.c.next_event_index.type),
    )


def lease_guard_params(log: LogWrite) -> dict[str, Any]:
    """The values of :func:`lease_guard` for ``log``."""
    return {
        "p_run_id": log.run_id,
        "p_owner": log.lease.owner,
        "p_token": log.lease.token,
        "p_expected": log.expected,
    }
