"""A throwaway Redis Cluster for tests and benchmarks: masters (no replicas) started from
the installed ``redis-server`` on free loopback ports, in a directory the caller owns,
and stopped when the block ends.

The Redis store's own tests start theirs with it (and report through pytest), and so
does the ``redis-cluster`` bench target; an adapter author testing a Redis adapter on a
cluster can too. Needs ``redis-server`` and ``redis-cli`` (Redis 7), nothing from PyPI.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["ClusterSetupError", "ClusterUnavailable", "local_redis_cluster"]

START_SECONDS = 60
"""How long a node may take to start and the cluster to agree (setup, not a test)."""


class ClusterUnavailable(Exception):
    """``redis-server`` or ``redis-cli`` is not installed: no cluster can be started here."""


class ClusterSetupError(Exception):
    """The nodes started but did not form a cluster in time (the nodes' log tails attached)."""


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


def _says(cli: str, port: int, text: str, *command: str) -> bool:
    done = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return text in done.stdout


def _wait(what: str, ready: Callable[[], bool], root: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    tails = "\n".join(p.read_text()[-2000:] for p in sorted(root.glob("*.log")))
    raise ClusterSetupError(f"{what} did not happen in {START_SECONDS}s\n{tails}")


@contextlib.contextmanager
def local_redis_cluster(root: Path, *, masters: int = 3, persist: bool = True) -> Iterator[str]:
    """Start ``masters`` nodes under ``root`` (their homes and logs), form a cluster, and
    yield the URL of its first node; the nodes are stopped when the block ends.

    ``persist``: append-only files on (what the store's durability tests expect of a
    server); a benchmark turns them off to measure the store, not the disk.
    """
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise ClusterUnavailable("redis-server or redis-cli is not installed")
    ports: list[int] = []
    while len(ports) < masters:
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
                f"cluster-node-timeout 5000\nappendonly {'yes' if persist else 'no'}\n"
                'save ""\n'
            )
            # The node writes to its own copy of the descriptor; ours is closed at once.
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
            raise ClusterSetupError(
                f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}"
            )
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
