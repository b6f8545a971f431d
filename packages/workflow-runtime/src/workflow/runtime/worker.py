"""The worker: sweeps in a loop until told to stop.

* Polls with jitter: after a sweep that found work it sweeps again at once; after an
  idle one it waits ``poll_interval`` seconds spread by ``jitter`` (so many workers do
  not hit the store in lockstep). Store outages back off exponentially.
* Graceful stop (SIGTERM/SIGINT, or :meth:`Worker.stop`): no new claims; running
  slices yield at their next context operation (a step already running finishes) and
  settle, which releases their leases. A second signal cancels the slices at once;
  the worker still tries to release each lease on the way out.
* Structured logs: every record carries ``run_id``/``schedule_id``/... as fields;
  :func:`configure_logging` renders them as ``key=value`` text or JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
import time
from typing import Any

from .driver import Runtime
from .errors import WorkflowStoreError

log = logging.getLogger("workflow.runtime.worker")

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.123Z info message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        line = (
            f"{stamp}.{int(record.msecs):03d}Z {record.levelname.lower():<7} {record.getMessage()}"
        )
        if fields:
            line = f"{line}  {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Log ``workflow.*`` records to stderr as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("workflow")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class Worker:
    """Runs ``runtime.sweep()`` in a loop (see the module docs)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        poll_interval: float = 1.0,
        jitter: float = 0.2,
        limit: int = 100,
        max_backoff: float = 30.0,
    ) -> None:
        self.runtime = runtime
        self.poll_interval = poll_interval
        self.jitter = jitter
        self.limit = limit
        self.max_backoff = max_backoff
        self._stop = asyncio.Event()
        self.sweeps = 0

    def stop(self) -> None:
        """Graceful stop: finish or yield the current slices, then return from run()."""
        if not self._stop.is_set():
            log.info(
                "stopping: no new claims, current slices yield and release their leases",
                extra={"owner": self.runtime.owner},
            )
        self.runtime.request_stop()
        self._stop.set()

    def _delay(self, base: float) -> float:
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

    async def run(self) -> None:
        """Sweep until :meth:`stop`; failed sweeps are logged and backed off, never fatal."""
        failures = 0
        log.info(
            "worker started",
            extra={
                "owner": self.runtime.owner,
                "workflows": ",".join(sorted(self.runtime.workflows.ids)),
                "concurrency": self.runtime.concurrency,
            },
        )
        while not self._stop.is_set():
            try:
                report = await self.runtime.sweep(limit=self.limit)
            except Exception as exc:
                # A worker outlives store outages and its own bugs alike: log, back off.
                failures += 1
                delay = min(self.max_backoff, self.poll_interval * 2 ** min(failures, 10))
                log.warning(
                    "sweep failed (retrying in %.1f s): %s",
                    delay,
                    exc,
                    exc_info=not isinstance(exc, WorkflowStoreError),
                    extra={"owner": self.runtime.owner},
                )
            else:
                failures = 0
                self.sweeps += 1
                if report.did_work:
                    await asyncio.sleep(0)  # let signal handlers and others in
                    continue
                delay = self.poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._delay(delay))
        log.info("worker stopped", extra={"owner": self.runtime.owner})

    async def run_until_signalled(self) -> None:
        """:meth:`run`, stopping gracefully on the first SIGTERM/SIGINT and hard on
        the second (the slices are cancelled; their leases are released if possible)."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        signals = (signal.SIGTERM, signal.SIGINT)
        seen: list[int] = []

        def on_signal(signum: int) -> None:
            seen.append(signum)
            if len(seen) == 1:
                log.info("received %s", signal.Signals(signum).name)
                self.stop()
            elif main is not None:
                log.warning(
                    "received %s again: cancelling running slices", signal.Signals(signum).name
                )
                main.cancel()

        for signum in signals:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await self.run()
        except asyncio.CancelledError:
            if len(seen) < 2 or main is None:
                raise
            # Our own hard stop: the slices were cancelled (and released where the
            # store let them); end like a normal stop, not with a traceback.
            main.uncancel()
            log.warning("worker stopped hard", extra={"owner": self.runtime.owner})
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
