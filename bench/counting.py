"""Counting what a store sends per call: SQL statements, Redis round trips, or hops
to a connection's thread (SQLite).

A recorder is a context manager that collects one label per statement (SQL), per
round trip (Redis) or per hop (SQLite) made while it is open. Only the store's timed
calls run inside it (the benchmark is sequential there), so nothing else is counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from redis.asyncio import connection as redis_connection

from workflow.store.sql import SQLStore
from workflow.store.sql.statements import recording

Recorder = Callable[[], contextlib.AbstractContextManager[list[str]]]


def sql_recorder(store: SQLStore) -> Recorder:
    """The first word of every SQL statement the store sends (see
    ``workflow.store.sql.statements.recording``)."""
    return lambda: recording(store)


@contextlib.contextmanager
def all_statements(stores: Iterable[SQLStore]) -> Iterator[list[str]]:
    """What :func:`sql_recorder` collects, on every one of ``stores`` (the handles of
    several workers): the list is filled when the block ends."""
    total: list[str] = []
    with contextlib.ExitStack() as stack:
        seen = [stack.enter_context(recording(store)) for store in stores]
        try:
            yield total
        finally:
            for statements in seen:
                total.extend(statements)


@contextlib.contextmanager
def thread_hops() -> Iterator[list[str]]:
    """One label (the function's name) per callable handed to a thread pool: SQLite
    has no server, so hops to the connection's thread are its round trips. The store
    runs a whole operation in one hop (``loop.run_in_executor`` on the connection's
    single-thread ``ThreadPoolExecutor``, which goes through ``submit``).

    Patched on ``ThreadPoolExecutor.submit``, restored on exit: every executor counts
    (asyncio's default one too), so only the timed calls may run inside."""
    seen: list[str] = []
    original = ThreadPoolExecutor.submit

    def counted(
        self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        seen.append(getattr(fn, "__name__", type(fn).__name__))
        return original(self, fn, *args, **kwargs)

    ThreadPoolExecutor.submit = counted  # type: ignore[method-assign,assignment]
    try:
        yield seen
    finally:
        ThreadPoolExecutor.submit = original  # type: ignore[method-assign]


def _name(command: Iterable[Any]) -> str:
    first = next(iter(command), b"?")
    text = first.decode() if isinstance(first, bytes) else str(first)
    return text.split(None, 1)[0].upper()


@contextlib.contextmanager
def redis_round_trips() -> Iterator[list[str]]:
    """One label per round trip any redis-py asyncio connection sends: the command
    name (``EVALSHA``, ``HGETALL``), or ``PIPELINE[nxNAME,...]`` for a pipeline, which
    redis-py packs into one write and answers in one read.

    Patched on the connection class, because a pipeline packs its commands without
    going through ``Redis.execute_command``; restored on exit."""
    seen: list[str] = []
    cls = redis_connection.AbstractConnection
    pack_one, pack_many = cls.pack_command, cls.pack_commands
    inside = False
    """pack_commands packs each command with pack_command: those are not trips."""

    def pack_command(self: Any, *args: Any) -> Any:
        if not inside:
            seen.append(_name(args))
        return pack_one(self, *args)

    def pack_commands(self: Any, commands: Any) -> Any:
        nonlocal inside
        commands = list(commands)
        groups: dict[str, int] = {}
        for name in (_name(c) for c in commands):
            groups[name] = groups.get(name, 0) + 1
        seen.append("PIPELINE[" + ",".join(f"{n}x{k}" for k, n in groups.items()) + "]")
        inside = True
        try:
            return pack_many(self, commands)
        finally:
            inside = False

    cls.pack_command = pack_command  # type: ignore[method-assign]
    cls.pack_commands = pack_commands  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        cls.pack_command = pack_one  # type: ignore[method-assign]
        cls.pack_commands = pack_many  # type: ignore[method-assign]


def redis_commands(labels: Iterable[str]) -> int:
    """Commands behind round-trip labels (a pipeline of n commands counts n)."""
    total = 0
    for label in labels:
        if label.startswith("PIPELINE["):
            total += sum(int(part.split("x", 1)[0]) for part in label[9:-1].split(","))
        else:
            total += 1
    return total
