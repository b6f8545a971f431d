"""`workflow runs start` and `workflow runs purge` against a real SQLite file."""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from workflow.runtime import Run, RunStatus, Runtime
from workflow.runtime.cli import _build
from workflow.store.sqlite import SQLiteStore

APP = """
from workflow.runtime import Runtime, workflow


@workflow("order", version="2")
async def order(ctx, input):
    return await ctx.step("total", lambda: sum(input["prices"]))


runtime = Runtime(None, [order])
"""

DAY_MS = 86_400_000
JAN_2020 = 1_577_836_800_000  # 2020-01-01T00:00:00Z


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_build(), list(args))
    return result.exit_code, result.output


@pytest.fixture
def url(tmp_path: Path) -> str:
    async def migrate() -> None:
        store = SQLiteStore.from_path(tmp_path / "wf.db")
        await store.create_schema()
        await store.close()

    asyncio.run(migrate())
    return f"sqlite:///{tmp_path / 'wf.db'}"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """MODULE:RUNTIME of a module in the current directory (a new name per test: Python
    caches modules by name)."""
    name = f"shop_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return f"{name}:runtime"


def load(url: str, run_id: str) -> Run | None:
    async def go() -> Run | None:
        store = SQLiteStore.from_url(url)
        try:
            return await store.load_run(run_id)
        finally:
            await store.close()

    return asyncio.run(go())


def test_runs_start_queues_a_run_a_worker_then_drives(url: str, app: str) -> None:
    code, out = invoke(
        "runs", "start", app, "order", "--input", '{"prices": [2, 3]}', "--id", "o-1", "--url", url
    )
    assert code == 0, out
    assert out.splitlines()[0] == "run o-1 of order (version 2) is queued"
    assert out.splitlines()[1] == f"follow it: workflow runs show o-1 --url {url}"
    run = load(url, "o-1")
    assert run is not None
    assert (run.workflow_id, run.workflow_version, run.input) == ("order", "2", {"prices": [2, 3]})

    # The run is an ordinary one: a runtime with the workflow finishes it.
    async def work() -> Run | None:
        module = importlib.import_module(app.split(":")[0])
        store = SQLiteStore.from_url(url)
        try:
            runtime: Runtime = module.runtime.bind(store)
            await runtime.run_until_idle()
            return await store.load_run("o-1")
        finally:
            await store.close()

    done = asyncio.run(work())
    assert done is not None
    assert done.status is RunStatus.FINISHED
    assert done.output == 5


def test_runs_start_with_a_timeout_gives_the_run_its_deadline(url: str, app: str) -> None:
    code, out = invoke(
        "runs", "start", app, "order", "--id", "o-t", "--timeout", "2h", "--url", url
    )
    assert code == 0, out
    run = load(url, "o-t")
    assert run is not None
    assert run.deadline_at == run.created_at + 2 * 3600 * 1000
    code, out = invoke("runs", "start", app, "order", "--id", "o-u", "--timeout", "0", "--url", url)
    assert code != 0
    assert "timeout" in out
    assert load(url, "o-u") is None


def test_runs_start_places_the_run_and_runs_show_prints_its_queue(url: str, app: str) -> None:
    code, out = invoke(
        "runs", "start", app, "order", "--id", "q-1", "--url", url,
        "--queue", "emails", "--priority", "7", "--key", "tenant-a",
    )  # fmt: skip
    assert code == 0, out
    run = load(url, "q-1")
    assert run is not None
    assert (run.queue, run.priority, run.partition_key) == ("emails", 7, "tenant-a")
    code, out = invoke("runs", "show", "q-1", "--url", url)
    assert code == 0, out
    assert "emails (priority 7, key tenant-a)" in out
    code, out = invoke("runs", "start", app, "order", "--id", "q-2", "--url", url)
    assert code == 0, out
    code, out = invoke("runs", "show", "q-2", "--url", url)
    assert "default (priority 0, key -)" in out


def test_runs_start_again_with_the_same_id_keeps_the_first_run(url: str, app: str) -> None:
    assert (
        invoke(
            "runs", "start", app, "order", "--input", '{"prices": [1]}', "--id", "o-2", "--url", url
        )[0]
        == 0
    )
    code, out = invoke(
        "runs", "start", app, "order", "--input", '{"prices": [9]}', "--id", "o-2", "--url", url
    )
    assert code == 0, out
    run = load(url, "o-2")
    assert run is not None
    assert run.input == {"prices": [1]}


def test_runs_start_refuses_an_unknown_workflow_or_bad_input_and_creates_nothing(
    url: str, app: str
) -> None:
    code, out = invoke("runs", "start", app, "refund", "--id", "r-1", "--url", url)
    assert code == 1
    assert "no workflow 'refund' is registered with this runtime (registered: order)" in out
    code, out = invoke(
        "runs", "start", app, "order", "--input", "{prices", "--id", "r-2", "--url", url
    )
    assert code == 1
    assert "--input is not valid JSON" in out
    assert load(url, "r-1") is None
    assert load(url, "r-2") is None


def _ended_runs(url: str) -> None:
    """old-cancelled, then old-done, ended on 2020-01-01 (one ms apart); new-cancelled
    ended now; old-queued was created in 2019 and never ended."""

    async def go() -> None:
        store = SQLiteStore.from_url(url)
        try:
            now = int(time.time() * 1000)
            for run_id in ("old-done", "old-cancelled", "old-queued"):
                await store.create_run(run_id, "order", "2", None, JAN_2020 - DAY_MS)
            await store.create_run("new-cancelled", "order", "2", None, now - 1000)
            await store.cancel_run("old-cancelled", "test", JAN_2020)
            await store.cancel_run("new-cancelled", "test", now)
            await store.cancel_run("old-done", "test", JAN_2020 + 1)
        finally:
            await store.close()

    asyncio.run(go())


def test_runs_purge_deletes_only_runs_that_ended_before_the_cutoff(url: str) -> None:
    _ended_runs(url)
    code, out = invoke("runs", "purge", "--finished-before", "2021-01-01", "--url", url)
    assert code == 0, out
    assert out == "purged 2 runs that ended before 2021-01-01T00:00:00.000+00:00\n"
    assert load(url, "old-done") is None
    assert load(url, "old-cancelled") is None
    assert load(url, "old-queued") is not None  # never ended: never purged
    assert load(url, "new-cancelled") is not None


def test_runs_purge_takes_an_age_and_a_limit(url: str) -> None:
    _ended_runs(url)
    code, out = invoke("runs", "purge", "--finished-before", "1d", "--limit", "1", "--url", url)
    assert code == 0, out
    assert out.startswith("purged 1 run that ended before ")
    assert [load(url, r) is None for r in ("old-cancelled", "old-done")] == [True, False]
    code, out = invoke("runs", "purge", "--finished-before", "1d", "--url", url)
    assert out.startswith("purged 1 run ")
    assert load(url, "new-cancelled") is not None  # ended less than a day ago


@pytest.mark.parametrize("cutoff", ["yesterday", "30x", "2021-13-01", "30"])
def test_runs_purge_refuses_a_cutoff_it_cannot_read(url: str, cutoff: str) -> None:
    _ended_runs(url)
    code, out = invoke("runs", "purge", "--finished-before", cutoff, "--url", url)
    assert code == 2
    assert "neither an age (90s, 45m, 12h, 30d, 2w) nor an ISO 8601 time" in out
    assert load(url, "old-done") is not None
