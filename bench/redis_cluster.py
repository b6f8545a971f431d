"""A Redis Cluster for the ``redis-cluster`` bench target: ``BENCH_REDIS_CLUSTER_URL``
when set (a running cluster), else 3 masters (no replicas) started from the installed
``redis-server`` on free loopback ports in a temporary directory and stopped
afterwards (workflow.contract_tests.redis_cluster, which the Redis store's tests use too)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from workflow.contract_tests.redis_cluster import ClusterUnavailable, local_redis_cluster


class ClusterMissing(Exception):
    """No cluster given and none can be started here (no redis-server/redis-cli)."""


@contextlib.contextmanager
def _started() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="wf-bench-cluster-") as tmp:
        try:
            # No persistence: the bench measures the store, not the disk.
            with local_redis_cluster(Path(tmp), persist=False) as url:
                yield url
        except ClusterUnavailable as exc:
            raise ClusterMissing(f"{exc} (or set BENCH_REDIS_CLUSTER_URL)") from exc


@contextlib.asynccontextmanager
async def cluster_url() -> AsyncIterator[str]:
    """The URL of a Redis Cluster's first node for the time of the block."""
    given = os.environ.get("BENCH_REDIS_CLUSTER_URL")
    if given:
        yield given
        return
    started = _started()
    url = await asyncio.to_thread(started.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(started.__exit__, None, None, None)
