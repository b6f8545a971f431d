"""SQLite errors on real files: each becomes the contract's error.

A path that cannot be opened, a file that is not a database, or missing tables are the
deployment's to fix (``StoreConfigurationError``); a database locked by another writer
is retried inside the operation, then reported retryable (``StoreUnavailableError``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from workflow.runtime import (
    StoreConfigurationError,
    StoreOperationError,
    StoreUnavailableError,
)
from workflow.store.sql.driver import Body
from workflow.store.sql.failures import RETRIES, operation
from workflow.store.sqlite.store import SQLiteStore, open_store

T0 = 1_700_000_000_000


def _sqlite_errorname(error: BaseException) -> str | None:
    """The sqlite3 result code behind ``error`` (raised by sqlite3 itself on the
    operations' path, wrapped by SQLAlchemy on the migrations' path)."""
    cause = error.__cause__
    return getattr(getattr(cause, "orig", cause), "sqlite_errorname", None)


async def test_directory_that_does_not_exist_is_a_configuration_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'wf.db'}"
    with pytest.raises(StoreConfigurationError) as caught:
        await open_store(url)
    assert caught.value.retryable is False
    assert not isinstance(caught.value, StoreUnavailableError)
    assert _sqlite_errorname(caught.value) == "SQLITE_CANTOPEN"
    assert "does its directory exist?" in str(caught.value)
    assert isinstance(caught.value.__cause__, sa_exc.OperationalError)


async def test_messages_name_the_operation_not_the_method(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 200)
    store = SQLiteStore.from_path(path)
    try:
        with pytest.raises(StoreConfigurationError) as caught:
            await store.migrator.current()
        assert str(caught.value).startswith("sqlite store cannot read the schema revision: ")
        with pytest.raises(StoreConfigurationError) as caught:
            await store.load_run("r")
        assert str(caught.value).startswith("sqlite store cannot read a run: ")
        with pytest.raises(StoreConfigurationError) as caught:
            await store.migrator.upgrade()
        assert str(caught.value).startswith("sqlite store cannot upgrade the schema: ")
    finally:
        await store.close()


async def test_file_that_is_not_a_database_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 200)
    store = SQLiteStore.from_path(path)
    try:
        with pytest.raises(StoreConfigurationError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert caught.value.retryable is False
    assert _sqlite_errorname(caught.value) == "SQLITE_NOTADB"
    assert "is not a SQLite database" in str(caught.value)


async def test_missing_tables_name_the_migration_command(tmp_path: Path) -> None:
    store = SQLiteStore.from_path(tmp_path / "empty.db")
    try:
        with pytest.raises(StoreConfigurationError) as caught:
            await store.load_run("r")
    finally:
        await store.close()
    assert caught.value.retryable is False
    assert "no such table" in str(caught.value)
    assert f"`workflow migrate upgrade --url {store.url_hint}`" in str(caught.value)


class _BuggyStore(SQLiteStore):
    @operation
    async def broken_query(self) -> None:
        def body() -> Body[None]:
            yield self._once(sa.text("SELEC 1"))

        await self._run(body())


async def test_a_bug_in_our_sql_is_not_retryable(tmp_path: Path) -> None:
    # from_path builds cls(...): the subclass, typed as its base.
    store = cast(_BuggyStore, _BuggyStore.from_path(tmp_path / "wf.db"))
    try:
        with pytest.raises(StoreOperationError) as caught:
            await store.broken_query()
    finally:
        await store.close()
    assert caught.value.retryable is False
    assert "syntax error" in str(caught.value)


# -- another writer holds the database lock --------------------------------------------
@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    path = tmp_path / "wf.db"

    async def create() -> None:
        store = SQLiteStore.from_path(path)
        await store.create_schema()
        await store.create_run("r", "wf", None, None, T0)
        await store.close()

    asyncio.run(create())
    return path


@pytest.fixture
def other_writer(migrated: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection, holding the write lock (``BEGIN IMMEDIATE``)."""
    conn = sqlite3.connect(migrated, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    conn.close()


class _ContendedStore(SQLiteStore):
    """One extra write; from attempt ``release_at`` on, the other writer has committed."""

    attempts = 0
    release_at = 0
    other: sqlite3.Connection | None = None

    @operation
    async def touch(self, run_id: str) -> int:
        self.attempts += 1
        if self.attempts == self.release_at and self.other is not None:
            self.other.execute("COMMIT")
        runs = self.tables.runs

        def body() -> Body[None]:
            yield self._once(
                sa.update(runs)
                .where(runs.c.run_id == run_id)
                .values(updated_at=runs.c.updated_at + 1)
            )

        await self._run(body(), transaction=True)
        return self.attempts


@pytest.mark.parametrize("release_at", [2, 0], ids=["released-after-one-try", "never-released"])
async def test_locked_database_is_retried_then_reported_unavailable(
    migrated: Path, other_writer: sqlite3.Connection, release_at: int
) -> None:
    # A short busy timeout: each attempt gives up quickly while the other writer holds on.
    store = cast(_ContendedStore, _ContendedStore.from_path(migrated, busy_timeout_ms=50))
    store.release_at, store.other = release_at, other_writer
    try:
        if release_at:
            assert await store.touch("r") == release_at
        else:
            with pytest.raises(StoreUnavailableError) as caught:
                await store.touch("r")
            assert store.attempts == RETRIES
            assert caught.value.retryable is True
            assert "contention" in str(caught.value)
            assert _sqlite_errorname(caught.value) == "SQLITE_BUSY"
            other_writer.execute("ROLLBACK")
            # The lock is gone: the same store writes again.
            assert await store.touch("r") == RETRIES + 1
    finally:
        await store.close()
