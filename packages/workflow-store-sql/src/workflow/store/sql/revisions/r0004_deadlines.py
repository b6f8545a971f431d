"""0003: ``runs.deadline_at``, the run's deadline, and the index that finds due ones.

``deadline_at`` is kept after the run ended (``Run.deadline_at``); the index leads with
``finished_at`` so that ``fire_due_timers`` scans only live runs (``finished_at IS
NULL``) in ``(deadline_at, run_id)`` order, however many ended runs had a deadline.
Existing rows get NULL: no deadline.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ..coltypes import MS
from ..migration_env import store_schema, table_prefix


def upgrade() -> None:
    p = table_prefix()
    op.add_column(f"{p}runs", sa.Column("deadline_at", MS), schema=store_schema())
    op.create_index(
        f"ix_{p}runs_deadline",
        f"{p}runs",
        ["finished_at", "deadline_at", "run_id"],
        schema=store_schema(),
    )


def downgrade() -> None:
    p = table_prefix()
    op.drop_index(f"ix_{p}runs_deadline", table_name=f"{p}runs", schema=store_schema())
    op.drop_column(f"{p}runs", "deadline_at", schema=store_schema())
