"""OpenTelemetry on Redis (workflow.contract_tests.telemetry_cases)."""

from __future__ import annotations

import os
import uuid

import pytest

pytest.importorskip("opentelemetry.sdk")

from workflow.contract_tests.servers import require_server
from workflow.contract_tests.telemetry_cases import (
    check_trace_continues_in_another_store,
)
from workflow.runtime import ExecutionStore
from workflow.store.redis.store import RedisStore

URL = os.environ.get("WORKFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_a_run_driven_through_another_store_continues_the_trace() -> None:
    require_server(URL, "Redis", default_port=6379)
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    setup = RedisStore.from_url(URL, prefix=prefix)
    await setup.create_schema()

    async def open_store() -> ExecutionStore:
        return RedisStore.from_url(URL, prefix=prefix)

    try:
        await check_trace_continues_in_another_store(open_store, "redis")
    finally:
        async for key in setup.client.scan_iter(match=setup.keys.pattern):
            await setup.client.unlink(key)
        await setup.close()
