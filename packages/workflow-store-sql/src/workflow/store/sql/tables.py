"""The tables of the SQL stores, as SQLAlchemy Core ``MetaData``.

One definition for every dialect, with per-dialect types only where they matter:

* identifiers compare and sort by code point on every store (``COLLATE "C"`` on
  Postgres, ``utf8mb4_bin`` on MySQL; SQLite's default ``BINARY`` already does), so
  ``list_runs`` and claim order agree with the reference store and ``"A" != "a"``;
* times and indexes are 64-bit integers (ms since the epoch);
* payloads are JSON *text* (``LONGTEXT`` on MySQL for the 1 MiB default limit), not
  ``jsonb``/``JSON``: those reorder keys, drop duplicate keys and normalise numbers,
  and the contract promises exact round trips.

The tables carry no schema: stores render it with ``schema_translate_map`` (never
``search_path``, which breaks behind PgBouncer). The table prefix is part of every
table and index name, so several instances can share one database.

Column notes:

* ``ready_at`` is non-NULL exactly while a run is ``queued`` or ``running`` (claim
  order), ``wake_at`` exactly while a paused run has an armed timer, ``finished_at``
  exactly while it is terminal (retention); each has its own index, so the hot
  queries are index range scans in the order they return rows.
* ``inbox_seq`` counts deliveries (bumped where settle is one statement, see
  :mod:`workflow.store.postgres.one_statement`).
* ``deadline_at`` is the run's deadline, kept after it ended; due deadlines are
  found through ``(finished_at, deadline_at, run_id)``: live runs only.
* ``parent_run_id`` and ``parent_policy`` link a child run to its parent (no foreign
  key: the link outlives a deleted parent); ``ix_runs_parent`` finds a parent's
  children, for ``list_runs(parent_run_id=)`` and the cascade of a cancellation.
* ``ix_runs_claim`` ``(status, priority DESC, ready_at, run_id)`` is claim order within
  a status: a claim reads the queued runs it takes, not every ready run;
  ``ix_runs_expiry`` ``(status, lease_expires_at)`` finds running runs whose lease
  expired (the other half of what a claim may take).
* ``lease_token`` is the last token handed out (0 = never claimed); the lease is
  present when ``lease_owner`` is non-NULL.
* ``queue``, ``priority``, ``partition_key`` place a run (``docs/semantics.md``,
  Queues); ``queues`` holds the limits of the configured queues and, for a rate limit,
  the current fixed window (``window_start``, ``window_count``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa

from .coltypes import BOOL, ID, MS, PAYLOAD, SHORT
from .naming import DEFAULT_TABLE_PREFIX, check_table_prefix


@dataclass(frozen=True)
class StoreTables:
    prefix: str
    metadata: sa.MetaData
    runs: sa.Table
    events: sa.Table
    inbox: sa.Table
    schedules: sa.Table
    queues: sa.Table


@lru_cache(maxsize=32)
def build_tables(prefix: str = DEFAULT_TABLE_PREFIX) -> StoreTables:
    """The tables for ``prefix`` (validated). Cached: one ``MetaData`` per prefix."""
    p = check_table_prefix(prefix)
    md = sa.MetaData()
    runs = sa.Table(
        f"{p}runs",
        md,
        sa.Column("run_id", ID, primary_key=True),
        sa.Column("workflow_id", ID, nullable=False),
        sa.Column("workflow_version", ID),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("input", PAYLOAD),
        sa.Column("output", PAYLOAD),
        sa.Column("error", PAYLOAD),
        sa.Column("wait_kind", SHORT),
        sa.Column("wait_step_id", ID),
        sa.Column("wait_key", ID),
        sa.Column("wait_meta", PAYLOAD),
        sa.Column("wake_at", MS),
        sa.Column("lease_owner", ID),
        sa.Column("lease_token", MS, nullable=False, server_default="0"),
        sa.Column("lease_expires_at", MS),
        sa.Column("next_event_index", MS, nullable=False, server_default="0"),
        sa.Column("created_at", MS, nullable=False),
        sa.Column("updated_at", MS, nullable=False),
        sa.Column("ready_at", MS),
        sa.Column("finished_at", MS),
        sa.Column("inbox_seq", MS, nullable=False, server_default="0"),
        sa.Column("queue", ID, nullable=False, server_default="default"),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("partition_key", ID),
        sa.Column("deadline_at", MS),
        sa.Column("parent_run_id", ID),
        sa.Column("parent_policy", SHORT),
        sa.Index(f"ix_{p}runs_ready", "ready_at", "run_id"),
        # The leased runs of a queue (and of each key): the count a limited claim makes.
        sa.Index(
            f"ix_{p}runs_queue_leases", "queue", "status", "lease_expires_at", "partition_key"
        ),
        sa.Index(f"ix_{p}runs_wake", "wake_at", "run_id"),
        sa.Index(f"ix_{p}runs_finished", "finished_at", "run_id"),
        sa.Index(f"ix_{p}runs_created", "created_at", "run_id"),
        sa.Index(f"ix_{p}runs_deadline", "finished_at", "deadline_at", "run_id"),
        # A parent's children: list_runs by parent (in its order) and the cascade.
        sa.Index(f"ix_{p}runs_parent", "parent_run_id", "created_at", "run_id"),
        sa.Index(f"ix_{p}runs_workflow_created", "workflow_id", "created_at", "run_id"),
        sa.Index(f"ix_{p}runs_status_created", "status", "created_at", "run_id"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    # The two halves of a claim, each an index range read in the order it returns rows
    # (queue_sql.claimable_in_claim_order): queued runs in claim order, and running runs
    # by lease expiry (the expired ones are the start of that range).
    sa.Index(
        f"ix_{p}runs_claim",
        runs.c.status,
        runs.c.priority.desc(),
        runs.c.ready_at,
        runs.c.run_id,
    )
    sa.Index(f"ix_{p}runs_expiry", runs.c.status, runs.c.lease_expires_at)
    events = sa.Table(
        f"{p}events",
        md,
        sa.Column(
            "run_id",
            ID,
            sa.ForeignKey(runs.c.run_id, ondelete="CASCADE", name=f"fk_{p}events_run"),
            primary_key=True,
        ),
        sa.Column("event_index", MS, primary_key=True, autoincrement=False),
        sa.Column("type", ID, nullable=False),
        sa.Column("step_id", ID),
        sa.Column("data", PAYLOAD),
        sa.Column("created_at", MS, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    inbox = sa.Table(
        f"{p}inbox",
        md,
        sa.Column(
            "run_id",
            ID,
            sa.ForeignKey(runs.c.run_id, ondelete="CASCADE", name=f"fk_{p}inbox_run"),
            primary_key=True,
        ),
        sa.Column("kind", SHORT, primary_key=True),
        sa.Column("key", ID, primary_key=True),
        sa.Column("name", ID),
        sa.Column("step_id", ID),
        sa.Column("payload", PAYLOAD),
        sa.Column("meta", PAYLOAD),
        sa.Column("received_at", MS, nullable=False),
        sa.Column("consumed", BOOL, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    schedules = sa.Table(
        f"{p}schedules",
        md,
        sa.Column("schedule_id", ID, primary_key=True),
        sa.Column("workflow_id", ID, nullable=False),
        sa.Column("workflow_version", ID),
        sa.Column("spec", PAYLOAD, nullable=False),
        sa.Column("overlap", SHORT, nullable=False),
        sa.Column("input", PAYLOAD),
        sa.Column("enabled", BOOL, nullable=False),
        sa.Column("next_fire_at", MS, nullable=False),
        sa.Column("last_fired_at", MS),
        sa.Column("last_run_id", ID),
        sa.Column("updated_at", MS, nullable=False),
        sa.Index(f"ix_{p}schedules_due", "enabled", "next_fire_at", "schedule_id"),
        sa.Index(f"ix_{p}schedules_workflow", "workflow_id", "schedule_id"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    queues = sa.Table(
        f"{p}queues",
        md,
        sa.Column("name", ID, primary_key=True),
        sa.Column("concurrency", sa.Integer()),
        sa.Column("per_key_concurrency", sa.Integer()),
        sa.Column("rate_count", sa.Integer()),
        sa.Column("rate_period_ms", MS),
        sa.Column("window_start", MS, nullable=False, server_default="0"),
        sa.Column("window_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", MS, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    return StoreTables(p, md, runs, events, inbox, schedules, queues)
