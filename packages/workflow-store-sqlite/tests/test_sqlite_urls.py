"""What a sqlite:// URL and the SQLiteStore options accept, and the errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow.runtime import InvalidArgumentError, open_store
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
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 1234
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
