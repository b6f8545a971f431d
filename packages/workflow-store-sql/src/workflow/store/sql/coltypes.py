"""Column types of the SQL stores, shared by ``tables.py`` and the migrations.

Released migrations import these names, so a type here is never changed once a
revision uses it: a new type gets a new name (and a new revision).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql


class Utf8Bytes(sa.TypeDecorator[str]):
    """Text kept as its UTF-8 bytes (MySQL/MariaDB identifiers).

    Every ``utf8mb4`` collation that both MySQL 8 and MariaDB have is PAD SPACE:
    ``'run' = 'run '`` there, so two legal, distinct ids would collide. Binary strings
    compare byte by byte with no padding, and UTF-8 byte order is code-point order.
    """

    impl: sa.types.TypeEngine[Any] = mysql.VARBINARY(1020)  # 255 characters of at most 4 bytes
    cache_ok: bool | None = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> bytes | None:
        return None if value is None else value.encode("utf-8")

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else bytes(value).decode("utf-8")


ID = (
    sa.String(255)
    .with_variant(postgresql.VARCHAR(255, collation="C"), "postgresql")
    .with_variant(Utf8Bytes(), "mysql", "mariadb")
)
"""An identifier: up to 255 characters, compared and sorted by code point, no padding."""

SHORT = sa.String(16)
"""Enumerated values (status, kinds, overlap)."""

MS = sa.BigInteger()
"""A time in ms since the epoch, an index or a token: 64-bit everywhere."""

PAYLOAD = sa.Text().with_variant(
    mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)
"""JSON text written by ``workflow.runtime.codec``."""

BOOL = sa.Boolean(create_constraint=False)

# Tables also name mysql_engine (InnoDB: transactions, row locks) and mysql_charset
# (utf8mb4, whatever the server's default is).
