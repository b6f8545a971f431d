"""Two processes upgrading one empty database at once (replicas starting together):
both succeed, and each revision is applied once."""

from __future__ import annotations

import sqlalchemy as sa
from commands import finish, start
from databases import Database
from schema_checks import schema_diffs, table_names, version_rows

from workflow.store.sql import workflow_table_names

PREFIX = "race_"


def test_two_processes_upgrading_at_once_apply_each_revision_once(
    db: Database, admin: sa.Engine
) -> None:
    url = db.store_url(table_prefix=PREFIX)
    head = db.head
    # Both are started before either is waited for; the migration lock orders them.
    processes = [start("workflow", "migrate", "upgrade", "--url", url) for _ in range(2)]
    results = [finish(process) for process in processes]
    for code, out, err in results:
        # A revision applied twice fails its CREATE TABLE / ADD COLUMN: a non-zero exit.
        assert code == 0, err
        assert out.strip().endswith(f"at revision {head}"), out
    schema = db.schema(own_schema=True)
    assert version_rows(admin, table_prefix=PREFIX, schema=schema) == [head]
    assert table_names(admin, schema) == workflow_table_names(PREFIX)
    assert schema_diffs(admin, table_prefix=PREFIX, schema=schema) == []
