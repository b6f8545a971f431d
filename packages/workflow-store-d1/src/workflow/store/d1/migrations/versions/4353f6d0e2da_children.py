"""runs.parent_run_id, runs.parent_policy and ix_runs_parent: child runs.

Revision ID: 4353f6d0e2da
Revises: 9902931da075
Create Date: 2026-12-06

Logical change 0005 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0005_children as body

revision = "4353f6d0e2da"
down_revision = "9902931da075"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
