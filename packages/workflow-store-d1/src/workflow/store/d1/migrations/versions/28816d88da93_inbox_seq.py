"""runs.inbox_seq: lets a one-statement settle see a delivery that raced it.

Revision ID: 28816d88da93
Revises: 8be01f067f88
Create Date: 2026-11-21

Logical change 0002 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0002_inbox_seq as body

revision = "28816d88da93"
down_revision = "8be01f067f88"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
