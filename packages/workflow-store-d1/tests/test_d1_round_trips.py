"""What each hot operation costs on D1: HTTP requests, counted at the REST client."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from local_d1 import LocalD1, local_d1  # noqa: F401 (fixture)

from workflow.store.d1 import D1HttpDatabase, D1Store
from workflow.store.sql.statements import (
    Recorder,
    child_operation_statements,
    hot_operation_statements,
)
from workflow.store.sql.store import SQLStore

# One request per hot operation (a statement or a batch), but fire_due_schedules: its
# next fire times come from the cron library, between the read and the batch.
ROUND_TRIPS = {
    "create_run": 1,
    "create_run_claimed": 1,
    "claim_run": 1,
    "heartbeat": 1,
    "append_events_1": 1,
    "append_events_10": 1,
    "settle_run": 1,
    "fire_due_timers": 2,  # the deadlines batch, then the timers batch
    "deliver_signal": 1,
    "claim_runnable": 1,
    "fire_due_schedules": 2,
    "list_runs": 1,
    "load_run": 1,
}


def _requests(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A recorder of the requests the REST client sends (``send`` is its one way out)."""
    seen: list[str] | None = None
    original = D1HttpDatabase.send

    async def counted(self: D1HttpDatabase, body: dict[str, Any]) -> Any:
        if seen is not None:
            seen.append("batch" if "batch" in body else "statement")
        return await original(self, body)

    monkeypatch.setattr(D1HttpDatabase, "send", counted)

    @contextlib.contextmanager
    def record(_store: SQLStore) -> Iterator[list[str]]:
        nonlocal seen
        seen = []
        try:
            yield seen
        finally:
            seen = None

    return record


async def test_every_hot_operation_is_one_request(
    local_d1: LocalD1,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = D1Store(
        local_d1.database(), table_prefix=f"rt{secrets.token_hex(4)}_", close_database=True
    )
    await store.create_schema()
    try:
        seen = await hot_operation_statements(store, record=_requests(monkeypatch))
    finally:
        await store.close()
    assert {op: len(requests) for op, requests in seen.items()} == ROUND_TRIPS, seen


# A run's end reaches its parent in the batch that ends it, a cascade is one more
# statement there, and a child is created in one batch: with or without a parent, one
# request each.
CHILD_ROUND_TRIPS = {
    "settle_finish": 1,
    "create_child": 1,
    "settle_finish_child": 1,
    "cancel_run": 1,
    "cancel_child": 1,
}


async def test_runs_with_and_without_a_parent_are_one_request_each(
    local_d1: LocalD1,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = D1Store(
        local_d1.database(), table_prefix=f"kids{secrets.token_hex(4)}_", close_database=True
    )
    await store.create_schema()
    try:
        seen = await child_operation_statements(store, record=_requests(monkeypatch))
    finally:
        await store.close()
    assert {op: len(requests) for op, requests in seen.items()} == CHILD_ROUND_TRIPS, seen
