"""What a mysql:// URL and the MySQLStore options accept; the rest is refused with
InvalidArgumentError naming the valid options, before anything connects (the URLs
point at port 1, where nothing listens)."""

from __future__ import annotations

import pytest

from workflow.runtime import InvalidArgumentError, open_store
from workflow.store.mysql import MySQLStore

URL = "mysql://app@127.0.0.1:1/app"


async def test_a_misspelt_store_option_names_the_valid_ones() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await open_store(f"{URL}?table_prefx=app_")
    assert str(caught.value).startswith(
        "unknown MySQL store URL option: 'table_prefx' (did you mean 'table_prefix'?); "
        "valid options: connections, max_payload_bytes, operation_timeout, schema, "
        "table_prefix, and "
        "PyMySQL's options: charset, connect_timeout, "
    )


async def test_an_unknown_keyword_option_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await open_store(URL, pool_size=3)
    assert str(caught.value) == (
        "unknown MySQL store option: 'pool_size'; valid options: connect, connections, "
        "max_payload_bytes, operation_timeout, schema, table_prefix"
    )


async def test_verify_schema_must_be_a_bool() -> None:
    with pytest.raises(InvalidArgumentError, match="verify_schema must be True or False"):
        await open_store(URL, verify_schema="yes")


@pytest.mark.parametrize("schema", ["information_schema", "mysql", "performance_schema", "sys"])
async def test_system_schemas_are_refused(schema: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"schema '{schema}' belongs to the database"):
        await open_store(f"{URL}?schema={schema}")


async def test_a_blank_table_prefix_is_the_empty_prefix() -> None:
    store = MySQLStore.from_url(f"{URL}?table_prefix=")
    try:
        assert store.tables.runs.name == "runs"
    finally:
        await store.close()
