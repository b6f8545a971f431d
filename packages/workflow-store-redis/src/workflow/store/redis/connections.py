"""How the store's redis-py client behaves when a connection dies: set here, by the
store, not inherited from redis-py's defaults (which changed under it: no retries in
5.x, three from 6.0, ten from 8.0; health checks and keepalive likewise).

Standalone (and a primary with replicas): **a store call sends its command at most
once.** A pooled connection the server has closed is replaced when it is checked out
(redis-py reads the closed socket first and reconnects): the call goes out on a fresh
connection and nobody notices. A command written to a connection that dies before its
reply arrives is not sent again: the call raises ``StoreUnavailableError`` (retryable),
because the script may have run, and only the caller knows whether running it again is
what it wants (docs/stores/redis.md, "Errors and lost replies", says what a second run
answers). No health-check ``PING``: it would cost a round trip and find nothing the
checkout does not, and redis-py runs it under the command's retry policy, so with no
retries a dead idle connection found by it would fail the call instead of reconnecting.

Cluster: redis-py's cluster client must retry to follow a failover or a resharding (a
node that stopped answering is replaced by its replica; the client reloads the slot
map and sends the command again), so a transition may run twice there; the same
answers apply. The budget is explicit, not redis-py's.

Every round trip is bounded by the store's ``operation_timeout`` (default
:data:`~workflow.runtime.timeouts.DEFAULT_OPERATION_TIMEOUT_S`): the socket timeout
(a reply that does not come within it fails the call and redis-py disconnects that
connection, so it is never reused), and the store's own deadline around the call,
for what the socket timeout does not cover.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from workflow.runtime.timeouts import DEFAULT_OPERATION_TIMEOUT_S

CONNECT_TIMEOUT_S = 10.0
"""Seconds to open a TCP connection before the call fails (``StoreUnavailableError``),
at most ``operation_timeout``."""
CLUSTER_RETRIES = 6
"""Attempts the cluster client adds after a connection error or timeout, backing off
10 ms doubling to 1 s (about 0.6 s in all, enough for the slot map to be reloaded)."""


def client_options(
    *, cluster: bool, operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S
) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url`` / ``RedisCluster.from_url``. Options in
    the URL's query string (``socket_timeout=…``) win over these. A reply is waited
    for ``operation_timeout`` seconds at most: a connection dropped without a reset
    (half-open, a black hole) fails the call instead of hanging it."""
    options: dict[str, Any] = {
        "socket_connect_timeout": min(CONNECT_TIMEOUT_S, operation_timeout),
        "socket_timeout": operation_timeout,
        "socket_keepalive": True,
        "health_check_interval": 0,
    }
    if cluster:
        options["retry"] = Retry(ExponentialBackoff(cap=1.0, base=0.01), CLUSTER_RETRIES)
    else:
        options["retry"] = Retry(NoBackoff(), 0)
    return options
