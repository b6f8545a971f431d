"""A TCP proxy in front of a real server, for failure tests that must not depend on
timing: the test decides which byte stream breaks, and when.

``FaultProxy`` listens on a free loopback port and forwards every connection to the
real server. Its :attr:`~FaultProxy.mode` says what happens to the bytes that arrive
while it is in force:

* ``"pass"``: both directions forwarded as they come (after :attr:`~FaultProxy.latency`,
  if set: each chunk waits that long, plus up to :attr:`~FaultProxy.jitter`).
* ``"drop_replies"``: bytes from the client still reach the server (so the command
  runs), but the next bytes the server sends back are thrown away and both sides of
  that connection are closed: a reply lost after the server acted.
* ``"reset_requests"``: the next bytes a client sends are thrown away and both sides of
  that connection are closed: the command never reaches the server.
* ``"black_hole"``: every byte, either way, on every connection (new ones too), is
  swallowed and nothing is closed: a network that stopped delivering without a reset,
  as a partition or a half-open connection looks to the client (the kernel still
  accepts connections, so a connect succeeds and the first reply never comes).

The one-shot faults (``drop_replies``, ``reset_requests``) fire once, on the first chunk
that meets them: they set :attr:`~FaultProxy.fired` (so a test can assert that the
fault it staged happened) and put the proxy back to ``"pass"``, so a client that
silently sends the command again would succeed, and a test can tell. A black hole
stays until :meth:`~FaultProxy.heal` (or ``set_mode("pass")``); it sets ``fired`` when
it swallows its first bytes, so a test knows a call is stuck in it. :meth:`heal` either
cuts the connections the black hole held (``cut=True``: the network came back and the
peer's kernel answers the stale connection with a reset) or lets them pass again (the
network came back before either side gave up). Nothing here sleeps unless latency is
asked for: a fault is tied to bytes, not to a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Literal

Mode = Literal["pass", "drop_replies", "reset_requests", "black_hole"]
_CHUNK = 65536


class FaultProxy:
    """A loopback TCP proxy to ``(host, port)`` whose faults the test switches on."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream: tuple[str, int] = (host, port)
        self.mode: Mode = "pass"
        self.fired: asyncio.Event = asyncio.Event()
        """Set when a fault fired (cleared by :meth:`set_mode`)."""
        self.connections: int = 0
        """Client connections accepted so far."""
        self.dropped: bytes = b""
        """The bytes the last fault threw away."""
        self.swallowed: int = 0
        """Bytes the black holes swallowed so far."""
        self.latency: float = 0.0
        """Seconds each forwarded chunk waits (``"pass"``)."""
        self.jitter: float = 0.0
        """Up to this many more seconds, at random, per chunk."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._held: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def set_mode(self, mode: Mode) -> None:
        """Put ``mode`` in force for the bytes that arrive from now on."""
        self.mode = mode
        self.fired.clear()
        self.dropped = b""

    def heal(self, *, cut: bool = False) -> None:
        """End a black hole: bytes pass again. ``cut``: the connections it held are
        closed (the client sees a reset), as after a partition the peer forgot them."""
        self.set_mode("pass")
        held, self._held = self._held, []
        if cut:
            for pair in held:
                for w in pair:
                    w.close()
                    self._writers.discard(w)

    async def cut_all(self) -> None:
        """Close every connection open now, both sides (as a failover or a NAT that
        forgot them all), idle pooled connections too; returns once the sockets are
        closed, so a client's next call meets closed connections, not a race."""
        writers = list(self._writers)
        self._writers.clear()
        self._held.clear()
        for w in writers:
            w.close()
        for w in writers:
            with contextlib.suppress(OSError):
                await w.wait_closed()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        pair = (writer, up_writer)

        def cut() -> None:
            for w in pair:
                w.close()
                self._writers.discard(w)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, fault: Mode) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(_CHUNK):
                    if self.mode == "black_hole":
                        self.swallowed += len(data)
                        if pair not in self._held:
                            self._held.append(pair)
                        self.fired.set()
                        continue
                    if self.mode == fault:
                        self.mode = "pass"
                        self.dropped = data
                        self.fired.set()
                        break
                    if self.latency or self.jitter:
                        await asyncio.sleep(self.latency + random.uniform(0, self.jitter))
                    dst.write(data)
                    await dst.drain()
            cut()

        for task in (
            asyncio.create_task(pump(reader, up_writer, "reset_requests")),
            asyncio.create_task(pump(up_reader, writer, "drop_replies")),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


@contextlib.asynccontextmanager
async def fault_proxy(host: str, port: int) -> AsyncIterator[FaultProxy]:
    """A started :class:`FaultProxy` to ``(host, port)``, closed on exit."""
    proxy = await FaultProxy(host, port).start()
    try:
        yield proxy
    finally:
        await proxy.close()
