"""Queues: a run's queue, priority and partition key; the claim-order and per-queue
lease indexes; the queue configurations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Every run written before this revision is in the ``default`` queue at priority 0
without a partition key (a run without the ``q``, ``pri`` and ``pk`` fields is read
so). Upgrading builds, in each bucket, the ``ready`` and ``qr:<default>`` claim-order
indexes from the ``queued`` index (and each queued run's ``rm`` field, its member
there) and the ``ql:<default>`` lease index from the ``leases`` index; on a cluster
also each lease's reservation in the ``{g}`` slot. Each step sets
what it sets, so running it again after an interruption finishes the job.
Downgrading drops those indexes, the queue configurations and the runs' queue
fields: every run is then in the default queue again (its queue's limits are gone
with it).
"""

from __future__ import annotations

from typing import cast

from redis.asyncio.cluster import RedisCluster

from workflow.store.redis.keys import Keyspace, escape
from workflow.store.redis.migrator import MigrationContext

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_DEFAULT = escape("default")
_DEFAULT_ORDER = f"{2**31 - 1:010d}"
"""The inverted priority of priority 0 (the claim order's first part)."""


async def _keyspace(ctx: MigrationContext) -> Keyspace:
    found = await ctx.client.get(ctx.keys.meta("buckets"))
    return Keyspace(ctx.keys.prefix, int(found) if found is not None else ctx.keys.buckets)


async def upgrade(ctx: MigrationContext) -> None:
    client = ctx.client
    ks = await _keyspace(ctx)
    for k in range(ks.buckets):
        queued = cast(
            "list[tuple[str, float]]",
            await client.zrange(ks.index(k, "queued"), 0, -1, withscores=True),
        )
        for h, score in queued:
            member = f"{_DEFAULT_ORDER}:{int(score):015d}:{h}"
            await client.hset(ks.run_in(k, h), "rm", member)
            await client.zadd(ks.index(k, "ready"), {member: 0})
            await client.zadd(ks.index(k, f"qr:{_DEFAULT}"), {member: 0})
        leases = cast(
            "list[tuple[str, float]]",
            await client.zrange(ks.index(k, "leases"), 0, -1, withscores=True),
        )
        if leases:
            await client.zadd(ks.index(k, f"ql:{_DEFAULT}"), dict(leases))
        if isinstance(client, RedisCluster):
            # A cluster keeps limits by reservations ({g}): each lease gets its own.
            for h, score in leases:
                token = cast("str | None", await client.hget(ks.run_in(k, h), "l_token"))
                if token is not None:
                    await client.zadd(ks.meta(f"qres:{_DEFAULT}"), {h: score})
                    await client.hset(ks.meta("qhold"), h, f"{token}:{_DEFAULT}:::1")


async def downgrade(ctx: MigrationContext) -> None:
    client = ctx.client
    ks = await _keyspace(ctx)
    doomed = [ks.queues, ks.meta("qhold")]
    for name in ("queue", "qres", "qfull"):
        doomed += await ctx.scan(ks.glob(f"{{g}}:{name}:*"))
    for k in range(ks.buckets):
        doomed.append(ks.index(k, "ready"))
        for name in ("qr", "ql", "qk"):
            doomed += await ctx.scan(ks.glob(f"{{b{k}}}:{name}:*"))
    for key in doomed:
        await client.unlink(key)
    for key in await ctx.scan(ks.glob("{b*}:run:*")):
        await client.hdel(key, "q", "pri", "po", "pk", "rm")
