"""The store's migrations on a real local D1: over HTTP (``workflow migrate``) and as
the ``.sql`` files ``wrangler d1 migrations apply`` runs."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from local_d1 import ACCOUNT_ID, DATABASE_ID, LocalD1, local_d1  # noqa: F401 (fixture)

from workflow.runtime import open_store
from workflow.runtime.errors import SchemaVersionError
from workflow.store.d1 import D1Store
from workflow.store.d1.migrator import statements
from workflow.store.d1.wrangler import SHIPPED, migration_files

TOKEN_ENV = "WORKFLOW_TEST_D1_TOKEN"


@pytest.fixture
def url(local_d1: LocalD1, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    monkeypatch.setenv(TOKEN_ENV, local_d1.token)
    query = urllib.parse.urlencode(
        {
            "base_url": local_d1.base_url,
            "api_token_env": TOKEN_ENV,
            "table_prefix": f"m{secrets.token_hex(4)}_",
        }
    )
    return f"d1://{ACCOUNT_ID}/{DATABASE_ID}?{query}"


def workflow(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "workflow"
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )


async def test_workflow_migrate_upgrades_reports_and_checks(url: str) -> None:
    head = D1Store.from_url(url).migrator.head
    before = workflow("migrate", "check", "--url", url)
    assert before.returncode != 0
    assert "workflow migrate upgrade" in before.stderr
    done = workflow("migrate", "upgrade", "--url", url)
    assert done.returncode == 0, done.stderr
    current = workflow("migrate", "current", "--url", url)
    assert current.returncode == 0, current.stderr
    assert head in current.stdout
    assert workflow("migrate", "check", "--url", url).returncode == 0
    store = await open_store(url)
    await store.close()


async def test_downgrade_to_base_removes_everything_and_upgrade_restores(url: str) -> None:
    store = D1Store.from_url(url)
    try:
        await store.create_schema()
        first = store.migrator.history()[0].revision
        await store.migrator.downgrade(first)
        assert await store.migrator.current() == first
        await store.migrator.downgrade("base")
        assert await store.migrator.current() is None
        await store.migrator.upgrade("head")
        await store.verify_schema()
    finally:
        await store.close()


async def test_concurrent_upgrades_both_succeed_and_apply_each_revision_once(url: str) -> None:
    stores = [D1Store.from_url(url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.migrator.upgrade("head") for s in stores))
        await stores[0].verify_schema()
    finally:
        for store in stores:
            await store.close()


async def test_an_unknown_revision_is_refused_naming_the_fix(url: str) -> None:
    store = D1Store.from_url(url)
    try:
        await store.create_schema()
        await (
            store.database.prepare(
                f'UPDATE "{store.tables.prefix}alembic_version" SET version_num = ?'
            )
            .bind("ffffffffffff")
            .run()
        )
    finally:
        await store.close()
    with pytest.raises(SchemaVersionError, match="upgrade the package") as caught:
        await open_store(url)
    assert caught.value.current == "ffffffffffff"


def test_the_shipped_wrangler_files_are_the_revisions_rendered() -> None:
    # Regenerate with: python -m workflow.store.d1.wrangler <that directory>
    shipped = {p.name: p.read_text(encoding="utf-8") for p in sorted(SHIPPED.glob("*.sql"))}
    assert shipped == migration_files()


async def test_the_wrangler_files_applied_in_order_give_a_store_at_head(url: str) -> None:
    store = D1Store.from_url(url)
    database = store.database
    try:
        # As wrangler applies them: each file's statements, one file after another.
        for sql in migration_files(store.tables.prefix).values():
            await database.batch([database.prepare(s) for s in statements(sql)])
        await store.verify_schema()
        assert (await store.create_run("r", "wf", None, None, 1)).run is not None
    finally:
        await store.close()


def test_the_revisions_are_the_logical_changes_in_order() -> None:
    # migrations/CHANGES.md: one row per logical change, a column per adapter.
    changes = Path(__file__).resolve().parents[3] / "migrations" / "CHANGES.md"
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in changes.read_text().splitlines()
        if line.startswith("|")
    ]
    header, body = rows[0], rows[2:]
    column, bodies = header.index("d1"), header.index("body")
    # The files are numbered in the history's order, oldest first.
    history = [name[5:].removesuffix(".sql") for name in migration_files()]
    assert history == [row[column] for row in body]
    for revision, row in zip(history, body, strict=True):
        module = SHIPPED.parent / "versions" / f"{revision}_{row[bodies][6:]}.py"
        assert f"import {row[bodies]} as body" in module.read_text()
