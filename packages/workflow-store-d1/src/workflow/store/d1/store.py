"""The D1 store: the SQLite SQL family on Cloudflare D1 (statements and batches only)."""

from __future__ import annotations

import urllib.parse
from typing import Any, ClassVar

import sqlalchemy as sa

from workflow.runtime import validation
from workflow.runtime.errors import InvalidArgumentError
from workflow.runtime.registry import check_flag
from workflow.runtime.timeouts import DEFAULT_OPERATION_TIMEOUT_S
from workflow.store.sql import DEFAULT_TABLE_PREFIX, opened
from workflow.store.sql.migrator import Migrator
from workflow.store.sql.urls import check_keywords

from . import limits
from .batches import D1Batches
from .dialect import D1Dialect
from .driver import D1Driver
from .http import D1HttpDatabase
from .interface import D1Database
from .migrator import D1Migrator


class D1Store(D1Batches):
    """An execution store in a Cloudflare D1 database.

    ``database``: a :class:`~.interface.D1Database`, either a Python Worker's binding
    (``D1Binding(self.env.DB)``) or the REST client (:class:`~.http.D1HttpDatabase`,
    what :meth:`from_url` opens from ``d1://ACCOUNT_ID/DATABASE_ID``). Every operation
    is one statement or one batch (D1 has no interactive transactions; see
    :mod:`.batches`). ``max_payload_bytes`` is at most
    :data:`~.limits.MAX_PAYLOAD_BYTES`. ``close_database``: whether :meth:`close`
    closes ``database`` too (the URL's client, yes; a binding, no).
    """

    migrations: ClassVar[str] = "workflow.store.d1:migrations"
    queue_limits: ClassVar[bool] = False
    """No ``Capability.QUEUES``: a claim that keeps queue limits locks the queue's row,
    counts, then decides, and D1 has no interactive transaction to do that in (a
    batch cannot branch on what it read). The runs keep the default placement."""

    def __init__(
        self,
        database: D1Database,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = limits.MAX_PAYLOAD_BYTES,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S,
        url_hint: str = "d1://ACCOUNT_ID/DATABASE_ID",
        close_database: bool = False,
        schema: None = None,
    ) -> None:
        if schema is not None:
            raise InvalidArgumentError("D1 has no schemas: use table_prefix, or another database")
        if not callable(getattr(database, "prepare", None)) or not callable(
            getattr(database, "batch", None)
        ):
            raise InvalidArgumentError(
                f"database must be a D1 database (prepare and batch), got {database!r}"
            )
        max_payload_bytes = validation.check_int(
            max_payload_bytes, "max_payload_bytes", 2, limits.MAX_PAYLOAD_BYTES
        )
        dialect = D1Dialect()
        super().__init__(
            D1Driver(database, dialect, close_database=close_database),
            dialect,
            # Only names the SQL dialect Alembic renders migrations for: nothing
            # connects to it (the migrator sends them through the driver).
            sa.URL.create("sqlite"),
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            operation_timeout=operation_timeout,
        )
        self._url_hint = url_hint

    @property
    def database(self) -> D1Database:
        """The D1 database the store runs on."""
        return self._d1.database

    @property
    def url_hint(self) -> str:
        if self.tables.prefix == DEFAULT_TABLE_PREFIX:
            return self._url_hint
        return f"{self._url_hint}?table_prefix={self.tables.prefix}"

    @property
    def migrator(self) -> Migrator:
        migrator = D1Migrator(
            self.engine,
            self.migrations,
            self._dialect,
            schema=None,
            table_prefix=self.tables.prefix,
            url_hint=self.url_hint,
        )
        migrator.driver = self._d1
        return migrator

    @classmethod
    def from_url(cls, url: str, **options: Any) -> D1Store:
        """``d1://ACCOUNT_ID/DATABASE_ID`` over D1's REST API, with the query options of
        the REST client (``base_url``, ``api_token_env``, ``timeout``, ``connections``)
        and of the store (``table_prefix``, ``max_payload_bytes``); ``options``: keyword
        options of either (``api_token=``…), winning over the URL's. Any other option
        is an :class:`InvalidArgumentError`."""
        store_keywords = ("table_prefix", "max_payload_bytes", "operation_timeout")
        check_keywords("D1", options, (*CLIENT_KEYWORDS, *store_keywords))
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None:
            raise InvalidArgumentError(f"a D1 URL is d1://ACCOUNT_ID/DATABASE_ID, got {url!r}")
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        from_query: dict[str, Any] = {k: v for k, v in query if k in _URL_STORE_OPTIONS}
        if "max_payload_bytes" in from_query:
            try:
                from_query["max_payload_bytes"] = int(from_query["max_payload_bytes"])
            except ValueError:
                raise InvalidArgumentError(
                    "max_payload_bytes in a D1 URL must be an integer, got "
                    f"{from_query['max_payload_bytes']!r}"
                ) from None
        client_url = parts._replace(
            query=urllib.parse.urlencode([(k, v) for k, v in query if k not in from_query])
        ).geturl()
        database = D1HttpDatabase.from_url(
            client_url, **{k: v for k, v in options.items() if k in CLIENT_KEYWORDS}
        )
        store_options = {
            **from_query,
            **{k: v for k, v in options.items() if k in store_keywords},
        }
        hint = parts._replace(query="").geturl()
        return cls(database, url_hint=hint, close_database=True, **store_options)


_URL_STORE_OPTIONS = ("table_prefix", "max_payload_bytes")
CLIENT_KEYWORDS = ("api_token", "api_token_env", "base_url", "timeout", "connections")
"""The keyword options :meth:`D1Store.from_url` hands to the REST client."""


async def open_store(url: str, *, verify_schema: bool = True, **options: Any) -> D1Store:
    """Entry point for ``d1://ACCOUNT_ID/DATABASE_ID``: checks the schema revision."""
    check_flag("verify_schema", verify_schema)
    return await opened(D1Store.from_url(url, **options), verify_schema=verify_schema)
