"""The schema seam: stores that own a schema (tables, a keyspace) and its migrations.

Not every store has one (:class:`~workflow.runtime.InMemoryStore` does not), so this is
not part of :class:`~workflow.runtime.ExecutionStore`: code that sets up or migrates a
schema checks ``isinstance(store, SchemaOwner)`` on what ``open_store`` returned, and
both mypy and the check then know ``store.create_schema()`` and ``store.migrator``.
``workflow migrate`` and ``workflow demo`` use nothing else of a store's schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class SchemaRevision(Protocol):
    """One revision of a store's migrations."""

    @property
    def revision(self) -> str: ...

    @property
    def down_revision(self) -> str | None:
        """The revision this one upgrades from; ``None`` for the first."""
        ...

    @property
    def doc(self) -> str:
        """What the revision does (its first line is its title)."""
        ...


@runtime_checkable
class SchemaMigrator(Protocol):
    """The migrations of one store's schema, what ``workflow migrate`` drives.

    Revisions are named by id, or ``"head"`` (the newest this package knows) and, for
    a downgrade, ``"base"`` (nothing). An unknown revision raises
    ``InvalidArgumentError``; a schema newer than the package, ``SchemaVersionError``.
    """

    @property
    def head(self) -> str:
        """The newest revision this package knows."""
        ...

    def history(self) -> Sequence[SchemaRevision]:
        """Every revision, oldest first."""
        ...

    async def current(self) -> str | None:
        """The schema's revision; ``None`` when nothing was created yet."""
        ...

    async def upgrade(self, revision: str = "head") -> None: ...

    async def downgrade(self, revision: str) -> None: ...

    async def verify(self) -> None:
        """Raise ``SchemaVersionError`` (with the fix) unless the schema is at head."""
        ...

    def offline_sql(self, revision: str = "head", *, downgrade_from: str | None = None) -> str:
        """The script an upgrade (or a downgrade from ``downgrade_from``) would run,
        for a DBA to review; ``InvalidArgumentError`` where there is none (Redis)."""
        ...


@runtime_checkable
class SchemaOwner(Protocol):
    """A store with a schema of its own, created and migrated by its package."""

    @property
    def migrator(self) -> SchemaMigrator: ...

    async def create_schema(self) -> None:
        """Migrate the schema to head (idempotent): for tests and demos. Deploys run
        ``workflow migrate upgrade`` instead."""
        ...


__all__ = ["SchemaMigrator", "SchemaOwner", "SchemaRevision"]
