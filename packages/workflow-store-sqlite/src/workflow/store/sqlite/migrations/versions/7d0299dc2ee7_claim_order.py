"""ix_runs_claim and ix_runs_expiry: the indexes of the claim's two halves.

Revision ID: 7d0299dc2ee7
Revises: d2c719536cce
Create Date: 2026-12-07

Logical change 0006 (see migrations/CHANGES.md).
"""

from __future__ import annotations

from workflow.store.sql.revisions import r0006_claim_order as body

revision = "7d0299dc2ee7"
down_revision = "d2c719536cce"
branch_labels = None
depends_on = None


def upgrade() -> None:
    body.upgrade()


def downgrade() -> None:
    body.downgrade()
