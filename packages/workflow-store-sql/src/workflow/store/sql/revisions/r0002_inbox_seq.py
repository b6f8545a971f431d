"""0002: ``runs.inbox_seq``, bumped by every delivery.

It lets a one-statement ``settle_run`` (PostgreSQL) notice a delivery that committed
while it waited for the run's row lock; see :mod:`workflow.store.postgres.one_statement`.
Existing rows start at 0, which is all the column needs (it is only compared with
itself within one statement).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ..coltypes import MS
from ..migration_env import store_schema, table_prefix


def upgrade() -> None:
    op.add_column(
        f"{table_prefix()}runs",
        sa.Column("inbox_seq", MS, nullable=False, server_default="0"),
        schema=store_schema(),
    )


def downgrade() -> None:
    op.drop_column(f"{table_prefix()}runs", "inbox_seq", schema=store_schema())
