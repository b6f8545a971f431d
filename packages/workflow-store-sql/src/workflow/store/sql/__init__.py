"""workflow.store.sql: what the SQL stores share.

The table definitions (the schema truth for Alembic and the drift checks), the
operation skeleton (:class:`SQLStore`), statements compiled once per store
(:mod:`.compiled`), the drivers' common shape (:mod:`.driver`), the Alembic
environment and migrator, and the :class:`Dialect` base class each dialect package
subclasses. docs/sql-stores.md says where a dialect's SQL lives and how to add one.
"""

from __future__ import annotations

from .autogenerate import ignore_workflow_tables, workflow_table_names
from .dialect import Dialect
from .naming import DEFAULT_TABLE_PREFIX, check_schema, check_table_prefix
from .store import ReturningClaims, SQLStore, opened
from .tables import StoreTables, build_tables

__all__ = [
    "DEFAULT_TABLE_PREFIX",
    "Dialect",
    "ReturningClaims",
    "SQLStore",
    "StoreTables",
    "build_tables",
    "check_schema",
    "check_table_prefix",
    "ignore_workflow_tables",
    "opened",
    "workflow_table_names",
]
