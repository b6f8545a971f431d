"""Real `workflow worker` processes on one SQLite file: killed at many points, stopped
gracefully, and racing each other. Every run must finish with each step's result
recorded exactly once, and no two live processes may run one run's steps at once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import crash_app
import pytest

from workflow.runtime import JSON, Run, RunStatus, Runtime, StoredEvent
from workflow.runtime.history import EventType
from workflow.store.sqlite import SQLiteStore

HERE = Path(__file__).resolve().parent
GUARD_S = 120
"""Upper bound for the runs to finish; a hang fails the test instead of blocking CI."""
LEASE_MS = 800
"""Short, so a killed worker's runs come back quickly in the crash tests."""
STEADY_LEASE_MS = 60_000
"""Where no worker dies: a lease that cannot expire on a loaded machine. With 800 ms a
late heartbeat lets another worker take the run over, and the step that was running
(whose result can then no longer be recorded) runs again, as the contract allows."""


class Workers:
    """Starts `workflow worker crash_app:runtime` processes and cleans them up."""

    def __init__(self, url: str, ledger: Path, logs: Path) -> None:
        self.url = url
        self.ledger = ledger
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        owner: str,
        log_level: str = "warning",
        lease_ms: int = LEASE_MS,
        extra: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "WORKFLOW_TEST_LEDGER": str(self.ledger),
        }
        log = (self.logs / f"{owner}.log").open("wb")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workflow.runtime.cli",
                "worker",
                "crash_app:runtime",
                "--url",
                self.url,
                "--lease-ms",
                str(lease_ms),
                "--poll",
                "0.05",
                "--concurrency",
                "4",
                "--owner",
                owner,
                "--log-level",
                log_level,
                *extra,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log_of(self, owner: str) -> str:
        return (self.logs / f"{owner}.log").read_text(errors="replace")

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    logs = tmp_path / "logs"
    logs.mkdir()
    pool = Workers(f"sqlite:///{tmp_path / 'wf.db'}", tmp_path / "ledger.txt", logs)
    pool.ledger.touch()
    try:
        yield pool
    finally:
        pool.cleanup()


async def _start(url: str, workflow_id: str, runs: Mapping[str, JSON]) -> None:
    store = SQLiteStore.from_url(url)
    await store.create_schema()
    runtime = Runtime(store, [crash_app.crashy, crash_app.slow])
    for run_id, input in runs.items():
        await runtime.start(workflow_id, input, run_id=run_id)
    await store.close()


async def _snapshot(url: str) -> list[tuple[Run, list[StoredEvent]]]:
    store = SQLiteStore.from_url(url)
    try:
        page = await store.list_runs(limit=1000)
        return [(run, await store.read_events(run.run_id)) for run in page.items]
    finally:
        await store.close()


def snapshot(url: str) -> list[tuple[Run, list[StoredEvent]]]:
    return asyncio.run(_snapshot(url))


def wait_until_all_ended(url: str) -> list[tuple[Run, list[StoredEvent]]]:
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        runs = snapshot(url)
        if all(run.status.terminal for run, _ in runs):
            return runs
        time.sleep(0.2)
    pending = [(r.run_id, r.status.value) for r, _ in snapshot(url) if not r.status.terminal]
    raise AssertionError(f"runs still going after {GUARD_S} s: {pending}")


