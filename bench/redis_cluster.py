"""A Redis Cluster for the ``redis-cluster`` bench target: ``BENCH_REDIS_CLUSTER_URL``
when set (a running cluster), else 3 masters (no replicas) started from the installed
``redis-server`` on free loopback ports in a temporary directory and stopped
afterwards, as the Redis store's tests start theirs
(packages/workflow-store-redis/tests/local_cluster.py, which reports through pytest)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

MASTERS = 3
START_SECONDS = 60
"""How long a node may take to start and the cluster to agree."""


class ClusterMissing(Exception):
    """No cluster given and none can be started here (no redis-server/redis-cli)."""


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


def _cli(cli: str, port: int, *args: str) -> str:
    done = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout


def _says(cli: str, port: int, text: str, *command: str) -> bool:
    return text in _cli(cli, port, *command)


def _wait(what: str, ready: Callable[[], bool], root: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    tails = "\n".join(p.read_text()[-2000:] for p in sorted(root.glob("*.log")))
    raise RuntimeError(f"Redis Cluster setup: {what} did not happen in {START_SECONDS}s\n{tails}")


@contextlib.contextmanager
def _started() -> Iterator[str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise ClusterMissing(
            "redis-server or redis-cli is not installed (or set BENCH_REDIS_CLUSTER_URL)"
        )
    with tempfile.TemporaryDirectory(prefix="wf-bench-cluster-") as tmp:
        root = Path(tmp)
        ports: list[int] = []
        while len(ports) < MASTERS:
            port = _free_port()
            if port not in ports:
                ports.append(port)
        nodes: list[subprocess.Popen[bytes]] = []
        try:
            for port in ports:
                home = root / str(port)
                home.mkdir()
                config = home / "redis.conf"
                # No persistence: the bench measures the store, not the disk.
                config.write_text(
                    f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {home}\n"
                    "cluster-enabled yes\ncluster-config-file nodes.conf\n"
                    'cluster-node-timeout 5000\nappendonly no\nsave ""\n'
                )
                with (root / f"{port}.log").open("wb") as log:
                    nodes.append(subprocess.Popen([server, str(config)], stdout=log, stderr=log))
            for port in ports:
                _wait(
                    f"node {port} answering PING",
                    functools.partial(_says, cli, port, "PONG", "ping"),
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
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
            for port in ports:
                _wait(
                    f"node {port} reporting cluster_state:ok",
                    functools.partial(_says, cli, port, "cluster_state:ok", "cluster", "info"),
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
