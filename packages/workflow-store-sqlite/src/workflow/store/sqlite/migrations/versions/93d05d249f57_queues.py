"""queues: runs.queue, runs.priority, runs.partition_key and the queues table.

Revision ID: 93d05d249f57
Revises: 58e13bcb92cd
Create Date: 2026-12-06

Logical change 0003 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0003_queues as body

revision = "93d05d249f57"
down_revision = "58e13bcb92cd"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
