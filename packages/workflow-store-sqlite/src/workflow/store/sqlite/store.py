"""The SQLite store: the embedded default (one file, WAL mode, no server)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from workflow.runtime import codec, validation
from workflow.runtime.errors import InvalidArgumentError, SchemaVersionError
from workflow.runtime.hints import shell_command
from workflow.runtime.registry import check_flag, redact_url
from workflow.runtime.timeouts import DEFAULT_OPERATION_TIMEOUT_S
from workflow.store.sql import DEFAULT_TABLE_PREFIX, ReturningClaims, opened
from workflow.store.sql.urls import check_keywords, keyword_options, parse_store_url

from .dialect import SQLiteDialect
from .driver import SQLiteDriver


class SQLiteStore(ReturningClaims):
    """An execution store in one SQLite database file.

    Every write transaction is ``BEGIN IMMEDIATE`` (SQLite serializes writers per
    database); claims are conditional ``UPDATE … RETURNING`` statements. Operations run
    on ``sqlite3`` connections, each on its own thread: an operation is one hop from
    the event loop to that thread, however many statements it has.

    ``connections``: at most this many (each with its thread; writers take turns
    anyway, so more only helps readers). ``on_connect``: called with each new
    ``sqlite3`` connection, on its thread, after the store's own settings (an
    application's own ``PRAGMA``).
    """

    migrations: ClassVar[str] = "workflow.store.sqlite:migrations"

    def __init__(
        self,
        path: str | Path,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        busy_timeout_ms: int = 10_000,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S,
        connections: int = 8,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
        schema: None = None,
    ) -> None:
        if schema is not None:
            raise InvalidArgumentError(
                "SQLite has no schemas: use table_prefix, or another database file"
            )
        if not isinstance(path, (str, Path)) or str(path) in ("", ":memory:"):
            raise InvalidArgumentError(
                f"a SQLite store needs a file path, got {path!r} (no in-memory databases: "
                "each connection would see its own)"
            )
        busy_timeout_ms = validation.check_int(busy_timeout_ms, "busy_timeout_ms", 0, 2**31 - 1)
        connections = validation.check_int(connections, "connections", 1, 1024)
        dialect = SQLiteDialect(busy_timeout_ms)
        super().__init__(
            SQLiteDriver(str(path), dialect, connections, on_connect),
            dialect,
            sa.URL.create("sqlite+pysqlite", database=str(path)),
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            operation_timeout=operation_timeout,
        )

    @property
    def path(self) -> str:
        """The database file."""
        return str(self._migration_url.database)

    async def verify_schema(self) -> None:
        """Raise :class:`SchemaVersionError` unless the file exists and is at the head
        revision. A missing file is reported without opening it: sqlite3 would create
        an empty one, and a typo in a read-only command's path would leave it behind.
        (In a directory that does not exist, sqlite3 creates nothing and the store's
        StoreConfigurationError says so.)"""
        if await asyncio.to_thread(_missing_in_existing_directory, Path(self.path)):
            head = self.migrator.head
            fix = shell_command("workflow", "migrate", "upgrade", "--url", self.url_hint)
            raise SchemaVersionError(
                f"no SQLite database at {self.path!r} (nothing was created); the adapter "
                f"needs revision {head}: run `{fix}` to create it",
                current=None,
                required=head,
            )
        await super().verify_schema()

    @classmethod
    def from_path(cls, path: str | Path, **options: Any) -> SQLiteStore:
        return cls(path, **options)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        """``sqlite:///relative/path.db`` or ``sqlite:////abs/path.db``, with the query
        options ``table_prefix``, ``max_payload_bytes``, ``busy_timeout_ms`` and
        ``connections``; ``options``: the constructor's keyword options (they win over
        the URL's). Any other option is an :class:`InvalidArgumentError`."""
        check_keywords("SQLite", options, keyword_options(cls))
        parsed, from_query = parse_store_url(
            url,
            "sqlite+pysqlite",
            ("sqlite",),
            store="SQLite",
            extra=("busy_timeout_ms", "connections"),
        )
        if parsed.username or parsed.password or parsed.host or parsed.port:
            raise InvalidArgumentError(
                f"a sqlite:// URL names a file, not a server (no user, password, host or "
                f"port), got {redact_url(url)!r}: sqlite:///relative/path.db or "
                "sqlite:////abs/path.db"
            )
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidArgumentError(
                "a SQLite store needs a file: sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        return cls(parsed.database, **{**from_query, **options})


def _missing_in_existing_directory(path: Path) -> bool:
    return not path.exists() and path.parent.is_dir()


async def open_store(url: str, *, verify_schema: bool = True, **options: Any) -> SQLiteStore:
    """Entry point for ``sqlite:///path``: opens the file and checks its schema revision."""
    check_flag("verify_schema", verify_schema)
    return await opened(SQLiteStore.from_url(url, **options), verify_schema=verify_schema)
