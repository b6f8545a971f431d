"""Deadlines: a run's ``deadline`` field, each bucket's ``deadlines`` index and the
``timed_out`` status.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Upgrading transforms nothing: no run has a deadline yet, and the new index fills as
runs are created with one. The revision is recorded so that an adapter from before
it, which knows neither the status nor the index, refuses a keyspace that may hold
them. Downgrading ends every ``timed_out`` run ``cancelled`` (its error, code
``timed_out``, is kept), drops the deadlines (the field and the index) and the
``status:timed_out`` indexes; running it again after an interruption finishes the job.
"""

from __future__ import annotations

from typing import cast

from workflow.store.redis.keys import Keyspace
from workflow.store.redis.migrator import MigrationContext

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


async def upgrade(ctx: MigrationContext) -> None:
    """Nothing to transform (see the module docstring)."""


async def downgrade(ctx: MigrationContext) -> None:
    client = ctx.client
    found = await client.get(ctx.keys.meta("buckets"))
    ks = Keyspace(ctx.keys.prefix, int(found) if found is not None else ctx.keys.buckets)
    for k in range(ks.buckets):
        timed_out = ks.index(k, "status:timed_out")
        for member in cast("list[str]", await client.zrange(timed_out, 0, -1)):
            h = member.split(":", 1)[1]
            await client.hset(ks.run_in(k, h), "status", "cancelled")
            await client.zadd(ks.index(k, "status:cancelled"), {member: 0})
            await client.zrem(timed_out, member)
        await client.unlink(timed_out, ks.index(k, "deadlines"))
    for key in await ctx.scan(ks.glob("{b*}:run:*")):
        await client.hdel(key, "deadline")
