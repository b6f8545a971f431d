"""Validation of the identifiers we render into SQL (schema, table prefix).

User values never become SQL text except these two, and only after they match a
strict pattern: lower-case ASCII letters, digits and underscores, so they need no
quoting on any dialect and cannot inject anything.
"""

from __future__ import annotations

import re

from workflow.runtime.errors import InvalidArgumentError

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,29}\Z")
DEFAULT_TABLE_PREFIX = "workflow_"


SYSTEM_SCHEMAS = frozenset({"information_schema", "mysql", "performance_schema", "sys"})
"""Schemas (MySQL: databases) the servers own; ``pg_*`` names are PostgreSQL's too."""


def check_schema(schema: object) -> str | None:
    """A schema (Postgres) or database (MySQL) name, or ``None`` for the default; never
    one of the server's own (:data:`SYSTEM_SCHEMAS`, ``pg_*``)."""
    if schema is None:
        return None
    if type(schema) is not str or not _SCHEMA.match(schema):
        raise InvalidArgumentError(
            f"schema must match [a-z_][a-z0-9_]* and be at most 63 characters, got {schema!r}"
        )
    if schema in SYSTEM_SCHEMAS or schema.startswith("pg_"):
        raise InvalidArgumentError(
            f"schema {schema!r} belongs to the database server: name a schema of your own "
            f"(not {', '.join(sorted(SYSTEM_SCHEMAS))} or pg_*)"
        )
    return schema


def check_table_prefix(prefix: object) -> str:
    """A table-name prefix: empty, or [a-z_][a-z0-9_]* of at most 30 characters."""
    if prefix == "":
        return ""
    if type(prefix) is not str or not _PREFIX.match(prefix):
        raise InvalidArgumentError(
            "table_prefix must be empty or match [a-z_][a-z0-9_]* and be at most 30 "
            f"characters, got {prefix!r}"
        )
    return prefix
