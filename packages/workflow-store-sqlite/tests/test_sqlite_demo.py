"""`workflow demo` on a SQLite file, as a real process: it runs to the end, runs again
without clashing, and when killed mid-run resumes where it stopped without repeating a
step whose result was recorded."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from workflow.runtime import RunStatus
from workflow.runtime.cli import _build
from workflow.runtime.demo import ORDER
from workflow.runtime.history import EventType
from workflow.store.sqlite import SQLiteStore

GUARD_S = 60
"""Upper bound for one demo process (it takes a few seconds); a hang fails, not blocks."""

ORDER_STEPS = ["validate-order", "reserve-stock", "charge-card", "ship", "send-receipt"]


def demo_command(url: str) -> list[str]:
    return [sys.executable, "-m", "workflow.runtime.cli", "demo", "--url", url]


def demo_env() -> dict[str, str]:
    # Without the test env's development mode: asyncio's debug mode adds its own lines
    # to stderr on a loaded machine ("Executing <Task ...> took 0.333 seconds"), and the
    # tests read the demo's stderr as a user sees it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    return {**env, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


def run_demo(cwd: Path, url: str) -> str:
    done = subprocess.run(
        demo_command(url),
        cwd=cwd,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_demo_until(cwd: Path, url: str, marker: str) -> str:
    """Start the demo, SIGKILL it as soon as it prints a line containing ``marker``;
    returns what it printed."""
    lines: list[str] = []
    with subprocess.Popen(
        demo_command(url),
        cwd=cwd,
        env=demo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line)
                if marker in line:
                    proc.send_signal(signal.SIGKILL)
                    break
            else:
                raise AssertionError(
                    f"the demo ended before printing {marker!r}:\n{''.join(lines)}"
                )
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(GUARD_S)
    assert proc.returncode == -signal.SIGKILL
    return "".join(lines)


async def order_runs(db: Path) -> list[tuple[str, RunStatus, list[tuple[str, str | None]]]]:
    store = SQLiteStore.from_path(db)
    try:
        page = await store.list_runs(workflow_id=ORDER)
        out = []
        for run in reversed(page.items):
            events = await store.read_events(run.run_id)
            out.append((run.run_id, run.status, [(e.type, e.step_id) for e in events]))
        return out
    finally:
        await store.close()


def invoke_cli(cwd: Path, *args: str) -> str:
    """The CLI in this process, in ``cwd`` (so the default URL is that directory's file)."""
    here = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(_build(), list(args))
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.output
    return result.output


def ran(output: str) -> list[str]:
    """Steps whose code really ran (the demo prints ``running STEP`` inside each step)."""
    return [line.split()[1] for line in output.splitlines() if line.strip().startswith("running ")]


def recorded(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.strip().startswith("[ok]")]


def test_the_demo_runs_twice_in_one_directory_and_the_cli_shows_its_runs(
    tmp_path: Path,
) -> None:
    url = "sqlite:///workflow.db"  # relative: the working directory's file, as in the README
    first = run_demo(tmp_path, url)
    second = run_demo(tmp_path, url)
    for output in (first, second):
        # The order's items in words: a line cut to a width ended JSON mid-key.
        started = [line for line in output.splitlines() if line.startswith("started run ")]
        assert len(started) == 1
        assert started[0].endswith(": 2 x tea, 1 x cup"), started
        assert "[retry]    charge-card attempt 1 failed" in output
        assert "[sleep]" in output
        assert "auto-approving" in output
        # The printed commands paste as they are: quoted, and on the demo's store.
        assert "--yes --url sqlite:///workflow.db)" in output
        assert "see it again: workflow runs show order-" in output
        assert "[done]     run finished" in output
        assert recorded(output) == [
            "validate-order",
            "reserve-stock",
            "charge-card",
            "ship",
            "send-receipt",
        ]
        assert "STEP_COMPLETED" in output  # the closing timeline
    runs = asyncio.run(order_runs(tmp_path / "workflow.db"))
    assert len(runs) == 2
    assert runs[0][0] != runs[1][0]
    assert {status for _, status, _ in runs} == {RunStatus.FINISHED}

    listed = invoke_cli(tmp_path, "runs", "list")
    for run_id, _, _ in runs:
        assert run_id in listed
    assert "demo-restock" in listed  # the schedule fired during the demo
    shown = invoke_cli(tmp_path, "runs", "show", runs[0][0])
    assert "APPROVAL_DECIDED" in shown
    assert "finished" in shown


def test_a_killed_demo_resumes_where_it_stopped_and_never_repeats_a_recorded_step(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    outputs: list[str] = []
    # Kill it again and again, each time a little further on.
    for marker in (
        "[ok]       reserve-stock",
        "[retry]    charge-card",
        "[sleep]",
        "[approval] approve-shipment: Ship order",
    ):
        outputs.append(run_demo_until(tmp_path, url, marker))
    outputs.append(run_demo(tmp_path, url))

    assert "started run" in outputs[0]
    for later in outputs[1:]:
        assert "resuming run order-" in later
    # A step whose result was recorded before a kill never runs again afterwards.
    done_before: set[str] = set()
    for output in outputs:
        assert not done_before & set(ran(output)), (done_before, output)
        done_before |= set(recorded(output))
    assert done_before == set(ORDER_STEPS)

    ((run_id, status, events),) = asyncio.run(order_runs(tmp_path / "demo.db"))
    assert status is RunStatus.FINISHED
    completed = Counter(step for kind, step in events if kind == EventType.STEP_COMPLETED)
    assert completed == dict.fromkeys(ORDER_STEPS, 1)
    assert sum(kind == EventType.STEP_ATTEMPT_FAILED for kind, _ in events) == 1
    assert run_id in outputs[-1]


@pytest.mark.parametrize(
    ("stop", "code", "how"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stopped_demo_says_its_run_is_saved_and_how_to_resume_it(
    tmp_path: Path, stop: signal.Signals, code: int, how: str
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    with subprocess.Popen(
        demo_command(url),
        cwd=tmp_path,
        env=demo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if "[ok]       validate-order" in line:
                    proc.send_signal(stop)
                    break
            _, err = proc.communicate(timeout=GUARD_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(GUARD_S)
    assert proc.returncode == code, err
    assert err == (
        f"Error: {how}: the demo run is saved in the store and resumes where it stopped "
        f"with `workflow demo --url {shlex.quote(url)}`\n"
    )
    assert "resuming run order-" in run_demo(tmp_path, url)
