"""runs.deadline_at: the run's deadline, fired once by fire_due_timers.

Revision ID: 1df5e430881d
Revises: 0e53498d8752
Create Date: 2026-12-06

Logical change 0003 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0004_deadlines as body

revision = "1df5e430881d"
down_revision = "0e53498d8752"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
