"""open_store(url): URL schemes, entry-point discovery, the memory store's URLs and options,
and error messages that name the package to install without leaking passwords."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

import pytest

from workflow.runtime import (
    Created,
    ExecutionStore,
    InMemoryStore,
    InvalidArgumentError,
    PayloadError,
    StoreUnavailableError,
    UnknownStoreError,
    open_store,
    registry,
)
from workflow.runtime.registry import ENTRY_POINT_GROUP, KNOWN_SCHEMES, url_scheme

T0 = 1_700_000_000_000


class FakeEntryPoint:
    """Just what the registry uses of an entry point: its name and load()."""

    def __init__(self, name: str, target: Callable[..., Any]) -> None:
        self.name = name
        self._target = target

    def load(self) -> Callable[..., Any]:
        return self._target


def real_store_entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Pin the installed stores to workflow-runtime's own (``memory``), plus whatever a
    test appends, so the results do not depend on what else this environment has."""
    eps: list[Any] = [ep for ep in real_store_entry_points() if ep.name == "memory"]

    def fake_entry_points(*, group: str) -> list[Any]:
        assert group == ENTRY_POINT_GROUP
        return list(eps)

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    return eps


# -- the memory store through its URL -------------------------------------------------------


def test_workflow_runtime_registers_the_memory_scheme() -> None:
    memory = [ep for ep in real_store_entry_points() if ep.name == "memory"]
    assert [ep.value for ep in memory] == ["workflow.runtime.memory:open_memory_store"]


async def test_memory_url_opens_an_in_memory_store() -> None:
    store = await open_store("memory://")
    assert isinstance(store, InMemoryStore)
    assert isinstance(store, ExecutionStore)
    assert store.max_payload_bytes == 1024 * 1024
    await store.close()


async def test_two_plain_memory_urls_open_separate_data() -> None:
    a = await open_store("memory://")
    b = await open_store("memory://")
    assert isinstance(await a.create_run("r", "wf", None, None, T0), Created)
    assert await b.load_run("r") is None


async def test_same_memory_name_opens_handles_on_the_same_data() -> None:
    a = await open_store("memory://registry-shared")
    b = await open_store("memory://registry-shared")
    assert a is not b
    created = await a.create_run("r", "wf", None, {"x": 1}, T0)
    assert isinstance(created, Created)
    assert await b.load_run("r") == created.run
    # Writes go both ways.
    await b.create_run("r2", "wf", None, None, T0 + 1)
    loaded = await a.load_run("r2")
    assert loaded is not None
    assert loaded.created_at == T0 + 1


async def test_different_memory_names_open_different_data() -> None:
    a = await open_store("memory://registry-left")
    b = await open_store("memory://registry-right")
    await a.create_run("r", "wf", None, None, T0)
    assert await b.load_run("r") is None


async def test_closing_one_shared_handle_leaves_the_other_open() -> None:
    a = await open_store("memory://registry-close")
    b = await open_store("memory://registry-close")
    await a.create_run("r", "wf", None, None, T0)
    await a.close()
    with pytest.raises(StoreUnavailableError):
        await a.load_run("r")
    run = await b.load_run("r")
    assert run is not None
    assert run.run_id == "r"


