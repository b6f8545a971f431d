"""runs.parent_run_id, runs.parent_policy and ix_runs_parent: child runs.

Revision ID: d2c719536cce
Revises: 78dfa4cbe5b6
Create Date: 2026-12-06

Logical change 0005 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0005_children as body

revision = "d2c719536cce"
down_revision = "78dfa4cbe5b6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
