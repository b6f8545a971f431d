"""What really differs between the SQL dialects, in one small strategy object each.

The queries are written once in :mod:`workflow.store.sql.store`; a dialect only says
whether ``UPDATE … RETURNING`` exists, how to skip duplicates on insert, how to
aggregate rows into JSON text, whether single statements run in autocommit, and which
driver errors mean "retry" or "unavailable".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.dml import Insert


class SQLDialect:
    name = "generic"
    returning = True
    """``UPDATE … RETURNING`` is available (Postgres, SQLite >= 3.35)."""
    autocommit_single = True
    """Single-statement operations run in autocommit: one round trip, no BEGIN/COMMIT."""

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

    def is_retryable(self, exc: BaseException) -> bool:
        """Deadlocks and serialization failures: the transaction was rolled back whole,
        so running the operation again is safe."""
        return False


class PostgresDialect(SQLDialect):
    name = "postgresql"

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

    def is_retryable(self, exc: BaseException) -> bool:
        # 40001 serialization_failure, 40P01 deadlock_detected
        return getattr(getattr(exc, "orig", exc), "sqlstate", None) in {"40001", "40P01"}


class SQLiteDialect(SQLDialect):
    name = "sqlite"
    # Multi-statement writes run in BEGIN IMMEDIATE: SQLite serializes writers per
    # database, and taking the write lock up front avoids the lock-upgrade deadlock of
    # a deferred BEGIN. Single statements run in autocommit (see sqlite_setup).

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

    def is_retryable(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return "database is locked" in text or "database is busy" in text


class MySQLDialect(SQLDialect):
    name = "mysql"
    # MySQL 8 and MariaDB have no UPDATE … RETURNING: claims lock with
    # SELECT … FOR UPDATE SKIP LOCKED, update, and read back in one transaction.
    returning = False

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

    def is_retryable(self, exc: BaseException) -> bool:
        # 1213 deadlock, 1205 lock wait timeout
        args: tuple[Any, ...] = getattr(getattr(exc, "orig", exc), "args", ())
        return bool(args) and args[0] in {1213, 1205}

    def keyset_before(
        self, columns: tuple[sa.ColumnElement[Any], ...], values: tuple[Any, ...]
    ) -> sa.ColumnElement[bool]:
        # MySQL's range optimizer handles the expanded form, not row comparisons.
        a, b = columns[0], columns[1]
        x, y = values[0], values[1]
        return sa.or_(a < x, sa.and_(a == x, b < y))


def dialect_for(name: str) -> SQLDialect:
    if name == "postgresql":
        return PostgresDialect()
    if name == "sqlite":
        return SQLiteDialect()
    if name in {"mysql", "mariadb"}:
        return MySQLDialect()
    raise ValueError(f"no workflow SQL dialect strategy for {name!r}")
