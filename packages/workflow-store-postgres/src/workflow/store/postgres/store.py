"""The PostgreSQL store (psycopg 3)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workflow.runtime import codec
from workflow.runtime.errors import InvalidArgumentError
from workflow.store.sql import DEFAULT_TABLE_PREFIX, OWNED_ENGINE, SQLStore, opened
from workflow.store.sql.urls import parse_store_url


class PostgresStore(SQLStore):
    """An execution store in PostgreSQL (12+), optionally in its own schema.

    The schema is rendered into every statement (``schema_translate_map``), never set
    through ``search_path``, and no server-side prepared statements are used unless
    asked for: both keep the store working behind PgBouncer in transaction mode.
    """

    migrations: ClassVar[str] = "workflow.store.postgres:migrations"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        owns_engine: bool = False,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise InvalidArgumentError(
                f"PostgresStore needs a postgresql engine, got {engine.dialect.name}"
            )
        super().__init__(
            engine,
            schema=schema,
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            owns_engine=owns_engine,
        )

    @classmethod
    def from_url(
        cls, url: str, *, prepare_threshold: int | None = None, **options: Any
    ) -> PostgresStore:
        parsed, from_query = parse_store_url(
            url, "postgresql+psycopg", ("postgresql", "postgres"), extra=("prepare_threshold",)
        )
        threshold = from_query.pop("prepare_threshold", prepare_threshold)
        # prepare_threshold=None: psycopg never prepares server-side (PgBouncer-safe).
        engine = create_async_engine(
            parsed, connect_args={"prepare_threshold": threshold}, **OWNED_ENGINE
        )
        return cls(engine, owns_engine=True, **{**from_query, **options})


async def open_store(url: str, *, verify_schema: bool = True, **options: Any) -> PostgresStore:
    """Entry point for ``postgresql://``: connects and checks the schema revision."""
    return await opened(PostgresStore.from_url(url, **options), verify_schema=verify_schema)
