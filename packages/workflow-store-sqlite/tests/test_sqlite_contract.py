"""The contract suite against SQLite files."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from workflow.contract_tests import StoreContract, StoreFactory
from workflow.contract_tests.sql import assert_golden
from workflow.runtime import Capability, ExecutionStore
from workflow.store.sql.statements import (
    Recorder,
    child_operation_statements,
    hot_operation_sql,
    hot_operation_statements,
)
from workflow.store.sql.store import SQLStore
from workflow.store.sqlite.store import SQLiteStore


class TestSQLiteStore(StoreContract):
    capabilities = frozenset(
        {
            Capability.SUBSCRIBE_EVENTS,
            Capability.DURABLE,
            Capability.MULTI_PROCESS,
            Capability.CLAIM_ON_CREATE,
            Capability.DEADLINES,
            Capability.QUEUES,
            Capability.CHILDREN,
        }
    )

    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        # What open_store() opens on the same data as `store` (multi-process cases).
        return f"sqlite:///{tmp_path / 'wf.db'}"

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[ExecutionStore]:
        store = SQLiteStore.from_path(
            str(tmp_path / "wf.db"), max_payload_bytes=self.max_payload_bytes
        )
        await store.create_schema()
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(self, tmp_path: Path) -> AsyncIterator[StoreFactory]:
        opened: list[SQLiteStore] = []

        async def open_handle() -> ExecutionStore:
            handle = SQLiteStore.from_path(
                str(tmp_path / "wf.db"), max_payload_bytes=self.max_payload_bytes
            )
            opened.append(handle)
            return handle

        yield open_handle
        for handle in opened:
            await handle.close()


GOLDEN = Path(__file__).parent / "golden" / "hot_operations.sql"

# Round trips per hot operation (workflow.store.sql.statements.recording): the stores
# run in autocommit, so a transaction shows as BEGIN ... COMMIT and nothing else is sent.
# A change that adds one fails here; one that removes one updates the table.
STATEMENT_BUDGET = {
    "create_run": 1,
    "create_run_claimed": 1,
    "claim_run": 1,
    "heartbeat": 1,
    "append_events_1": 4,
    "append_events_10": 4,
    "settle_run": 4,
    "fire_due_timers": 6,  # 1 of them: the due deadlines (none here)
    "deliver_signal": 5,
    "fire_due_schedules": 5,
    "claim_runnable": 1,
    "list_runs": 1,
    "load_run": 1,
}


async def test_hot_operations_send_the_budgeted_statements(tmp_path: Path) -> None:
    # Its own tables (prefix), so the contract cases' data cannot interfere.
    store = SQLiteStore.from_path(tmp_path / "statements.db")
    await store.create_schema()
    try:
        seen = await hot_operation_statements(store)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == STATEMENT_BUDGET, seen


def _hops(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A recorder of hops to another thread: every callable submitted to a thread pool
    (``loop.run_in_executor`` and ``asyncio.to_thread`` both go through
    ``ThreadPoolExecutor.submit``), whoever submits it. Counted at the executor, not
    by the store's driver, so a driver that hops more than it says is caught."""
    seen: list[str] | None = None
    original: Callable[..., Any] = ThreadPoolExecutor.submit

    def counted(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if seen is not None:
            seen.append(getattr(fn, "__name__", repr(fn)))
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", counted)

    @contextlib.contextmanager
    def record(_store: SQLStore) -> Iterator[list[str]]:
        nonlocal seen
        seen = []
        try:
            yield seen
        finally:
            seen = None

    return record


async def test_every_hot_operation_is_one_hop_to_the_driver_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite has no server round trips; what an operation waits for is the hop to its
    # connection's thread. Each operation's statements (STATEMENT_BUDGET) run there in
    # one hop.
    store = SQLiteStore.from_path(tmp_path / "hops.db")
    await store.create_schema()
    try:
        seen = await hot_operation_statements(store, record=_hops(monkeypatch))
    finally:
        await store.close()
    assert {op: len(hops) for op, hops in seen.items()} == dict.fromkeys(STATEMENT_BUDGET, 1), seen


async def test_hot_operations_send_the_golden_sql(tmp_path: Path) -> None:
    # What each hot operation sends, as SQL a reviewer reads (tests/golden/).
    store = SQLiteStore.from_path(tmp_path / "golden.db")
    await store.create_schema()
    try:
        text = await hot_operation_sql(store)
    finally:
        await store.close()
    assert_golden(GOLDEN, text)


# SQLite: one hop each; a child's settle is tried as an orphan first, in vain (the
# guard's no-parent clause), then done again with its parent locked first.
CHILD_BUDGET = {
    "settle_finish": 3,
    "create_child": 5,
    "settle_finish_child": 10,
    "cancel_run": 5,
    "cancel_child": 9,
}


async def test_runs_with_and_without_a_parent_send_the_budgeted_statements(
    tmp_path: Path,
) -> None:
    store = SQLiteStore.from_path(tmp_path / "children.db")
    await store.create_schema()
    try:
        seen = await child_operation_statements(store)
    finally:
        await store.close()
    assert {op: len(statements) for op, statements in seen.items()} == CHILD_BUDGET, seen
