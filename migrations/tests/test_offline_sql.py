"""``workflow migrate upgrade --sql`` prints a script that, run by a DBA on an empty
database, builds the same schema as an online upgrade."""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa
from commands import run
from databases import Database
from schema_checks import schema_diffs, table_names, version_rows

from workflow.store.sql import workflow_table_names

PREFIX = "off_"
# The MySQL protocol's CLIENT_MULTI_STATEMENTS flag (pymysql.constants.CLIENT, which has
# no type hints): the script is many statements, sent as one string like a client would.
MYSQL_MULTI_STATEMENTS = 1 << 16


def apply_script(db: Database, sql: str) -> None:
    """Run ``sql`` the way a DBA would: the whole script, as printed, in one session."""
    if db.adapter == "sqlite":
        database = db.server.database
        assert database is not None
        with sqlite3.connect(database) as conn:
            conn.executescript(sql)
        return
    connect_args: dict[str, Any] = {}
    if db.adapter == "mysql":
        connect_args["client_flag"] = MYSQL_MULTI_STATEMENTS
    engine = sa.create_engine(db.server, connect_args=connect_args, poolclass=sa.NullPool)
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            # psycopg runs a parameterless multi-statement string as one simple query;
            # PyMySQL (MULTI_STATEMENTS) raises a failing statement's error from nextset().
            cursor.execute(sql)
            while cursor.nextset():
                pass
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()


def test_the_offline_upgrade_script_builds_the_same_schema(db: Database, admin: sa.Engine) -> None:
    code, sql, err = run(
        "workflow", "migrate", "upgrade", "--sql", "--url", db.store_url(table_prefix=PREFIX)
    )
    assert code == 0, err
    schema = db.schema(own_schema=True)
    assert table_names(admin, schema) == set(), "--sql must not touch the database"
    apply_script(db, sql)
    assert table_names(admin, schema) == workflow_table_names(PREFIX)
    assert schema_diffs(admin, table_prefix=PREFIX, schema=schema) == []
    assert version_rows(admin, table_prefix=PREFIX, schema=schema) == [db.head]
