"""runs.parent_run_id, runs.parent_policy and ix_runs_parent: child runs.

Revision ID: 59a178e3a132
Revises: 1df5e430881d
Create Date: 2026-12-06

Logical change 0005 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0005_children as body

revision = "59a178e3a132"
down_revision = "1df5e430881d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
