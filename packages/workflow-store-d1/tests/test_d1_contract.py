"""The contract suite against a real local D1, through the REST client.

Every test has its own table prefix in the session's one local D1 (D1 has no schemas),
and drops its tables when it ends: a schema that only grows makes every later statement
slower (with ~1,700 cases, 2.6 s a case by the end of a CI run; ~0.1 s with the drop).
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import AsyncIterator

import pytest
from local_d1 import ACCOUNT_ID, DATABASE_ID, LocalD1, local_d1  # noqa: F401 (fixture)

from workflow.contract_tests import StoreContract, StoreFactory
from workflow.runtime import Capability, ExecutionStore
from workflow.store.d1 import D1Store
from workflow.store.d1.limits import MAX_PAYLOAD_BYTES


async def drop_tables(url: str, prefix: str) -> None:
    """Drop every table whose name starts with ``prefix`` (their indexes go with them)."""
    store = D1Store.from_url(url)
    try:
        database = store.database
        found = await database.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all()
        names = [str(row["name"]) for row in found.results]
        ours = [name for name in names if name.startswith(prefix)]
        if ours:
            await database.batch([database.prepare(f'DROP TABLE "{name}"') for name in ours])
    finally:
        await store.close()


class TestD1Store(StoreContract):
    capabilities = frozenset(
        {
            Capability.SUBSCRIBE_EVENTS,
            Capability.DURABLE,
            Capability.MULTI_PROCESS,
            Capability.CLAIM_ON_CREATE,
            Capability.DEADLINES,
            Capability.CHILDREN,
        }
    )
    max_payload_bytes = MAX_PAYLOAD_BYTES

    # Every call of the stateful model is an HTTP request to the local workerd (about
    # ten times a SQLite store's call): its full search took 285 s of the suite's 300 s
    # budget on the loaded 2-core CI machine (December 2026), and over it once. More
    # time rather than a smaller search: the D1 batches are code of their own.
    @pytest.mark.timeout(900)
    async def test_stateful_model(self, store: ExecutionStore) -> None:
        await super().test_stateful_model(store)

    @pytest.fixture
    def prefix(self) -> str:
        return f"t{secrets.token_hex(4)}_"

    @pytest.fixture
    async def store_url(
        self,
        local_d1: LocalD1,  # noqa: F811
        prefix: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> AsyncIterator[str]:
        # The token travels as the URL says tokens do: in an environment variable
        # (inherited by the processes the multi-process cases start).
        monkeypatch.setenv("WORKFLOW_TEST_D1_TOKEN", local_d1.token)
        query = urllib.parse.urlencode(
            {
                "base_url": local_d1.base_url,
                "api_token_env": "WORKFLOW_TEST_D1_TOKEN",
                "table_prefix": prefix,
                "max_payload_bytes": self.max_payload_bytes,
            }
        )
        url = f"d1://{ACCOUNT_ID}/{DATABASE_ID}?{query}"
        yield url
        await drop_tables(url, prefix)

    @pytest.fixture
    async def store(self, store_url: str) -> AsyncIterator[ExecutionStore]:
        store = D1Store.from_url(store_url)
        await store.create_schema()
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(self, store_url: str) -> AsyncIterator[StoreFactory]:
        opened: list[D1Store] = []

        async def open_handle() -> ExecutionStore:
            handle = D1Store.from_url(store_url)
            opened.append(handle)
            return handle

        yield open_handle
        for handle in opened:
            await handle.close()
