"""MySQL and MariaDB as the SQL stores see them: statement spelling, errors, migrations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql
from sqlalchemy.sql.dml import Insert

from workflow.store.sql.dialect import Dialect
from workflow.store.sql.failures import Failure
from workflow.store.sql.migration_env import LOCK_TIMEOUT_S, lock_key

SESSION_SETUP = (
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION group_concat_max_len = 4294967295",
)
"""Run once on every connection (the store's and the migrations'). READ COMMITTED: the
store's locking model (InnoDB's REPEATABLE READ default adds gap locks, so more
deadlocks between claimers, and snapshot reads the lock-first model does not expect).
group_concat_max_len: MariaDB builds JSON_ARRAYAGG on GROUP_CONCAT and silently cuts
its result at it (1 MiB by default), so a claim carrying a large inbox or history
would get truncated JSON (MariaDB caps the value at 1 GiB, MySQL at 4 GiB)."""

DUPLICATE_KEY = 1062
"""ER_DUP_ENTRY: a primary-key or unique-index violation."""

# MySQL / MariaDB error numbers (server 1000-1999 and 3000+, client library 2000-2999).
# PyMySQL raises OperationalError for most server errors, so its class says little:
# the error number decides.
_CODES = {
    1213: Failure.RETRY,  # ER_LOCK_DEADLOCK: the transaction was rolled back
    1205: Failure.RETRY,  # ER_LOCK_WAIT_TIMEOUT: the store rolls back the rest
    1040: Failure.UNAVAILABLE,  # ER_CON_COUNT_ERROR: too many connections
    1053: Failure.UNAVAILABLE,  # ER_SERVER_SHUTDOWN
    1203: Failure.UNAVAILABLE,  # ER_TOO_MANY_USER_CONNECTIONS
    1317: Failure.UNAVAILABLE,  # ER_QUERY_INTERRUPTED (KILL QUERY)
    1927: Failure.UNAVAILABLE,  # ER_CONNECTION_KILLED (MariaDB)
    4031: Failure.UNAVAILABLE,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
    # A read-only server: a replica, or a primary being failed over (PostgreSQL's
    # read_only_sql_transaction is unavailable too).
    1290: Failure.UNAVAILABLE,  # ER_OPTION_PREVENTS_STATEMENT (--read-only)
    1836: Failure.UNAVAILABLE,  # ER_READ_ONLY_MODE
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

_CONNECTION_GONE = frozenset({1053, 1927, 4031, 2006, 2013, 2055})
"""Errors after which the server has closed the connection (or PyMySQL has)."""

_PREPARER = mysql.pymysql.dialect().identifier_preparer


def errno(exc: BaseException) -> int | None:
    """The MySQL error number of a PyMySQL error (``None`` for other errors)."""
    if not isinstance(exc, pymysql.err.MySQLError):
        return None
    args: tuple[Any, ...] = exc.args
    return args[0] if args and isinstance(args[0], int) else None


def connection_lost(exc: BaseException) -> bool:
    """``exc`` left its connection unusable: closed by the server or by PyMySQL (which
    raises :class:`pymysql.err.InterfaceError` on a connection it closed)."""
    return isinstance(exc, pymysql.err.InterfaceError) or errno(exc) in _CONNECTION_GONE


def set_up(connection: Any) -> None:
    """Run :data:`SESSION_SETUP` on a PyMySQL connection."""
    with connection.cursor() as cursor:
        for statement in SESSION_SETUP:
            cursor.execute(statement)


class MySQLDialect(Dialect):
    name = "mysql"
    sync_driver = "mysql+pymysql"
    # MySQL 8 and MariaDB have no UPDATE … RETURNING and no data-modifying CTEs: the
    # store runs the portable lock-first bodies (SELECT … FOR UPDATE, FOR UPDATE SKIP
    # LOCKED for claims of many). Plain BEGIN: the session is at READ COMMITTED
    # (SESSION_SETUP), and MySQL cannot name the level in START TRANSACTION.

    def compiler_dialect(self) -> sa.Dialect:
        # PyMySQL takes %(name)s placeholders and a dict: the store's values as they are.
        return mysql.pymysql.dialect(paramstyle="pyformat")

    def insert_ignore(self, table: sa.Table) -> Insert:
        # Not INSERT IGNORE: that also turns truncation and other errors into warnings.
        stmt = mysql.insert(table)
        key = next(iter(table.primary_key.columns)).name
        return stmt.on_duplicate_key_update({key: stmt.inserted[key]})

    def upsert(self, table: sa.Table, update: Sequence[str]) -> Insert:
        stmt = mysql.insert(table)
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})

    def json_rows(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        # Identifiers are VARBINARY here (coltypes.Utf8Bytes) and JSON would base64
        # them: every non-numeric column goes in as utf8mb4 text.
        texts = [
            c
            if isinstance(c.type, (sa.Integer, sa.Boolean))
            else sa.cast(c, mysql.CHAR(charset="utf8mb4"))
            for c in columns
        ]
        return sa.func.JSON_ARRAYAGG(sa.func.JSON_ARRAY(*texts))

    def keyset_before(
        self, columns: tuple[sa.ColumnElement[Any], ...], values: tuple[Any, ...]
    ) -> sa.ColumnElement[bool]:
        # MySQL's range optimizer handles the expanded form, not row comparisons.
        a, b = columns
        x, y = values
        return sa.or_(a < x, sa.and_(a == x, b < y))

    # -- errors ---------------------------------------------------------------------------
    def is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.err.IntegrityError) and errno(exc) == DUPLICATE_KEY

    def classify(self, exc: BaseException) -> Failure | None:
        if not isinstance(exc, pymysql.err.MySQLError):
            return None
        failure = _CODES.get(errno(exc) or 0)
        if failure is not None:
            return failure
        if connection_lost(exc):
            return Failure.UNAVAILABLE
        return Failure.FAILED

    # -- migrations (synchronous SQLAlchemy connections, inside Alembic) -----------------
    @contextlib.contextmanager
    def migration_lock(
        self, connection: sa.Connection, schema: str | None, prefix: str
    ) -> Iterator[None]:
        # A named lock of the session, not of the transaction: MySQL commits DDL
        # implicitly, so a transaction cannot hold the lock across a migration. It
        # needs no privilege, and the server releases it if the session dies.
        lock = f"workflow_migrate_{lock_key(schema, prefix) & 0xFFFFFFFFFFFF:x}"
        got = connection.execute(
            sa.text("SELECT GET_LOCK(:n, :t)"), {"n": lock, "t": LOCK_TIMEOUT_S}
        ).scalar()
        if got != 1:
            raise RuntimeError(f"could not take the migration lock {lock} in {LOCK_TIMEOUT_S}s")
        release = sa.text("SELECT RELEASE_LOCK(:n)")
        try:
            yield
        except BaseException:
            # The migration's own error matters; a connection too broken to release
            # the lock has lost it with its session.
            with contextlib.suppress(Exception):
                connection.execute(release, {"n": lock})
            raise
        connection.execute(release, {"n": lock})

    def create_schema_sql(self, schema: str) -> str:
        return f"CREATE DATABASE IF NOT EXISTS {_quote(schema)} CHARACTER SET utf8mb4"

    def use_schema_sql(self, schema: str) -> str:
        return f"USE {_quote(schema)}"

    def configure_engine(self, engine: sa.Engine, *, autocommit: bool) -> None:
        """The session settings of the store's connections on the migrations' too:
        a migration reads the version table at READ COMMITTED, after taking its lock."""

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            set_up(dbapi_connection)


def _quote(name: str) -> str:
    """``name`` as a quoted identifier (names are validated by ``check_schema`` first:
    this only spells them)."""
    quoted: str = _PREPARER.quote_identifier(name)
    return quoted
