"""watch(): which stores get a watcher; the doorbell that coalesces rings."""

from __future__ import annotations

import asyncio

import pytest

from workflow.runtime import Capability, ExecutionStore, InMemoryStore
from workflow.runtime.wakeups import Doorbell, watch


class _Polling(InMemoryStore):
    """A store that does not declare the capability (as SQLite and MySQL)."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset()


class _Lying(InMemoryStore):
    """Declares the capability without implementing it."""

    watch_runnable = None  # type: ignore[assignment]


async def test_watch_is_none_for_a_store_that_does_not_declare_the_capability() -> None:
    store: ExecutionStore = _Polling()
    assert watch(store) is None


async def test_watch_refuses_a_store_that_declares_without_implementing() -> None:
    with pytest.raises(TypeError, match="notify_runnable"):
        watch(_Lying())


async def test_many_rings_wake_one_wait_and_close_ends_the_waits() -> None:
    bell = Doorbell()
    for _ in range(5):
        bell.ring()
    assert await bell.wait() is True
    waiting = asyncio.ensure_future(bell.wait())
    await asyncio.sleep(0)
    assert not waiting.done()  # the five rings were one
    bell.close()
    assert await waiting is False
