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
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from workflow.contract_tests.servers import missing, require_server
from workflow.store.redis.keys import Keyspace
from workflow.store.redis.store import RedisStore

_MASTERS = 3
_START_SECONDS = 60
"""How long a node may take to start and the cluster to agree (setup, not a test)."""


def _missing(what: str) -> None:
    missing("server", f"{what}: cannot start a Redis Cluster for the cluster tests")


def _free_port() -> int:
    """A loopback port that is free, whose cluster-bus port (+10000) is free too."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _cli(cli: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _wait(what: str, ready: object, logs: Path) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if callable(ready) and ready():
            return
        time.sleep(0.1)
    tails = "\n".join(p.read_text()[-2000:] for p in sorted(logs.glob("*.log")))
    pytest.fail(f"Redis Cluster setup: {what} did not happen in {_START_SECONDS}s\n{tails}")


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
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        _missing("redis-server or redis-cli is not installed")
    assert server is not None
    assert cli is not None
    root = tmp_path_factory.mktemp("redis-cluster")
    ports: list[int] = []
    while len(ports) < _MASTERS:
        port = _free_port()
        if port not in ports:
            ports.append(port)
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            home = root / str(port)
            home.mkdir()
            config = home / "redis.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {home}\n"
                "cluster-enabled yes\ncluster-config-file nodes.conf\n"
                'cluster-node-timeout 5000\nappendonly yes\nsave ""\n'
            )
            # The node writes to its own copy of the descriptor; ours is closed at once.
            with (root / f"{port}.log").open("wb") as log:
                nodes.append(subprocess.Popen([server, str(config)], stdout=log, stderr=log))
        for port in ports:
            _wait(
                f"node {port} answering PING",
                lambda port=port: _cli(cli, port, "ping").stdout.strip() == "PONG",
                root,
            )
        created = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
        for port in ports:
            _wait(
                f"node {port} reporting cluster_state:ok",
                lambda port=port: "cluster_state:ok" in _cli(cli, port, "cluster", "info").stdout,
                root,
            )
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()


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
