"""The operator commands (`workflow runs|signal|approve|schedules`) against a real SQLite
file, and the rule that every failure is one line on stderr with a non-zero exit."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from workflow.runtime import (
    JSON,
    Context,
    InboxEntry,
    InboxKind,
    RunStatus,
    Runtime,
    approval_id_for,
    every,
    workflow,
)
from workflow.runtime.cli import _build, main
from workflow.store.sqlite import SQLiteStore


@workflow("greet", schedules=[every(3600, id="greet-hourly")])
async def greet(ctx: Context, input: Any) -> JSON:
    name = await ctx.step("name", lambda: input["name"])
    reply = await ctx.wait_for_signal("reply")
    decision = await ctx.wait_for_approval("Send it?", step_id="send-ok")
    return {"greeting": f"hello {name}", "reply": reply, "approved": decision.approved}


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_build(), list(args))
    return result.exit_code, result.output


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The console script itself: exit status, stdout, stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return code if isinstance(code, int) else 1, out, err


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A migrated SQLite file with two greet runs: one paused on its signal, one new."""

    async def prepare() -> None:
        store = SQLiteStore.from_path(tmp_path / "wf.db")
        await store.create_schema()
        runtime = Runtime(store, [greet])
        await runtime.start("greet", {"name": "ada"}, run_id="run-ada")
        await runtime.sweep()
        await runtime.start("greet", {"name": "bob"}, run_id="run-bob")
        await store.close()

    asyncio.run(prepare())
    return f"sqlite:///{tmp_path / 'wf.db'}"


async def _inbox(url: str, run_id: str) -> list[InboxEntry]:
    store = SQLiteStore.from_url(url)
    try:
        return await store.read_inbox(run_id, include_consumed=True)
    finally:
        await store.close()


async def _load(url: str, run_id: str) -> Any:
    store = SQLiteStore.from_url(url)
    try:
        return await store.load_run(run_id)
    finally:
        await store.close()


def test_runs_list_shows_a_table_newest_first(url: str) -> None:
    code, out = invoke("runs", "list", "--url", url)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == [
        "RUN",
        "ID",
        "WORKFLOW",
        "VERSION",
        "STATUS",
        "CREATED",
        "UPDATED",
        "WAITING",
        "FOR",
        "/",
        "ERROR",
    ]
    rows = [line.split() for line in lines[2:] if line.strip()]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("run-bob", "greet", "queued"),
        ("run-ada", "greet", "paused"),
    ]
    assert "signal 'reply'" in out


def test_runs_list_filters_and_pages(url: str) -> None:
    code, out = invoke("runs", "list", "--url", url, "--status", "paused")
    assert code == 0
    assert "run-ada" in out
    assert "run-bob" not in out
    code, out = invoke("runs", "list", "--url", url, "--limit", "1")
    assert "run-bob" in out
    assert "run-ada" not in out
    # The printed command, pasted as it is, lists the next page of the same query.
    more = out.strip().splitlines()[-1]
    assert more.startswith("more: workflow runs list --limit 1 --cursor ")
    assert more.endswith(f" --url {shlex.quote(url)}")
    code, out = invoke(*shlex.split(more.removeprefix("more: workflow ")))
    assert code == 0
    assert "run-ada" in out
    assert "--cursor" not in out
    code, out = invoke("runs", "list", "--url", url, "--workflow", "other")
    assert (code, out.strip()) == (0, "no runs")


