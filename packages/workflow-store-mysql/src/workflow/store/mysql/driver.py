"""PyMySQL connections, each on its own thread (one hop per operation).

PyMySQL is blocking: a whole operation (``BEGIN``, its statements, ``COMMIT``) runs on
the connection's own thread, so the event loop hands it over once and waits, however
many statements it has (:class:`~workflow.store.sql.driver.ThreadDriver`). Each
statement is sent as it was compiled (``%(p_name)s`` placeholders, a dict of values,
escaped by PyMySQL): no SQLAlchemy code between the store and the driver.

Every connection is opened in autocommit (a transaction is the store's explicit
``BEGIN`` … ``COMMIT``), in ``utf8mb4``, with ``CLIENT_FOUND_ROWS`` (a row count is
the rows an ``UPDATE`` *matched*, which the store's guarded writes compare with 1:
renewing a lease to the expiry it already has still counts) and
``CLIENT_MULTI_STATEMENTS`` (a text of several statements is one round trip), then
set up for the store (:data:`~.dialect.SESSION_SETUP`).
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import pymysql  # type: ignore[import-untyped]
import sqlalchemy as sa
from pymysql.constants import CLIENT, FIELD_TYPE  # type: ignore[import-untyped]
from sqlalchemy.dialects import mysql

from workflow.runtime.errors import InvalidArgumentError
from workflow.runtime.registry import unknown_options
from workflow.runtime.timeouts import DEFAULT_OPERATION_TIMEOUT_S
from workflow.store.sql.compiled import Rows
from workflow.store.sql.driver import Query, ThreadDriver
from workflow.store.sql.sockets import closed_by_peer

from .dialect import MySQLDialect, connection_lost, set_up

Connection = Any
"""A ``pymysql.connections.Connection`` (PyMySQL ships no type information)."""

CLIENT_FLAGS = CLIENT.FOUND_ROWS | CLIENT.MULTI_STATEMENTS
"""The protocol flags every connection of the store needs (an application's own
connections too, ``connect=``): they are agreed when the connection opens."""

DEFAULT_CONNECTIONS = 10
"""Connections a store opens at most (per process): the runtime's default 8 drives
plus its polling."""
CONNECT_TIMEOUT_S = 10
"""How long opening a connection may take before the operation is unavailable (at most
the store's ``operation_timeout``)."""
RECYCLE_S = 1800.0
"""Connections are replaced after this long, well before servers drop idle ones
(``wait_timeout``: 8 h by default, often less behind proxies and managed services)."""

DRIVER_OPTIONS = frozenset(
    {
        "charset",  # replaced: always utf8mb4
        "unix_socket",
        "init_command",
        "connect_timeout",
        "read_timeout",
        "write_timeout",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_capath",
        "ssl_cipher",
        "ssl_check_hostname",
    }
)
"""The URL query options passed on to PyMySQL (and to the migrations' engine, which
reads them the same way); any other is refused, so a misspelt option fails early."""

# Column types whose values PyMySQL may return as bytes: binary strings (the
# identifiers are VARBINARY, coltypes.Utf8Bytes) and JSON built from them.
_STRING_TYPES = frozenset(
    {
        FIELD_TYPE.VARCHAR,
        FIELD_TYPE.VAR_STRING,
        FIELD_TYPE.STRING,
        FIELD_TYPE.TINY_BLOB,
        FIELD_TYPE.MEDIUM_BLOB,
        FIELD_TYPE.LONG_BLOB,
        FIELD_TYPE.BLOB,
        FIELD_TYPE.JSON,
    }
)


def connect_arguments(
    url: sa.URL, operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S
) -> dict[str, Any]:
    """The ``pymysql.connect`` arguments for ``url`` (its host, port, user, password,
    database and :data:`DRIVER_OPTIONS`), with the store's own settings: unless the URL
    says otherwise, a socket read or write waits at most ``operation_timeout`` (PyMySQL
    then drops the connection: "Lost connection"), a connect no longer than that or
    :data:`CONNECT_TIMEOUT_S`."""
    unknown = set(url.query) - DRIVER_OPTIONS
    if unknown:
        raise unknown_options(
            "MySQL store URL option",
            unknown,
            ("schema", "table_prefix", "max_payload_bytes", "operation_timeout", "connections"),
            driver=("PyMySQL's options", DRIVER_OPTIONS),
        )
    try:
        # SQLAlchemy's own reading of a PyMySQL URL (ssl_* into ssl=, types): the
        # migrations' engine gets the same connection as the store's driver.
        _, options = mysql.pymysql.dialect().create_connect_args(url)
    except ValueError as exc:
        raise InvalidArgumentError(f"bad MySQL store URL option: {exc}") from None
    options.setdefault("connect_timeout", min(CONNECT_TIMEOUT_S, math.ceil(operation_timeout)))
    options.setdefault("read_timeout", operation_timeout)
    options.setdefault("write_timeout", operation_timeout)
    options.update(
        charset="utf8mb4",
        autocommit=True,
        client_flag=int(options.get("client_flag", 0)) | CLIENT_FLAGS,
    )
    return dict(options)


class PyMySQLDriver(ThreadDriver[Connection]):
    """Connections to one server, each used on its own thread.

    ``connect``: the application's own way to open a connection (credentials from a
    vault, a proxy…), called on the connection's thread instead of ``pymysql.connect``.
    It must open it with :data:`CLIENT_FLAGS` among its ``client_flag``; the driver
    then puts it in autocommit and ``utf8mb4`` and runs the session setup, as on its own
    connections, and closes it when done with it.
    """

    def __init__(
        self,
        url: sa.URL,
        dialect: MySQLDialect,
        size: int = DEFAULT_CONNECTIONS,
        *,
        connect: Callable[[], Connection] | None = None,
        recycle_s: float = RECYCLE_S,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S,
    ) -> None:
        super().__init__(dialect.is_duplicate, size)
        self._arguments = connect_arguments(url, operation_timeout)
        self._connect = connect
        self._recycle_s = recycle_s
        self._opened_at: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()

    def connect(self) -> Connection:
        if self._connect is None:
            connection = pymysql.connect(**self._arguments)
        else:
            connection = self._connect()
        try:
            if self._connect is not None:
                self._adopt(connection)
            set_up(connection)
        except BaseException:
            self.close_raw(connection)
            raise
        self._opened_at[connection] = time.monotonic()
        return connection

    @staticmethod
    def _adopt(connection: Connection) -> None:
        """Check and set what the store relies on in an application's connection."""
        if not int(connection.client_flag) & CLIENT.FOUND_ROWS:
            raise InvalidArgumentError(
                "a connection from connect= must be opened with "
                "client_flag=workflow.store.mysql.driver.CLIENT_FLAGS (CLIENT.FOUND_ROWS: "
                "row counts of matched rows, which the store compares)"
            )
        connection.autocommit(True)  # a round trip only if it was not
        if connection.charset != "utf8mb4":
            connection.set_character_set("utf8mb4")

    def stale(self, raw: Connection) -> bool:
        opened_at = self._opened_at.get(raw)
        if opened_at is None or time.monotonic() - opened_at > self._recycle_s:
            return True
        # Closed or reset by the peer while idle: replaced now rather than failing the
        # operation that would use it next.
        sock = getattr(raw, "_sock", None)
        return sock is None or closed_by_peer(sock.fileno())

    def execute(self, raw: Connection, query: Query) -> Rows:
        statement = query.statement
        with raw.cursor() as cursor:
            if query.many:
                # One multi-row INSERT (PyMySQL rewrites an INSERT … VALUES executemany):
                # one round trip for all the rows.
                cursor.executemany(statement.sql, query.params())
                return Rows((), [], cursor.rowcount)
            try:
                cursor.execute(statement.sql, query.params())
                found = _rows(cursor)
                # A batch of statements answers each in turn: the rows are those of
                # its last statement that returns rows.
                while cursor.nextset():
                    if cursor.description is not None or not found.names:
                        found = _rows(cursor)
            except pymysql.err.MySQLError:
                if statement.verb == "BATCH":
                    # A failed statement stops its batch, whose BEGIN left a
                    # transaction open: nothing of it may stay.
                    with contextlib.suppress(pymysql.err.MySQLError):
                        raw.rollback()
                raise
            return found

    def abort(self, raw: Connection) -> None:
        # Shut the socket down under the connection's thread: its blocked read returns
        # at once and PyMySQL raises "Lost connection" there, instead of waiting out
        # read_timeout.
        sock = getattr(raw, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def keep_after(self, exc: BaseException) -> bool:
        return not connection_lost(exc)

    def close_raw(self, raw: Connection) -> None:
        self._opened_at.pop(raw, None)
        with contextlib.suppress(Exception):
            raw.close()


def _rows(cursor: Any) -> Rows:
    """The current result of ``cursor``, binary strings decoded (UTF-8): identifiers are
    stored as their bytes, and the store deals in text."""
    description = cursor.description
    if description is None:
        return Rows((), [], cursor.rowcount)
    names = [d[0] for d in description]
    found: Sequence[Sequence[Any]] = cursor.fetchall()
    binary = [i for i, d in enumerate(description) if d[1] in _STRING_TYPES]
    if binary and found:
        found = [_decoded(row, binary) for row in found]
    return Rows(names, found, cursor.rowcount)


def _decoded(row: Sequence[Any], columns: list[int]) -> Sequence[Any]:
    decoded: list[Any] | None = None
    for i in columns:
        value = row[i]
        if isinstance(value, (bytes, bytearray)):
            if decoded is None:
                decoded = list(row)
            decoded[i] = value.decode("utf-8")
    return row if decoded is None else decoded
