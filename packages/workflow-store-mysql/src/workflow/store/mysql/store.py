"""The MySQL 8 / MariaDB 10.6+ store (aiomysql over PyMySQL)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workflow.runtime import codec
from workflow.runtime.records import SchemaStatus
from workflow.store.sql import DEFAULT_TABLE_PREFIX, SQLStore


class MySQLStore(SQLStore):
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        owns_engine: bool = False,
    ) -> None:
        if engine.dialect.name not in {"mysql", "mariadb"}:
            raise ValueError(f"MySQLStore needs a mysql engine, got {engine.dialect.name}")
        super().__init__(
            engine,
            schema=schema,
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            owns_engine=owns_engine,
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MySQLStore:
        engine = create_async_engine(
            url.replace("mysql://", "mysql+aiomysql://", 1) + "?charset=utf8mb4",
            isolation_level="READ COMMITTED",
            pool_pre_ping=True,
        )
        return cls(engine, owns_engine=True, **options)

    async def create_schema(self) -> None:
        async with self._engine.begin() as conn:
            if self.schema:
                await conn.execute(
                    sa.text(f"CREATE DATABASE IF NOT EXISTS `{self.schema}` CHARACTER SET utf8mb4")
                )
            await conn.execution_options(**self._options)
            await conn.run_sync(self.tables.metadata.create_all)

    async def schema_status(self) -> SchemaStatus:
        return SchemaStatus("0001", "0001")
