"""Buckets: a run's keys and its indexes share one hash tag, so Redis Cluster works.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Revision 0001 kept a run's keys under ``P{wf:H}`` and every index under ``P{g}``, so
a transition touched two cluster slots. This revision moves every run and schedule
into its bucket (layout in workflow.store.redis.keys) and rebuilds the indexes per
bucket; downgrading moves them back. Both directions can be run again after an
interruption: a run is found by its old hash, which is removed last, after its other
keys moved (DUMP/RESTORE, which also crosses nodes) and its index entries were written.
The bucket count is fixed here, in ``P{g}:buckets``: the existing value, else the
count the migrating store was configured with.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import cast

from workflow.store.redis.keys import STATUSES, Keyspace, escape, unescape
from workflow.store.redis.migrator import Client, MigrationContext

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PARTS = ("events", "inbox", "consumed")
_TERMINAL = {"finished", "errored", "cancelled"}
_INDEXES = ("queued", "leases", "timers", "terminal", "created", "schedules", "sched_due")


async def upgrade(ctx: MigrationContext) -> None:
    client, prefix = ctx.client, ctx.keys.prefix
    await client.set(ctx.keys.meta("buckets"), ctx.keys.buckets, nx=True)
    ks = Keyspace(prefix, int(cast("str", await client.get(ctx.keys.meta("buckets")))))
    old = _Old(prefix)
    for key in await ctx.scan(ks.glob("{wf:*}:run")):
        h = key[len(prefix) + len("{wf:") : -len("}:run")]
        run_id = unescape(h)
        k = ks.run_bucket(run_id)
        for part in _PARTS:
            await _move(client, old.part(h, part), f"{ks.tag(k)}:{part}:{h}")
        fields = await _move(client, key, ks.run_in(k, h), keep=True)
        if fields:
            await _index(client, partial(ks.index, k), h, fields, by_status=True)
        await client.unlink(key)
    for key in await ctx.scan(ks.glob("{g}:sched:*")):
        s = key.rsplit(":", 1)[1]
        k = ks.schedule_bucket(unescape(s))
        fields = await _move(client, key, ks.schedule_in(k, s), keep=True)
        if fields:
            await _index_schedule(client, partial(ks.index, k), s, fields)
        await client.unlink(key)
    for key in await ctx.scan(ks.glob("{g}:created:*")):
        await client.unlink(key)
    for name in _INDEXES:
        await client.unlink(old.index(name))


async def downgrade(ctx: MigrationContext) -> None:
    client, prefix = ctx.client, ctx.keys.prefix
    found = await client.get(ctx.keys.meta("buckets"))
    ks = Keyspace(prefix, int(found) if found is not None else ctx.keys.buckets)
    old = _Old(prefix)
    for key in await ctx.scan(ks.glob("{b*}:run:*")):
        tag, _, h = key.partition(":run:")
        for part in _PARTS:
            await _move(client, f"{tag}:{part}:{h}", old.part(h, part))
        fields = await _move(client, key, old.part(h, "run"), keep=True)
        if fields:
            await _index(client, old.index, h, fields, by_status=False)
        await client.unlink(key)
    for key in await ctx.scan(ks.glob("{b*}:sched:*")):
        s = key.rsplit(":", 1)[1]
        fields = await _move(client, key, old.index(f"sched:{s}"), keep=True)
        if fields:
            await _index_schedule(client, old.index, s, fields)
        await client.unlink(key)
    for key in await ctx.scan(ks.glob("{b*}:created:*")):
        await client.unlink(key)
    for k in range(ks.buckets):
        for name in (*_INDEXES, *(f"status:{s}" for s in STATUSES)):
            await client.unlink(ks.index(k, name))
    await client.unlink(ctx.keys.meta("buckets"))


class _Old:
    """Revision 0001's key names."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def part(self, h: str, part: str) -> str:
        return f"{self.prefix}{{wf:{h}}}:{part}"

    def index(self, name: str) -> str:
        return f"{self.prefix}{{g}}:{name}"


async def _move(client: Client, source: str, target: str, *, keep: bool = False) -> dict[str, str]:
    """Copy ``source`` over ``target`` (any type, any node) and remove ``source``
    unless ``keep``; returns the fields when it is a hash."""
    dumped = await client.dump(source)
    if dumped is None:
        return {}
    await client.restore(target, 0, dumped, replace=True)
    fields: dict[str, str] = {}
    if keep and await client.type(source) == "hash":
        fields = cast("dict[str, str]", await client.hgetall(source))
    if not keep:
        await client.unlink(source)
    return fields


async def _index(
    client: Client, index: Callable[[str], str], h: str, f: dict[str, str], *, by_status: bool
) -> None:
    """Write a run's index entries (the rule of the scripts' ``sync``) into the
    indexes named by ``index(name)``; ``by_status``: also the per-status list order,
    which revision 0001 did not have."""
    status = f.get("status")
    if status == "queued" and "ready" in f:
        await client.zadd(index("queued"), {h: int(f["ready"])})
    if status == "running" and "l_exp" in f:
        await client.zadd(index("leases"), {h: int(f["l_exp"])})
    if status == "paused" and "w_wake" in f:
        await client.zadd(index("timers"), {h: int(f["w_wake"])})
    if status in _TERMINAL:
        await client.zadd(index("terminal"), {h: int(f["updated"])})
    await client.zadd(index("created"), {f["cm"]: 0})
    await client.zadd(index(f"created:{escape(f['wf'])}"), {f["cm"]: 0})
    if by_status and status is not None:
        await client.zadd(index(f"status:{status}"), {f["cm"]: 0})


async def _index_schedule(
    client: Client, index: Callable[[str], str], s: str, f: dict[str, str]
) -> None:
    await client.zadd(index("schedules"), {s: 0})
    if f.get("enabled") == "1":
        await client.zadd(index("sched_due"), {s: int(f["next"])})
