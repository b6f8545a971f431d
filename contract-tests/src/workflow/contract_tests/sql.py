"""Fixtures for SQL stores on a real server (PostgreSQL, MySQL/MariaDB): a schema (a
database, on MySQL) per test session or module, the store's tables emptied between
tests, handles for the multi-process cases, and the admin connection the failure tests
use. Needs ``workflow-store-sql`` besides this package.

A test module declares its server once and derives its fixtures from it::

    SERVER = SQLServer(PostgresStore.from_url, "postgresql://root@127.0.0.1:5432/test",
                       driver="postgresql+psycopg", name="PostgreSQL", default_port=5432)

    @pytest.fixture(scope="session")
    def server_schema() -> Iterator[str]:
        yield from SERVER.schema("wf_test")

    class TestMyStore(SQLServerContract):
        server = SERVER
"""

from __future__ import annotations

import asyncio
import difflib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio
import sqlalchemy as sa

from workflow.runtime import ExecutionStore
from workflow.store.sql.store import SQLStore

from .base import StoreContract
from .servers import poll, require_server
from .support import StoreFactory

__all__ = ["SQLServer", "SQLServerContract", "assert_golden", "empty_tables", "poll"]


@dataclass(frozen=True)
class SQLServer:
    """The server a SQL store's tests run against."""

    from_url: Callable[..., SQLStore]
    """The store class's ``from_url``."""
    url: str
    """The store URL (``postgresql://…``), as users give it to ``open_store``."""
    driver: str
    """The synchronous SQLAlchemy ``dialect+driver`` the admin connection uses."""
    name: str
    default_port: int
    drop: str = "DROP SCHEMA IF EXISTS {name} CASCADE"
    """The statement that drops a test schema (``{name}``: its quoted name); MySQL's
    schemas are databases (``DROP DATABASE IF EXISTS {name}``)."""

    def driver_url(self, url: str | None = None) -> str:
        return sa.make_url(url or self.url).set(drivername=self.driver).render_as_string(False)

    def with_parts(self, **parts: Any) -> str:
        """The URL with another port, database or user (a real URL, not a string edit)."""
        return sa.make_url(self.url).set(**parts).render_as_string(hide_password=False)

    def via(self, port: int, schema: str, **query: str) -> str:
        """The store's URL through a local proxy on ``port`` (a
        :class:`~workflow.contract_tests.faults.FaultProxy`), on ``schema``, with
        ``query``'s options (``operation_timeout="1"``)."""
        url = sa.make_url(self.with_parts(host="127.0.0.1", port=port))
        url = url.update_query_dict({"schema": schema, **query})
        return url.render_as_string(hide_password=False)

    def store_url(self, schema: str) -> str:
        return f"{self.url}{'&' if '?' in self.url else '?'}schema={schema}"

    def store(self, schema: str, **options: Any) -> SQLStore:
        return self.from_url(self.url, schema=schema, **options)

    async def admin(self, *statements: str) -> None:
        """Run statements (DDL, grants) on a connection of its own, in autocommit."""
        await asyncio.to_thread(self.admin_sync, *statements)

    def admin_sync(self, *statements: str) -> None:
        engine = sa.create_engine(
            self.driver_url(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.execute(sa.text(statement))
        finally:
            engine.dispose()

    def drop_schema(self, schema: str) -> str:
        dialect = sa.make_url(self.driver_url()).get_dialect()()
        return self.drop.format(name=dialect.identifier_preparer.quote_identifier(schema))

    def schema(
        self, prefix: str, *, setup: Sequence[str] = (), teardown: Sequence[str] = ()
    ) -> Iterator[str]:
        """For a session- or module-scoped fixture: a new migrated schema (plus the
        ``setup`` statements), dropped afterwards (after the ``teardown`` statements).

        Sync on purpose: an async fixture of that scope would pin every test to one loop.
        """
        require_server(self.url, self.name, default_port=self.default_port)
        schema = f"{prefix}_{uuid.uuid4().hex[:10]}"

        async def create() -> None:
            store = self.store(schema)
            try:
                await store.create_schema()
            finally:
                await store.close()
            if setup:
                await self.admin(*setup)

        asyncio.run(create())
        try:
            yield schema
        finally:
            asyncio.run(self.admin(self.drop_schema(schema), *teardown))


UPDATE_GOLDEN = "WORKFLOW_UPDATE_GOLDEN"
"""Set to 1 to rewrite the golden files a test compares with (then review the diff)."""


def assert_golden(path: Path, text: str) -> None:
    """``text`` equals the golden file ``path`` (committed, reviewed as SQL): a change
    to what a store sends shows in review. ``WORKFLOW_UPDATE_GOLDEN=1`` rewrites it;
    never under ``CI=true``, where a missing or different file fails."""
    if os.environ.get(UPDATE_GOLDEN) == "1" and os.environ.get("CI", "").lower() != "true":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing: create it with {UPDATE_GOLDEN}=1")
    expected = path.read_text()
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                str(path),
                "sent now",
            )
        )
        pytest.fail(
            f"the SQL sent differs from {path}; if the change is intended, rewrite it "
            f"with {UPDATE_GOLDEN}=1 and review the diff:\n{diff}"
        )


async def empty_tables(store: SQLStore) -> None:
    """Delete every row of the store's tables (children first: foreign keys)."""
    t = store.tables

    def empty() -> None:
        with store.engine.connect() as conn:
            for table in (t.events, t.inbox, t.schedules, t.runs, t.queues):
                conn.execute(sa.delete(table))

    await asyncio.to_thread(empty)


class SQLServerContract(StoreContract):
    """The contract suite on a SQL server: the store on the session's schema
    (fixture ``server_schema``, from :meth:`SQLServer.schema`), emptied before each test."""

    server: ClassVar[SQLServer]

    @pytest.fixture
    def store_url(self, server_schema: str) -> str:
        # What open_store() opens on the same data as `store` (multi-process cases).
        return self.server.store_url(server_schema)

    # pytest_asyncio.fixture: these run in pytest-asyncio's strict mode too. mypy sees
    # the base's pytest.fixture objects here (pytest overrides fixtures by name).
    @pytest_asyncio.fixture
    async def store(  # type: ignore[override]
        self, server_schema: str
    ) -> AsyncIterator[ExecutionStore]:
        store = self.server.store(server_schema, max_payload_bytes=self.max_payload_bytes)
        await empty_tables(store)
        yield store
        await store.close()

    @pytest_asyncio.fixture
    async def store_factory(  # type: ignore[override]
        self, server_schema: str
    ) -> AsyncIterator[StoreFactory]:
        opened: list[SQLStore] = []

        async def open_handle() -> ExecutionStore:
            handle = self.server.store(server_schema, max_payload_bytes=self.max_payload_bytes)
            opened.append(handle)
            return handle

        yield open_handle
        for handle in opened:
            await handle.close()
