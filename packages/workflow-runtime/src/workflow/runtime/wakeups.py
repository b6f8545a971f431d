"""Wake-ups: a store telling idle workers that a run may have become claimable.

A worker polls ``claim_runnable``; that is the guarantee and stays one. A store that
can tell when a run became claimable in *any* process sharing its data declares
:attr:`Capability.NOTIFY_RUNNABLE` and implements :class:`RunnableNotifier`, so a
worker can claim at once instead of at its next poll (docs/semantics.md, "Wake-up
hints"). The in-memory store rings in process; PostgreSQL uses LISTEN/NOTIFY, Redis
pub/sub.

What the stores share lives here: :class:`Doorbell` (many rings, one yield) and
:class:`Watchers`, which runs a store's *session* (connect, subscribe, relay) for each
watcher, reconnects it when the connection drops, and ends every watcher when the
store closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol, runtime_checkable

from .contract import Capability, ExecutionStore

_log = logging.getLogger("workflow.runtime.wakeups")

RETRY_FIRST_S = 0.1
"""Seconds before the second attempt to reconnect a dropped listener (the first is
immediate: a killed connection usually comes back at once)."""
RETRY_MAX_S = 10.0
"""The longest wait between reconnect attempts (doubling from :data:`RETRY_FIRST_S`)."""


@runtime_checkable
class RunnableNotifier(Protocol):
    """A store that can tell when a run may have become claimable.

    ``watch_runnable()`` returns an async generator (so a consumer can ``aclose()``
    it) that yields ``None``:

    * once as soon as it listens (anything before that may have been missed), and
      again after each reconnect of its listener, for the same reason;
    * whenever, in any process sharing the store's data, a run may have become
      claimable: a run created (also by a schedule), a paused run queued by a signal,
      an approval or a fired timer, a run put back by ``settle_run`` (``Yield``, or a
      ``Pause`` whose wait an inbox entry already satisfies, which is how a worker
      gives a lease back early).

    It is a hint: yields may be spurious, and many transitions may coalesce into one
    yield while the consumer is busy. A lease that merely expires yields nothing (time
    passing is no write); polling finds it. The iterator survives a dropped listener
    connection (it reconnects, backing off while the server is unreachable) and ends
    when the store is closed or the consumer stops iterating (``aclose()``).
    """

    def watch_runnable(self) -> AsyncGenerator[None, None]: ...


def watch(store: ExecutionStore) -> AsyncGenerator[None, None] | None:
    """``store.watch_runnable()``, or ``None`` when the store does not declare
    :attr:`Capability.NOTIFY_RUNNABLE` (then polling is all there is)."""
    if Capability.NOTIFY_RUNNABLE not in store.capabilities:
        return None
    if not isinstance(store, RunnableNotifier):
        raise TypeError(
            f"{type(store).__name__} declares {Capability.NOTIFY_RUNNABLE.value!r} "
            "but has no watch_runnable()"
        )
    return store.watch_runnable()


class Doorbell:
    """A coalescing signal: any number of :meth:`ring` calls wake one :meth:`wait`."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()
        self._closed = False

    def ring(self) -> None:
        self._rung.set()

    def close(self) -> None:
        self._closed = True
        self._rung.set()

    async def wait(self) -> bool:
        """Wait for a ring; ``False`` once the bell is closed."""
        await self._rung.wait()
        self._rung.clear()
        return not self._closed


Session = Callable[[Callable[[], None]], Awaitable[None]]
"""A store's listener, run by :class:`Watchers`: connect, subscribe, call ``ring()``
once subscribed and then for each notification; return or raise when the connection
is gone (it is then run again). Cancelled when the watcher ends: close what it
opened on the way out."""


class Watchers:
    """The live watchers of one store handle."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._live: dict[Doorbell, asyncio.Task[None]] = {}
        self._closed = False

    async def watch(self, session: Session) -> AsyncGenerator[None, None]:
        """Yield after each ring of ``session`` (coalesced) until the store closes or
        the consumer stops."""
        if self._closed:
            return
        bell = Doorbell()
        task = asyncio.create_task(self._relay(session, bell), name=f"{self._what} watcher")
        self._live[bell] = task
        try:
            while await bell.wait():
                yield
        finally:
            del self._live[bell]
            task.cancel()
            # asyncio.wait, not `await task`: a CancelledError raised (and suppressed)
            # in here leaves Python 3.11's generator marked running after aclose().
            await asyncio.wait({task})

    async def _relay(self, session: Session, bell: Doorbell) -> None:
        delay = 0.0
        failures = 0

        def ring() -> None:
            nonlocal delay, failures
            delay, failures = 0.0, 0  # it listens again: the next drop retries at once
            bell.ring()

        while True:
            try:
                await session(ring)
                problem = "the connection ended"
            except Exception as exc:  # any failure: polling covers while we reconnect
                problem = f"{type(exc).__name__}: {exc}"
            failures += 1
            # The first drop of a streak is worth a warning; a server that stays down
            # would otherwise log every few seconds.
            level = logging.WARNING if failures == 1 else logging.DEBUG
            _log.log(level, "%s watcher: %s; reconnecting in %.1f s", self._what, problem, delay)
            await asyncio.sleep(delay)
            delay = RETRY_FIRST_S if delay == 0 else min(delay * 2, RETRY_MAX_S)

    async def close(self) -> None:
        """End every watcher (their iterators finish) and close their listeners."""
        self._closed = True
        tasks = list(self._live.values())
        for bell, task in self._live.items():
            bell.close()
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
