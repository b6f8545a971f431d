"""runs.inbox_seq: lets a one-statement settle see a delivery that raced it.

Revision ID: 58e13bcb92cd
Revises: 38e3f47356ba
Create Date: 2026-11-21

Logical change 0002 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0002_inbox_seq as body

revision = "58e13bcb92cd"
down_revision = "38e3f47356ba"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
