"""What a migrated database holds, compared with what the adapter's code expects."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.runtime.environment import NameFilterParentNames, NameFilterType

from workflow.store.sql import build_tables, workflow_table_names
from workflow.store.sql.autogenerate import version_table


def metadata_in(table_prefix: str, schema: str | None) -> sa.MetaData:
    """The tables ``build_tables`` defines, placed in ``schema`` (foreign keys follow)."""
    # A table copied without a schema of its own takes the MetaData's default.
    metadata = sa.MetaData(schema=schema)
    for table in build_tables(table_prefix).metadata.sorted_tables:
        table.to_metadata(metadata)
    return metadata


def schema_diffs(
    engine: sa.Engine, *, table_prefix: str, schema: str | None, only_ours: bool = False
) -> list[Any]:
    """Alembic's ``compare_metadata`` of the live namespace against ``build_tables``.

    Empty when the migrations build exactly what the code declares. Every table of the
    namespace is compared (a stray table is a diff) unless ``only_ours``, for
    namespaces an application shares. The version table is Alembic's own and skipped.
    """
    ours = workflow_table_names(table_prefix)

    def include_name(
        name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames
    ) -> bool:
        if type_ == "schema":
            return name == schema
        return not (only_ours and type_ == "table" and name not in ours)

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": schema is not None,
                "include_name": include_name,
                "version_table": version_table(table_prefix),
                "version_table_schema": schema,
            },
        )
        return list(compare_metadata(context, metadata_in(table_prefix, schema)))


def table_names(engine: sa.Engine, schema: str | None) -> set[str]:
    """The tables of ``schema`` (none when the schema does not exist)."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        if schema is not None and not inspector.has_schema(schema):
            return set()
        return set(inspector.get_table_names(schema=schema))


def version_rows(engine: sa.Engine, *, table_prefix: str, schema: str | None) -> list[str]:
    """Every row of the store's version table (Alembic keeps one per head); none when
    the table is absent (never migrated, or downgraded to base)."""
    table = sa.table(version_table(table_prefix), sa.column("version_num"), schema=schema)
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(table.name, schema=schema):
            return []
        return [str(v) for v in conn.execute(sa.select(table.c.version_num)).scalars()]


def snapshot(engine: sa.Engine, schema: str | None, *, table_prefix: str) -> dict[str, Any]:
    """What a reflection sees of one store's tables (version table left out): columns,
    primary key, indexes and foreign keys, in comparable form."""
    tables: dict[str, Any] = {}
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        if schema is not None and not inspector.has_schema(schema):
            return tables
        for name in sorted(
            set(inspector.get_table_names(schema=schema)) - {version_table(table_prefix)}
        ):
            tables[name] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                    for c in inspector.get_columns(name, schema=schema)
                ],
                "primary_key": inspector.get_pk_constraint(name, schema=schema)[
                    "constrained_columns"
                ],
                "indexes": sorted(
                    (str(i["name"]), tuple(map(str, i["column_names"])))
                    for i in inspector.get_indexes(name, schema=schema)
                ),
                "foreign_keys": sorted(
                    (str(f["name"]), tuple(f["constrained_columns"]), f["referred_table"])
                    for f in inspector.get_foreign_keys(name, schema=schema)
                ),
            }
    return tables
