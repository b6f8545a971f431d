"""A real 3-master Redis Cluster for the tests, started from the installed
``redis-server`` on free loopback ports in a temporary directory.

A test module imports :func:`cluster_fixture` (fixture name ``redis_cluster_url``).
Each importing module holds its own session-scoped fixture, but they share one
cluster: the first starts it and the last to be torn down (at the end of the
session) stops it. (A conftest.py would clash with migrations/tests/conftest.py
under mypy's module names.)

Without ``redis-server``/``redis-cli`` a local run skips the cluster tests, and a CI
run (``CI=true``) fails them: in CI a missing server is a broken environment.
``WORKFLOW_TEST_REDIS_CLUSTER_URL`` points the tests at a running cluster instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from workflow.contract_tests.redis_cluster import (
    ClusterSetupError,
    ClusterUnavailable,
    local_redis_cluster,
)
from workflow.contract_tests.servers import missing, require_server
from workflow.store.redis.keys import Keyspace
from workflow.store.redis.store import RedisStore


def _missing(what: str) -> None:
    missing("server", f"{what}: cannot start a Redis Cluster for the cluster tests")


class _Shared:
    url: str | None = None
    users = 0
    stop: Iterator[str] | None = None


@pytest.fixture(scope="session", name="redis_cluster_url")
def cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("WORKFLOW_TEST_REDIS_CLUSTER_URL")
    if given:
        yield given
        return
    if _Shared.stop is None:
        started = _start(tmp_path_factory)
        _Shared.url = next(started)
        _Shared.stop = started
    _Shared.users += 1
    try:
        assert _Shared.url is not None
        yield _Shared.url
    finally:
        _Shared.users -= 1
        if _Shared.users == 0 and _Shared.stop is not None:
            stop, _Shared.stop, _Shared.url = _Shared.stop, None, None
            next(stop, None)  # runs _start's cleanup


def _start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the cluster; yields its URL once, and stops it when resumed."""
    try:
        with local_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
            yield url
    except ClusterUnavailable as exc:
        _missing(str(exc))
    except ClusterSetupError as exc:
        pytest.fail(f"Redis Cluster setup: {exc}")


STANDALONE_URL = os.environ.get("WORKFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def standalone_or_cluster(
    request: pytest.FixtureRequest, *, create: bool
) -> AsyncIterator[RedisStore]:
    """For a fixture parametrized ``["standalone", "cluster"]``: a store under a key
    prefix of its own on that server (its keyspace created when ``create``), its keys
    removed afterwards."""
    cluster = request.param == "cluster"
    if cluster:
        url = request.getfixturevalue("redis_cluster_url")
    else:
        require_server(STANDALONE_URL, "Redis", default_port=6379)
        url = STANDALONE_URL
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    store = RedisStore.from_url(url, prefix=prefix, cluster=cluster)
    if create:
        await store.create_schema()
    yield store
    # One key per UNLINK: on a cluster the keys live in different slots.
    async for key in store.client.scan_iter(match=Keyspace(prefix).pattern):
        await store.client.unlink(key)
    await store.close()
