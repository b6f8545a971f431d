"""Upgrading an empty database to head builds exactly what ``build_tables`` declares."""

from __future__ import annotations

import sqlalchemy as sa
from databases import Database
from schema_checks import schema_diffs, table_names, version_rows

from workflow.store.sql import workflow_table_names

PREFIX = "mig_"


async def test_upgrade_from_empty_to_head_matches_the_metadata(
    db: Database, admin: sa.Engine
) -> None:
    store = db.open_store(table_prefix=PREFIX)
    try:
        await store.migrator.upgrade()
        head = store.migrator.head
    finally:
        await store.close()
    schema = db.schema(own_schema=True)
    assert table_names(admin, schema) == workflow_table_names(PREFIX)
    assert version_rows(admin, table_prefix=PREFIX, schema=schema) == [head]
    assert schema_diffs(admin, table_prefix=PREFIX, schema=schema) == []


async def test_the_comparison_sees_a_schema_that_drifted(db: Database, admin: sa.Engine) -> None:
    # Guards the check above: an index dropped behind the migrations' back is a diff.
    store = db.open_store(table_prefix=PREFIX)
    try:
        await store.migrator.upgrade()
    finally:
        await store.close()
    schema = db.schema(own_schema=True)
    with admin.begin() as conn:
        runs = sa.Table(f"{PREFIX}runs", sa.MetaData(), schema=schema, autoload_with=conn)
        next(i for i in runs.indexes if i.name == f"ix_{PREFIX}runs_wake").drop(conn)
    diffs = schema_diffs(admin, table_prefix=PREFIX, schema=schema)
    assert [(d[0], d[1].name) for d in diffs] == [("add_index", f"ix_{PREFIX}runs_wake")]
