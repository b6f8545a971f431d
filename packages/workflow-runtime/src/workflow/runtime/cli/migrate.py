"""``workflow migrate``: run a store's package-owned schema migrations.

workflow migrate upgrade --url sqlite:///workflow.db
workflow migrate current --url postgresql://app@db/app?schema=workflow
workflow migrate upgrade --url mysql://... --sql > upgrade.sql   # for a DBA
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import click

from ..contract import ExecutionStore
from ..registry import redact_url
from ..schema import SchemaMigrator, SchemaOwner, SchemaRevision
from .common import CommandError, url_option, with_store

T = TypeVar("T")


def _migrator(store: ExecutionStore, url: str) -> SchemaMigrator:
    if not isinstance(store, SchemaOwner):
        raise CommandError(f"the store at {redact_url(url)} has no migrations")
    return store.migrator


def _run(
    url: str, action: Callable[[SchemaMigrator], Awaitable[T]], *, reads_only: bool = False
) -> T:
    async def go(store: ExecutionStore) -> T:
        return await action(_migrator(store, url))

    return with_store(url, go, verify_schema=False, reads_only=reads_only)


def _offline(
    revision: str, downgrade_from: str | None
) -> Callable[[SchemaMigrator], Awaitable[str]]:
    async def act(m: SchemaMigrator) -> str:
        return m.offline_sql(revision, downgrade_from=downgrade_from)

    return act


@click.group()
def migrate() -> None:
    """Run the store's package-owned schema migrations."""


@migrate.command()
@url_option()
@click.option("--revision", default="head", show_default=True)
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
def upgrade(url: str, revision: str, sql: bool) -> None:
    """Upgrade the schema (default: to the adapter's head)."""
    if sql:
        click.echo(_run(url, _offline(revision, None), reads_only=True), nl=False)
        return

    async def act(m: SchemaMigrator) -> str | None:
        await m.upgrade(revision)
        return await m.current()

    click.echo(f"{redact_url(url)}: at revision {_run(url, act)}")


@migrate.command()
@url_option()
@click.option("--revision", required=True, help="Target revision, or 'base' to drop all.")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
def downgrade(url: str, revision: str, sql: bool) -> None:
    """Downgrade the schema to --revision."""
    if sql:

        async def script(m: SchemaMigrator) -> str:
            # One store: the script runs down from the adapter's head.
            return m.offline_sql(revision, downgrade_from=m.head)

        click.echo(_run(url, script, reads_only=True), nl=False)
        return

    async def act(m: SchemaMigrator) -> str | None:
        await m.downgrade(revision)
        return await m.current()

    click.echo(f"{redact_url(url)}: at revision {_run(url, act) or '(none)'}")


@migrate.command()
@url_option()
def current(url: str) -> None:
    """Print the database's revision and the adapter's head."""

    async def act(m: SchemaMigrator) -> tuple[str | None, str]:
        return await m.current(), m.head

    now, head = _run(url, act, reads_only=True)
    click.echo(f"current: {now or '(none)'}\nhead:    {head}")


@migrate.command()
@url_option()
def check(url: str) -> None:
    """Exit 0 when the database is at the adapter's head, 1 (with the fix) otherwise."""

    async def act(store: ExecutionStore) -> str:
        return _migrator(store, url).head

    # The check is open_store's own (the same error and fix), which on SQLite also
    # reports a missing file without creating it.
    head = with_store(url, act, reads_only=True)
    click.echo(f"{redact_url(url)}: up to date at revision {head}")


@migrate.command()
@url_option()
def history(url: str) -> None:
    """List the adapter's revisions, oldest first."""

    async def act(m: SchemaMigrator) -> Sequence[SchemaRevision]:
        return m.history()

    for rev in _run(url, act, reads_only=True):
        title = rev.doc.splitlines()[0] if rev.doc else ""
        click.echo(f"{rev.down_revision or '<base>'} -> {rev.revision}  {title}")
