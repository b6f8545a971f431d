"""The store's Alembic revisions applied to D1, which has no SQLAlchemy driver.

Alembic renders each upgrade or downgrade offline (``--sql``, the SQLite dialect: the
same text ``wrangler d1 migrations apply`` runs from the package's ``.sql`` files), and
the statements are sent as **one D1 batch**: the schema change and the version table's
new revision are applied together or not at all. D1 refuses ``BEGIN``/``COMMIT``, so
the script's own transaction lines are left out (the batch is the transaction).
Two upgrades at once cannot both apply a revision: the second batch fails on the
first's tables and applies nothing.
"""

from __future__ import annotations

import re

from workflow.store.sql.autogenerate import version_table
from workflow.store.sql.failures import operation
from workflow.store.sql.migrator import Migrator

from .driver import D1Driver
from .http import D1QueryError

_END = re.compile(r";\s*$", re.MULTILINE)
_TRANSACTION = {"BEGIN", "BEGIN TRANSACTION", "COMMIT"}


def statements(script: str) -> list[str]:
    """The statements of an offline Alembic script for SQLite, without its own
    transaction (every statement ends a line with ``;``; DDL holds no such text)."""
    found = []
    for part in _END.split(script):
        sql = part.strip()
        if sql and sql.upper() not in _TRANSACTION:
            found.append(sql)
    return found


class D1Migrator(Migrator):
    """:class:`~workflow.store.sql.migrator.Migrator` whose database work goes through
    the store's D1 driver (the engine it is given only names the SQL dialect)."""

    driver: D1Driver

    @operation
    async def current(self) -> str | None:
        sql = f'SELECT version_num FROM "{version_table(self.table_prefix)}"'
        try:
            found = await self.driver.database.prepare(sql).all()
        except D1QueryError as exc:
            if "no such table" in exc.message:
                return None
            raise
        return str(found.results[0]["version_num"]) if found.results else None

    async def _run(self, verb: str, revision: str) -> None:
        current = await self.current()
        if current is not None and not self.knows(current):
            await self.verify()  # SchemaVersionError naming the fix
        if verb == "upgrade":
            script = self.offline_sql(revision, upgrade_from=current)
        else:
            script = self.offline_sql(revision, downgrade_from=current or "base")
        found = statements(script)
        if verb == "downgrade" and revision == "base":
            # As the shared environment does online: "base" leaves nothing of the store
            # (Alembic's script only empties the version table).
            found.append(f'DROP TABLE IF EXISTS "{version_table(self.table_prefix)}"')
        if not found:
            return
        database = self.driver.database
        try:
            await database.batch([database.prepare(sql) for sql in found])
        except D1QueryError:
            # D1 has no lock to hold across the read and the batch: a concurrent
            # upgrade may have applied the same revisions first (ours then failed on
            # its first CREATE or ALTER and applied nothing). That one's work is ours.
            wanted_head = verb == "upgrade" and revision in ("head", self.head)
            if wanted_head and await self.current() == self.head:
                return
            raise
