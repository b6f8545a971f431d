"""Opening a D1Store: URLs, options and the placeholders its driver rewrites."""

from __future__ import annotations

from typing import Any

import pytest
from local_d1 import ACCOUNT_ID, DATABASE_ID

from workflow.runtime.errors import InvalidArgumentError
from workflow.store.d1 import D1HttpDatabase, D1Store
from workflow.store.d1.driver import positional
from workflow.store.d1.limits import MAX_PAYLOAD_BYTES

URL = f"d1://{ACCOUNT_ID}/{DATABASE_ID}"


def test_placeholders_are_numbered_by_first_appearance() -> None:
    found = positional("SELECT :b, ':a is text', :a, :b WHERE x = 'it''s :c' AND y::int = :c")
    assert found.sql == "SELECT ?1, ':a is text', ?2, ?1 WHERE x = 'it''s :c' AND y::int = ?3"
    assert found.names == ("b", "a", "c")
    assert found.values({"a": 1, "b": 2, "c": 3}) == (2, 1, 3)


async def test_url_options_reach_the_store_and_the_client() -> None:
    store = D1Store.from_url(
        f"{URL}?table_prefix=app_&max_payload_bytes=1000&timeout=5", api_token="t"
    )
    try:
        assert store.tables.prefix == "app_"
        assert store.max_payload_bytes == 1000
        assert isinstance(store.database, D1HttpDatabase)
        assert store.database.timeout == 5
        assert store.url_hint == f"{URL}?table_prefix=app_"
        assert store.capabilities  # declared, never detected
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        (URL, {"colour": "red"}, "colour"),
        (f"{URL}?colour=red", {}, "unknown D1 URL option"),
        (URL, {"max_payload_bytes": MAX_PAYLOAD_BYTES + 1}, "max_payload_bytes"),
        (f"{URL}?max_payload_bytes=big", {}, "must be an integer"),
        (f"{URL}?table_prefix=bad-prefix", {}, "table_prefix"),
    ],
)
def test_bad_options_are_refused(url: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        D1Store.from_url(url, api_token="t", **options)


def test_a_database_must_be_a_d1_database() -> None:
    with pytest.raises(InvalidArgumentError, match="prepare and batch"):
        D1Store(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="no schemas"):
        D1Store(object(), schema="wf")  # type: ignore[arg-type]
