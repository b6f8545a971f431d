"""runs.inbox_seq: lets a one-statement settle see a delivery that raced it.

Revision ID: 6eb32d16ce87
Revises: eeae1b3a4934
Create Date: 2026-11-21

Logical change 0002 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0002_inbox_seq as body

revision = "6eb32d16ce87"
down_revision = "eeae1b3a4934"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
