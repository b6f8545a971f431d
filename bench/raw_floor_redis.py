"""The raw floor on Redis: one EVALSHA (or one plain command) through redis.asyncio,
the client the store uses, with the same options, and no store code in between.

As on the SQL stores, the floor touches only the ``FLOOR_RUN`` run (a finished run no
operation reads) in the store's own keyspace:

- ``update_pk``: a script that sets one field of the run's hash and returns the hash
  (what ``UPDATE … RETURNING`` is on SQL);
- ``select_pk``: ``HGETALL`` of the run's hash (what ``load_run`` sends);
- ``select_page``: a script that reads the newest 51 members of the list-order
  index (of each bucket, merged, on the bucket layout) and returns each run's hash
  (one round trip).
"""

from __future__ import annotations

import itertools

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from .hot_ops import Call, Floor
from .raw_floor import FLOOR_RUN, PAGE_ROWS
from .redis_layout import Layout

_WRITE = """
redis.call('HSET', KEYS[1], 'updated', ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: the list-order indexes; ARGV: the page size, then per index the text before
# and after an escaped run id that makes its hash key. Members are
# "<15-digit created_at>:<run id hex>" (lex order is list order; the hex starts at
# byte 17): the newest ARGV[1] of each index are merged, newest first.
_PAGE = """
local limit = tonumber(ARGV[1])
local all = {}
for i, key in ipairs(KEYS) do
  local before, after = ARGV[2 * i], ARGV[2 * i + 1]
  for _, m in ipairs(redis.call('ZRANGE', key, '+', '-', 'BYLEX', 'REV', 'LIMIT', 0, limit)) do
    all[#all + 1] = {m, before .. string.sub(m, 17) .. after}
  end
end
table.sort(all, function(a, b) return a[1] > b[1] end)
local out = {}
for i = 1, math.min(limit, #all) do out[i] = redis.call('HGETALL', all[i][2]) end
return out
"""


class RedisFloor:
    driver = "redis.asyncio"

    def __init__(self, client: aioredis.Redis, layout: Layout) -> None:
        self._client = client
        self._layout = layout
        self._write: AsyncScript = client.register_script(_WRITE)
        self._page: AsyncScript = client.register_script(_PAGE)
        self._stamps = itertools.count(1)
        self.run_id = FLOOR_RUN

    @classmethod
    async def connect(cls, url: str, layout: Layout) -> RedisFloor:
        # The options RedisStore.from_url gives its own client.
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=10,
            socket_timeout=60,
            health_check_interval=30,
        )
        floor = cls(client, layout)
        # Load the scripts now, so no timed call pays for a NOSCRIPT retry.
        for script in (floor._write, floor._page):
            await client.script_load(script.script)
        return floor

    def statement(self, floor: Floor) -> str:
        if floor is Floor.WRITE:
            return f"EVALSHA <{_WRITE.strip()}> 1 <run hash> <stamp>"
        if floor is Floor.READ:
            return "HGETALL <run hash>"
        return f"EVALSHA <{_PAGE.strip()}> <created indexes> {PAGE_ROWS} <run key parts>"

    def call(self, floor: Floor) -> Call:
        run_key = self._layout.run(self.run_id)
        if floor is Floor.WRITE:

            async def write(i: int) -> object:
                return await self._write(keys=[run_key], args=[next(self._stamps)])

            return write
        if floor is Floor.READ:

            async def read(i: int) -> object:
                return await self._client.hgetall(run_key)

            return read
        indexes = self._layout.created_indexes()
        keys = [index for index, _, _ in indexes]
        args: list[str | int] = [PAGE_ROWS]
        for _, before, after in indexes:
            args += [before, after]

        async def page(i: int) -> object:
            return await self._page(keys=keys, args=args)

        return page

    async def server_version(self) -> str:
        info = await self._client.info("server")
        return f"Redis {info.get('redis_version', '?')}"

    async def close(self) -> None:
        await self._client.aclose()
