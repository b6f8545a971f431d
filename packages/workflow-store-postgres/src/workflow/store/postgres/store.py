"""The PostgreSQL store (psycopg 3)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workflow.runtime import codec
from workflow.runtime.records import SchemaStatus
from workflow.store.sql import DEFAULT_TABLE_PREFIX, SQLStore


class PostgresStore(SQLStore):
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
            raise ValueError(f"PostgresStore needs a postgresql engine, got {engine.dialect.name}")
        super().__init__(
            engine,
            schema=schema,
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            owns_engine=owns_engine,
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        # prepare_threshold=None: no server-side prepared statements, so the store
        # works behind PgBouncer in transaction mode.
        engine = create_async_engine(
            url.replace("postgresql://", "postgresql+psycopg://", 1),
            connect_args={"prepare_threshold": None},
            pool_pre_ping=True,
        )
        return cls(engine, owns_engine=True, **options)

    async def create_schema(self) -> None:
        async with self._engine.begin() as conn:
            if self.schema:
                await conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
            await conn.execution_options(**self._options)
            await conn.run_sync(self.tables.metadata.create_all)

    async def schema_status(self) -> SchemaStatus:
        return SchemaStatus("0001", "0001")
