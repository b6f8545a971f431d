"""Children: a run's parent link and each parent's list of children.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

A child run carries the fields ``parent`` (its parent's id) and ``ppolicy``
(``cancel`` or ``abandon``), and its parent's bucket holds ``T:children:<parent hex>``,
the parent's children in list order; a parent's inbox gets ``child:<child id>``
entries. Upgrading transforms nothing: no run has a parent yet. The revision is
recorded so that an adapter from before it, which knows no child entries or waits,
refuses a keyspace that may hold them.

Downgrading leaves a keyspace such an adapter can serve: a run paused on a child wait
(which nothing could end any more) is cancelled, with a reason that says why; the
links, the children lists and the child inbox entries are dropped; runs the cascade
cancelled keep their ``ParentEnded`` error. It runs per bucket in batches of runs, each
batch one script (atomic), and running it again after an interruption finishes the
job (each step finds what it changed already done).

The revision's ids are only here (the tests find it by its docstring's first word).
"""

from __future__ import annotations

import time
from typing import cast

from workflow.runtime import codec
from workflow.runtime.records import ErrorInfo
from workflow.store.redis.keys import Keyspace
from workflow.store.redis.migrator import MigrationContext

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 500
"""Runs per downgrade script: a bounded time for which the server runs nothing else."""

# Self-contained (not the store's PRELUDE): a released revision must do what it did
# when it was released, whatever the store's scripts become. KEYS[1] is the bucket's
# list order (every run of the bucket); the keys it derives are in its slot.
_DOWNGRADE = r"""
-- ARGV: bucket tag, first position, count, now, the cancel error text
local T, first, count, now, err = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4],
  ARGV[5]
local function hex(s)
  return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))
end
local members = redis.call('ZRANGE', KEYS[1], first, first + count - 1)
for _, m in ipairs(members) do
  local h = string.match(m, ':(%x+)$')
  local k = T .. ':run:' .. h
  local f = redis.call('HMGET', k, 'status', 'w_kind', 'parent')
  if f[1] then
    if f[3] then
      redis.call('UNLINK', T .. ':children:' .. hex(f[3]))
      redis.call('HDEL', k, 'parent', 'ppolicy')
    end
    local inbox = T .. ':inbox:' .. h
    for _, field in ipairs(redis.call('HKEYS', inbox)) do
      if string.sub(field, 1, 6) == 'child:' then
        redis.call('HDEL', inbox, field)
        redis.call('SREM', T .. ':consumed:' .. h, field)
      end
    end
    if f[1] == 'paused' and f[2] == 'child' then
      redis.call('HSET', k, 'status', 'cancelled', 'error', err, 'updated', now)
      redis.call('HDEL', k, 'ready', 'w_kind', 'w_step', 'w_key', 'w_wake', 'w_meta',
        'l_owner', 'l_token', 'l_exp')
      redis.call('ZREM', T .. ':status:paused', m)
      redis.call('ZADD', T .. ':status:cancelled', 0, m)
      for _, name in ipairs({'queued', 'leases', 'timers', 'deadlines'}) do
        redis.call('ZREM', T .. ':' .. name, h)
      end
      redis.call('ZADD', T .. ':terminal', now, h)
    end
  end
end
return #members
"""


async def upgrade(ctx: MigrationContext) -> None:
    """Nothing to transform (see the module docstring)."""


async def downgrade(ctx: MigrationContext) -> None:
    client = ctx.client
    found = await client.get(ctx.keys.meta("buckets"))
    ks = Keyspace(ctx.keys.prefix, int(found) if found is not None else ctx.keys.buckets)
    error = codec.encode_error(
        ErrorInfo(
            "Cancelled",
            f"the keyspace was downgraded below revision {revision} (child runs): "
            "the child run this run waited for can no longer reach it",
            "cancelled",
        )
    )
    # A migration has no caller's clock: the cancelled runs' updated_at is this
    # machine's, so retention counts their age from the downgrade.
    now = time.time_ns() // 1_000_000
    for k in range(ks.buckets):
        first = 0
        while True:
            done = cast(
                "int",
                await client.eval(
                    _DOWNGRADE, 1, ks.index(k, "created"), ks.tag(k), first, _BATCH, now, error
                ),
            )
            if done < _BATCH:
                break
            first += _BATCH
