"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from workflow.store.redis.migrator import MigrationContext

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


async def upgrade(ctx: MigrationContext) -> None:
    ...


async def downgrade(ctx: MigrationContext) -> None:
    ...
