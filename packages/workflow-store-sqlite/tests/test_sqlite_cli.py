"""`workflow migrate` against a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from workflow.runtime.cli import _build, main
from workflow.runtime.errors import SchemaVersionError
from workflow.store.sqlite import SQLiteStore
from workflow.store.sqlite.store import open_store


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_build(), list(args))
    return result.exit_code, result.output


def test_check_fails_on_an_empty_database_with_the_fix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    code, out = invoke("migrate", "check", "--url", url)
    assert code == 1
    assert f"workflow migrate upgrade --url {url}" in out
    assert "Traceback" not in out


def test_upgrade_then_check_current_history_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    head = SQLiteStore.from_path(tmp_path / "other.db").migrator.head
    code, out = invoke("migrate", "upgrade", "--url", url)
    assert (code, out.strip()) == (0, f"{url}: at revision {head}")
    assert invoke("migrate", "check", "--url", url)[0] == 0
    code, out = invoke("migrate", "current", "--url", url)
    assert out.split() == ["current:", head, "head:", head]
    code, out = invoke("migrate", "history", "--url", url)
    history = SQLiteStore.from_path(tmp_path / "other.db").migrator.history()
    assert [line.split()[:3] for line in out.splitlines()] == [
        [r.down_revision or "<base>", "->", r.revision] for r in history
    ]
    assert history[-1].revision == head
    code, out = invoke("migrate", "downgrade", "--revision", "base", "--url", url)
    assert (code, out.strip()) == (0, f"{url}: at revision (none)")
    assert invoke("migrate", "check", "--url", url)[0] == 1
    # 'base' drops every table, the version table too (as docs/sql-stores.md says).
    with sqlite3.connect(tmp_path / "wf.db") as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.mark.parametrize("verb", ["upgrade", "downgrade"])
def test_an_unknown_revision_is_one_line_listing_the_revisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    assert invoke("migrate", "upgrade", "--url", url)[0] == 0
    with pytest.raises(SystemExit) as exited:
        main(["migrate", verb, "--revision", "bogus", "--url", url])
    _, err = capsys.readouterr()
    assert exited.value.code == 1
    assert len(err.splitlines()) == 1, err
    history = SQLiteStore.from_path(tmp_path / "other.db").migrator.history()
    assert err.startswith(f"Error: InvalidArgumentError: cannot {verb} to revision 'bogus'")
    assert f"the revisions are base, {', '.join(r.revision for r in history)}" in err
    assert "unexpected" not in err


def test_offline_sql_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    code, out = invoke("migrate", "upgrade", "--sql", "--url", url)
    assert code == 0
    assert "CREATE TABLE workflow_runs" in out
    assert invoke("migrate", "check", "--url", url)[0] == 1


def test_the_url_comes_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = CliRunner().invoke(_build(), ["migrate", "upgrade"], env={"WORKFLOW_STORE_URL": url})
    assert result.exit_code == 0
    assert result.output.startswith(url)


def test_bad_urls_are_one_line_errors() -> None:
    code, out = invoke("migrate", "current", "--url", "bogus://x")
    assert code == 1
    assert out.startswith("Error: UnknownStoreError")
    assert len(out.strip().splitlines()) == 1


def test_a_file_that_cannot_be_opened_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'wf.db'}"
    code, out = invoke("migrate", "upgrade", "--url", url)
    assert code == 1
    assert "Traceback" not in out
    assert len(out.strip().splitlines()) == 1, out
    assert "StoreConfigurationError" in out
    assert "does its directory exist?" in out


@pytest.mark.parametrize(
    "args",
    [("runs", "list"), ("migrate", "check"), ("schedules", "list")],
    ids=["runs-list", "migrate-check", "schedules-list"],
)
def test_a_command_on_a_missing_file_names_the_fix_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    # sqlite3 creates a missing file on connect: a typo in a path must not leave an
    # empty database behind.
    db = tmp_path / "typo.db"
    code, out = invoke(*args, "--url", f"sqlite:///{db}")
    assert code == 1, out
    assert "no SQLite database at" in out
    assert "workflow migrate upgrade --url" in out
    assert list(tmp_path.iterdir()) == []


async def test_open_store_on_a_missing_file_raises_before_creating_it(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    with pytest.raises(SchemaVersionError) as caught:
        await open_store(f"sqlite:///{db}")
    assert caught.value.current is None
    assert not db.exists()
    # Without the check (a store that creates its schema itself), the file is made.
    store = await open_store(f"sqlite:///{db}", verify_schema=False)
    try:
        await store.create_schema()
        await store.verify_schema()
    finally:
        await store.close()
    assert db.exists()
