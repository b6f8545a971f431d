"""The sample application's own tables (its Alembic ``target_metadata``)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

orders = sa.Table(
    "app_orders",
    metadata,
    sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("item", sa.String(100), nullable=False),
)
