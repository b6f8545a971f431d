"""The sample application's first table.

Revision ID: 5f1c0a9b7e21
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5f1c0a9b7e21"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_orders",
        sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("item", sa.String(100), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("app_orders")
