"""D1 as the SQL stores see it: SQLite's statement spelling, D1's errors.

D1 runs SQLite, so the statements are the SQLite dialect's (upserts, JSON aggregation,
``RETURNING``), compiled by the same SQLAlchemy dialect. What differs is the driver
(D1's binding or REST API instead of sqlite3) and its errors.
"""

from __future__ import annotations

from workflow.store.sql.failures import Failure
from workflow.store.sqlite.dialect import SQLiteDialect

from .http import D1QueryError


class D1Dialect(SQLiteDialect):
    name = "d1"

    def is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, D1QueryError) and "UNIQUE constraint failed" in exc.message

    def classify(self, exc: BaseException) -> Failure | None:
        # The D1 clients raise the contract's errors themselves (D1QueryError is a
        # StoreOperationError, HTTP failures StoreUnavailableError or
        # StoreConfigurationError): nothing of theirs is left to sort.
        return None
