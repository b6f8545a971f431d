"""Wake-ups: a store telling idle workers that a run may have become claimable.

A worker polls ``claim_runnable``; that is the guarantee and stays one. A store that
can tell when a run became claimable in *any* process sharing its data declares
:attr:`Capability.NOTIFY_RUNNABLE` and implements :class:`RunnableNotifier`, so a
worker can claim at once instead of at its next poll (docs/semantics.md, "Wake-up
hints"). The in-memory store rings in process; PostgreSQL uses LISTEN/NOTIFY, Redis
pub/sub.

What the stores share lives here: :class:`Doorbell` (many rings, one yield),
:class:`Hub`, which runs a store's *session* (connect, subscribe, relay) **once per
process** for every watcher of every handle on the same data (a key the store gives),
fans its hints out, reconnects it when the connection drops and hands workers their
claims in turns (:class:`Turns`: one claim per hint, not one per worker), and
:class:`Watchers`, a handle's watchers, ended when the store closes.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

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
      an approval, a fired timer or the end of the child it waits for, a run put
      back by ``settle_run`` (``Yield``, or a ``Pause`` whose wait an inbox entry
      already satisfies, which is how a worker gives a lease back early).

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
"""A store's listener, run by a :class:`Hub`: connect, subscribe, call ``ring()``
once subscribed and then for each notification; return or raise when the connection
is gone (it is then run again). Cancelled when the hub ends: close what it opened on
the way out."""

Free = Callable[[], int]
"""A claimer's free drive slots right now (0: it would claim nothing)."""

_HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Hub]] = (
    weakref.WeakKeyDictionary()
)
"""The live hubs of each event loop by key (a listener belongs to the loop it runs on)."""


class Turns:
    """A claimer's share of its hub's hints (a worker: see :meth:`Watch.take_turns`).

    A hint is one run (or a few) made claimable; N workers claiming on each would send
    N claims where one finds the work. The hub instead hands the process's next claim
    to **one** claimer with a free slot (:attr:`granted`, in turn); a claim that comes
    back full (there may be more) hands it on to the next, and a hint that finds every
    slot busy waits until one frees (:meth:`slot_freed`). Every claim a claimer makes,
    granted or not, reports how it went (:meth:`claiming`, :meth:`claimed`): a claim
    that came back short served every hint received before it was sent."""

    def __init__(self, hub: Hub, bell: Doorbell, free: Free, peer: object = None) -> None:
        self._hub = hub
        self.bell: Doorbell = bell
        self.free: Free = free
        self.peer: object = peer
        """The claimer itself (a worker), for the others to find (:meth:`peers`)."""
        self.granted: bool = False
        """Whether the hub handed this claimer the process's next claim."""

    def claiming(self) -> int:
        """Call right before sending a claim: its token for :meth:`claimed`."""
        return self._hub.hints

    def claimed(self, token: int, full: bool | None) -> None:
        """The claim of ``token`` came back full (``True``: there may be more), short
        (``False``: nothing else was runnable when it was sent), or failed (``None``:
        the hints it should have served are left to the next claim or poll)."""
        self._hub.claimed(self, token, full)

    def pass_on(self) -> None:
        """Give back a granted turn without claiming (no free slot after all)."""
        self._hub.release(self)

    def slot_freed(self) -> None:
        """A drive slot of this claimer is free: a waiting hint may be served now."""
        self._hub.dispatch()

    def peers(self) -> list[object]:
        """The other claimers of this hub (their :attr:`peer`), in turn order."""
        return self._hub.peers(self)


