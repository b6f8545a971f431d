"""The queue example (examples/queues.py) works as its docstring says, on SQLite."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from workflow.runtime import RunStatus
from workflow.store.sqlite import SQLiteStore

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "queues.py"
T0 = 1_700_000_000_000


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("queues_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_email_queue_sends_two_at_once_one_per_tenant_reset_first(
    tmp_path: Path,
) -> None:
    example = load_example()
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
