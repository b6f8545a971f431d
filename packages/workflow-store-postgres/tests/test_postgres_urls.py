"""What a postgresql:// URL and the PostgresStore options accept; the rest is refused
with InvalidArgumentError naming the valid options, before anything connects (the URLs
point at port 1, where nothing listens)."""

from __future__ import annotations

import pytest

from workflow.runtime import Capability, InvalidArgumentError, open_store
from workflow.runtime.wakeups import watch
from workflow.store.postgres import PostgresStore
from workflow.store.postgres.listener import MAX_CHANNEL_BYTES, channel_for
from workflow.store.postgres.store import _conninfo

URL = "postgresql://app@127.0.0.1:1/app"


async def test_a_misspelt_store_option_names_the_valid_ones() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await open_store(f"{URL}?table_prefx=app_")
    message = str(caught.value)
    assert message.startswith(
        "unknown PostgreSQL store URL option: 'table_prefx' (did you mean 'table_prefix'?); "
        "valid options: max_payload_bytes, notify, operation_timeout, pool_size, prepare, "
        "schema, table_prefix, and "
        "libpq's connection parameters: application_name, "
    )
    assert "sslmode" in message


async def test_an_option_libpq_does_not_know_is_refused_before_connecting() -> None:
    with pytest.raises(InvalidArgumentError, match=r"'sslmod' \(did you mean 'sslmode'\?\)"):
        await open_store(f"{URL}?sslmod=require")


async def test_libpq_parameters_still_reach_the_connection() -> None:
    store = PostgresStore.from_url(f"{URL}?application_name=wf&sslmode=disable&schema=wf")
    try:
        conninfo = _conninfo(store._migration_url)
        assert "application_name=wf" in conninfo
        assert "sslmode=disable" in conninfo
        assert "schema" not in conninfo
    finally:
        await store.close()


async def test_an_unknown_keyword_option_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^unknown PostgreSQL store option: 'poolsize'"):
        await open_store(URL, poolsize=3)


async def test_verify_schema_must_be_a_bool() -> None:
    with pytest.raises(InvalidArgumentError, match="verify_schema must be True or False"):
        await open_store(URL, verify_schema="yes")


@pytest.mark.parametrize(
    "schema", ["information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"]
)
async def test_system_schemas_are_refused(schema: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"schema '{schema}' belongs to the database"):
        await open_store(f"{URL}?schema={schema}")
    with pytest.raises(InvalidArgumentError, match="belongs to the database server"):
        PostgresStore(URL, schema=schema)


async def test_a_blank_table_prefix_is_the_empty_prefix() -> None:
    store = PostgresStore.from_url(f"{URL}?table_prefix=")
    try:
        assert store.tables.runs.name == "runs"
    finally:
        await store.close()


async def test_notify_false_turns_wake_up_hints_off() -> None:
    # For PgBouncer in transaction mode, where LISTEN cannot work.
    for store in (
        PostgresStore.from_url(f"{URL}?notify=false"),
        PostgresStore.from_url(URL, notify=False),
    ):
        try:
            assert Capability.NOTIFY_RUNNABLE not in store.capabilities
            assert watch(store) is None
            with pytest.raises(InvalidArgumentError, match="notify=false"):
                store.watch_runnable()
        finally:
            await store.close()
    store = PostgresStore.from_url(URL)
    try:
        assert Capability.NOTIFY_RUNNABLE in store.capabilities
    finally:
        await store.close()


async def test_notify_must_be_a_flag() -> None:
    with pytest.raises(InvalidArgumentError, match="notify must be true or false, not 'maybe'"):
        await open_store(f"{URL}?notify=maybe")
    with pytest.raises(InvalidArgumentError, match="notify must be True or False"):
        await open_store(URL, notify="no")


def test_the_channel_names_schema_and_prefix_and_fits_postgres_identifiers() -> None:
    assert channel_for(None, "workflow_") == "workflow_runnable"
    assert channel_for("wf", "app_") == "wf.app_runnable"
    long_a, long_b = channel_for("s" * 63, "a" * 30), channel_for("s" * 63, "b" * 30)
    assert len(long_a) == len(long_b) == MAX_CHANNEL_BYTES
    assert long_a != long_b
