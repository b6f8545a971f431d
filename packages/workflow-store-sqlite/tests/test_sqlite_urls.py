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


# -- one rule for every store: unknown or malformed options, before anything opens -------
def test_a_misspelt_url_option_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        SQLiteStore.from_url(f"sqlite:///{tmp_path / 'wf.db'}?table_prefx=app_")
    assert str(caught.value) == (
        "unknown SQLite store URL option: 'table_prefx' (did you mean 'table_prefix'?); "
        "valid options: busy_timeout_ms, connections, max_payload_bytes, operation_timeout, "
        "schema, table_prefix"
    )
    assert not (tmp_path / "wf.db").exists()


async def test_an_unknown_keyword_option_is_an_invalid_argument_not_a_type_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^unknown SQLite store option: 'pool_size'; "):
        await open_store(f"sqlite:///{tmp_path / 'wf.db'}", pool_size=3)
    with pytest.raises(InvalidArgumentError, match="valid options: busy_timeout_ms, connections"):
        SQLiteStore.from_url(f"sqlite:///{tmp_path / 'wf.db'}", tabel_prefix="x_")


async def test_verify_schema_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="verify_schema must be True or False"):
        await open_store(f"sqlite:///{tmp_path / 'wf.db'}", verify_schema="yes")


@pytest.mark.parametrize(
    "url", ["sqlite://user@/x.db", "sqlite://user:pw@/x.db", "sqlite://h:1/x.db"]
)
def test_a_url_naming_a_server_is_refused(url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="names a file, not a server") as caught:
        SQLiteStore.from_url(url)
    assert "pw" not in str(caught.value)


async def test_a_blank_table_prefix_is_the_empty_prefix_as_the_keyword_is(tmp_path: Path) -> None:
    by_url = SQLiteStore.from_url(f"sqlite:///{tmp_path / 'wf.db'}?table_prefix=")
    by_keyword = SQLiteStore.from_path(tmp_path / "wf.db", table_prefix="")
    try:
        assert by_url.tables.runs.name == by_keyword.tables.runs.name == "runs"
        # The URL in the store's messages opens the same tables again.
        again = SQLiteStore.from_url(by_keyword.url_hint)
        assert again.tables.runs.name == "runs"
        await again.close()
    finally:
        await by_url.close()
        await by_keyword.close()


async def test_connections_can_come_from_the_url(tmp_path: Path) -> None:
    store = SQLiteStore.from_url(f"sqlite:///{tmp_path / 'wf.db'}?connections=2")
    try:
        assert store.driver._size == 2  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_operation_timeout_from_the_url_or_a_keyword(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wf.db'}?operation_timeout=2.5"
    store = SQLiteStore.from_url(url)
    assert store.operation_timeout == 2.5
    assert store.driver.operation_timeout == 2.5
    assert SQLiteStore.from_url(url, operation_timeout=3).operation_timeout == 3.0
    assert SQLiteStore(tmp_path / "wf.db").operation_timeout == 10.0  # the default


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "operation_timeout must be a number of seconds, not 'soon'"),
        ("0", "operation_timeout must be above 0 and at most 86400 seconds, got 0.0"),
        ("-1", "operation_timeout must be above 0"),
        ("nan", "operation_timeout must be above 0"),
        ("inf", "operation_timeout must be above 0"),
    ],
)
async def test_a_bad_operation_timeout_is_refused_before_anything_opens(
    tmp_path: Path, value: str, message: str
) -> None:
    path = tmp_path / "wf.db"
    with pytest.raises(InvalidArgumentError, match=message):
        await open_store(f"sqlite:///{path}?operation_timeout={value}")
    assert not path.exists()


@pytest.mark.parametrize("value", [True, "3", 0, None])
def test_a_bad_operation_timeout_keyword_is_refused(tmp_path: Path, value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="operation_timeout must be"):
        SQLiteStore(tmp_path / "wf.db", operation_timeout=value)
