"""Workflow definitions, their schedules, and the registry of ids and versions."""

from __future__ import annotations

import pytest

from workflow.runtime import (
    JSON,
    Context,
    CronSpec,
    IntervalSpec,
    InvalidArgumentError,
    Overlap,
    UnknownWorkflowError,
    Workflow,
    WorkflowSet,
    cron,
    every,
    workflow,
)
from workflow.runtime.workflow_errors import WorkflowDefinitionError


async def handler(ctx: Context, input: JSON) -> JSON:
    return input


def test_the_decorator_registers_id_version_and_schedules() -> None:
    wf = workflow("order", version="2", schedules=[cron("0 2 * * *", timezone="Europe/Berlin")])(
        handler
    )
    assert (wf.workflow_id, wf.version, wf.handler) == ("order", "2", handler)
    (schedule,) = wf.schedules
    assert schedule.spec == CronSpec("0 2 * * *", "Europe/Berlin")
    assert schedule.resolved_id("order") == "order/cron 0 2 * * * Europe/Berlin"
    assert schedule.overlap is Overlap.SKIP


def test_every_builds_an_interval_schedule_with_an_explicit_id() -> None:
    scheduled = every(1.5, id="tick", input={"a": 1}, overlap="buffer_one")
    assert scheduled.spec == IntervalSpec(1_500)
    assert scheduled.resolved_id("wf") == "tick"
    assert scheduled.overlap is Overlap.BUFFER_ONE


@pytest.mark.parametrize(
    "make",
    [
        lambda: cron("61 * * * *"),
        lambda: cron("* * * * *", timezone="Mars/Olympus"),
        lambda: every(0),
        lambda: every(1, overlap="sometimes"),
        lambda: Workflow("", handler),
    ],
)
def test_bad_declarations_fail_where_they_are_written(make: object) -> None:
    with pytest.raises((InvalidArgumentError, ValueError)):
        make()  # type: ignore[operator]


def test_two_schedules_with_one_id_are_refused() -> None:
    with pytest.raises(WorkflowDefinitionError, match="two schedules with the same id"):
        Workflow("wf", handler, schedules=(every(1, id="x"), every(2, id="x")))


def test_one_schedule_id_declared_by_two_workflows_is_refused() -> None:
    a = Workflow("a", handler, schedules=(every(1, id="nightly"),))
    b = Workflow("b", handler, schedules=(every(2, id="nightly"),))
    with pytest.raises(WorkflowDefinitionError, match="'nightly' is declared by both"):
        WorkflowSet([a, b])
    # Versions of one workflow keep their schedule id: only the latest declares it.
    WorkflowSet([Workflow("a", handler, "0", schedules=(every(1, id="nightly"),)), a])


def test_the_set_finds_the_latest_and_exact_versions() -> None:
    v1 = Workflow("order", handler, "1")
    v2 = Workflow("order", handler, "2")
    other = Workflow("refund", handler, None)
    workflows = WorkflowSet([v1, v2, other])
    assert workflows.latest("order") is v2
    assert workflows.get("order", "1") is v1
    assert workflows.get("refund", None) is other
    assert workflows.ids == {"order", "refund"}
    with pytest.raises(UnknownWorkflowError, match="registered versions: 1, 2"):
        workflows.get("order", "3")
    with pytest.raises(UnknownWorkflowError, match="registered: order, refund"):
        workflows.latest("ship")
    with pytest.raises(WorkflowDefinitionError, match="registered twice"):
        WorkflowSet([v1, Workflow("order", handler, "1")])
    with pytest.raises(WorkflowDefinitionError, match="expected a Workflow"):
        WorkflowSet([handler])  # type: ignore[list-item]
