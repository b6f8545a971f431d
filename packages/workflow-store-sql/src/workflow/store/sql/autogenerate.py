"""Which tables belong to a store, for Alembic's autogenerate and compare.

An application that keeps its own Alembic history in the same database adds
:func:`ignore_workflow_tables` to its ``env.py``, so ``alembic revision --autogenerate``
and ``alembic check`` neither propose dropping the store's tables nor report them::

    from workflow.store.sql import ignore_workflow_tables

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=ignore_workflow_tables(table_prefix="workflow_"),
    )

The store's own migration environment (:mod:`workflow.store.sql.migration_env`) uses
the complement, :func:`only_workflow_tables`. Both are built from
:func:`workflow_table_names`, so the two can never disagree about what is ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .naming import DEFAULT_TABLE_PREFIX, check_schema, check_table_prefix
from .tables import build_tables

if TYPE_CHECKING:
    from alembic.runtime.environment import IncludeNameFn, NameFilterParentNames, NameFilterType


def version_table(prefix: str) -> str:
    """The name of the store's Alembic version table (in the store's schema)."""
    return f"{prefix}alembic_version"


def workflow_table_names(table_prefix: str = DEFAULT_TABLE_PREFIX) -> frozenset[str]:
    """Every table a store with ``table_prefix`` owns, its version table included."""
    tables = build_tables(check_table_prefix(table_prefix))
    names = {t.name for t in tables.metadata.sorted_tables}
    return frozenset({*names, version_table(tables.prefix)})


def ignore_workflow_tables(
    table_prefix: str = DEFAULT_TABLE_PREFIX, schema: str | None = None
) -> IncludeNameFn:
    """An Alembic ``include_name`` hook that leaves one store's tables out.

    Pass the store's ``table_prefix`` and ``schema`` options as the store was opened
    with them: ``schema=None`` means the connection's default schema (Alembic reports
    tables there without a schema name), a name means that schema (PostgreSQL) or
    database (MySQL). Every other table, and every non-table name, is kept. For
    several stores, or with a filter of your own, call each hook in your own
    ``include_name`` and keep a name only when all of them keep it.
    Raises :class:`~workflow.runtime.errors.InvalidArgumentError` for a bad prefix or
    schema.
    """
    names = workflow_table_names(table_prefix)
    where = check_schema(schema)

    def include_name(
        name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames
    ) -> bool:
        if type_ != "table":
            return True
        return not (name in names and parent_names.get("schema_name") == where)

    return include_name


def only_workflow_tables(table_prefix: str = DEFAULT_TABLE_PREFIX) -> IncludeNameFn:
    """The store's own ``include_name`` hook: keep only the store's tables.

    Used by the store's migration environment, whose database may hold an
    application's tables too. Schema-blind on purpose: the environment reflects one
    schema only (see :func:`workflow.store.sql.migration_env.run_env`).
    """
    names = workflow_table_names(table_prefix)

    def include_name(
        name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames
    ) -> bool:
        return type_ != "table" or name in names

    return include_name
