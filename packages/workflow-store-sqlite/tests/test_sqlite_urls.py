"""What a sqlite:// URL and the SQLiteStore options accept, and the errors for the rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from workflow.runtime import InvalidArgumentError, open_store
from workflow.store.sql.driver import Body
from workflow.store.sqlite.store import SQLiteStore


async def test_url_options_reach_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wf.db'}?table_prefix=app_&max_payload_bytes=4096"
    store = await open_store(url, verify_schema=False)
    try:
        assert isinstance(store, SQLiteStore)
        assert store.tables.runs.name == "app_runs"
        assert store.max_payload_bytes == 4096
    finally:
        await store.close()


async def test_busy_timeout_in_the_url_is_applied(tmp_path: Path) -> None:
    store = SQLiteStore.from_url(f"sqlite:///{tmp_path / 'wf.db'}?busy_timeout_ms=1234")
    try:
        # On the store's own connections and on those its migrations use.
        def body() -> Body[Any]:
            return (yield store._once(sa.text("PRAGMA busy_timeout"))).scalar()

        assert await store._run(body()) == 1234
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("query", "named"),
    [("max_payload_bytes=abc", "max_payload_bytes"), ("busy_timeout_ms=1.5", "busy_timeout_ms")],
)
def test_a_non_integer_option_is_an_invalid_argument(
    tmp_path: Path, query: str, named: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=named):
        SQLiteStore.from_url(f"sqlite:///{tmp_path / 'wf.db'}?{query}")


@pytest.mark.parametrize(
    ("query", "options"), [("?schema=wf", {}), ("", {"schema": "wf"})], ids=["url", "keyword"]
)
def test_a_schema_is_refused_not_ignored(
    tmp_path: Path, query: str, options: dict[str, str]
) -> None:
    url = f"sqlite:///{tmp_path / 'wf.db'}{query}"
    with pytest.raises(InvalidArgumentError, match="no schemas"):
        SQLiteStore.from_url(url, **options)
    assert not (tmp_path / "wf.db").exists()


async def test_on_connect_runs_after_the_store_settings(tmp_path: Path) -> None:
    seen: list[int] = []

    def full_sync(connection: sqlite3.Connection) -> None:
        seen.append(connection.execute("PRAGMA busy_timeout").fetchone()[0])
        connection.execute("PRAGMA synchronous=FULL")

    store = SQLiteStore(tmp_path / "wf.db", busy_timeout_ms=4321, on_connect=full_sync)
    try:

        def body() -> Body[Any]:
            return (yield store._once(sa.text("PRAGMA synchronous"))).scalar()

        assert await store._run(body()) == 2  # FULL, on the store's own connection
        assert seen == [4321]  # the store's settings were in place before the hook
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("option", "value"), [("connections", 0), ("connections", "8"), ("busy_timeout_ms", -1)]
)
def test_bad_pool_options_are_invalid_arguments(tmp_path: Path, option: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=option):
        SQLiteStore(tmp_path / "wf.db", **{option: value})
