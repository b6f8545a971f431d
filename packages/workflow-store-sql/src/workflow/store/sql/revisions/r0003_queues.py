"""0003: queues. ``runs.queue``, ``runs.priority``, ``runs.partition_key``, the
``queues`` table of limits, and the index a limited claim counts leased runs with.

Existing runs go to the default queue at priority 0 without a key, which is where every
run was before queues existed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ..coltypes import ID, MS
from ..migration_env import store_schema, table_prefix


def upgrade() -> None:
    p, schema = table_prefix(), store_schema()
    runs = f"{p}runs"
    op.add_column(
        runs, sa.Column("queue", ID, nullable=False, server_default="default"), schema=schema
    )
    op.add_column(
        runs,
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        schema=schema,
    )
    op.add_column(runs, sa.Column("partition_key", ID), schema=schema)
    op.create_index(
        f"ix_{p}runs_queue_leases",
        runs,
        ["queue", "status", "lease_expires_at", "partition_key"],
        schema=schema,
    )
    op.create_table(
        f"{p}queues",
        sa.Column("name", ID, primary_key=True),
        sa.Column("concurrency", sa.Integer()),
        sa.Column("per_key_concurrency", sa.Integer()),
        sa.Column("rate_count", sa.Integer()),
        sa.Column("rate_period_ms", MS),
        sa.Column("window_start", MS, nullable=False, server_default="0"),
        sa.Column("window_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", MS, nullable=False),
        schema=schema,
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    p, schema = table_prefix(), store_schema()
    op.drop_table(f"{p}queues", schema=schema)
    op.drop_index(f"ix_{p}runs_queue_leases", table_name=f"{p}runs", schema=schema)
    for column in ("partition_key", "priority", "queue"):
        op.drop_column(f"{p}runs", column, schema=schema)
