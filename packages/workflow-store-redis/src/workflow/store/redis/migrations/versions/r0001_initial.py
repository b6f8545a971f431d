"""Initial keyspace: run hashes, event lists, inbox hashes, sorted-set indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

The layout is described in workflow.store.redis.keys. Nothing exists before this
revision, so upgrading only records the revision; downgrading removes every key of
the instance (its prefix), as downgrading a SQL store to base drops its tables.
"""

from __future__ import annotations

from workflow.store.redis.migrator import MigrationContext

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


async def upgrade(ctx: MigrationContext) -> None:
    """Nothing to transform: the keys are created by the operations that need them."""


async def downgrade(ctx: MigrationContext) -> None:
    await ctx.delete_all_keys()
