"""``workflow worker module:runtime``: run a worker process.

``module:attr`` names a :class:`~workflow.runtime.Runtime` (its store, if any, is
replaced by the one ``--url`` opens), a :class:`~workflow.runtime.Workflow`, or a list
of them. The current directory is importable, as with other Python app servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import random
import signal
import sys
from collections.abc import Iterable
from typing import Any

import click

from ..contract import ExecutionStore
from ..definitions import Workflow
from ..driver import RELEASE_TIMEOUT_S, Runtime
from ..errors import StoreUnavailableError
from ..registry import open_store, redact_url
from ..worker import DEFAULT_GRACE_PERIOD_S, RELEASE_BUDGET_S, Worker
from .common import CommandError, run_async, url_option
from .durations import DURATION
from .logs import configure_logging

log: logging.Logger = logging.getLogger("workflow.runtime.worker")

MAX_OPEN_BACKOFF_S = 30.0
"""The longest wait between two attempts to reach the store at start-up (the worker's
own backoff once it runs has the same cap)."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def load_runtime(target: str) -> Runtime:
    """The runtime ``module:attr`` names (see the module docs)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise CommandError(
            f"expected MODULE:ATTRIBUTE (e.g. myapp.workflows:runtime), got {target!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, Runtime):
        return obj
    if isinstance(obj, Workflow):
        return Runtime(None, [obj])
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        items = list(obj)
        if items and all(isinstance(w, Workflow) for w in items):
            return Runtime(None, items)
    raise CommandError(
        f"{target} is a {type(obj).__name__}; expected a Runtime, a Workflow or a list of them"
    )


@click.command()
@click.argument("target", metavar="MODULE:RUNTIME")
@url_option()
@click.option("--concurrency", type=click.IntRange(1, 1000), help="Runs driven at once.")
@click.option(
    "--poll",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Seconds between idle sweeps.",
)
@click.option(
    "--jitter",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Spread of the poll interval (0.2 = +-20 %).",
)
@click.option("--lease-ms", type=click.IntRange(100), help="Lease length (ms).")
@click.option("--slice-ms", type=click.IntRange(1), help="A slice yields after this long (ms).")
@click.option("--owner", help="Lease owner id (default: host:pid:random, unique per process).")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Claim only runs of this queue (repeat for several; default: every queue).",
)
@click.option(
    "--grace-period",
    default=DEFAULT_GRACE_PERIOD_S,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds after SIGTERM/SIGINT for running slices to finish or yield; then they "
    "are cancelled. A second signal cancels them at once.",
)
@click.option(
    "--retention",
    type=DURATION,
    help="Delete runs that ended longer ago than this (90s, 15m, 12h, 7d), in batches, "
    "about once a minute. Default: keep them.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--log-format", default="text", show_default=True, type=click.Choice(["text", "json"])
)
def worker(
    target: str,
    url: str,
    concurrency: int | None,
    poll: float,
    jitter: float,
    lease_ms: int | None,
    slice_ms: int | None,
    owner: str | None,
    queues: tuple[str, ...],
    grace_period: float,
    retention: float | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run workflows from MODULE:RUNTIME on the store until SIGTERM/SIGINT."""
    configure_logging(log_level, log_format)
    # From here a stop signal ends start-up cleanly (exit 0), as it ends a running
    # worker: noted now, acted on once the event loop runs (importing MODULE may take a
    # while; the store may be unreachable for longer).
    early: list[int] = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: early.append(signum))
    template = load_runtime(target)
    options: dict[str, Any] = {
        k: v
        for k, v in {
            "concurrency": concurrency,
            "lease_ms": lease_ms,
            "slice_ms": slice_ms,
            "owner": owner,
            "queues": list(queues) or None,
        }.items()
        if v is not None
    }

    async def go() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal(signum: int) -> None:
            log.info("received %s during start-up", signal.Signals(signum).name)
            stop.set()

        for signum in STOP_SIGNALS:
            # Until the worker takes the signals over (Worker.run_until_signalled).
            loop.add_signal_handler(signum, on_signal, signum)
        if early:
            on_signal(early[0])
        opened = await open_when_reachable(url, stop, poll, jitter)
        if opened is None:
            log.info("stopped before the store was reached")
            return
        store: ExecutionStore = opened
        worker: Worker | None = None
        try:
            replaced = template._store
            if replaced is not None and replaced is not store:
                # The module's own store is replaced by --url's: close it rather than
                # leak its connections for the life of the worker.
                try:
                    await replaced.close()
                except Exception as exc:
                    log.warning("closing the module's own store failed: %s", exc)
            runtime = template.bind(store, **options)
            log.info("store %s", redact_url(url), extra={"owner": runtime.owner})
            if stop.is_set():
                log.info("stopped before the worker started")
                return
            worker = Worker(
                runtime,
                poll_interval=poll,
                jitter=jitter,
                grace_period=grace_period,
                retention=retention,
            )
            await worker.run_until_signalled()
        finally:
            # Bounded like everything a stop waits on: a store on a dead network must
            # not keep a stopped worker alive.
            cut = worker is not None and worker.cut_short
            try:
                await asyncio.wait_for(
                    store.close(), RELEASE_TIMEOUT_S if cut else RELEASE_BUDGET_S
                )
            except Exception as exc:
                log.warning("closing the store failed: %r", exc)
        if worker is not None and worker.cut_short:
            # Slices were cancelled: a step running in a thread (or a driver thread
            # blocked on a dead connection) cannot be cancelled, and the interpreter
            # would wait for it at exit. What could be released was: exit now.
            log.info("exiting without waiting for cancelled steps' threads")
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    run_async(go)


async def open_when_reachable(
    url: str, stop: asyncio.Event, poll: float, jitter: float
) -> ExecutionStore | None:
    """``open_store(url)``, tried again with backoff while the store is unreachable
    (:class:`StoreUnavailableError`: a worker started before its database, or during an
    outage, waits for it as a running worker does); ``None`` once ``stop`` is set.
    Any other error (bad URL, credentials, schema) is raised: waiting cannot fix it."""
    failures = 0
    while not stop.is_set():
        opening = asyncio.ensure_future(open_store(url))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not opening.done():
            opening.cancel()
            with contextlib.suppress(BaseException):
                # Cancelled before it opened, or it had opened just then: close that.
                await (await opening).close()
            return None
        try:
            return opening.result()
        except StoreUnavailableError as exc:
            failures += 1
            delay = min(MAX_OPEN_BACKOFF_S, poll * 2 ** min(failures, 10))
            delay *= random.uniform(1 - jitter, 1 + jitter)
            log.warning(
                "store %s unreachable at start-up (retrying in %.1f s): %s",
                redact_url(url),
                delay,
                exc,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return None
