"""Wake-up hints on Redis: PUBLISH from the scripts, a pub/sub subscriber per watcher.

The scripts that make a run claimable (``create_run``, a schedule's firing, a
delivery or a timer that queues a paused run, a settle that leaves the run
``queued``) PUBLISH once per call on the prefix's channel (``lua.PRELUDE``'s
``wake``), inside the script: no extra round trip, and nothing is published by a
script that changed nothing. Pub/sub is fire-and-forget, so a message published
while a subscriber reconnects is lost: the watcher yields once after each
(re)subscription, and polling stays the guarantee.

On a Redis Cluster, PUBLISH (not the sharded SPUBLISH) is broadcast over the cluster
bus to every node, so a subscriber on any node hears the scripts of every slot; the
subscriber picks the primaries in turn, moving on when one stops answering.

Each subscriber is a connection of its own (subscribed connections can do nothing
else), named ``CLIENT SETNAME`` :func:`client_name` so an operator finds it in
``CLIENT LIST``, and with no retries: a dropped connection surfaces here, where the
watcher reconnects and yields, rather than being re-subscribed silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

IDLE_S = 30.0
"""Seconds without a message after which the subscriber PINGs; no reply within as
long again means the connection is dead (a peer gone without a FIN), and it
reconnects."""


def channel_for(prefix: str) -> str:
    """The pub/sub channel of the keyspace with ``prefix`` (what the scripts' ``wake``
    derives from a bucket tag ``prefix{b<k>}``)."""
    return f"{prefix}runnable"


def client_name(prefix: str) -> str:
    """The subscriber's ``CLIENT SETNAME``: a prefix is printable ASCII without
    spaces, which is what Redis accepts in a name."""
    return f"workflow-watch:{prefix}"


def session(
    connection_class: type[Any], kwargs: Mapping[str, Any], channel: str, name: str
) -> Callable[[Callable[[], None]], Any]:
    """A :data:`workflow.runtime.wakeups.Session` subscribed to ``channel`` on the
    server a connection of ``connection_class`` with ``kwargs`` reaches."""
    options = {**kwargs, "client_name": name, "retry": Retry(NoBackoff(), 0)}

    async def listen(ring: Callable[[], None]) -> None:
        pool: aioredis.ConnectionPool = aioredis.ConnectionPool(
            connection_class=connection_class, max_connections=1, **options
        )
        client = aioredis.Redis(connection_pool=pool)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=IDLE_S)
                if message is None:
                    if pinged:
                        raise RedisConnectionError(f"no reply to PING within {IDLE_S} s")
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False
                if message["type"] in ("subscribe", "message"):
                    # subscribe: listening from now on (something may have been missed)
                    ring()
        finally:
            await pubsub.aclose()
            await client.aclose()
            await pool.aclose()

    return listen
