"""The MySQL 8 / MariaDB 10.6+ store (PyMySQL, one thread per connection)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import sqlalchemy as sa

from workflow.runtime import codec, validation
from workflow.runtime.errors import InvalidArgumentError
from workflow.runtime.registry import check_flag, redact_url
from workflow.runtime.timeouts import DEFAULT_OPERATION_TIMEOUT_S, check_operation_timeout
from workflow.store.sql import DEFAULT_TABLE_PREFIX, opened
from workflow.store.sql.urls import check_keywords, keyword_options, parse_store_url

from .batches import OneTripBatches
from .dialect import MySQLDialect
from .driver import DEFAULT_CONNECTIONS, DRIVER_OPTIONS, Connection, PyMySQLDriver


class MySQLStore(OneTripBatches):
    """An execution store in MySQL 8.0.4+ or MariaDB 10.6+ (``SKIP LOCKED``, ``JSON_TABLE``).

    Sessions run READ COMMITTED. MySQL has no ``UPDATE … RETURNING``, so an operation
    that writes, checks and reads is several statements; each hot operation sends them
    as one multi-statement batch, one round trip (:mod:`.batches`). Operations run on
    PyMySQL connections, each on its own thread: an operation is one hop from the event
    loop to that thread. ``schema`` names another database on the same server.

    ``url``: ``mysql://user:password@host:port/database`` (or an SQLAlchemy URL);
    migrations and the store's connections both use it. ``connections``: at most this
    many (each with its thread). ``connect``: an application's own way to open a
    ``pymysql`` connection, used instead of the URL's for the store's operations (not
    for migrations); open it with ``client_flag=workflow.store.mysql.driver.CLIENT_FLAGS``
    (the store sets autocommit, ``utf8mb4`` and its session settings itself).
    """

    migrations: ClassVar[str] = "workflow.store.mysql:migrations"

    def __init__(
        self,
        url: str | sa.URL,
        *,
        schema: str | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        connections: int = DEFAULT_CONNECTIONS,
        connect: Callable[[], Connection] | None = None,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S,
    ) -> None:
        try:
            parsed = sa.make_url(url) if isinstance(url, str) else url
        except Exception as exc:  # SQLAlchemy raises ArgumentError or ValueError
            raise InvalidArgumentError(f"bad MySQL URL {redact_url(str(url))!r}: {exc}") from None
        if parsed.get_backend_name() not in {"mysql", "mariadb"}:
            raise InvalidArgumentError(
                f"MySQLStore needs a mysql:// or mariadb:// URL, got {parsed.drivername}://"
            )
        connections = validation.check_int(connections, "connections", 1, 1024)
        operation_timeout = check_operation_timeout(operation_timeout)
        if connect is not None and not callable(connect):
            raise InvalidArgumentError(f"connect must be callable, got {connect!r}")
        dialect = MySQLDialect()
        # The connection's character set is always utf8mb4 (a charset in the URL is
        # replaced): the tables' text is utf8mb4, and any other would mangle it.
        migration_url = parsed.set(drivername=dialect.sync_driver).update_query_dict(
            {"charset": "utf8mb4"}
        )
        super().__init__(
            PyMySQLDriver(
                migration_url,
                dialect,
                connections,
                connect=connect,
                operation_timeout=operation_timeout,
            ),
            dialect,
            migration_url,
            schema=schema,
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            operation_timeout=operation_timeout,
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MySQLStore:
        """``mysql://user:password@host:port/database?schema=…&table_prefix=…`` (or
        ``mariadb://``); also ``connections``, and the PyMySQL options of
        :data:`~.driver.DRIVER_OPTIONS` (``unix_socket``, ``ssl_ca``…). Any other
        query option is refused."""
        check_keywords("MySQL", options, keyword_options(cls))
        parsed, from_query = parse_store_url(
            url,
            "mysql+pymysql",
            ("mysql", "mariadb"),
            store="MySQL",
            extra=("connections",),
            driver_options=("PyMySQL's options", DRIVER_OPTIONS),
        )
        return cls(parsed, **{**from_query, **options})


async def open_store(url: str, *, verify_schema: bool = True, **options: Any) -> MySQLStore:
    """Entry point for ``mysql://`` and ``mariadb://``: connects and checks the schema."""
    check_flag("verify_schema", verify_schema)
    return await opened(MySQLStore.from_url(url, **options), verify_schema=verify_schema)
