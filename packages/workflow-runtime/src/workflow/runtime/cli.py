"""The ``workflow`` command line (needs the ``cli`` extra: ``pip install workflow-runtime[cli]``).

Built on click (a maintained CLI library: argument parsing, help, exit codes). Every
error is one line on stderr and a non-zero exit, never a traceback.

    workflow migrate upgrade --url sqlite:///workflow.db
    workflow migrate current --url postgresql://app@db/app?schema=workflow
    workflow migrate upgrade --url mysql://... --sql > upgrade.sql   # for a DBA
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from .errors import SchemaVersionError, WorkflowStoreError
from .registry import open_store, redact_url

try:
    import click

    HAVE_CLICK = True
except ImportError:  # pragma: no cover - exercised only without the extra
    HAVE_CLICK = False

T = TypeVar("T")
DEFAULT_URL = "sqlite:///workflow.db"


class _Migrator(Protocol):
    head: str

    def history(self) -> list[Any]: ...
    async def upgrade(self, revision: str = "head") -> None: ...
    async def downgrade(self, revision: str) -> None: ...
    async def current(self) -> str | None: ...
    async def verify(self) -> None: ...
    def offline_sql(self, revision: str = "head", *, downgrade_from: str | None = None) -> str: ...


def _run(url: str, action: Callable[[_Migrator], Awaitable[T]]) -> T:
    async def go() -> T:
        store = await open_store(url, verify_schema=False)
        try:
            migrator: _Migrator | None = getattr(store, "migrator", None)
            if migrator is None:
                raise click.ClickException(f"the store at {redact_url(url)} has no migrations")
            return await action(migrator)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except SchemaVersionError as exc:
        raise click.ClickException(str(exc)) from None
    except WorkflowStoreError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def _url_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--url",
        envvar="WORKFLOW_STORE_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="Store URL (or WORKFLOW_STORE_URL).",
    )


def _build() -> click.Group:
    @click.group()
    def main() -> None:
        """Durable workflow stores: migrations and operations."""

    @main.group()
    def migrate() -> None:
        """Run the store's package-owned schema migrations."""

    @migrate.command()
    @_url_option()
    @click.option("--revision", default="head", show_default=True)
    @click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
    def upgrade(url: str, revision: str, sql: bool) -> None:
        """Upgrade the schema (default: to the adapter's head)."""
        if sql:
            click.echo(_run(url, _offline(revision, None)), nl=False)
            return

        async def act(m: _Migrator) -> str | None:
            await m.upgrade(revision)
            return await m.current()

        click.echo(f"{redact_url(url)}: at revision {_run(url, act)}")

    @migrate.command()
    @_url_option()
    @click.option("--revision", required=True, help="Target revision, or 'base' to drop all.")
    @click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
    def downgrade(url: str, revision: str, sql: bool) -> None:
        """Downgrade the schema to --revision."""
        if sql:

            async def head(m: _Migrator) -> str:
                return m.head

            click.echo(_run(url, _offline(revision, _run(url, head))), nl=False)
            return

        async def act(m: _Migrator) -> str | None:
            await m.downgrade(revision)
            return await m.current()

        click.echo(f"{redact_url(url)}: at revision {_run(url, act) or '(none)'}")

    @migrate.command()
    @_url_option()
    def current(url: str) -> None:
        """Print the database's revision and the adapter's head."""

        async def act(m: _Migrator) -> tuple[str | None, str]:
            return await m.current(), m.head

        now, head = _run(url, act)
        click.echo(f"current: {now or '(none)'}\nhead:    {head}")

    @migrate.command()
    @_url_option()
    def check(url: str) -> None:
        """Exit 0 when the database is at the adapter's head, 1 (with the fix) otherwise."""

        async def act(m: _Migrator) -> str:
            await m.verify()
            return m.head

        click.echo(f"{redact_url(url)}: up to date at revision {_run(url, act)}")

    @migrate.command()
    @_url_option()
    def history(url: str) -> None:
        """List the adapter's revisions, oldest first."""

        async def act(m: _Migrator) -> list[Any]:
            return m.history()

        for rev in _run(url, act):
            title = rev.doc.splitlines()[0] if rev.doc else ""
            click.echo(f"{rev.down_revision or '<base>'} -> {rev.revision}  {title}")

    return main


def _offline(revision: str, downgrade_from: str | None) -> Callable[[_Migrator], Awaitable[str]]:
    async def act(m: _Migrator) -> str:
        return m.offline_sql(revision, downgrade_from=downgrade_from)

    return act


def main(argv: list[str] | None = None) -> None:
    """The ``workflow`` console script."""
    if not HAVE_CLICK:
        sys.stderr.write(
            "the workflow command line needs its extra: pip install 'workflow-runtime[cli]'\n"
        )
        sys.exit(2)
    _build()(args=argv, prog_name="workflow", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main()
