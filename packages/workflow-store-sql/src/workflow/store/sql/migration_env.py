"""The Alembic environment every SQL adapter's ``migrations/env.py`` runs.

An adapter's ``env.py`` names its dialect::

    from workflow.store.postgres.dialect import PostgresDialect
    from workflow.store.sql.migration_env import run_env
    run_env(PostgresDialect())

Settings come from, in order: ``Config.attributes`` (the programmatic
:class:`~workflow.store.sql.migrator.Migrator` and ``workflow migrate``), ``-x`` arguments
(``alembic -x schema=wf -x table_prefix=wf_``), and the ``alembic.ini`` section
(``workflow.schema``, ``workflow.table_prefix``). Our version table is
``<prefix>alembic_version`` in the store's schema, so an application's own
``alembic_version`` is never touched. Every online run holds a cross-process lock
(the dialect's :meth:`~workflow.store.sql.dialect.Dialect.migration_lock`) and reads the
current revision only after taking it, so concurrent upgrades apply each revision once.
"""

from __future__ import annotations

import hashlib
import logging.config
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.pool import NullPool

from .autogenerate import only_workflow_tables, version_table
from .dialect import Dialect
from .naming import DEFAULT_TABLE_PREFIX, check_schema, check_table_prefix
from .tables import build_tables

LOCK_TIMEOUT_S = 600


def table_prefix() -> str:
    """The table prefix of the running migration (for revision bodies)."""
    prefix: str = op.get_context().opts["workflow_table_prefix"]
    return prefix


def store_schema() -> str | None:
    """The schema (MySQL: database) of the running migration, for revision bodies.

    ``create_table`` honours the connection's ``schema_translate_map``; ``ALTER``
    operations render the name as given, so they must pass ``schema=`` themselves."""
    schema: str | None = op.get_context().opts["workflow_schema"]
    return schema


def lock_key(schema: str | None, prefix: str) -> int:
    """A stable signed 64-bit key for this store's migration lock."""
    digest = hashlib.sha256(f"workflow:{schema or ''}:{prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _setting(name: str, default: str | None) -> str | None:
    config = context.config
    if name in config.attributes:
        value = config.attributes[name]
        return None if value is None else str(value)
    x = context.get_x_argument(as_dictionary=True)
    short = name.removeprefix("workflow_")
    if short in x:
        return str(x[short])
    option = config.get_main_option(f"workflow.{short}")
    return option if option is not None else default


def _ensure_schema(connection: sa.Connection, dialect: Dialect, schema: str | None) -> None:
    if schema is None:
        return
    statement = dialect.create_schema_sql(schema)
    if statement is None:
        return
    # Look first: PostgreSQL checks CREATE on the database even for CREATE SCHEMA IF NOT
    # EXISTS of a schema that exists, a right a least-privilege migration role lacks.
    if sa.inspect(connection).has_schema(schema):
        return
    connection.execute(sa.text(statement))


def _enter_schema_offline(dialect: Dialect, schema: str | None) -> None:
    """Make the offline script create the schema and work inside it.

    Offline, Alembic compiles each statement without a connection, so the online
    ``schema_translate_map`` cannot apply and ``create_table`` renders unqualified
    names: the script itself switches its session to the schema first.
    """
    if schema is None:
        return
    create, use = dialect.create_schema_sql(schema), dialect.use_schema_sql(schema)
    if create is not None:
        context.execute(create)
    if use is not None:
        context.execute(use)


def _configure(schema: str | None, prefix: str, **options: Any) -> None:
    context.configure(
        target_metadata=build_tables(prefix).metadata,
        version_table=version_table(prefix),
        version_table_schema=schema,
        # Compare and autogenerate only our tables: the database may hold others.
        include_name=only_workflow_tables(prefix),
        workflow_table_prefix=prefix,
        workflow_schema=schema,
        **options,
    )


def run_env(dialect: Dialect) -> None:
    """Run the migrations Alembic asked for (online or ``--sql`` offline), on
    ``dialect``'s database (the adapter's ``env.py`` names it)."""
    config = context.config
    if config.config_file_name is not None and config.file_config.has_section("loggers"):
        # The alembic command line: the ini's [loggers] decide what it prints, as in
        # Alembic's own env template (without this, `upgrade head` printed nothing). An
        # ini without logging sections is left alone (fileConfig would raise on it).
        # Loggers the process already has stay enabled: an application may run
        # Alembic's command API in-process with its ini.
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    schema = check_schema(_setting("workflow_schema", None))
    prefix = check_table_prefix(_setting("workflow_table_prefix", DEFAULT_TABLE_PREFIX))
    if context.is_offline_mode():
        _configure(schema, prefix, url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
        with context.begin_transaction():
            _enter_schema_offline(dialect, schema)
            context.run_migrations()
        return
    connection: sa.Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run_online(connection, dialect, schema, prefix)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: set sqlalchemy.url in the alembic.ini section")
    engine = sa.create_engine(url, poolclass=NullPool)
    dialect.configure_engine(engine, autocommit=False)
    with engine.connect() as conn:
        _run_online(conn, dialect, schema, prefix)
        conn.commit()
    engine.dispose()


def _run_online(
    connection: sa.Connection, dialect: Dialect, schema: str | None, prefix: str
) -> None:
    with dialect.migration_lock(connection, schema, prefix):
        _ensure_schema(connection, dialect, schema)
        if schema is not None:
            connection = connection.execution_options(schema_translate_map={None: schema})
        _configure(schema, prefix, connection=connection, render_as_batch=dialect.render_as_batch)
        with context.begin_transaction():
            context.run_migrations()
            if not context.get_context().get_current_heads():
                # Down to base: drop the version table too, as Alembic's offline script
                # does (online, Alembic would leave it behind, empty), so "base" leaves
                # nothing of the store in the database. Still under the lock.
                _version_table(prefix).drop(connection, checkfirst=True)


def _version_table(prefix: str) -> sa.Table:
    """The store's version table (its schema comes from the connection's translate map)."""
    return sa.Table(version_table(prefix), sa.MetaData(), sa.Column("version_num", sa.String(32)))
