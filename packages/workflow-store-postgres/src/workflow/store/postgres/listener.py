"""Wake-up hints on PostgreSQL: NOTIFY from the writing statements, LISTEN on a
connection of its own.

Every statement that can make a run claimable (a run inserted, by ``create_run`` or a
schedule; a paused run queued by a delivery or a timer; a settle that leaves the run
``queued``) also evaluates :func:`notice`, ``pg_notify(channel, '')``, for the rows it
changed: no extra round trip, and the notification is sent by the COMMIT that makes
the change visible, never before and never for a rolled-back change. PostgreSQL
delivers identical notifications of one transaction once, so a statement that queues
a hundred runs notifies once.

A watcher LISTENs on a dedicated connection outside the pool (a pooled connection is
handed to other operations, and LISTEN belongs to the session). The channel is
derived from the schema and the table prefix, both validated identifiers
(:mod:`workflow.store.sql.naming`), so two stores on the same database hear only
their own tables' news. Behind PgBouncer in transaction mode LISTEN cannot work (the
session is not ours between transactions): ``notify=false`` turns the whole feature
off and workers poll (docs/stores/postgresql.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

MAX_CHANNEL_BYTES = 63
"""PostgreSQL's identifier limit (NAMEDATALEN - 1): pg_notify refuses longer channels."""

_LISTENER_DEFAULTS = {
    # A dead peer that never sent a FIN (a dropped route, a failed-over host) is
    # found by TCP keepalives within about a minute, and the watcher reconnects.
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "application_name": "workflow-listener",
}


def channel_for(schema: str | None, table_prefix: str) -> str:
    """The notification channel of the tables ``<schema>.<table_prefix>*``.

    ``schema`` and ``table_prefix`` are validated identifiers (lower-case ASCII
    letters, digits, underscores); a name longer than PostgreSQL allows keeps its
    start and ends in a hash of the whole, so it stays unique."""
    name = f"{schema}.{table_prefix}runnable" if schema else f"{table_prefix}runnable"
    if len(name) > MAX_CHANNEL_BYTES:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        name = f"{name[: MAX_CHANNEL_BYTES - 17]}_{digest}"
    return name


def notice(channel: str) -> sa.ColumnElement[Any]:
    """``pg_notify(channel, '')``: the channel is a bound value, not SQL text."""
    return sa.func.pg_notify(sa.literal(channel, sa.Text()), sa.literal("", sa.Text()))


def listen_statement(channel: str) -> sql.Composed:
    """``LISTEN "<channel>"`` (always quoted: the text operators find in
    ``pg_stat_activity.query`` for a listener)."""
    return sql.SQL("LISTEN {}").format(sql.Identifier(channel))


def listener_conninfo(conninfo: str) -> str:
    """The store's connection string plus the listener's defaults (keepalives, an
    ``application_name``), where the store's URL does not set them."""
    given = conninfo_to_dict(conninfo)
    return make_conninfo(
        conninfo, **{k: v for k, v in _LISTENER_DEFAULTS.items() if k not in given}
    )


def session(conninfo: str, channel: str) -> Callable[[Callable[[], None]], Any]:
    """A :data:`workflow.runtime.wakeups.Session` listening on ``channel``."""

    async def listen(ring: Callable[[], None]) -> None:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        try:
            await conn.execute(listen_statement(channel))
            ring()  # listening: whatever happened before may have been missed
            async for _ in conn.notifies():
                ring()
        finally:
            await conn.close()

    return listen
