"""The examples (examples/*.py) work as their docstrings say, on SQLite."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from workflow.runtime import RunStatus, WaitKind
from workflow.store.sqlite import SQLiteStore

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
T0 = 1_700_000_000_000


def load_example(name: str) -> ModuleType:
    """examples/<name>.py as a module (registered, so its dataclasses can resolve it)."""
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_order_example_runs_to_shipped_after_its_approval(tmp_path: Path) -> None:
    orders = load_example("orders")
    store = SQLiteStore.from_path(tmp_path / "orders.db")
    await store.create_schema()
    clock = [T0]
    runtime = orders.runtime.bind(store, clock=lambda: clock[0])
    try:
        run = await runtime.start("order", {"order_id": "A-1", "total": 42.0}, run_id="A-1")
        await runtime.sweep()
        paused = await store.load_run(run.run_id)
        assert paused is not None
        assert paused.wait is not None
        assert paused.wait.kind is WaitKind.APPROVAL
        await runtime.approve(run.run_id, paused.wait.approval_id or "", True)
        await runtime.sweep()  # approved: now sleeping through "packing"
        clock[0] += 2_000
        await runtime.sweep()
        output = await runtime.result(run.run_id)
        assert output == {
            "status": "shipped",
            "payment": {"charge_id": "ch-A-1/charge", "amount": 42.0},
            "tracking": "TRK-A-1",
        }
        (schedule,) = await store.list_schedules()
        assert schedule.workflow_id == "nightly-report"

        bad = await runtime.start("order", {"order_id": "A-2", "total": 0}, run_id="A-2")
        await runtime.sweep()
        failed = await store.load_run(bad.run_id)
        assert failed is not None
        assert failed.status is RunStatus.ERRORED
        assert failed.error is not None
        assert failed.error.code == "invalid_order"
    finally:
        await store.close()


async def test_the_patching_example_keeps_the_old_path_for_the_run_in_flight(
    tmp_path: Path,
) -> None:
    patching = load_example("patching")
    results = await patching.main(f"sqlite:///{tmp_path / 'patching.db'}")
    (old, old_output), (new, new_output) = results.items()
    assert old.startswith("old-")
    assert old_output == ["reserved A-1", "paid", "shipped A-1"]
    assert new.startswith("new-")
    assert new_output == ["reserved B-2", "checked B-2", "paid", "shipped B-2"]


async def test_the_deadlines_example_times_its_run_out_once(tmp_path: Path) -> None:
    example = load_example("deadlines")
    store = SQLiteStore.from_path(tmp_path / "deadlines.db")
    await store.create_schema()
    clock = [T0]
    runtime = example.runtime.bind(store, clock=lambda: clock[0])
    try:
        run = await runtime.start(example.quote, {"qty": 3}, timeout=2.0)
        assert run.deadline_at == T0 + 2_000
        await runtime.sweep()
        paused = await store.load_run(run.run_id)
        assert paused is not None
        assert paused.status is RunStatus.PAUSED
        clock[0] += 1_999
        assert (await runtime.sweep()).timers == []
        clock[0] += 1
        fired = (await runtime.sweep()).timers
        assert [(e.run_id, e.kind.value) for e in fired] == [(run.run_id, "deadline")]
        ended = await store.load_run(run.run_id)
        assert ended is not None
        assert ended.status is RunStatus.TIMED_OUT
        assert ended.error is not None
        assert ended.error.code == "timed_out"
        clock[0] += 60_000
        assert (await runtime.sweep()).timers == []
    finally:
        await store.close()


async def test_the_deadlines_example_main_ends_timed_out(tmp_path: Path) -> None:
    example = load_example("deadlines")
    assert await example.main(f"sqlite:///{tmp_path / 'main.db'}", run_timeout=0.05) == "timed_out"


async def test_the_email_queue_sends_two_at_once_one_per_tenant_reset_first(
    tmp_path: Path,
) -> None:
    example = load_example("queues")
    store = SQLiteStore.from_path(tmp_path / "queues.db")
    await store.create_schema()
    clock = [T0]
    runtime = example.runtime.bind(store, clock=lambda: clock[0])
    try:
        await example.declare_queues(store, T0)
        reset, *newsletter = await example.start_emails(store)
        first = await runtime.sweep()
        # Two at once, one per tenant: the reset (priority 10, acme) and one of globex's
        # (which one depends on the run ids when both were started in the same ms).
        drove = sorted(d.run_id for d in first.drives)
        assert len(drove) == 2, drove
        assert reset in drove
        assert set(drove) - {reset} <= set(newsletter[2:]), drove
        shown = await store.load_run(reset)
        assert shown is not None
        assert (shown.queue, shown.priority, shown.partition_key) == ("emails", 10, "acme")
        assert shown.status is RunStatus.FINISHED
        for _ in range(2):
            await runtime.sweep()
        # 10 per second: five sends fit in one window.
        for run_id in newsletter:
            run = await store.load_run(run_id)
            assert run is not None
            assert run.status is RunStatus.FINISHED, run
            assert isinstance(run.input, dict)
            assert await runtime.result(run_id) == f"sent to {run.input['to']}"
    finally:
        await store.close()


async def test_the_retention_example_purges_the_ended_runs_and_keeps_the_waiting_one(
    tmp_path: Path,
) -> None:
    example = load_example("retention")
    url = f"sqlite:///{tmp_path / 'retention.db'}"
    outcome = await example.main(url)
    *receipts, refund = outcome["started"]
    assert outcome["kept"] == [refund]
    store = SQLiteStore.from_path(tmp_path / "retention.db")
    try:
        waiting = await store.load_run(refund)
        assert waiting is not None
        assert waiting.status is RunStatus.PAUSED
        for run_id in receipts:
            assert await store.load_run(run_id) is None
            assert await store.read_events(run_id) == []
    finally:
        await store.close()


async def test_the_children_example_fans_out_and_handles_the_failed_child(tmp_path: Path) -> None:
    outcome = await load_example("children").main(f"sqlite:///{tmp_path / 'children.db'}")
    assert outcome["output"]["failed"] == {"invoice-initech": "no address for initech"}
    assert outcome["output"]["summary"] == "3 invoices, 400 in total"
    assert sorted(outcome["children"].values()) == ["errored"] + ["finished"] * 4
