"""The SQLite store's package-owned migrations and the schema check at open."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from workflow.runtime import (
    InvalidArgumentError,
    SchemaMigrator,
    SchemaOwner,
    SchemaRevision,
    SchemaVersionError,
    open_store,
)
from workflow.store.sqlite import SQLiteStore


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


async def test_opening_an_empty_database_names_the_upgrade_command(tmp_path: Path) -> None:
    url = url_of(tmp_path / "wf.db")
    with pytest.raises(SchemaVersionError) as caught:
        await open_store(url)
    head = SQLiteStore.from_path(tmp_path / "x.db").migrator.head
    assert caught.value.current is None
    assert caught.value.required == head
    assert f"workflow migrate upgrade --url {url}" in str(caught.value)
    assert head in str(caught.value)


async def test_after_upgrade_the_store_opens_and_reports_its_revision(tmp_path: Path) -> None:
    url = url_of(tmp_path / "wf.db")
    store = await open_store(url, verify_schema=False)
    assert isinstance(store, SQLiteStore)
    await store.migrator.upgrade()
    status = await store.schema_status()
    assert status.current == status.required == store.migrator.head
    await store.close()
    reopened = await open_store(url)
    assert (await reopened.schema_status()).up_to_date
    await reopened.close()


async def test_a_database_migrated_by_a_newer_adapter_is_refused(tmp_path: Path) -> None:
    url = url_of(tmp_path / "wf.db")
    store = SQLiteStore.from_url(url)
    await store.create_schema()
    with store.engine.connect() as conn:
        conn.execute(sa.text("UPDATE workflow_alembic_version SET version_num = 'f00dfeedbeef'"))
    await store.close()
    with pytest.raises(SchemaVersionError, match="does not know") as caught:
        await open_store(url)
    assert caught.value.current == "f00dfeedbeef"


async def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    url = url_of(tmp_path / "wf.db")
    store = SQLiteStore.from_url(url)
    await store.create_schema()
    await store.create_run("r", "wf", None, {"a": 1}, 1)
    await store.migrator.downgrade("base")
    assert await store.migrator.current() is None
    with store.engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
    # Nothing is left: every store table, and the version table too.
    assert names == []
    await store.migrator.upgrade()
    assert await store.load_run("r") is None
    await store.close()


async def test_our_version_table_leaves_the_applications_alone(tmp_path: Path) -> None:
    url = url_of(tmp_path / "wf.db")
    store = SQLiteStore.from_url(url)
    with store.engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('app_rev_1')"))
    await store.create_schema()
    with store.engine.connect() as conn:
        app = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert app == "app_rev_1"
    await store.close()


async def test_two_prefixes_are_two_independent_stores_in_one_file(tmp_path: Path) -> None:
    url = url_of(tmp_path / "wf.db")
    a = SQLiteStore.from_url(url, table_prefix="a_")
    b = SQLiteStore.from_url(url, table_prefix="b_")
    await a.create_schema()
    with pytest.raises(SchemaVersionError):
        await b.verify_schema()
    await b.create_schema()
    await a.create_run("same-id", "wf-a", None, None, 1)
    await b.create_run("same-id", "wf-b", None, None, 2)
    run_a, run_b = await a.load_run("same-id"), await b.load_run("same-id")
    assert run_a is not None
    assert run_a.workflow_id == "wf-a"
    assert run_b is not None
    assert run_b.workflow_id == "wf-b"
    await a.close()
    await b.close()


async def test_concurrent_upgrades_both_succeed_and_apply_once(tmp_path: Path) -> None:
    url = url_of(tmp_path / "wf.db")
    stores = [SQLiteStore.from_url(url) for _ in range(3)]
    await asyncio.gather(*(s.create_schema() for s in stores))
    for store in stores:
        assert (await store.schema_status()).up_to_date
        await store.close()


def test_offline_sql_creates_our_tables_and_our_version_table(tmp_path: Path) -> None:
    sql = SQLiteStore.from_path(tmp_path / "wf.db", table_prefix="app_wf_").migrator.offline_sql()
    assert "CREATE TABLE app_wf_runs" in sql
    assert "CREATE TABLE app_wf_alembic_version" in sql
    assert "CREATE TABLE alembic_version" not in sql


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "sqlite:x.db", "sqlite:///x.db?table_prefix=Bad-"],
)
async def test_bad_urls_are_invalid_arguments(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        await open_store(url)


async def test_unknown_revisions_are_invalid_arguments_naming_the_revisions(
    tmp_path: Path,
) -> None:
    store = SQLiteStore.from_path(tmp_path / "wf.db")
    try:
        await store.create_schema()
        known = ", ".join(r.revision for r in store.migrator.history())
        for attempt in (
            store.migrator.upgrade("bogus"),
            store.migrator.downgrade("bogus"),
        ):
            with pytest.raises(InvalidArgumentError) as caught:
                await attempt
            assert "revision 'bogus'" in str(caught.value)
            assert f"the revisions are base, {known}" in str(caught.value)
        with pytest.raises(InvalidArgumentError, match=f"the revisions are base, {known}"):
            store.migrator.offline_sql("bogus")
        # A database migrated by a newer adapter: its revision is the problem.
        with store.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE workflow_alembic_version SET version_num = 'f00dfeedbeef'")
            )
        with pytest.raises(SchemaVersionError, match="does not know") as unknown:
            await store.migrator.upgrade()
        assert unknown.value.current == "f00dfeedbeef"
    finally:
        await store.close()


def test_the_history_has_one_head_and_starts_from_nothing(tmp_path: Path) -> None:
    migrator = SQLiteStore.from_path(tmp_path / "wf.db").migrator
    history = migrator.history()
    assert history[0].down_revision is None
    assert history[-1].revision == migrator.head


async def test_the_fix_in_the_message_keeps_the_table_prefix(tmp_path: Path) -> None:
    url = f"{url_of(tmp_path / 'wf.db')}?table_prefix=app_"
    with pytest.raises(SchemaVersionError) as caught:
        await open_store(url)
    # Quoted for the shell (an unquoted `?` is a glob, an `&` would background it):
    # pasted, the command gets the URL as one argument.
    assert f"workflow migrate upgrade --url '{url}'" in str(caught.value)
    command = str(caught.value).split("`")[1]
    assert shlex.split(command) == ["workflow", "migrate", "upgrade", "--url", url]


async def test_what_open_store_returns_is_a_schema_owner(tmp_path: Path) -> None:
    # workflow migrate and workflow demo find the migrations through these Protocols
    # only (no getattr): a SQL store that stopped satisfying them would lose both.
    store = await open_store(url_of(tmp_path / "wf.db"), verify_schema=False)
    assert isinstance(store, SchemaOwner)
    migrator = store.migrator
    assert isinstance(migrator, SchemaMigrator)
    assert all(isinstance(r, SchemaRevision) for r in migrator.history())
    await store.create_schema()
    assert await migrator.current() == migrator.head
    await store.close()


ALEMBIC_INI = """
[workflow]
script_location = workflow.store.sqlite:migrations
sqlalchemy.url = sqlite:///{db}

[loggers]
keys = root,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""


def test_alembic_from_an_ini_logs_as_the_ini_says(tmp_path: Path) -> None:
    # The store's env must apply the ini's logging, as Alembic's own env template does:
    # without it `alembic --name workflow upgrade head` ran and printed nothing.
    ini = tmp_path / "alembic.ini"
    ini.write_text(ALEMBIC_INI.format(db=tmp_path / "app.db"))
    alembic = Path(sys.executable).parent / "alembic"
    done = subprocess.run(
        [str(alembic), "-c", str(ini), "--name", "workflow", "upgrade", "head"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "INFO  [alembic.runtime.migration] Running upgrade  -> " in done.stderr


def test_alembic_from_an_ini_without_logging_sections_still_migrates(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text(ALEMBIC_INI.format(db=tmp_path / "app.db").split("[loggers]")[0])
    alembic = Path(sys.executable).parent / "alembic"
    done = subprocess.run(
        [str(alembic), "-c", str(ini), "--name", "workflow", "upgrade", "head"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}").connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM workflow_alembic_version")).scalar()
