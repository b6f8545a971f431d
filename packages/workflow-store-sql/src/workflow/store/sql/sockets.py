"""Telling a dead idle connection from a live one without a round trip.

A pooled connection the server (or a proxy, a NAT, a failover) closed while it sat idle
is found out only when the next operation uses it, and that operation then fails:
"Lost connection", "server closed the connection unexpectedly". Under a network that
resets connections, every pooled connection fails one operation that way, and a worker
counts each as a failed poll and backs off (MariaDB workers fell to 1-3 steps/s with
25.6 s back-offs, issue 18). The kernel already knows: the peer's FIN or RST makes the
socket readable. An idle database connection has nothing to read, so a readable one is
replaced before use, at the cost of one ``poll`` system call, no round trip.
"""

from __future__ import annotations

import select


def closed_by_peer(fd: int) -> bool:
    """Whether the idle connection on socket ``fd`` is to be replaced: readable (the
    peer closed or reset it, or sent something nobody asked for) or in error."""
    if fd < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    readable, _, errored = select.select([fd], [], [fd], 0)  # Windows: no poll
    return bool(readable or errored)
