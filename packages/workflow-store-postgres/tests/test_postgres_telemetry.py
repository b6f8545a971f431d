"""OpenTelemetry on PostgreSQL (workflow.contract_tests.telemetry_cases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from postgres_server import SERVER

from workflow.contract_tests.telemetry_cases import (
    check_trace_continues_in_another_store,
)
from workflow.runtime import ExecutionStore


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    yield from SERVER.schema("wf_otel")


async def test_a_run_driven_through_another_store_continues_the_trace(schema: str) -> None:
    async def open_store() -> ExecutionStore:
        return SERVER.store(schema)

    await check_trace_continues_in_another_store(open_store, "postgresql")
