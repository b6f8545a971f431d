"""The empty database namespace a migrations test runs in (see ``conftest.db``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from workflow.store.mysql import MySQLStore
from workflow.store.postgres import PostgresStore
from workflow.store.sql import DEFAULT_TABLE_PREFIX, SQLStore
from workflow.store.sqlite import SQLiteStore

Adapter = Literal["sqlite", "postgres", "mysql"]


@dataclass(frozen=True)
class Database:
    """One adapter's server (or SQLite file) and this test's own namespace on it.

    ``namespace`` is the test's PostgreSQL schema or MySQL database (``None`` on
    SQLite, where the file is the namespace). A store reaches it one of two ways:
    naming it in its ``schema`` option (the server's default schema stays the
    default), or as the connection's default (PostgreSQL ``search_path`` in the URL,
    MySQL database in the URL path), the way an application that shares its database
    with the store is set up; that way needs :meth:`create_namespace` first.
    """

    adapter: Adapter
    store_class: type[SQLStore]
    scheme: str
    server: sa.URL
    namespace: str | None

    @classmethod
    def sqlite(cls, file: Path) -> Database:
        return cls("sqlite", SQLiteStore, "sqlite", sa.make_url(f"sqlite:///{file}"), None)

    @classmethod
    def postgres(cls, server: sa.URL, namespace: str) -> Database:
        return cls(
            "postgres",
            PostgresStore,
            "postgresql",
            server.set(drivername="postgresql+psycopg"),
            namespace,
        )

    @classmethod
    def mysql(cls, server: sa.URL, namespace: str) -> Database:
        sync = server.set(drivername="mysql+pymysql").update_query_dict({"charset": "utf8mb4"})
        return cls("mysql", MySQLStore, "mysql", sync, namespace)

    @property
    def location(self) -> str:
        """The adapter's Alembic ``script_location``."""
        return self.store_class.migrations

    @property
    def head(self) -> str:
        """The adapter's head revision."""
        config = Config()
        config.set_main_option("script_location", self.location)
        head = ScriptDirectory.from_config(config).get_current_head()
        assert head is not None, f"{self.location} has no revisions"
        return head

    def schema(self, *, own_schema: bool) -> str | None:
        """The store's ``schema`` option for either way of reaching the namespace."""
        return self.namespace if own_schema else None

    def engine_url(self, *, default_namespace: bool) -> sa.URL:
        """A synchronous SQLAlchemy URL; with ``default_namespace`` the test's namespace
        is the connection's default, otherwise the server's own default is."""
        if not default_namespace or self.namespace is None:
            return self.server
        if self.adapter == "postgres":
            return self.server.update_query_dict({"options": f"-csearch_path={self.namespace}"})
        return self.server.set(database=self.namespace)

    def store_url(
        self, *, table_prefix: str = DEFAULT_TABLE_PREFIX, own_schema: bool = True
    ) -> str:
        """A store URL (what ``workflow migrate --url`` and ``open_store`` take)."""
        url = self.engine_url(default_namespace=not own_schema).set(drivername=self.scheme)
        url = url.difference_update_query(["charset"])
        options = {"table_prefix": table_prefix}
        schema = self.schema(own_schema=own_schema)
        if schema is not None:
            options["schema"] = schema
        return url.update_query_dict(options).render_as_string(hide_password=False)

    def open_store(
        self, *, table_prefix: str = DEFAULT_TABLE_PREFIX, own_schema: bool = True
    ) -> SQLStore:
        """A store handle (not connected yet, schema not verified)."""
        if self.adapter == "sqlite":
            return SQLiteStore.from_url(self.store_url(table_prefix=table_prefix))
        url = self.store_url(table_prefix=table_prefix, own_schema=own_schema)
        if self.adapter == "postgres":
            return PostgresStore.from_url(url)
        return MySQLStore.from_url(url)

    def engine(self, *, default_namespace: bool) -> sa.Engine:
        return sa.create_engine(
            self.engine_url(default_namespace=default_namespace), poolclass=NullPool
        )

    def admin_engine(self) -> sa.Engine:
        return self.engine(default_namespace=False)

    def create_namespace(self) -> None:
        self._admin(
            {
                "sqlite": None,
                "postgres": f'CREATE SCHEMA "{self.namespace}"',
                "mysql": f"CREATE DATABASE `{self.namespace}` CHARACTER SET utf8mb4",
            }[self.adapter]
        )

    def drop(self) -> None:
        self._admin(
            {
                "sqlite": None,
                "postgres": f'DROP SCHEMA IF EXISTS "{self.namespace}" CASCADE',
                "mysql": f"DROP DATABASE IF EXISTS `{self.namespace}`",
            }[self.adapter]
        )

    def _admin(self, statement: str | None) -> None:
        # The namespace is ours (wf_mig_<hex>), never a user value.
        if statement is None:
            return
        engine = self.admin_engine()
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(statement))
        finally:
            engine.dispose()
