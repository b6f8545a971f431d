"""workflow.store.sql: the SQLAlchemy Core layer the SQL stores share."""

from __future__ import annotations

from .autogenerate import ignore_workflow_tables, workflow_table_names
from .naming import DEFAULT_TABLE_PREFIX, check_schema, check_table_prefix
from .store import OWNED_ENGINE, SQLStore, opened
from .tables import StoreTables, build_tables

__all__ = [
    "DEFAULT_TABLE_PREFIX",
    "OWNED_ENGINE",
    "SQLStore",
    "StoreTables",
    "build_tables",
    "check_schema",
    "check_table_prefix",
    "ignore_workflow_tables",
    "opened",
    "workflow_table_names",
]
