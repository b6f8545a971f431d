"""A real ``workflow worker`` process stopped while its store calls hang in a black hole
(:class:`~workflow.contract_tests.faults.FaultProxy`): the server stores' failure tests
run these scenarios with their own URLs.

The worker runs :data:`runtime` (``workflow worker workflow.contract_tests.worker_stop:runtime``):
one workflow, ``hang``, whose step notes ``enter <run_id>`` in the ledger file named by
``WORKFLOW_TEST_LEDGER`` and then waits for ever. The scenarios wait on that line, on
the proxy swallowing the worker's bytes, and on log lines, never on a clock of their
own: the guards below only turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from workflow.runtime import Context, Runtime, current_step, workflow
from workflow.runtime.contract import ExecutionStore

from .faults import FaultProxy

GUARD_S = 90.0
"""Upper bound on any wait here: a hang fails the test instead of blocking CI."""


def _note(line: str) -> None:
    fd = os.open(os.environ["WORKFLOW_TEST_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


async def _forever() -> None:
    _note(f"enter {current_step().run_id}")
    await asyncio.Event().wait()


@workflow("hang")
async def hang(ctx: Context, input: Any) -> None:
    await ctx.step("forever", _forever)


runtime: Runtime = Runtime(workflows=[hang])


async def start_hang(store: ExecutionStore, run_id: str) -> None:
    """Create the run the scenarios' worker picks up."""
    await runtime.bind(store).start("hang", run_id=run_id)


async def _until(predicate: Any, what: str) -> None:
    async with asyncio.timeout(GUARD_S):
        # A file and a log: no event to wait on.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert predicate(), what


class StoppedWorker:
    """What a scenario returns: the exit code and the log lines (JSON objects)."""

    def __init__(self, returncode: int, lines: list[dict[str, Any]]) -> None:
        self.returncode = returncode
        self.lines = lines

    def messages(self) -> list[str]:
        return [str(line.get("msg")) for line in self.lines]


async def stop_while_hung(
    url: str,
    proxy: FaultProxy,
    tmp: Path,
    *,
    signals: int,
    grace_period: float,
    run_id: str,
) -> StoppedWorker:
    """Start a worker on ``url`` (through ``proxy``, ``run_id`` already created), wait
    until its step runs, black-hole the network, wait until a store call of the
    worker is stuck in it, then send ``signals`` SIGTERMs (the second once the first
    was logged). Returns once the process exited."""
    ledger, log_path = tmp / "ledger.txt", tmp / "worker.log"
    proc = await _start_worker(url, tmp, grace_period)
    try:
        await _until(lambda: f"enter {run_id}" in ledger.read_text(), "the step never started")
        proxy.set_mode("black_hole")
        async with asyncio.timeout(GUARD_S):
            await proxy.fired.wait()  # a store call of the worker is stuck now
        proc.send_signal(signal.SIGTERM)
        if signals > 1:
            await _until(
                lambda: "received SIGTERM" in log_path.read_text(errors="replace"),
                "the first SIGTERM was never handled",
            )
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(GUARD_S):
            returncode = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        proxy.heal(cut=True)
    return StoppedWorker(returncode, _log_lines(log_path))


async def start_while_unreachable(
    url: str, proxy: FaultProxy, tmp: Path, *, run_id: str, comes_back: bool
) -> StoppedWorker:
    """Start a worker on ``url`` (through ``proxy``, ``run_id`` already created) while
    the network is a black hole, wait until it has said twice that the store is
    unreachable (it keeps trying), then either heal the network and wait until the
    worker runs the step (``comes_back``) or not, and send SIGTERM. Returns once the
    process exited. ``url`` should bound store calls (``operation_timeout``) well
    below :data:`GUARD_S`."""
    ledger, log_path = tmp / "ledger.txt", tmp / "worker.log"
    proxy.set_mode("black_hole")
    proc = await _start_worker(url, tmp, 0)
    try:
        await _until(
            lambda: (
                proc.returncode is not None
                or log_path.read_text(errors="replace").count("unreachable at start-up") >= 2
            ),
            "the worker never said the store was unreachable, twice",
        )
        assert proc.returncode is None, log_path.read_text(errors="replace")  # it waits
        if comes_back:
            proxy.heal(cut=True)
            await _until(lambda: f"enter {run_id}" in ledger.read_text(), "the step never started")
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(GUARD_S):
            returncode = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        proxy.heal(cut=True)
    return StoppedWorker(returncode, _log_lines(log_path))


async def _start_worker(url: str, tmp: Path, grace_period: float) -> asyncio.subprocess.Process:
    """``workflow worker`` on :data:`runtime`, its ledger ``tmp/ledger.txt``, logging
    JSON lines to ``tmp/worker.log``."""
    ledger, log_path = tmp / "ledger.txt", tmp / "worker.log"
    ledger.touch()
    env = {**os.environ, "WORKFLOW_TEST_LEDGER": str(ledger)}
    with log_path.open("wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workflow.runtime.cli",
            "worker",
            "workflow.contract_tests.worker_stop:runtime",
            "--url",
            url,
            "--lease-ms",
            "3000",
            "--poll",
            "0.05",
            "--grace-period",
            str(grace_period),
            "--log-format",
            "json",
            "--log-level",
            "info",
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )


def _log_lines(log_path: Path) -> list[dict[str, Any]]:
    text = log_path.read_text(errors="replace")
    lines = []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            raise AssertionError(f"a log line that is not JSON: {raw!r}\n{text}") from None
    return lines


def assert_stopped_after_the_grace_period(stopped: StoppedWorker, grace_period: float) -> None:
    """Exit 0, the slice cancelled once the grace period was over, every line JSON."""
    assert stopped.returncode == 0, stopped.lines
    messages = stopped.messages()
    assert any(f"grace period of {grace_period:g} s over" in m for m in messages), messages
    assert "worker stopped" in messages


def assert_waited_for_the_store(stopped: StoppedWorker, *, came_back: bool) -> None:
    """Exit 0 (a stop, not a failure), after saying the store was unreachable; the
    worker started once the store came back, or stopped before it was reached."""
    assert stopped.returncode == 0, stopped.lines
    messages = stopped.messages()
    assert any("unreachable at start-up (retrying in" in m for m in messages), messages
    if came_back:
        assert "worker stopped" in messages
    else:
        assert "stopped before the store was reached" in messages


def assert_stopped_hard(stopped: StoppedWorker) -> None:
    """Exit 0 after the second signal, the slices cancelled without a grace period."""
    assert stopped.returncode == 0, stopped.lines
    messages = stopped.messages()
    assert any("(hard stop)" in m for m in messages), messages
    assert "worker stopped hard" in messages
