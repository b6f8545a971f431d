"""The runtime for code that does not run an event loop (Flask, Django, scripts).

A :class:`SyncClient` owns an event loop on a thread of its own. The store is opened
on that loop and used only there (the asyncio drivers' connections belong to the loop
that made them); every method hands its call to the loop and blocks the calling thread
until it is answered. Any number of threads may call one client at once: the calls
run concurrently on its loop, as they would in an async application.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from .contract import ExecutionStore
from .definitions import Workflow
from .driver import Runtime
from .errors import InvalidArgumentError
from .records import JSON, Run
from .registry import open_store
from .results import CancelResult, DeliveryResult
from .worker import Worker

T = TypeVar("T")

StoreOpener = Callable[[], Awaitable[ExecutionStore]]
"""Opens the store on the client's loop (for a store built in code rather than from a
URL): ``lambda: open_store(url, schema="app")``, ``async def make(): ...``."""


class SyncClient:
    """Start, signal, approve, cancel and wait for runs, and run a worker, without
    ``async``.

    ``store``: a store URL (opened with :func:`~workflow.runtime.open_store` and
    ``store_options``), or a :data:`StoreOpener`. ``workflows`` and ``runtime_options``
    are those of :class:`~workflow.runtime.Runtime`. Close the client (or use it as a
    context manager) to stop its worker, close the store and end its thread.
    """

    def __init__(
        self,
        store: str | StoreOpener,
        workflows: Iterable[Workflow[Any, Any]] = (),
        *,
        store_options: dict[str, object] | None = None,
        **runtime_options: Any,
    ) -> None:
        if not isinstance(store, str) and not callable(store):
            raise InvalidArgumentError(
                f"store must be a store URL or a function that opens a store, got {store!r}"
            )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="workflow-sync-client", daemon=True
        )
        self._thread.start()
        self._worker: Worker | None = None
        self._worker_task: concurrent.futures.Future[None] | None = None
        self._closed = False
        try:
            opened = self._call(
                open_store(store, **(store_options or {}))
                if isinstance(store, str)
                else _opened(store)
            )
        except BaseException:
            self._end_loop()
            raise
        self.runtime: Runtime = Runtime(opened, workflows, **runtime_options)
        """The runtime the calls go to (its methods are coroutines of the client's
        loop: call them through this client)."""

    # -- the calls ---------------------------------------------------------------------
    def start(
        self,
        workflow_id: str,
        input: JSON = None,
        *,
        run_id: str | None = None,
        queue: str = "default",
        priority: int = 0,
        partition_key: str | None = None,
    ) -> Run:
        """:meth:`Runtime.start <workflow.runtime.Runtime.start>`."""
        return self._call(
            self.runtime.start(
                workflow_id,
                input,
                run_id=run_id,
                queue=queue,
                priority=priority,
                partition_key=partition_key,
            )
        )

    def signal(
        self,
        run_id: str,
        name: str,
        payload: JSON = None,
        *,
        signal_id: str | None = None,
        step_id: str | None = None,
    ) -> DeliveryResult:
        """:meth:`Runtime.signal <workflow.runtime.Runtime.signal>`."""
        return self._call(
            self.runtime.signal(run_id, name, payload, signal_id=signal_id, step_id=step_id)
        )

    def approve(
        self, run_id: str, approval_id: str, approved: bool = True, *, feedback: JSON = None
    ) -> DeliveryResult:
        """:meth:`Runtime.approve <workflow.runtime.Runtime.approve>`."""
        return self._call(self.runtime.approve(run_id, approval_id, approved, feedback=feedback))

    def cancel(self, run_id: str, reason: str = "cancelled") -> CancelResult:
        """:meth:`Runtime.cancel <workflow.runtime.Runtime.cancel>`."""
        return self._call(self.runtime.cancel(run_id, reason))

    def result(self, run_id: str, *, wait: float | None = 0.0, poll: float = 0.1) -> JSON:
        """:meth:`Runtime.result <workflow.runtime.Runtime.result>`: blocks this thread
        (only) for up to ``wait`` seconds."""
        return self._call(self.runtime.result(run_id, wait=wait, poll=poll))

    def load(self, run_id: str) -> Run | None:
        """The run as the store has it now (``None``: no such run)."""
        return self._call(self.runtime.store.load_run(run_id))

    # -- the worker --------------------------------------------------------------------
    def run_worker(self, **worker_options: Any) -> None:
        """Run a :class:`~workflow.runtime.worker.Worker` on the client's loop until
        :meth:`stop` (returns at once). ``worker_options``: the Worker's
        (``poll_interval``, ``grace_period``, ...)."""
        self._check_open()
        if self._worker_task is not None and not self._worker_task.done():
            raise InvalidArgumentError("this client's worker is already running")
        if self.runtime.stopping:
            # A stopped worker left its runtime stopping for good: a fresh one, same owner.
            self.runtime = self.runtime.bind(self.runtime.store, owner=self.runtime.owner)
        worker = self._call(_make_worker(self.runtime, worker_options))
        self._worker = worker
        self._worker_task = asyncio.run_coroutine_threadsafe(worker.run(), self._loop)

    @property
    def worker_running(self) -> bool:
        return self._worker_task is not None and not self._worker_task.done()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the worker gracefully (running slices finish or yield within its grace
        period) and wait for it; re-raises what ended it, if it failed. No-op without
        a running worker. ``timeout``: seconds to wait (``TimeoutError`` after)."""
        task, worker = self._worker_task, self._worker
        if task is None or worker is None:
            return
        self._loop.call_soon_threadsafe(worker.stop)
        try:
            task.result(timeout)
        finally:
            if task.done():
                self._worker_task = self._worker = None

    # -- the end -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker, close the store and end the client's thread (idempotent)."""
        if self._closed:
            return
        try:
            self.stop()
            self._call(self.runtime.store.close())
        finally:
            self._closed = True
            self._end_loop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidArgumentError("this SyncClient is closed")

    def _call(self, call: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            call.close()
            # The loop would wait for itself for ever.
            raise InvalidArgumentError(
                "SyncClient called from its own loop (from workflow or step code?): "
                "use the Runtime's async methods there"
            )
        if self._closed:
            call.close()
            raise InvalidArgumentError("this SyncClient is closed")
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def _end_loop(self) -> None:
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _opened(opener: StoreOpener) -> ExecutionStore:
    return await opener()


async def _make_worker(runtime: Runtime, options: dict[str, Any]) -> Worker:
    # Built on the loop it runs on.
    return Worker(runtime, **options)


async def _cancel_the_rest() -> None:
    """Cancel what still runs on the loop (a store's background tasks) before it stops."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
