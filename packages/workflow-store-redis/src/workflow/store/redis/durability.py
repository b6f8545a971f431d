"""Whether the Redis server keeps what the store writes: checked when a store opens.

The store is as durable as the server's persistence (docs/stores/redis.md has the
table). Without the append-only file a restart loses acknowledged claims, settles and
deliveries; an eviction policy can remove a run's keys while the indexes still name
it. Reading the settings needs ``CONFIG GET``, which managed services may disable:
then the check says it could not tell, rather than guess.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from redis import exceptions as rex
from redis.asyncio.cluster import ClusterNode, RedisCluster

from .migrator import Client

SETTINGS = ("appendonly", "appendfsync", "maxmemory-policy")

log: logging.Logger = logging.getLogger("workflow.durability")
"""Where the warnings go: a name of its own, so an application (or a read-only command
of the ``workflow`` CLI) can silence them without silencing the store's other logs."""

_warned: set[tuple[str, str]] = set()
"""(server, problem) pairs already warned about in this process."""
_warned_lock = threading.Lock()


def warn_once(url_hint: str, found: list[str]) -> None:
    """Log each of ``found`` for the server of ``url_hint``, unless this process has
    already: the settings are the server's, so a process that opens many stores on it
    (every ``workflow`` command, a worker reconnecting) says so once, not each time."""
    parts = urlsplit(url_hint)
    server = f"{parts.scheme}://{parts.netloc}"
    for problem in found:
        with _warned_lock:
            if (server, problem) in _warned:
                continue
            _warned.add((server, problem))
        log.warning("Redis at %s may lose acknowledged writes: %s", url_hint, problem)


async def read_settings(client: Client, node: ClusterNode | None = None) -> dict[str, str] | None:
    """The persistence settings (of one node of a cluster), or ``None`` when the server
    does not let us read them."""
    try:
        found: dict[str, str] = {}
        for name in SETTINGS:
            if isinstance(client, RedisCluster):
                reply = await client.config_get(name, target_nodes=node)
            else:
                reply = await client.config_get(name)
            found.update({str(k): str(v) for k, v in reply.items() if v is not None})
        return found
    except rex.ResponseError:  # CONFIG renamed or disabled, or not allowed by ACL
        return None


async def all_problems(client: Client) -> list[str]:
    """:func:`problems` of the server, or of every primary of a cluster (each named:
    one primary without the append-only file loses its slots' writes on a restart)."""
    if not isinstance(client, RedisCluster):
        return problems(await read_settings(client))
    await client.initialize()  # learns the nodes (a no-op once it knows them)
    found: list[str] = []
    for node in client.get_primaries():
        found.extend(f"node {node.name}: {p}" for p in problems(await read_settings(client, node)))
    return found


def problems(settings: Mapping[str, str] | None) -> list[str]:
    """What in ``settings`` can lose acknowledged writes (empty: nothing found)."""
    if settings is None:
        return [
            "could not read the server's persistence settings (CONFIG GET refused): "
            "make sure appendonly is yes and maxmemory-policy is noeviction"
        ]
    found: list[str] = []
    if settings.get("appendonly") != "yes":
        found.append(
            "appendonly is not yes: a Redis restart loses what the last snapshot does not "
            "hold (claims, settles, deliveries)"
        )
    elif settings.get("appendfsync") not in {"always", "everysec"}:
        found.append(
            f"appendfsync is {settings.get('appendfsync')!r}: a machine crash can lose "
            "more than a second of writes"
        )
    policy = settings.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        found.append(
            f"maxmemory-policy is {policy!r}: Redis may evict a run's keys while the "
            "store's indexes still name it; use noeviction"
        )
    return found