class Hub:
    """One listener per event loop and store key (the data the store's notifications
    are about: a PostgreSQL channel on a server, a Redis prefix …), shared by every
    watcher of every store handle with that key, fanned out here.

    Plain watchers (``watch_runnable()`` consumers) are rung on every hint. Claimers
    (workers, :class:`Turns`) take hints in turns. The session of the oldest live
    watcher runs; it is run again (backing off) whenever it ends, and cancelled once
    the last watcher leaves."""

    def __init__(self, what: str, key: Hashable, hubs: dict[Hashable, Hub]) -> None:
        self._what = what
        self._key = key
        self._hubs = hubs
        self._subs: dict[Doorbell, Session] = {}
        self._claimers: list[Turns] = []
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._next = 0
        self._holder: Turns | None = None
        self.hints: int = 0
        """Hints received (a reconnect and a full claim count as one: something may
        be runnable that no notification told of)."""
        self.served: int = 0
        """Hints a short claim covered (every hint up to it)."""
        self.sessions: int = 0
        """Sessions (listener connections) started: one per hub unless reconnected."""
        self.granted: int = 0
        """Turns handed out."""

    @staticmethod
    def of(key: Hashable) -> Hub | None:
        """The live hub of ``key`` on the running loop (``None``: nobody watches)."""
        return _HUBS.get(asyncio.get_running_loop(), {}).get(key)

    def join(
        self, bell: Doorbell, session: Session, free: Free | None, peer: object = None
    ) -> Turns | None:
        self._subs[bell] = session
        turns = None
        if free is not None:
            turns = Turns(self, bell, free, peer)
            self._claimers.append(turns)
        if self._task is None:
            self._task = asyncio.create_task(self._relay(), name=f"{self._what} listener")
        elif self._listening:
            bell.ring()  # the hub listens already: so does this watcher, from now on
        return turns

    async def leave(self, bell: Doorbell) -> None:
        """Remove ``bell`` (idempotent); the last one out stops the listener."""
        if self._subs.pop(bell, None) is None:
            return
        for turns in [t for t in self._claimers if t.bell is bell]:
            self._claimers.remove(turns)
            if self._holder is turns:
                self._holder = None
                self.dispatch()
        if self._subs or self._task is None:
            return
        task, self._task = self._task, None
        if self._hubs.get(self._key) is self:
            del self._hubs[self._key]
        task.cancel()
        # asyncio.wait, not `await task`: a CancelledError raised (and suppressed)
        # in here leaves Python 3.11's generator marked running after aclose().
        await asyncio.wait({task})

    # -- the listener ----------------------------------------------------------------
    async def _relay(self) -> None:
        delay = 0.0
        failures = 0
        while self._subs:
            subscribed = False

            def ring() -> None:
                nonlocal delay, failures, subscribed
                if subscribed:
                    self._hinted()
                    return
                subscribed = True
                delay, failures = 0.0, 0  # it listens again: the next drop retries at once
                self._subscribed()

            session = next(iter(self._subs.values()))
            self.sessions += 1
            try:
                await session(ring)
                problem = "the connection ended"
            except Exception as exc:  # any failure: polling covers while we reconnect
                problem = f"{type(exc).__name__}: {exc}"
            finally:
                self._listening = False
            failures += 1
            # The first drop of a streak is worth a warning; a server that stays down
            # would otherwise log every few seconds.
            level = logging.WARNING if failures == 1 else logging.DEBUG
            _log.log(level, "%s watcher: %s; reconnecting in %.1f s", self._what, problem, delay)
            await asyncio.sleep(delay)
            delay = RETRY_FIRST_S if delay == 0 else min(delay * 2, RETRY_MAX_S)

    def _subscribed(self) -> None:
        """Listening (again): whatever happened before may have been missed."""
        self._listening = True
        for bell in self._subs:
            bell.ring()
        self._hinted()

    def _hinted(self) -> None:
        claimers = {t.bell for t in self._claimers}
        for bell in self._subs:
            if bell not in claimers:
                bell.ring()
        self.hints += 1
        self.dispatch()

    # -- turns -----------------------------------------------------------------------
    def peers(self, asking: Turns) -> list[object]:
        n = len(self._claimers)
        ordered = [self._claimers[(self._next + i) % n] for i in range(n)]
        return [t.peer for t in ordered if t is not asking and t.peer is not None]

    def dispatch(self) -> None:
        """Hand the next claim to one claimer with a free slot, if a hint waits for
        one and no claimer holds the turn."""
        if self._holder is not None or self.hints <= self.served or not self._claimers:
            return
        n = len(self._claimers)
        for i in range(n):
            turns = self._claimers[(self._next + i) % n]
            if turns.free() > 0:
                self._next = (self._next + i + 1) % n
                self._holder = turns
                turns.granted = True
                self.granted += 1
                turns.bell.ring()
                return

    def claimed(self, turns: Turns, token: int, full: bool | None) -> None:
        if full is True:
            self.hints += 1  # more may be runnable than that claim could take
        elif full is False:
            self.served = max(self.served, token)
        if self._holder is turns:
            self._holder = None
            turns.granted = False
        if full is not None:
            # A failed claim does not pass the turn on at once: the next claimer would
            # most likely fail the same way; the next hint, freed slot or poll retries.
            self.dispatch()

    def release(self, turns: Turns) -> None:
        if self._holder is turns:
            self._holder = None
            turns.granted = False
            self.dispatch()


