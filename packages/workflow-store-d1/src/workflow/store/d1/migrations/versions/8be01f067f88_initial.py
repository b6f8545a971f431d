"""Initial schema: runs, events, inbox, schedules.

Revision ID: 8be01f067f88
Revises:
Create Date: 2026-11-21

Logical change 0001 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0001_initial as body

revision = "8be01f067f88"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
