"""workflow.store.sql: the SQLAlchemy Core layer the SQL stores share."""

from __future__ import annotations

from .naming import DEFAULT_TABLE_PREFIX, check_schema, check_table_prefix
from .store import SQLStore, opened
from .tables import StoreTables, build_tables

__all__ = [
    "DEFAULT_TABLE_PREFIX",
    "SQLStore",
    "StoreTables",
    "build_tables",
    "check_schema",
    "check_table_prefix",
    "opened",
]