def test_signal_approve_and_show_drive_a_run_to_its_end(url: str) -> None:
    code, out = invoke("signal", "run-ada", "reply", "--payload", '{"mood": "fine"}', "--url", url)
    assert code == 0, out
    assert "delivered" in out
    code, out = invoke("signal", "run-ada", "reply", "--payload", "1", "--id", "s1", "--url", url)
    assert "buffered" in out  # the run is queued, not waiting: kept for a later wait
    code, out = invoke("signal", "run-ada", "reply", "--id", "s1", "--url", url)
    assert "duplicate" in out

    async def sweep() -> None:
        store = SQLiteStore.from_url(url)
        await Runtime(store, [greet]).sweep()
        await store.close()

    asyncio.run(sweep())
    approval = approval_id_for("run-ada", "send-ok")
    code, out = invoke("runs", "show", "run-ada", "--url", url)
    assert code == 0
    assert f"workflow approve run-ada {approval} --url {shlex.quote(url)} --yes" in out
    code, out = invoke("approve", "run-ada", approval, "--yes", "--feedback", "ok", "--url", url)
    assert code == 0, out
    assert "delivered" in out
    asyncio.run(sweep())

    code, out = invoke("runs", "show", "run-ada", "--url", url)
    assert code == 0
    assert "finished" in out
    events = [line.split()[2] for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert events == [
        "STEP_COMPLETED",
        "SIGNAL_WAITING",
        "SIGNAL_RECEIVED",
        "APPROVAL_REQUESTED",
        "APPROVAL_DECIDED",
        "RUN_FINISHED",
    ]
    assert '"mood": "fine"' in out
    run = asyncio.run(_load(url, "run-ada"))
    assert run.output == {"greeting": "hello ada", "reply": {"mood": "fine"}, "approved": True}


def test_approving_an_id_the_run_does_not_wait_for_is_refused(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(capsys, "approve", "run-ada", "apr-typo", "--yes", "--url", url)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert (
        "run run-ada is not waiting for approval apr-typo (it waits for signal 'reply'); "
        "nothing was delivered" in err
    )
    assert f"`workflow runs show run-ada --url {url}`" in err
    assert "--buffer" in err
    inbox = asyncio.run(_inbox(url, "run-ada"))
    assert [e.key for e in inbox if e.kind is InboxKind.APPROVAL] == []


def test_buffer_delivers_an_approval_the_run_has_not_asked_for_yet(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("approve", "run-bob", "apr-later", "--no", "--buffer", "--url", url)
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    assert out.startswith("buffered rejection of apr-later: run run-bob is queued")
    inbox = asyncio.run(_inbox(url, "run-bob"))
    assert [e.key for e in inbox if e.kind is InboxKind.APPROVAL] == ["apr-later"]
    # Sent again without --buffer: the run has the answer, so it is a duplicate, not
    # a refusal.
    code, out, _ = run_main(capsys, *args[:-3], "--url", url)
    assert (code, out.split(":")[0]) == (0, "duplicate rejection of apr-later")


def test_runs_cancel(url: str) -> None:
    code, out = invoke("runs", "cancel", "run-bob", "--reason", "not needed", "--url", url)
    assert (code, out.strip()) == (0, "cancelled run run-bob")
    run = asyncio.run(_load(url, "run-bob"))
    assert run.status is RunStatus.CANCELLED
    assert run.error.message == "not needed"
    code, out = invoke("runs", "cancel", "run-bob", "--url", url)
    assert code == 1
    assert "already ended cancelled" in out


def test_schedules_list(url: str) -> None:
    code, out = invoke("schedules", "list", "--url", url)
    assert code == 0
    (row,) = [line.split() for line in out.splitlines() if line.startswith("greet-hourly")]
    assert row[:6] == ["greet-hourly", "greet", "every", "3600", "s", "skip"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("runs", "show", "nope"), "no run 'nope' in this store"),
        (("runs", "cancel", "nope"), "no run 'nope' in this store"),
        (("signal", "nope", "reply"), "no run 'nope' in this store"),
        (("approve", "nope", "apr-1", "--no"), "no run 'nope' in this store"),
        (("signal", "run-ada", "reply", "--payload", "{bad"), "--payload is not valid JSON"),
        (("signal", "run-ada", "reply", "--payload", "yes"), "--payload is not valid JSON"),
        (("approve", "run-ada", "apr-1"), "say --yes (approve) or --no (reject)"),
        (("runs", "show"), "Missing argument 'RUN_ID'"),
        (("runs", "list", "--status", "sleeping"), "Invalid value for '--status'"),
    ],
)
def test_failures_are_one_line_on_stderr(
    url: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = run_main(capsys, *args, "--url", url)
    assert code != 0
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("Error: ")
    assert message in err


@pytest.mark.parametrize(
    ("store_url", "message"),
    [
        ("bogus://x", "UnknownStoreError: no workflow store handles URL scheme 'bogus'"),
        ("no-scheme", "bad store URL"),
        ("sqlite://", "a SQLite store needs a file"),
    ],
)
def test_bad_urls_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], store_url: str, message: str
) -> None:
    code, _out, err = run_main(capsys, "runs", "list", "--url", store_url)
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert message in err


def test_an_unmigrated_database_names_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    code, _, err = run_main(capsys, "runs", "list", "--url", url)
    assert code == 1
    assert len(err.splitlines()) == 1
    assert f"workflow migrate upgrade --url {url}" in err


def test_the_url_comes_from_the_environment(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_STORE_URL", url)
    code, out, _ = run_main(capsys, "runs", "list")
    assert code == 0
    assert "run-ada" in out


def test_a_worker_target_that_is_not_a_runtime_is_one_line(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    code, _, err = run_main(capsys, "worker", "json:dumps", "--url", url)
    assert code == 1
    assert "expected a Runtime, a Workflow or a list of them" in err
    code, _, err = run_main(capsys, "worker", "no_such_module:runtime", "--url", url)
    assert "cannot import module 'no_such_module'" in err
    code, _, err = run_main(capsys, "worker", "json", "--url", url)
    assert "expected MODULE:ATTRIBUTE" in err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for command in ("demo", "worker", "runs", "signal", "approve", "schedules", "migrate"):
        assert command in out


def test_runs_show_displays_the_deadline_and_a_timed_out_end(tmp_path: Path) -> None:
    async def prepare() -> None:
        store = SQLiteStore.from_path(tmp_path / "dl.db")
        await store.create_schema()
        clock = [1_700_000_000_000]
        runtime = Runtime(store, [greet], clock=lambda: clock[0])
        await runtime.start("greet", {"name": "cy"}, run_id="run-cy", timeout=60)
        await runtime.start("greet", {"name": "di"}, run_id="run-di", timeout=1)
        clock[0] += 1_000
        await runtime.sweep()
        await store.close()

    asyncio.run(prepare())
    url = f"sqlite:///{tmp_path / 'dl.db'}"
    code, out = invoke("runs", "show", "run-cy", "--url", url)
    assert code == 0, out
    assert "deadline" in out
    assert "2023-11-14" in out  # the deadline, T0 + 60 s, as a date
    code, out = invoke("runs", "show", "run-di", "--url", url)
    assert code == 0, out
    assert "timed_out" in out
    assert "DeadlineExceeded" in out
    code, out = invoke("runs", "list", "--status", "timed_out", "--url", url)
    assert code == 0, out
    assert "run-di" in out
    assert "run-cy" not in out
