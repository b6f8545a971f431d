"""The suite must catch broken stores: each variant in ``broken_stores`` fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from broken_stores import BROKEN_STORES

HERE = Path(__file__).resolve().parent

MODULE = '''
import sys
sys.path.insert(0, {here!r})

import pytest
from broken_stores import BROKEN_STORES
from workflow.contract_tests import StoreContract
from workflow.runtime import Capability


class TestBrokenStore(StoreContract):
    capabilities = frozenset({{Capability.SUBSCRIBE_EVENTS}})

    @pytest.fixture
    async def store(self):
        store = BROKEN_STORES[{name!r}](max_payload_bytes=self.max_payload_bytes)
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(self, store):
        async def open_handle():
            return store.handle()
        return open_handle
'''


@pytest.mark.parametrize("name", sorted(BROKEN_STORES))
def test_contract_suite_fails_on_broken_store(pytester: pytest.Pytester, name: str) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    pytester.makepyfile(test_broken=MODULE.format(here=str(HERE), name=name))
    # -x: one failing case is proof enough, and keeps fifteen suite runs quick.
    result = pytester.runpytest_inprocess("-x", "-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, f"{name} passed the whole contract suite"
