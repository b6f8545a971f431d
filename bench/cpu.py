"""CPU time, client side and server side.

- **client**: :func:`client_cpu_s`, the CPU time of this whole process (every thread:
  the event loop and SQLite's or PyMySQL's connection threads alike), from
  ``time.process_time``;
- **server**: :class:`ServerCpu`, the on-CPU time of the server processes (PostgreSQL
  backends) or threads (MariaDB/MySQL, one per connection) that serve **this
  process's** connections, and only those: the servers are shared with other work.
  Our connections are found by their local TCP ports (``/proc/self/net/tcp*`` and the
  sockets among ``/proc/self/fd``), the server tells which backend serves each port
  (``pg_stat_activity.client_port``, ``information_schema.PROCESSLIST.HOST``), and
  the kernel tells that backend's CPU time (``/proc/<pid>/schedstat``, nanoseconds).
  This needs the server on this machine (loopback, same kernel); elsewhere the
  server side is left out (``—``). Redis (:class:`RedisCpu`) serves every client on
  one thread, so its figure is the **whole server's** CPU time (``INFO cpu``,
  ``used_cpu_user + used_cpu_sys``): other clients' work counts too.

A sample is taken before and after a timed batch, outside its timing; a backend that
appeared in between counts from its start (connecting is part of the cost), one that
went away in between is lost (pools keep their connections, so none do in practice).
MariaDB hands a new connection a thread from its thread cache, whose counter holds
what it spent for earlier connections: there the sample before a batch covers every
thread of the server process (``/proc/<pid>/task``), so a reused thread counts from
where it stood. The monitoring connection's own backend is left out.
"""

from __future__ import annotations

import abc
import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]
import redis.asyncio as aioredis

from .stats import Spread, ratios

Sample = dict[int, float]
"""On-CPU seconds by server process or thread id."""


def client_cpu_s() -> float:
    """CPU seconds of this process so far (user + system, every thread)."""
    return time.process_time()


