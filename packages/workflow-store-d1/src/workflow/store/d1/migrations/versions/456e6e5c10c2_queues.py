"""queues: runs.queue, runs.priority, runs.partition_key and the queues table.

Revision ID: 456e6e5c10c2
Revises: 28816d88da93
Create Date: 2026-12-06

Logical change 0003 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0003_queues as body

revision = "456e6e5c10c2"
down_revision = "28816d88da93"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