class Watch(AsyncGenerator[None, None]):
    """What ``watch_runnable()`` returns on the stores built on :class:`Watchers`: an
    async generator yielding ``None`` on hints, which a worker can also ask to take
    hints in turns with the other workers of its process (:meth:`take_turns`)."""

    def __init__(self, watchers: Watchers, session: Session, key: Hashable) -> None:
        self._free: Free | None = None
        self._peer: object = None
        self.turns: Turns | None = None
        """The claimer's share once the watch listens (with :meth:`take_turns`)."""
        self.hub: Hub | None = None
        """The listener this watch is fanned out from, while it runs."""
        self._gen = watchers.iterate(self, session, key)

    def take_turns(self, free: Free, peer: object = None) -> None:
        """Join as a claimer (before the first iteration): yield when the hub hands
        this worker a turn (:attr:`Turns.granted`) or when it (re)subscribes, not on
        every hint. ``free`` tells the hub whether this claimer could claim now;
        ``peer`` (the worker) is what the other claimers find in :meth:`Turns.peers`."""
        self._free = free
        self._peer = peer

    async def __anext__(self) -> None:
        return await self._gen.__anext__()

    async def asend(self, value: None) -> None:
        return await self._gen.asend(value)

    async def athrow(self, typ: Any, val: Any = None, tb: TracebackType | None = None, /) -> None:
        if val is None and tb is None:
            return await self._gen.athrow(typ)
        return await self._gen.athrow(typ, val, tb)

    async def aclose(self) -> None:
        return await self._gen.aclose()


class Watchers:
    """The live watchers of one store handle, each joined to its process's
    :class:`Hub` for the store's key (a key of ``None``: a hub of its own)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._live: dict[Doorbell, Hub] = {}
        self._closed = False

    def watch(self, session: Session, key: Hashable | None = None) -> Watch:
        """Yield after each ring of the hub's session (coalesced) until the store
        closes or the consumer stops. ``key``: what watchers of other handles may share
        the listener with (equal keys: the same notifications)."""
        return Watch(self, session, object() if key is None else key)

    async def iterate(
        self, watch: Watch, session: Session, key: Hashable
    ) -> AsyncGenerator[None, None]:
        if self._closed:
            return
        hubs = _HUBS.setdefault(asyncio.get_running_loop(), {})
        hub = hubs.get(key)
        if hub is None:
            hub = hubs[key] = Hub(self._what, key, hubs)
        bell = Doorbell()
        self._live[bell] = hub
        watch.hub = hub
        watch.turns = hub.join(bell, session, watch._free, watch._peer)
        try:
            while await bell.wait():
                yield
        finally:
            self._live.pop(bell, None)
            watch.turns = watch.hub = None
            await hub.leave(bell)

    async def close(self) -> None:
        """End every watcher (their iterators finish) and leave their hubs: a hub no
        other handle watches closes its listener before this returns."""
        self._closed = True
        live = list(self._live.items())
        self._live.clear()
        for bell, hub in live:
            bell.close()
            await hub.leave(bell)
