"""queues: runs.queue, runs.priority, runs.partition_key and the queues table.

Revision ID: 2c85b20d0032
Revises: 6eb32d16ce87
Create Date: 2026-12-06

Logical change 0003 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0003_queues as body

revision = "2c85b20d0032"
down_revision = "6eb32d16ce87"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
