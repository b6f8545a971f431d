"""The SQLite store: the embedded default (one file, WAL mode, no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workflow.runtime import codec
from workflow.runtime.errors import InvalidArgumentError
from workflow.store.sql import DEFAULT_TABLE_PREFIX, OWNED_ENGINE, SQLStore, opened
from workflow.store.sql.sqlite_setup import configure_sqlite
from workflow.store.sql.urls import parse_store_url


class SQLiteStore(SQLStore):
    """An execution store in one SQLite database file.

    Every write transaction is ``BEGIN IMMEDIATE`` (SQLite serializes writers per
    database); claims are conditional ``UPDATE … RETURNING`` statements, which also run
    on Cloudflare D1's SQLite dialect.
    """

    migrations: ClassVar[str] = "workflow.store.sqlite:migrations"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        busy_timeout_ms: int = 10_000,
        owns_engine: bool = False,
        schema: None = None,
    ) -> None:
        if schema is not None:
            raise InvalidArgumentError(
                "SQLite has no schemas: use table_prefix, or another database file"
            )
        if engine.dialect.name != "sqlite":
            raise InvalidArgumentError(
                f"SQLiteStore needs a sqlite engine, got {engine.dialect.name}"
            )
        configure_sqlite(engine, busy_timeout_ms=busy_timeout_ms, begin_immediate=False)
        super().__init__(
            engine,
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            owns_engine=owns_engine,
        )

    @classmethod
    def from_path(cls, path: str | Path, **options: Any) -> SQLiteStore:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}", **OWNED_ENGINE)
        return cls(engine, owns_engine=True, **options)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        parsed, from_query = parse_store_url(
            url, "sqlite+aiosqlite", ("sqlite",), extra=("busy_timeout_ms",)
        )
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidArgumentError(
                "a SQLite store needs a file: sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        engine = create_async_engine(parsed, **OWNED_ENGINE)
        return cls(engine, owns_engine=True, **{**from_query, **options})


async def open_store(url: str, *, verify_schema: bool = True, **options: Any) -> SQLiteStore:
    """Entry point for ``sqlite:///path``: opens the file and checks its schema revision."""
    return await opened(SQLiteStore.from_url(url, **options), verify_schema=verify_schema)
