"""queues: runs.queue, runs.priority, runs.partition_key and the queues table.

Revision ID: 0e53498d8752
Revises: 9f6be8da6fef
Create Date: 2026-12-06

Logical change 0003 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0003_queues as body

revision = "0e53498d8752"
down_revision = "9f6be8da6fef"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