def _socket_inodes() -> set[int]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def local_ports(server_port: int) -> set[int]:
    """Local ports of this process's TCP connections to ``server_port``."""
    mine = _socket_inodes()
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, remote, inode = fields[1], fields[2], int(fields[9])
                    if inode in mine and int(remote.rsplit(":", 1)[1], 16) == server_port:
                        ports.add(int(local.rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def on_cpu_s(tid: int) -> float | None:
    """On-CPU seconds of a process or thread (``/proc/<id>/schedstat``), or None."""
    try:
        with open(f"/proc/{tid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _process_of(tid: int) -> int | None:
    """The process (thread group) a thread belongs to."""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def between(before: Sample, after: Sample) -> float:
    """Server CPU seconds spent between two samples."""
    return sum(max(0.0, t - before.get(tid, 0.0)) for tid, t in after.items())


@dataclass
class Meter:
    """What a timed batch cost in CPU: ``start()`` before it, ``stop()`` after it."""

    server: ServerCpu | None
    _client: float = 0.0
    _server: Sample | None = None

    async def start(self) -> None:
        self._server = None if self.server is None else await self.server.baseline()
        self._client = client_cpu_s()

    async def stop(self) -> tuple[float, float | None]:
        """(client seconds, server seconds or None) since ``start()``."""
        client = client_cpu_s() - self._client
        if self.server is None or self._server is None:
            return client, None
        return client, between(self._server, await self.server.sample())


Spent = tuple[float, float | None]
"""What a batch cost: (client seconds, server seconds or None)."""


def per_unit(spent: Spent, units: int) -> Spent:
    """A batch's cost divided by the units of work (runs, calls) it did."""
    client, server = spent
    return client / units, None if server is None else server / units


@dataclass(frozen=True)
class CpuCost:
    """CPU seconds per unit of work (a run, a call), the spread over rounds: this
    process (every thread) and the server (None: not measured)."""

    client: Spread
    server: Spread | None = None

    @classmethod
    def of(cls, per_round: Sequence[Spent]) -> CpuCost:
        """From each round's cost per unit (see :func:`per_unit`)."""
        client = Spread.of([c for c, _ in per_round])
        servers = [s for _, s in per_round if s is not None]
        if len(servers) != len(per_round):
            return cls(client)
        return cls(client, Spread.of(servers))

    @property
    def total(self) -> float | None:
        """Median client + median server seconds (None without the server side)."""
        return None if self.server is None else self.client.median + self.server.median

    def as_dict(self, scale: float = 1.0) -> dict[str, dict[str, float] | None]:
        """Medians and ranges, multiplied by ``scale`` (1e3: ms, 1e6: µs)."""

        def scaled(s: Spread | None) -> dict[str, float] | None:
            if s is None:
                return None
            return Spread(s.median * scale, s.low * scale, s.high * scale).as_dict()

        return {"client": scaled(self.client), "server": scaled(self.server)}


def cpu_ratio(theirs: Sequence[Spent], ours: Sequence[Spent]) -> Spread:
    """Round-by-round client CPU per unit, theirs over ours (paired rounds): at or
    above 1, ours costs no more CPU than theirs."""
    return ratios([c for c, _ in theirs], [c for c, _ in ours])


class ServerCpu(abc.ABC):
    """Samples the server CPU time spent for this process."""

    whole_server = False
    """True when the figure is the whole server's (other clients included)."""

    @abc.abstractmethod
    async def sample(self) -> Sample: ...

    async def baseline(self) -> Sample:
        """The sample before a batch: a superset of :meth:`sample` is fine, since
        :func:`between` only looks at what the sample after the batch holds."""
        return await self.sample()

    @abc.abstractmethod
    async def close(self) -> None: ...


class BackendCpu(ServerCpu):
    """Samples the CPU time of the server backends serving this process."""

    def __init__(self, port: int) -> None:
        self.port = port

    @abc.abstractmethod
    async def _backends(self, ports: set[int]) -> list[int]:
        """Ids (pid or thread id) of the backends serving these local ports, the
        monitor's own connection left out."""

    async def sample(self) -> Sample:
        ports = local_ports(self.port)
        out: Sample = {}
        for tid in await self._backends(ports) if ports else []:
            seconds = on_cpu_s(tid)
            if seconds is not None:
                out[tid] = seconds
        return out


class PostgresCpu(BackendCpu):
    def __init__(self, port: int, conn: psycopg.AsyncConnection[Any], own_pid: int) -> None:
        super().__init__(port)
        self._conn = conn
        self._own_pid = own_pid

    @classmethod
    async def open(cls, conninfo: Mapping[str, Any]) -> PostgresCpu | None:
        """None when the backends' CPU time cannot be read (server not on this host)."""
        conn = await psycopg.AsyncConnection.connect(
            autocommit=True, application_name="wf-bench-cpu", **conninfo
        )
        pid = conn.info.backend_pid
        if on_cpu_s(pid) is None:
            await conn.close()
            return None
        return cls(int(conninfo.get("port", 5432)), conn, pid)

    async def _backends(self, ports: set[int]) -> list[int]:
        cur = await self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s) AND pid <> %s",
            (sorted(ports), self._own_pid),
        )
        return [int(row[0]) for row in await cur.fetchall()]

    async def close(self) -> None:
        await self._conn.close()


class MySQLCpu(BackendCpu):
    """MariaDB/MySQL: one server thread per connection (``thread_handling`` of
    one-thread-per-connection, the default); ``PROCESSLIST.TID`` is MariaDB's."""

    def __init__(self, port: int, conn: Any, server_pid: int | None = None) -> None:
        super().__init__(port)
        self._conn = conn
        self._lock = asyncio.Lock()
        self._server_pid = server_pid
        """The server process (its threads are ``/proc/<pid>/task``), if known."""

    @classmethod
    async def open(cls, params: Mapping[str, Any]) -> MySQLCpu | None:
        def connect() -> tuple[Any, int | None]:
            conn = pymysql.connect(autocommit=True, **params)
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT TID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
                    )
                    row = cur.fetchone()
            except pymysql.MySQLError:  # MySQL: no TID column
                row = None
            return conn, None if row is None else int(row[0])

        conn, tid = await asyncio.to_thread(connect)
        if tid is None or on_cpu_s(tid) is None:
            await asyncio.to_thread(conn.close)
            return None
        return cls(int(params.get("port", 3306)), conn, _process_of(tid))

    async def baseline(self) -> Sample:
        """Every thread of the server process, ours among them: a cached thread that
        starts serving one of our connections during the batch counts from here."""
        out = await self.sample()
        if self._server_pid is None:
            return out
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{self._server_pid}/task")]
        except OSError:
            return out
        for tid in tids:
            if tid not in out:
                seconds = on_cpu_s(tid)
                if seconds is not None:
                    out[tid] = seconds
        return out

    async def _backends(self, ports: set[int]) -> list[int]:
        def query() -> list[int]:
            with self._conn.cursor() as cur:
                cur.execute(
                    "SELECT TID, HOST FROM information_schema.PROCESSLIST"
                    " WHERE ID <> CONNECTION_ID()"
                )
                rows = cur.fetchall()
            out = []
            for tid, host in rows:
                _, _, port = str(host or "").rpartition(":")
                if port.isdigit() and int(port) in ports:
                    out.append(int(tid))
            return out

        async with self._lock:
            return await asyncio.to_thread(query)

    async def close(self) -> None:
        await asyncio.to_thread(self._conn.close)


class RedisCpu(ServerCpu):
    """The whole Redis server's CPU time (``INFO cpu``): one process serves every
    client, so other clients' work counts too."""

    whole_server = True

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    @classmethod
    async def open(cls, url: str) -> RedisCpu:
        return cls(aioredis.Redis.from_url(url))

    async def sample(self) -> Sample:
        info = await self._client.info("cpu")
        return {0: float(info["used_cpu_user"]) + float(info["used_cpu_sys"])}

    async def close(self) -> None:
        await self._client.aclose()
