"""A TCP proxy in front of a real server, for failure tests that must not depend on
timing: the test decides which byte stream breaks, and when.

``FaultProxy`` listens on a free loopback port and forwards every connection to the
real server. Its :attr:`~FaultProxy.mode` says what happens to the bytes that arrive
while it is in force:

* ``"pass"``: both directions forwarded as they come.
* ``"drop_replies"``: bytes from the client still reach the server (so the command
  runs), but the next bytes the server sends back are thrown away and both sides of
  that connection are closed: a reply lost after the server acted.
* ``"reset_requests"``: the next bytes a client sends are thrown away and both sides of
  that connection are closed: the command never reaches the server.

A fault fires once, on the first chunk that meets it: it sets
:attr:`~FaultProxy.fired` (so a test can assert that the fault it staged happened) and
puts the proxy back to ``"pass"``, so a client that silently sends the command again
would succeed, and a test can tell. Nothing here sleeps: a fault is tied to bytes, not
to a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Literal

Mode = Literal["pass", "drop_replies", "reset_requests"]
_CHUNK = 65536


class FaultProxy:
    """A loopback TCP proxy to ``(host, port)`` whose faults the test switches on."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.mode: Mode = "pass"
        self.fired = asyncio.Event()
        """Set when a fault fired (cleared by :meth:`set_mode`)."""
        self.connections = 0
        """Client connections accepted so far."""
        self.dropped = b""
        """The bytes the last fault threw away."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

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

        def cut() -> None:
            for w in (writer, up_writer):
                w.close()
                self._writers.discard(w)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, fault: Mode) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(_CHUNK):
                    if self.mode == fault:
                        self.mode = "pass"
                        self.dropped = data
                        self.fired.set()
                        break
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
