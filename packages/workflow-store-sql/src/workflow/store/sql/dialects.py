"""What really differs between the SQL dialects, in one small strategy object each.

The queries are written once in :mod:`workflow.store.sql.store`; a dialect only says
whether ``UPDATE … RETURNING`` exists, how to skip duplicates on insert, how to
aggregate rows into JSON text, whether single statements run in autocommit, and what
each driver error means (:meth:`SQLDialect.classify`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from .failures import Failure


class SQLDialect:
    name = "generic"
    returning = True
    """``UPDATE … RETURNING`` is available (Postgres, SQLite >= 3.35)."""
    writable_ctes = False
    """``WITH … AS (INSERT/UPDATE … RETURNING)`` is available, so the writes that touch
    several tables run as one statement (:mod:`workflow.store.sql.single_statement`)."""
    isolation: str | None = None
    """The isolation level transactions must run at (``None``: the engine's default)."""
    begin = "BEGIN"
    """How a transaction starts (connections are in autocommit between transactions)."""

    def insert_ignore(self, table: sa.Table, key: str) -> Insert:
        """``INSERT`` that skips rows whose primary key exists (no other error hidden).

        Its row count is not meaningful on every dialect; use :meth:`is_duplicate` with
        a plain insert where the caller must know whether the row was new.
        """
        raise NotImplementedError

    def upsert(self, table: sa.Table, update: Sequence[str]) -> Insert:
        """``INSERT`` that overwrites ``update`` columns when the primary key exists."""
        raise NotImplementedError

    def is_duplicate(self, exc: BaseException) -> bool:
        """The error is a primary-key violation."""
        orig = getattr(exc, "orig", exc)
        return (
            getattr(orig, "sqlstate", None) == "23505"
            or (bool(getattr(orig, "args", ())) and orig.args[0] == 1062)
            or "UNIQUE constraint failed" in str(orig)
        )

    def keyset_before(
        self, columns: tuple[sa.ColumnElement[Any], ...], values: tuple[Any, ...]
    ) -> sa.ColumnElement[bool]:
        """``columns < values`` in row order, written so the dialect uses the index."""
        return sa.tuple_(*columns) < sa.tuple_(*values)

    def json_rows(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        """Aggregate ``columns`` of the matching rows into a JSON array of arrays (text)."""
        raise NotImplementedError

    def classify(self, exc: sa_exc.DBAPIError) -> Failure:
        """What the driver error ``exc`` means (:class:`~workflow.store.sql.failures.
        Failure`): :attr:`~Failure.RETRY` only where the server rolled the whole
        transaction back, so running the operation again is safe."""
        return Failure.UNAVAILABLE if _lost_connection(exc) else Failure.FAILED


def _lost_connection(exc: sa_exc.DBAPIError) -> bool:
    """SQLAlchemy recognised a disconnect (and dropped the connection from its pool),
    or the driver reports the connection itself unusable."""
    return exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError)


# PostgreSQL: SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_RETRY = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout): the transaction is aborted whole
}
_PG_UNAVAILABLE_CLASSES = {
    "08",  # connection_exception
    "53",  # insufficient_resources: disk full, out of memory, too many connections
    "58",  # system_error (I/O)
}
_PG_UNAVAILABLE = {
    "57P01",  # admin_shutdown (also pg_terminate_backend)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down)
    "57P05",  # idle_session_timeout
    "57014",  # query_canceled (statement_timeout)
    "25P03",  # idle_in_transaction_session_timeout
    "25006",  # read_only_sql_transaction: a standby (failover in progress)
}
_PG_CONFIGURATION = {
    "3D000": Failure.NO_DATABASE,  # invalid_catalog_name
    "3F000": Failure.NO_TABLES,  # invalid_schema_name
    "42P01": Failure.NO_TABLES,  # undefined_table (also a missing schema)
    "42703": Failure.NO_TABLES,  # undefined_column
    "42501": Failure.PERMISSION,  # insufficient_privilege
}
# libpq reports a failed connection as text only (psycopg's sqlstate is None), so the
# server's FATAL message is matched. In English: a server with another lc_messages
# gives UNAVAILABLE for these, which is retryable, never wrongly permanent.
_PG_CONNECT_MESSAGES = (
    (re.compile(r'database ".*" does not exist'), Failure.NO_DATABASE),
    (
        re.compile(
            r'role ".*" does not exist|authentication failed|no pg_hba\.conf entry'
            r"|is not permitted to log in|no password supplied"
        ),
        Failure.AUTHENTICATION,
    ),
    (re.compile(r"permission denied for database"), Failure.PERMISSION),
)


