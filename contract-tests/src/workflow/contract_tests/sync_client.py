"""The :class:`~workflow.runtime.sync_client.SyncClient` cases, called from plain threads
(no event loop in the test): each store's tests run them with a client on its store
(``open_client(workflows)`` returns a new client on fresh data shared by every client
it opens in that test).

Waits are bounded by :data:`GUARD_S` only to turn a hang into a failure; no assertion
depends on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from workflow.runtime import (
    JSON,
    Buffered,
    Context,
    Delivered,
    Duplicate,
    InvalidArgumentError,
    RunFailedError,
    RunStatus,
    Workflow,
    approval_id_for,
    workflow,
)
from workflow.runtime.sync_client import StoreOpener, SyncClient

GUARD_S = 30.0

OpenClient = Callable[[Iterable[Workflow[Any, Any]]], SyncClient]


@workflow("sync-review")
async def review(ctx: Context, input: JSON) -> JSON:
    """Waits for a signal, then an approval; returns both answers."""
    name = await ctx.wait_for_signal("name")
    decision = await ctx.wait_for_approval("ship it?", step_id="review")
    shout = await ctx.step("shout", lambda: str(name).upper())
    return {"input": input, "name": shout, "approved": decision.approved}


@workflow("sync-double")
async def double(ctx: Context, input: JSON) -> JSON:
    return await ctx.step("double", lambda: 2 * int(str(input)))


CALLED_FROM_STEP: list[SyncClient] = []
"""The client the ``sync-reentrant`` workflow's step calls (set by its case)."""


@workflow("sync-reentrant")
async def reentrant(ctx: Context, input: JSON) -> JSON:
    async def call_the_client() -> str:
        try:
            CALLED_FROM_STEP[0].load("any")
        except InvalidArgumentError as exc:
            return str(exc)
        return "answered"

    return await ctx.step("call", call_the_client)


def in_threads(count: int, work: Callable[[int], JSON]) -> list[JSON]:
    """``work(0..count-1)``, each on a plain thread of its own, all at once; their
    answers in order (an exception in any thread is re-raised here)."""
    results: list[JSON] = [None] * count
    errors: list[BaseException] = []
    gate = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            gate.wait(GUARD_S)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD_S * 2)
        assert not thread.is_alive(), "a client call hung"
    if errors:
        raise errors[0]
    return results


def check_start_and_result_from_threads(open_client: OpenClient) -> None:
    """Eight threads start a run each and block on its result while the client's
    worker drives them."""
    with open_client([double]) as client:
        client.run_worker(poll_interval=0.05)
        answers = in_threads(
            8,
            lambda i: client.result(client.start("sync-double", i).run_id, wait=GUARD_S),
        )
        assert answers == [2 * i for i in range(8)]


def check_signal_and_approve_from_threads(open_client: OpenClient) -> None:
    """Runs started by one client are signalled and approved from other threads (a web
    request each), and driven by another client's worker: every call crosses threads
    and clients, and the answers arrive in the runs' results."""
    with open_client([review]) as web, open_client([review]) as worker:
        worker.run_worker(poll_interval=0.05)
        runs = [web.start("sync-review", i).run_id for i in range(4)]

        def answer(i: int) -> JSON:
            run_id = runs[i]
            # Delivered, or Buffered when it comes before the worker reached the wait.
            first = web.signal(run_id, "name", f"user{i}", signal_id="s")
            assert isinstance(first, Delivered | Buffered)
            # The same delivery again (a retried request) is not a second signal.
            assert isinstance(web.signal(run_id, "name", "again", signal_id="s"), Duplicate)
            # The approval's wait is recorded only once the worker ran the signal: the
            # answer may come first and is kept for the wait.
            web.approve(run_id, approval_id_for(run_id, "review"), approved=i % 2 == 0)
            return web.result(run_id, wait=GUARD_S)

        assert in_threads(4, answer) == [
            {"input": i, "name": f"USER{i}", "approved": i % 2 == 0} for i in range(4)
        ]


def check_cancel_from_a_thread(open_client: OpenClient) -> None:
    """A run waiting for a signal is cancelled from a thread; its result says so."""
    with open_client([review]) as client:
        client.run_worker(poll_interval=0.05)
        run_id = client.start("sync-review", None).run_id
        in_threads(1, lambda _: client.cancel(run_id, "not needed").__class__.__name__)
        with pytest.raises(RunFailedError) as failed:
            client.result(run_id, wait=GUARD_S)
        assert failed.value.run.status is RunStatus.CANCELLED


def check_worker_stops_and_runs_again(open_client: OpenClient) -> None:
    """``stop()`` returns once the worker ended (a run started after it stays queued);
    ``run_worker()`` again drives that run."""
    with open_client([double]) as client:
        client.run_worker(poll_interval=0.05)
        assert client.result(client.start("sync-double", 1).run_id, wait=GUARD_S) == 2
        client.stop()
        assert not client.worker_running
        run_id = client.start("sync-double", 5).run_id
        run = client.load(run_id)
        assert run is not None
        assert run.status is RunStatus.QUEUED
        client.run_worker(poll_interval=0.05)
        assert client.result(run_id, wait=GUARD_S) == 10


def check_closed_client_refuses_calls(open_client: OpenClient) -> None:
    client = open_client([double])
    client.close()
    client.close()  # idempotent
    with pytest.raises(InvalidArgumentError, match="closed"):
        client.start("sync-double", 1)


def check_a_call_from_its_own_loop_is_refused(open_client: OpenClient) -> None:
    """An async step runs on the client's loop: a blocking call to the client from there
    would wait for itself for ever, so it is refused (the step returns the message)."""
    with open_client([reentrant]) as client:
        CALLED_FROM_STEP[:] = [client]
        client.run_worker(poll_interval=0.05)
        answer = client.result(client.start("sync-reentrant").run_id, wait=GUARD_S)
        assert isinstance(answer, str)
        assert "its own loop" in answer


ALL_CASES = [
    check_start_and_result_from_threads,
    check_signal_and_approve_from_threads,
    check_cancel_from_a_thread,
    check_worker_stops_and_runs_again,
    check_closed_client_refuses_calls,
    check_a_call_from_its_own_loop_is_refused,
]
"""Every case (:class:`SyncClientTests` runs them all)."""


class SyncClientTests:
    """Every case on a store: subclass it as ``Test...`` in the store's tests and give
    the ``store_opener`` fixture, an async function that opens a new handle on the
    test's data (each client opens its own, on its own loop)."""

    @pytest.fixture
    def store_opener(self) -> StoreOpener:
        raise NotImplementedError("override the store_opener fixture in the store's tests")

    @pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.__name__)
    def test_sync_client(
        self, case: Callable[[OpenClient], None], store_opener: StoreOpener
    ) -> None:
        case(lambda workflows: SyncClient(store_opener, workflows))