def ledger_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def wait_for_ledger(
    path: Path, predicate: Callable[[list[list[str]]], bool], timeout: float = GUARD_S
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(ledger_lines(path)):
            return
        time.sleep(0.02)
    raise AssertionError(f"ledger never matched; it holds:\n{path.read_text()}")


def assert_no_overlap(lines: list[list[str]]) -> None:
    """No run's steps ran in two live processes at once: a step of run R may start in
    process B while process A is inside a step of R only if A was killed before."""
    inside: dict[str, str] = {}  # run id -> pid currently inside one of its steps
    killed: set[str] = set()
    for line in lines:
        match line:
            case ["kill", pid]:
                killed.add(pid)
            case ["enter", run_id, _, pid]:
                holder = inside.get(run_id)
                assert holder is None or holder in killed, f"{run_id}: {holder} and {pid} at once"
                inside[run_id] = pid
            case ["exit", run_id, _, pid]:
                if inside.get(run_id) == pid:
                    del inside[run_id]


def assert_each_step_recorded_once(runs: list[tuple[Run, list[StoredEvent]]]) -> None:
    for run, events in runs:
        assert run.status is RunStatus.FINISHED, (run.run_id, run.status, run.error)
        assert isinstance(run.input, dict)
        n = run.input["n"]
        assert isinstance(n, int)
        assert run.output == crash_app.expected(n)
        completed = [e for e in events if e.type == EventType.STEP_COMPLETED]
        assert Counter(e.step_id for e in completed) == {
            f"step-{i}": 1 for i in range(crash_app.STEPS)
        }, run.run_id
        for event in completed:
            assert isinstance(event.data, dict)
            assert event.data["result"] == crash_app.expected(n)[int(str(event.step_id)[5:])]


def test_workers_killed_at_many_points_finish_every_run_recording_each_step_once(
    workers: Workers,
) -> None:
    # Enough runs that the workers are still busy when the last victims get to work:
    # workers wake for due naps at once now, so 12 runs could all end before 3 kills.
    runs: dict[str, JSON] = {f"crash-{n:02d}": {"n": n} for n in range(40)}
    asyncio.run(_start(workers.url, "crashy", runs))
    rng = random.Random(20240501)
    live = [workers.spawn("w0"), workers.spawn("w1")]
    kills = 0
    for k in range(6):
        victim = live.pop(0)
        pid = str(victim.pid)
        # Let the victim get a few steps in (a different number each time), then kill it
        # wherever it is: inside a step, between a step and its record, or in a settle.
        steps = rng.randint(1, 6)

        def got_to_work(lines: list[list[str]], pid: str = pid, steps: int = steps) -> bool:
            return sum(line[-1] == pid for line in lines) >= steps

        try:
            wait_for_ledger(workers.ledger, got_to_work, timeout=30)
        except AssertionError:
            break  # everything finished before this victim got to work
        crash_app_note(workers.ledger, f"kill {pid}")
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        kills += 1
        live.append(workers.spawn(f"w{k + 2}"))
    assert kills >= 3, "the runs finished before the workers could be killed"

    ended = wait_until_all_ended(workers.url)
    assert len(ended) == len(runs)
    assert_each_step_recorded_once(ended)
    lines = ledger_lines(workers.ledger)
    assert_no_overlap(lines)
    entered = Counter((ln[1], ln[2]) for ln in lines if ln[0] == "enter")
    assert set(entered) == {(r, f"step-{i}") for r in runs for i in range(crash_app.STEPS)}
    for proc in live:
        proc.send_signal(signal.SIGTERM)
    for proc in live:
        assert proc.wait(30) == 0


def crash_app_note(ledger: Path, line: str) -> None:
    with ledger.open("a") as f:
        f.write(f"{line}\n")


def test_sigterm_finishes_the_running_step_then_releases_the_lease(workers: Workers) -> None:
    asyncio.run(_start(workers.url, "slow", {"slow-1": None}))
    proc = workers.spawn("w-graceful", "info")
    wait_for_ledger(
        workers.ledger, lambda lines: ["enter", "slow-1", "long", str(proc.pid)] in lines
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, workers.log_of("w-graceful")

    ((run, events),) = snapshot(workers.url)
    # The step that was running finished and was recorded; the next one never started;
    # the run went back to the queue with no lease, so any worker can take it at once.
    assert [(e.type, e.step_id) for e in events] == [(EventType.STEP_COMPLETED, "long")]
    assert run.status is RunStatus.QUEUED
    assert run.lease is None
    assert "stopping: no new claims" in workers.log_of("w-graceful")

    workers.spawn("w-next")
    ((run, events),) = wait_until_all_ended(workers.url)
    assert run.output == "done"
    assert [e.step_id for e in events if e.type == EventType.STEP_COMPLETED] == ["long", "after"]


def test_a_second_sigterm_cancels_the_step_and_still_releases_the_lease(
    workers: Workers,
) -> None:
    asyncio.run(_start(workers.url, "slow", {"slow-2": None}))
    proc = workers.spawn("w-hard", "info")
    wait_for_ledger(
        workers.ledger, lambda lines: ["enter", "slow-2", "long", str(proc.pid)] in lines
    )
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # the first one is handled: the worker is stopping gracefully
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, workers.log_of("w-hard")
    log = workers.log_of("w-hard")
    assert "worker stopped hard" in log
    assert "Traceback" not in log

    ((run, events),) = snapshot(workers.url)
    # The step was cut short: nothing recorded, and the run handed back at once.
    assert events == []
    assert run.status is RunStatus.QUEUED
    assert run.lease is None


def test_three_workers_never_run_one_run_at_once(workers: Workers) -> None:
    runs: dict[str, JSON] = {f"race-{n:02d}": {"n": n} for n in range(10)}
    asyncio.run(_start(workers.url, "crashy", runs))
    procs = [workers.spawn(f"r{i}", lease_ms=STEADY_LEASE_MS) for i in range(3)]
    ended = wait_until_all_ended(workers.url)
    assert_each_step_recorded_once(ended)
    lines = ledger_lines(workers.ledger)
    assert_no_overlap(lines)
    # Without kills, every step ran exactly once, and the work was shared.
    assert Counter((ln[1], ln[2]) for ln in lines if ln[0] == "enter") == {
        (r, f"step-{i}"): 1 for r in runs for i in range(crash_app.STEPS)
    }
    assert len({ln[3] for ln in lines}) >= 2
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(30) == 0


async def _cancelled_at(url: str, when: Mapping[str, int]) -> None:
    store = SQLiteStore.from_url(url)
    try:
        for run_id, now in when.items():
            await store.cancel_run(run_id, "retention test", now)
    finally:
        await store.close()


def test_a_worker_with_retention_purges_the_runs_that_ended_longer_ago(workers: Workers) -> None:
    old = [f"old-{i}" for i in range(3)]
    asyncio.run(_start(workers.url, "slow", dict.fromkeys([*old, "recent"])))
    now = int(time.time() * 1000)
    two_days = 2 * 86_400_000
    asyncio.run(_cancelled_at(workers.url, {**dict.fromkeys(old, now - two_days), "recent": now}))
    workers.spawn("keeper", log_level="info", extra=["--retention", "1d"])
    deadline = time.monotonic() + GUARD_S
    while {run.run_id for run, _ in snapshot(workers.url)} != {"recent"}:
        assert time.monotonic() < deadline, snapshot(workers.url)
        time.sleep(0.1)
    assert "purged 3 runs that ended more than 86400 s ago" in workers.log_of("keeper")


def test_sigterm_while_the_workflow_module_imports_is_a_clean_stop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wf.db'}"

    async def migrated() -> None:
        store = SQLiteStore.from_url(url)
        await store.create_schema()
        await store.close()

    asyncio.run(migrated())
    marker = tmp_path / "importing"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "WORKFLOW_TEST_MARKER": str(marker),
    }
    command = [sys.executable, "-m", "workflow.runtime.cli", "worker", "slow_import_app:runtime"]
    with subprocess.Popen(
        [*command, "--url", url, "--log-level", "info"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            deadline = time.monotonic() + GUARD_S
            while not marker.exists():
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the module's import never started"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)  # the import sleeps 2 s more
            output, _ = proc.communicate(timeout=GUARD_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(GUARD_S)
    # A clean stop (0), not the default action of the signal (-15), and said so.
    assert proc.returncode == 0, output
    assert "received SIGTERM during start-up" in output
    assert "worker started" not in output
