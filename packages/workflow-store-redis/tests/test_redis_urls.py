"""What a redis:// URL and open_store's options accept; the rest is refused with
InvalidArgumentError naming the valid options, before any command is sent."""

from __future__ import annotations

import pytest

from workflow.runtime import InvalidArgumentError, open_store
from workflow.store.redis.store import RedisStore

URL = "redis://127.0.0.1:1/0"
"""Port 1: nothing listens there; none of these cases may get as far as connecting."""


@pytest.mark.parametrize("cluster", ["", "&cluster=true"])
async def test_a_misspelt_option_names_the_valid_ones(cluster: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await open_store(f"{URL}?prefx=app:{cluster}")
    message = str(caught.value)
    assert message.startswith(
        "unknown Redis store URL option: 'prefx' (did you mean 'prefix'?); valid options: "
        "buckets, cluster, max_payload_bytes, operation_timeout, prefix, "
        "and redis-py's connection options: "
    )
    assert "socket_timeout" in message


async def test_max_payload_bytes_in_the_url_like_the_keyword() -> None:
    store = RedisStore.from_url(f"{URL}?max_payload_bytes=4096")
    try:
        assert store.max_payload_bytes == 4096
    finally:
        await store.close()
    store = RedisStore.from_url(f"{URL}?max_payload_bytes=4096", max_payload_bytes=512)
    try:
        assert store.max_payload_bytes == 512  # the keyword wins
    finally:
        await store.close()
    with pytest.raises(InvalidArgumentError, match="max_payload_bytes must be a whole number"):
        RedisStore.from_url(f"{URL}?max_payload_bytes=1MB")


async def test_an_unknown_keyword_option_names_the_valid_ones() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await open_store(URL, table_prefix="x_")
    assert str(caught.value) == (
        "unknown Redis store option: 'table_prefix'; valid options: buckets, cluster, "
        "max_payload_bytes, operation_timeout, prefix, require_durable, verify_schema"
    )


@pytest.mark.parametrize("name", ["verify_schema", "require_durable"])
async def test_flags_must_be_bools(name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"{name} must be True or False"):
        await open_store(URL, **{name: "yes"})


async def test_operation_timeout_from_the_url_or_a_keyword() -> None:
    store = RedisStore.from_url(f"{URL}?operation_timeout=2.5")
    try:
        assert store.operation_timeout == 2.5
    finally:
        await store.close()
    store = RedisStore.from_url(f"{URL}?operation_timeout=2.5", operation_timeout=4)
    try:
        assert store.operation_timeout == 4.0
    finally:
        await store.close()


@pytest.mark.parametrize("query", ["operation_timeout=soon", "operation_timeout=0"])
async def test_a_bad_operation_timeout_is_refused(query: str) -> None:
    with pytest.raises(InvalidArgumentError, match="operation_timeout must be"):
        await open_store(f"{URL}?{query}")
    with pytest.raises(InvalidArgumentError, match="operation_timeout must be"):
        await open_store(URL, operation_timeout=False)
