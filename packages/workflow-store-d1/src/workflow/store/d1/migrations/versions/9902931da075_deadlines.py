"""runs.deadline_at: the run's deadline, fired once by fire_due_timers.

Revision ID: 9902931da075
Revises: 456e6e5c10c2
Create Date: 2026-12-06

Logical change 0003 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0004_deadlines as body

revision = "9902931da075"
down_revision = "456e6e5c10c2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
