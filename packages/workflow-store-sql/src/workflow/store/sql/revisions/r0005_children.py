"""0005: child runs. ``runs.parent_run_id`` and ``runs.parent_policy``, and the index
that finds a parent's children (``list_runs(parent_run_id=)`` in its order, and the
cascade of a parent's cancellation or time-out).

No foreign key: a child keeps its link after its parent is deleted or purged.
Existing runs get NULL in both: no parent.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ..coltypes import ID, SHORT
from ..migration_env import store_schema, table_prefix


def upgrade() -> None:
    p, schema = table_prefix(), store_schema()
    runs = f"{p}runs"
    op.add_column(runs, sa.Column("parent_run_id", ID), schema=schema)
    op.add_column(runs, sa.Column("parent_policy", SHORT), schema=schema)
    op.create_index(
        f"ix_{p}runs_parent", runs, ["parent_run_id", "created_at", "run_id"], schema=schema
    )


def downgrade() -> None:
    p, schema = table_prefix(), store_schema()
    op.drop_index(f"ix_{p}runs_parent", table_name=f"{p}runs", schema=schema)
    for column in ("parent_policy", "parent_run_id"):
        op.drop_column(f"{p}runs", column, schema=schema)
