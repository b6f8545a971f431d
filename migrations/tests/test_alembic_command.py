"""``alembic --name workflow upgrade head`` from an application's ``alembic.ini``
(the ``[workflow]`` section of docs/sql-stores.md), run as the real command."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from app_config import write_app_ini
from commands import run
from databases import Database
from schema_checks import schema_diffs, table_names, version_rows

from workflow.store.sql import workflow_table_names

PREFIX = "workflow_"


def test_the_workflow_section_upgrades_reports_and_downgrades(
    db: Database, admin: sa.Engine, tmp_path: Path
) -> None:
    schema = db.schema(own_schema=True)
    url = db.engine_url(default_namespace=False).render_as_string(hide_password=False)
    write_app_ini(
        tmp_path,
        app_url=url,
        workflow_location=db.location,
        workflow_url=url,
        table_prefix=PREFIX,
        schema=schema,
    )

    def alembic(*args: str) -> str:
        # No -c: alembic finds alembic.ini in the working directory, as in an app.
        code, out, err = run("alembic", "--name", "workflow", *args, cwd=tmp_path)
        assert code == 0, err
        return out

    alembic("upgrade", "head")
    assert version_rows(admin, table_prefix=PREFIX, schema=schema) == [db.head]
    assert schema_diffs(admin, table_prefix=PREFIX, schema=schema) == []
    assert alembic("current").split() == [db.head, "(head)"]

    # -x overrides the section: a second store, with its own tables and version table.
    alembic("-x", "table_prefix=other_", "upgrade", "head")
    assert version_rows(admin, table_prefix="other_", schema=schema) == [db.head]
    assert table_names(admin, schema) == workflow_table_names(PREFIX) | workflow_table_names(
        "other_"
    )

    alembic("downgrade", "base")
    assert version_rows(admin, table_prefix=PREFIX, schema=schema) == []
    assert table_names(admin, schema) == workflow_table_names("other_")
