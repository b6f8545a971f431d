"""Every revision downgrades, and base is an empty namespace again."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from databases import Database
from schema_checks import schema_diffs, snapshot, table_names, version_rows

PREFIX = "down_"


async def test_downgrade_to_base_leaves_no_tables_and_upgrading_again_works(
    db: Database, admin: sa.Engine
) -> None:
    schema = db.schema(own_schema=True)
    store = db.open_store(table_prefix=PREFIX)
    try:
        await store.migrator.upgrade()
        await store.create_run("run-1", "wf", None, {"a": 1}, 1)
        await store.migrator.downgrade("base")
        assert await store.migrator.current() is None
        # Nothing is left, not even the version table (Alembic alone would keep it,
        # emptied, online).
        assert table_names(admin, schema) == set()
        assert version_rows(admin, table_prefix=PREFIX, schema=schema) == []
        await store.migrator.upgrade()
        assert await store.migrator.current() == store.migrator.head
        assert await store.load_run("run-1") is None
    finally:
        await store.close()
    assert schema_diffs(admin, table_prefix=PREFIX, schema=schema) == []


async def test_each_revision_downgrades_to_the_schema_before_it(
    db: Database, admin: sa.Engine
) -> None:
    schema = db.schema(own_schema=True)
    store = db.open_store(table_prefix=PREFIX)
    try:
        history = store.migrator.history()
        # before[i]: the schema just before history[i] was applied.
        before: list[dict[str, Any]] = []
        for revision in history:
            before.append(snapshot(admin, schema, table_prefix=PREFIX))
            await store.migrator.upgrade(revision.revision)
        # One revision at a time ends where a single upgrade to head does.
        assert schema_diffs(admin, table_prefix=PREFIX, schema=schema) == []
        for revision, expected in zip(reversed(history), reversed(before), strict=True):
            assert await store.migrator.current() == revision.revision
            await store.migrator.downgrade("-1")
            assert snapshot(admin, schema, table_prefix=PREFIX) == expected, revision.revision
        assert await store.migrator.current() is None
    finally:
        await store.close()
