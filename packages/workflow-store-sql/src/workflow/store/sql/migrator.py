"""Running an adapter's migrations from Python (and from ``workflow migrate``).

The same Alembic environment runs three ways: :class:`Migrator` (this module, used by
``workflow migrate`` and by ``create_schema()``), ``alembic --name workflow upgrade head``
from an application's ``alembic.ini``, and plain Python code calling :class:`Migrator`.
"""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from workflow.runtime.errors import InvalidArgumentError, SchemaVersionError
from workflow.runtime.hints import shell_command
from workflow.runtime.records import SchemaStatus

from .autogenerate import version_table
from .dialect import Dialect
from .failures import operation

# Alembic's command API keeps process-global state (the `context` proxy): one command
# at a time per process. A threading lock taken without blocking the event loop.
_ALEMBIC = threading.Lock()


@dataclass(frozen=True, slots=True)
class Revision:
    revision: str
    down_revision: str | None
    doc: str


@lru_cache(maxsize=16)
def _script(location: str) -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", location)
    return ScriptDirectory.from_config(config)


class Migrator:
    """The migrations of one store (schema and table prefix) on one engine.

    Alembic is synchronous: its commands run on a thread, on a synchronous engine of
    the store's database, so the event loop never blocks."""

    def __init__(
        self,
        engine: sa.Engine,
        location: str,
        dialect: Dialect,
        *,
        schema: str | None,
        table_prefix: str,
        url_hint: str,
    ) -> None:
        self.engine = engine
        self._dialect = dialect
        self.location = location
        self.schema = schema
        self.table_prefix = table_prefix
        self.url_hint = url_hint

    # -- the revision graph ----------------------------------------------------------
    @property
    def head(self) -> str:
        heads = _script(self.location).get_heads()
        if len(heads) != 1:
            raise RuntimeError(f"{self.location} has {len(heads)} heads, expected one")
        return heads[0]

    def history(self) -> list[Revision]:
        """Every revision, oldest first."""
        revisions = list(_script(self.location).walk_revisions())
        revisions.reverse()
        return [
            Revision(r.revision, _single(r.down_revision), (r.doc or "").strip()) for r in revisions
        ]

    def knows(self, revision: str) -> bool:
        return any(r.revision == revision for r in self.history())

    # -- the database ----------------------------------------------------------------
    def _config(self, **attributes: Any) -> Config:
        config = Config(output_buffer=io.StringIO())
        config.set_main_option("script_location", self.location)
        config.attributes.update(
            workflow_schema=self.schema,
            workflow_table_prefix=self.table_prefix,
            workflow_dialect=self._dialect,
            **attributes,
        )
        return config

    async def _locked(self) -> None:
        # Polling, not an asyncio primitive: the lock must also hold across event loops
        # and threads of the process.
        while not _ALEMBIC.acquire(blocking=False):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def _run(self, verb: str, revision: str) -> None:
        await self._locked()
        try:
            await asyncio.to_thread(self._run_on_thread, verb, revision)
        except CommandError as exc:
            raise await self._revision_error(verb, revision, exc) from None
        finally:
            _ALEMBIC.release()

    async def _revision_error(self, verb: str, revision: str, exc: CommandError) -> Exception:
        """Alembic's error about a revision, as the contract's: the database is at a
        revision this adapter does not know (:class:`SchemaVersionError`), or
        ``revision`` names none of its revisions (:class:`InvalidArgumentError`)."""
        current = await self.current()
        if current is not None and not self.knows(current):
            try:
                await self.verify()
            except SchemaVersionError as unknown:
                return unknown
        return self._bad_revision(verb, revision, exc)

    def _bad_revision(self, verb: str, revision: str, exc: CommandError) -> Exception:
        known = ", ".join(r.revision for r in self.history())
        return InvalidArgumentError(
            f"cannot {verb} to revision {revision!r}: {exc}; the revisions are base, "
            f"{known} (oldest first; head is {self.head})"
        )

    def _run_on_thread(self, verb: str, revision: str) -> None:
        with self.engine.connect() as conn:
            # The migration's transaction is ours (SQLite: BEGIN IMMEDIATE, the
            # database-wide write lock), and Alembic, finding one open, runs inside it.
            conn.exec_driver_sql(self._dialect.begin.sql)
            try:
                getattr(command, verb)(self._config(connection=conn), revision)
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise

    @operation
    async def upgrade(self, revision: str = "head") -> None:
        await self._run("upgrade", revision)

    @operation
    async def downgrade(self, revision: str) -> None:
        await self._run("downgrade", revision)

    @operation
    async def current(self) -> str | None:
        """The database's revision; ``None`` when our version table is absent or empty."""
        opts = {"version_table": version_table(self.table_prefix)}
        if self.schema is not None:
            opts["version_table_schema"] = self.schema

        def read() -> str | None:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn, opts=opts).get_current_revision()

        return await asyncio.to_thread(read)

    def offline_sql(
        self,
        revision: str = "head",
        *,
        downgrade_from: str | None = None,
        upgrade_from: str | None = None,
    ) -> str:
        """The SQL an upgrade (from ``upgrade_from``, by default from an empty
        database), or a downgrade from ``downgrade_from``, would run, for DBAs."""
        config = self._config()
        config.set_main_option("sqlalchemy.url", f"{self.engine.dialect.name}://")
        with _ALEMBIC:
            try:
                if downgrade_from is None:
                    target = revision if upgrade_from is None else f"{upgrade_from}:{revision}"
                    command.upgrade(config, target, sql=True)
                else:
                    command.downgrade(config, f"{downgrade_from}:{revision}", sql=True)
            except CommandError as exc:
                verb = "upgrade" if downgrade_from is None else "downgrade"
                raise self._bad_revision(verb, revision, exc) from None
        buffer = config.output_buffer
        assert isinstance(buffer, io.StringIO)
        return buffer.getvalue()

    @operation
    async def status(self) -> SchemaStatus:
        return SchemaStatus(await self.current(), self.head)

    @operation
    async def verify(self) -> None:
        """Raise :class:`SchemaVersionError` unless the database is at our head revision."""
        current, head = await self.current(), self.head
        if current == head:
            return
        fix = f"run `{shell_command('workflow', 'migrate', 'upgrade', '--url', self.url_hint)}`"
        where = f"schema {self.schema!r}, " if self.schema else ""
        where += f"table prefix {self.table_prefix!r}"
        if current is None:
            message = (
                f"database has no workflow tables ({where}); "
                f"the adapter needs revision {head}: {fix}"
            )
        elif not self.knows(current):
            message = (
                f"database schema is at revision {current}, which this adapter does not know "
                f"(it needs {head}): the database was migrated by a newer version of the "
                "adapter; upgrade the package, or downgrade the database with that version"
            )
        else:
            message = f"database schema is at revision {current} (adapter needs {head}): {fix}"
        raise SchemaVersionError(message, current=current, required=head)


def _single(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value[0]) if len(value) == 1 else ",".join(value)
