"""PostgreSQL as the SQL stores see it: statement spelling, errors, migrations."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import psycopg
import psycopg_pool
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.dml import Insert

from workflow.store.sql.compiled import Statement, text_statement
from workflow.store.sql.dialect import Dialect
from workflow.store.sql.failures import Failure
from workflow.store.sql.migration_env import lock_key

# SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_RETRY = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout): the transaction is aborted whole
}
_UNAVAILABLE_CLASSES = {
    "08",  # connection_exception
    "53",  # insufficient_resources: disk full, out of memory, too many connections
    "58",  # system_error (I/O)
}
_UNAVAILABLE = {
    "57P01",  # admin_shutdown (also pg_terminate_backend)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down)
    "57P05",  # idle_session_timeout
    "57014",  # query_canceled (statement_timeout)
    "25P03",  # idle_in_transaction_session_timeout
    "25006",  # read_only_sql_transaction: a standby (failover in progress)
}
_CONFIGURATION = {
    "3D000": Failure.NO_DATABASE,  # invalid_catalog_name
    "3F000": Failure.NO_TABLES,  # invalid_schema_name
    "42P01": Failure.NO_TABLES,  # undefined_table (also a missing schema)
    "42703": Failure.NO_TABLES,  # undefined_column
    "42501": Failure.PERMISSION,  # insufficient_privilege
}
# libpq reports a failed connection as text only (psycopg's sqlstate is None), so the
# server's FATAL message is matched. In English: a server with another lc_messages
# gives UNAVAILABLE for these, which is retryable, never wrongly permanent.
_CONNECT_MESSAGES = (
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


_PREPARER = postgresql.psycopg.dialect().identifier_preparer  # type: ignore[no-untyped-call]


class PostgresDialect(Dialect):
    name = "postgresql"
    sync_driver = "postgresql+psycopg"
    # Stated, not assumed: a server or role may default to another level.
    begin: ClassVar[Statement] = text_statement("BEGIN ISOLATION LEVEL READ COMMITTED")

    def compiler_dialect(self) -> sa.Dialect:
        # psycopg takes %(name)s placeholders and a dict: the store's values as they are.
        return postgresql.psycopg.dialect(paramstyle="pyformat")  # type: ignore[no-untyped-call]

    def insert_ignore(self, table: sa.Table) -> Insert:
        return postgresql.insert(table).on_conflict_do_nothing()

    def upsert(self, table: sa.Table, update: Sequence[str]) -> Insert:
        stmt = postgresql.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={c: stmt.excluded[c] for c in update},
        )

    def json_rows(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        # Text, not json: the rows module parses it (psycopg would parse json itself).
        return sa.cast(sa.func.json_agg(sa.func.json_build_array(*columns)), sa.Text)

    # -- errors ---------------------------------------------------------------------------
    def is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    def classify(self, exc: BaseException) -> Failure | None:
        if isinstance(exc, psycopg_pool.PoolTimeout):
            # No connection within the pool's timeout: every connection busy, or the
            # server unreachable (the driver diagnoses that case with a direct connect).
            return Failure.UNAVAILABLE
        if not isinstance(exc, psycopg.Error):
            return None
        sqlstate = exc.sqlstate
        if sqlstate is None:
            # psycopg's own errors: a failed connect, a closed connection, a misuse.
            text = str(exc)
            for pattern, failure in _CONNECT_MESSAGES:
                if pattern.search(text):
                    return failure
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                return Failure.UNAVAILABLE
            return Failure.FAILED
        if sqlstate in _RETRY:
            return Failure.RETRY
        if sqlstate[:2] in _UNAVAILABLE_CLASSES or sqlstate in _UNAVAILABLE:
            return Failure.UNAVAILABLE
        if sqlstate[:2] == "28":  # invalid_authorization_specification, invalid_password
            return Failure.AUTHENTICATION
        if sqlstate in _CONFIGURATION:
            return _CONFIGURATION[sqlstate]
        return Failure.FAILED

    # -- migrations -----------------------------------------------------------------------
    @contextlib.contextmanager
    def migration_lock(
        self, connection: sa.Connection, schema: str | None, prefix: str
    ) -> Iterator[None]:
        # Transaction-scoped: released by the COMMIT (or ROLLBACK) that ends the
        # migration, even when the process dies mid-way.
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(schema, prefix)}
        )
        yield

    def create_schema_sql(self, schema: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}"

    def use_schema_sql(self, schema: str) -> str:
        # LOCAL: the offline script's transaction only, never the session a pooler
        # hands to the next client.
        return f"SET LOCAL search_path TO {_quote(schema)}"


def _quote(name: str) -> str:
    """``name`` as a quoted identifier (names are validated by ``check_schema`` first:
    this only spells them)."""
    return _PREPARER.quote_identifier(name)