class PostgresDialect(SQLDialect):
    name = "postgresql"
    writable_ctes = True
    # Stated, not assumed: a server or role may default to another level.
    begin = "BEGIN ISOLATION LEVEL READ COMMITTED"

    def insert_ignore(self, table: sa.Table, key: str) -> Insert:
        return postgresql.insert(table).on_conflict_do_nothing()

    def upsert(self, table: sa.Table, update: Sequence[str]) -> Insert:
        stmt = postgresql.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={c: stmt.excluded[c] for c in update},
        )

    def json_rows(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        return sa.cast(sa.func.json_agg(sa.func.json_build_array(*columns)), sa.Text)

    def classify(self, exc: sa_exc.DBAPIError) -> Failure:
        sqlstate: str | None = getattr(exc.orig, "sqlstate", None)
        if sqlstate is None:
            # psycopg's own errors: a failed connect, a closed connection, a misuse.
            text = str(exc.orig)
            for pattern, failure in _PG_CONNECT_MESSAGES:
                if pattern.search(text):
                    return failure
            if _lost_connection(exc) or isinstance(exc, sa_exc.OperationalError):
                return Failure.UNAVAILABLE
            return Failure.FAILED
        if sqlstate in _PG_RETRY:
            return Failure.RETRY
        if sqlstate[:2] in _PG_UNAVAILABLE_CLASSES or sqlstate in _PG_UNAVAILABLE:
            return Failure.UNAVAILABLE
        if sqlstate[:2] == "28":  # invalid_authorization_specification, invalid_password
            return Failure.AUTHENTICATION
        if sqlstate in _PG_CONFIGURATION:
            return _PG_CONFIGURATION[sqlstate]
        return Failure.UNAVAILABLE if _lost_connection(exc) else Failure.FAILED


class SQLiteDialect(SQLDialect):
    name = "sqlite"
    # Multi-statement writes run in BEGIN IMMEDIATE: SQLite serializes writers per
    # database, and taking the write lock up front avoids the lock-upgrade deadlock of
    # a deferred BEGIN. Single statements run in autocommit and take no lock to read.
    begin = "BEGIN IMMEDIATE"

    def insert_ignore(self, table: sa.Table, key: str) -> Insert:
        return sqlite.insert(table).on_conflict_do_nothing()

    def upsert(self, table: sa.Table, update: Sequence[str]) -> Insert:
        stmt = sqlite.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={c: stmt.excluded[c] for c in update},
        )

    def json_rows(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        return sa.func.json_group_array(sa.func.json_array(*columns))

    def classify(self, exc: sa_exc.DBAPIError) -> Failure:
        # sqlite3 names the result code (Python 3.11+); extended codes such as
        # SQLITE_BUSY_SNAPSHOT or SQLITE_IOERR_SHORT_READ share their primary's meaning.
        name: str = getattr(exc.orig, "sqlite_errorname", None) or ""
        failure = _SQLITE_CODES.get("_".join(name.split("_")[:2]))
        if failure is not None:
            return failure
        text = str(exc.orig).lower()
        if "no such table" in text or "no such column" in text:
            return Failure.NO_TABLES
        if "database is locked" in text or "database is busy" in text:
            return Failure.RETRY
        return super().classify(exc)


class MySQLDialect(SQLDialect):
    name = "mysql"
    # MySQL 8 and MariaDB have no UPDATE … RETURNING: claims lock with
    # SELECT … FOR UPDATE SKIP LOCKED, update, and read back in one transaction.
    returning = False
    # InnoDB's REPEATABLE READ default adds gap locks (more deadlocks between claimers)
    # and snapshot reads the lock-first model does not expect.
    isolation = "READ COMMITTED"

    def insert_ignore(self, table: sa.Table, key: str) -> Insert:
        # Not INSERT IGNORE: that also turns truncation and other errors into warnings.
        stmt = mysql.insert(table)
        return stmt.on_duplicate_key_update({key: stmt.inserted[key]})

    def upsert(self, table: sa.Table, update: Sequence[str]) -> Insert:
        stmt = mysql.insert(table)
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})

    def json_rows(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        # Identifiers are VARBINARY here (tables.Utf8Bytes) and JSON would base64 them:
        # every non-numeric column goes in as utf8mb4 text.
        texts = [
            c
            if isinstance(c.type, (sa.Integer, sa.Boolean))
            else sa.cast(c, mysql.CHAR(charset="utf8mb4"))
            for c in columns
        ]
        return sa.func.JSON_ARRAYAGG(sa.func.JSON_ARRAY(*texts))

    def classify(self, exc: sa_exc.DBAPIError) -> Failure:
        # PyMySQL raises OperationalError for most server errors, so its class says
        # little: the error number decides.
        args: tuple[Any, ...] = getattr(exc.orig, "args", ())
        errno = args[0] if args and isinstance(args[0], int) else None
        if errno in _MYSQL_CODES:
            return _MYSQL_CODES[errno]
        return super().classify(exc)

    def keyset_before(
        self, columns: tuple[sa.ColumnElement[Any], ...], values: tuple[Any, ...]
    ) -> sa.ColumnElement[bool]:
        # MySQL's range optimizer handles the expanded form, not row comparisons.
        a, b = columns[0], columns[1]
        x, y = values[0], values[1]
        return sa.or_(a < x, sa.and_(a == x, b < y))


_SQLITE_CODES = {
    "SQLITE_BUSY": Failure.RETRY,  # the busy timeout ran out: nothing was written
    "SQLITE_LOCKED": Failure.RETRY,
    "SQLITE_CANTOPEN": Failure.NO_DATABASE,  # a directory that does not exist
    "SQLITE_NOTADB": Failure.NOT_A_DATABASE,
    "SQLITE_READONLY": Failure.PERMISSION,
    "SQLITE_PERM": Failure.PERMISSION,
    "SQLITE_AUTH": Failure.PERMISSION,
    "SQLITE_IOERR": Failure.UNAVAILABLE,
    "SQLITE_FULL": Failure.UNAVAILABLE,  # disk full
    "SQLITE_NOMEM": Failure.UNAVAILABLE,
}

# MySQL / MariaDB error numbers (server 1000-1999 and 3000+, client library 2000-2999).
_MYSQL_CODES = {
    1213: Failure.RETRY,  # ER_LOCK_DEADLOCK: the transaction was rolled back
    1205: Failure.RETRY,  # ER_LOCK_WAIT_TIMEOUT: the store rolls back the rest
    1040: Failure.UNAVAILABLE,  # ER_CON_COUNT_ERROR: too many connections
    1053: Failure.UNAVAILABLE,  # ER_SERVER_SHUTDOWN
    1203: Failure.UNAVAILABLE,  # ER_TOO_MANY_USER_CONNECTIONS
    1317: Failure.UNAVAILABLE,  # ER_QUERY_INTERRUPTED (KILL QUERY)
    1927: Failure.UNAVAILABLE,  # ER_CONNECTION_KILLED (MariaDB)
    4031: Failure.UNAVAILABLE,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
    2002: Failure.UNAVAILABLE,  # CR_CONNECTION_ERROR (socket)
    2003: Failure.UNAVAILABLE,  # CR_CONN_HOST_ERROR: connection refused
    2005: Failure.UNAVAILABLE,  # CR_UNKNOWN_HOST (DNS, maybe transient)
    2006: Failure.UNAVAILABLE,  # CR_SERVER_GONE_ERROR
    2013: Failure.UNAVAILABLE,  # CR_SERVER_LOST: during a query
    2055: Failure.UNAVAILABLE,  # CR_SERVER_LOST_EXTENDED
    1049: Failure.NO_DATABASE,  # ER_BAD_DB_ERROR
    1045: Failure.AUTHENTICATION,  # ER_ACCESS_DENIED_ERROR: user or password
    1698: Failure.AUTHENTICATION,  # ER_ACCESS_DENIED_NO_PASSWORD_ERROR (MariaDB: no user)
    1251: Failure.AUTHENTICATION,  # ER_NOT_SUPPORTED_AUTH_MODE
    2059: Failure.AUTHENTICATION,  # CR_AUTH_PLUGIN_CANNOT_LOAD
    1044: Failure.PERMISSION,  # ER_DBACCESS_DENIED_ERROR
    1142: Failure.PERMISSION,  # ER_TABLEACCESS_DENIED_ERROR
    1143: Failure.PERMISSION,  # ER_COLUMNACCESS_DENIED_ERROR
    1227: Failure.PERMISSION,  # ER_SPECIFIC_ACCESS_DENIED_ERROR
    1146: Failure.NO_TABLES,  # ER_NO_SUCH_TABLE (also a missing schema database)
    1054: Failure.NO_TABLES,  # ER_BAD_FIELD_ERROR: unknown column
}


def dialect_for(name: str) -> SQLDialect:
    if name == "postgresql":
        return PostgresDialect()
    if name == "sqlite":
        return SQLiteDialect()
    if name in {"mysql", "mariadb"}:
        return MySQLDialect()
    raise ValueError(f"no workflow SQL dialect strategy for {name!r}")