async def test_memory_max_payload_bytes_option_is_applied() -> None:
    store = await open_store("memory://", max_payload_bytes=16)
    assert isinstance(store, InMemoryStore)
    assert store.max_payload_bytes == 16
    await store.create_run("ok", "wf", None, "x" * 14, T0)  # 16 bytes with quotes
    with pytest.raises(PayloadError, match=r"over the limit of 16 bytes"):
        await store.create_run("big", "wf", None, "x" * 15, T0)
    assert await store.load_run("big") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"pool_size": 5},
            "^unknown memory store option: 'pool_size'; "
            "valid options: max_payload_bytes, operation_timeout, verify_schema$",
        ),
        ({"b": 1, "a": 2}, "^unknown memory store options: 'a', 'b'; valid options: "),
        (
            {"max_payload_byte": 5},
            "did you mean 'max_payload_bytes'?",
        ),
        ({"max_payload_bytes": "1MB"}, "max_payload_bytes must be an int"),
        ({"max_payload_bytes": True}, "max_payload_bytes must be an int"),
        ({"verify_schema": "yes"}, "verify_schema must be True or False, got 'yes'"),
        ({"max_payload_bytes": 1}, "max_payload_bytes must be between 2 and"),
    ],
)
async def test_bad_memory_options_are_invalid_arguments(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as exc:
        await open_store("memory://", **options)
    assert type(exc.value) is InvalidArgumentError


@pytest.mark.parametrize("url", ["memory:///data", "memory://name/path", "memory://#frag"])
async def test_bad_memory_urls_are_invalid_arguments(url: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^bad memory store URL .*use memory:// or"):
        await open_store(url)


@pytest.mark.parametrize("query", ["x=1", "max_payload_bytes=10", "table_prefix="])
async def test_memory_urls_take_no_options(query: str) -> None:
    name = query.split("=")[0]
    with pytest.raises(
        InvalidArgumentError,
        match=f"^unknown memory store URL option: '{name}'; valid options: none",
    ):
        await open_store(f"memory://name?{query}")


# -- URL schemes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("memory://", "memory"),
        ("sqlite:///var/lib/workflow.db", "sqlite"),
        ("postgresql://user:pw@host:5432/db", "postgresql"),
        ("postgresql+psycopg://user:pw@host/db", "postgresql"),
        ("postgresql+asyncpg://host/db", "postgresql"),
        ("mysql+aiomysql://host/db", "mysql"),
        ("REDIS://localhost:6379/0", "redis"),
        ("rediss://localhost", "rediss"),
    ],
)
def test_url_scheme_is_the_lowercased_scheme_without_driver(url: str, scheme: str) -> None:
    assert url_scheme(url) == scheme


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "^store URL must be a non-empty str, got ''$"),
        (42, "^store URL must be a non-empty str, got 42$"),
        (None, "^store URL must be a non-empty str, got None$"),
        (b"memory://", "^store URL must be a non-empty str"),
        ("nonsense", "^bad store URL 'nonsense': expected SCHEME://..."),
        ("sqlite:relative.db", "^bad store URL 'sqlite:relative.db': expected SCHEME://"),
        ("://host/db", "^bad store URL '://host/db': expected SCHEME://"),
    ],
)
async def test_bad_urls_are_invalid_arguments_not_unknown_stores(url: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as exc:
        await open_store(cast("str", url))
    assert type(exc.value) is InvalidArgumentError


def test_known_schemes_name_their_distributions() -> None:
    assert KNOWN_SCHEMES == {
        "memory": "workflow-runtime",
        "sqlite": "workflow-store-sqlite",
        "postgresql": "workflow-store-postgres",
        "postgres": "workflow-store-postgres",
        "mysql": "workflow-store-mysql",
        "mariadb": "workflow-store-mysql",
        "redis": "workflow-store-redis",
        "rediss": "workflow-store-redis",
        "d1": "workflow-store-d1",
    }


async def test_a_d1_url_without_the_d1_store_names_it(installed: list[Any]) -> None:
    with pytest.raises(UnknownStoreError, match=r"pip install workflow-store-d1$"):
        await open_store("d1://0123456789abcdef0123456789abcdef/db")


# -- discovery through entry points ---------------------------------------------------------


async def test_installed_scheme_is_opened_with_the_url_and_options(installed: list[Any]) -> None:
    calls: list[tuple[str, dict[str, object]]] = []
    opened = InMemoryStore()

    async def open_acme(url: str, **options: object) -> ExecutionStore:
        calls.append((url, options))
        return opened

    installed.append(FakeEntryPoint("acme", open_acme))
    store = await open_store("acme+fast://u:pw@host/db", pool_size=3)
    assert store is opened
    assert calls == [("acme+fast://u:pw@host/db", {"pool_size": 3})]


async def test_known_scheme_not_installed_names_the_package_to_install(
    installed: list[Any],
) -> None:
    with pytest.raises(UnknownStoreError) as exc:
        await open_store("redis://localhost")
    assert str(exc.value) == (
        "the store for redis:// URLs is not installed: pip install workflow-store-redis"
    )
    assert isinstance(exc.value, InvalidArgumentError)


@pytest.mark.parametrize(
    ("url", "package"),
    [
        ("sqlite:///w.db", "workflow-store-sqlite"),
        ("postgresql+psycopg://u@h/db", "workflow-store-postgres"),
        ("postgres://h/db", "workflow-store-postgres"),
        ("mariadb://h/db", "workflow-store-mysql"),
        ("rediss://h", "workflow-store-redis"),
    ],
)
async def test_each_known_scheme_names_its_package(
    installed: list[Any], url: str, package: str
) -> None:
    with pytest.raises(UnknownStoreError, match=rf"pip install {package}$"):
        await open_store(url)


async def test_unknown_scheme_lists_known_and_installed_schemes(installed: list[Any]) -> None:
    installed.append(FakeEntryPoint("acme", InMemoryStore))
    with pytest.raises(UnknownStoreError) as exc:
        await open_store("cassandra://node1/ks")
    assert str(exc.value) == (
        "no workflow store handles URL scheme 'cassandra' (cassandra://node1/ks); known schemes: "
        "acme, d1, mariadb, memory, mysql, postgres, postgresql, redis, rediss, sqlite"
    )


# -- passwords never reach error messages ------------------------------------------------------


async def test_unknown_scheme_error_redacts_the_password(installed: list[Any]) -> None:
    with pytest.raises(UnknownStoreError) as exc:
        await open_store("cassandra://admin:hunter2@node1:9042/ks")
    message = str(exc.value)
    assert "hunter2" not in message
    assert "(cassandra://admin:***@node1:9042/ks)" in message


async def test_not_installed_error_does_not_echo_the_password(installed: list[Any]) -> None:
    with pytest.raises(UnknownStoreError) as exc:
        await open_store("redis://:hunter2@localhost:6379/0")
    assert "hunter2" not in str(exc.value)
    assert "pip install workflow-store-redis" in str(exc.value)


def test_unparseable_url_error_does_not_echo_the_password() -> None:
    with pytest.raises(InvalidArgumentError) as exc:
        url_scheme("postgresql://admin:hunter2@[::1/db")
    message = str(exc.value)
    assert "hunter2" not in message
    assert message.startswith("bad store URL '<unparseable URL>': ")
