"""Network-fault checks every server store's failure tests run through a
:class:`~workflow.contract_tests.faults.FaultProxy` (PostgreSQL, MySQL, Redis).

Each takes a store whose URL points at the proxy, opened with a small
``operation_timeout`` (the store's bound is what ends the call: nothing here waits on a
clock of its own), and asserts what the issue of half-open connections asks for: a call
in a black hole fails with :class:`StoreUnavailableError` naming the operation and the
bound; the connection it used is never reused; the store works again once the network
heals.
"""

from __future__ import annotations

import pytest

from workflow.runtime.contract import ExecutionStore
from workflow.runtime.errors import StoreUnavailableError
from workflow.runtime.results import Claimed, Created

from .faults import FaultProxy

T0 = 1_700_000_000_000


async def black_holed_call_fails_within_its_bound(
    store: ExecutionStore, proxy: FaultProxy, bound: float, run_id: str
) -> None:
    """A claimed run's lease renewal sent into a black hole raises
    ``StoreUnavailableError`` naming "renew a lease" and the bound; after the network
    heals (the held connection passes again: a late reply could arrive on it) the next
    call runs on a new connection and sees the renewal either done or not, never an
    answer meant for another call."""
    assert isinstance(await store.create_run(run_id, "wf", None, None, T0), Created)
    claimed = await store.claim_run(run_id, "worker", 60_000, T0)
    assert isinstance(claimed, Claimed)
    before = proxy.connections
    proxy.set_mode("black_hole")
    with pytest.raises(StoreUnavailableError) as caught:
        await store.heartbeat(run_id, claimed.lease, 60_000, T0 + 1)
    error = caught.value
    assert proxy.fired.is_set(), "the call never reached the black hole"
    assert error.retryable
    assert "renew a lease" in str(error), str(error)
    assert f"operation_timeout={bound:g} s" in str(error), str(error)
    proxy.heal()
    loaded = await store.load_run(run_id)
    assert loaded is not None
    assert loaded.run_id == run_id
    assert loaded.lease is not None
    assert loaded.lease.expires_at in (T0 + 60_000, T0 + 1 + 60_000)
    # The timed-out connection was discarded: the read went out on a new one.
    assert proxy.connections > before, "the timed-out connection was reused"


async def black_hole_on_connect_fails_within_its_bound(
    store: ExecutionStore, proxy: FaultProxy, bound: float
) -> None:
    """A first call whose connection is opened into a black hole (the kernel accepts,
    nothing answers) fails within the bound too, then works once the network heals
    with the stale connections cut."""
    proxy.set_mode("black_hole")
    with pytest.raises(StoreUnavailableError) as caught:
        await store.load_run("absent")
    assert caught.value.retryable
    assert "read a run" in str(caught.value), str(caught.value)
    assert f"operation_timeout={bound:g} s" in str(caught.value), str(caught.value)
    proxy.heal(cut=True)
    assert await store.load_run("absent") is None
