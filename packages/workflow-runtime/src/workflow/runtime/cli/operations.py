"""Operator commands: inspect and steer runs, deliver signals and approvals, list
schedules.

    workflow runs list [--workflow ID] [--status paused ...] [--parent RUN_ID] [--limit 20]
                       [--cursor C]
    workflow runs show RUN_ID
    workflow runs cancel RUN_ID [--reason TEXT]
    workflow signal RUN_ID NAME --payload '{"paid": true}'
    workflow approve RUN_ID APPROVAL_ID --yes|--no [--feedback TEXT] [--buffer]
    workflow schedules list
"""

from __future__ import annotations

import uuid

import click

from ..contract import Capability, ExecutionStore
from ..driver import system_clock
from ..hints import shell_command
from ..records import JSON, InboxKind, Page, Run, RunStatus, Schedule, Timeline, WaitKind
from ..registry import redact_url
from ..results import (
    AlreadyTerminal,
    Buffered,
    Cancelled,
    CancelResult,
    Closed,
    Delivered,
    DeliveryResult,
    Duplicate,
    NotFound,
)
from . import render
from .common import CommandError, parse_json, url_option, with_store


@click.group()
def runs() -> None:
    """Start, inspect, cancel and purge runs."""


@runs.command("list")
@url_option()
@click.option("--workflow", "workflow_id", help="Only runs of this workflow id.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in RunStatus]),
    help="Only runs in this status (repeatable).",
)
@click.option(
    "--parent",
    "parent_run_id",
    metavar="RUN_ID",
    help="Only the child runs of this run (stores with child runs).",
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--cursor", help="Continue after the page that printed this cursor.")
def list_runs(
    url: str,
    workflow_id: str | None,
    statuses: tuple[str, ...],
    parent_run_id: str | None,
    limit: int,
    cursor: str | None,
) -> None:
    """List runs, newest first."""

    async def act(store: ExecutionStore) -> Page:
        # The filter only when given: a store without child runs refuses it.
        parent = {} if parent_run_id is None else {"parent_run_id": parent_run_id}
        return await store.list_runs(
            workflow_id=workflow_id,
            status={RunStatus(s) for s in statuses} or None,
            limit=limit,
            cursor=cursor,
            **parent,
        )

    page = with_store(url, act, reads_only=True)
    if not page.items:
        click.echo("no runs")
        return
    render.emit(render.runs_table(page.items))
    if page.next_cursor is not None:
        # The same query's next page: its filters, limit and store, or the pasted
        # command would page through another listing (or another store).
        filters = [("--workflow", workflow_id)] if workflow_id else []
        filters += [("--status", s) for s in statuses]
        filters += [("--parent", parent_run_id)] if parent_run_id else []
        again = shell_command(
            "workflow",
            "runs",
            "list",
            *(part for pair in filters for part in pair),
            "--limit",
            str(limit),
            "--cursor",
            page.next_cursor,
            "--url",
            redact_url(url),
        )
        click.echo(f"more: {again}")


@runs.command("show")
@url_option()
@click.argument("run_id")
def show_run(url: str, run_id: str) -> None:
    """Show a run, its children and its timeline."""

    async def act(store: ExecutionStore) -> tuple[Timeline | None, Page | None]:
        timeline = await store.get_timeline(run_id)
        if timeline is None or Capability.CHILDREN not in store.capabilities:
            return timeline, None
        return timeline, await store.list_runs(parent_run_id=run_id, limit=CHILDREN_SHOWN)

    timeline, children = with_store(url, act, reads_only=True)
    if timeline is None:
        raise CommandError(f"no run {run_id!r} in this store")
    print_timeline(timeline, url, children)


CHILDREN_SHOWN = 20
"""Child runs `runs show` lists (the newest); `runs list --parent` pages through all."""


def print_timeline(
    timeline: Timeline, url: str | None = None, children: Page | None = None
) -> None:
    """The run, its children (``children``: the first page of them, ``None`` on a store
    without child runs) and its events; ``url``: the store's, named in the commands
    printed."""
    shown_url = None if url is None else redact_url(url)
    render.emit(render.run_summary(timeline.run, shown_url))
    click.echo("")
    if children is not None and children.items:
        click.echo("children:")
        render.emit(render.children_table(children.items))
        if children.next_cursor is not None:
            on_store = ("--url", shown_url) if shown_url is not None else ()
            every = shell_command(
                "workflow", "runs", "list", "--parent", timeline.run.run_id, *on_store
            )
            click.echo(f"more: {every}")
        click.echo("")
    if timeline.events:
        render.emit(render.timeline_table(timeline))
    else:
        click.echo("no events yet")


@runs.command("cancel")
@url_option()
@click.argument("run_id")
@click.option("--reason", default="cancelled by operator", show_default=True)
def cancel_run(url: str, run_id: str, reason: str) -> None:
    """Cancel a run (a worker driving it stops at its next write)."""

    async def act(store: ExecutionStore) -> CancelResult:
        return await store.cancel_run(run_id, reason, system_clock())

    match with_store(url, act):
        case Cancelled(run):
            click.echo(f"cancelled run {run.run_id}")
        case AlreadyTerminal(run):
            raise CommandError(f"run {run.run_id!r} already ended {run.status.value}")
        case NotFound():
            raise CommandError(f"no run {run_id!r} in this store")


def _report_delivery(result: DeliveryResult, run_id: str, what: str) -> None:
    match result:
        case Delivered(run):
            click.echo(f"delivered {what}: run {run.run_id} was waiting for it and is queued")
        case Buffered(run):
            click.echo(
                f"buffered {what}: run {run.run_id} is {run.status.value} and will take it "
                "when it waits for it"
            )
        case Duplicate(entry):
            click.echo(f"duplicate {what}: already received (key {entry.key}); nothing changed")
        case Closed(run):
            raise CommandError(f"run {run.run_id!r} already ended {run.status.value}")
        case NotFound():
            raise CommandError(f"no run {run_id!r} in this store")


@click.command()
@url_option()
@click.argument("run_id")
@click.argument("name")
@click.option("--payload", help="The signal's payload as JSON (default: null).")
@click.option("--id", "signal_id", help="Signal id; resending the same id is a no-op.")
@click.option("--step", "step_id", help="Deliver only to the wait of this step.")
def signal(
    url: str,
    run_id: str,
    name: str,
    payload: str | None,
    signal_id: str | None,
    step_id: str | None,
) -> None:
    """Send signal NAME to a run."""
    value = parse_json(payload, "--payload")

    async def act(store: ExecutionStore) -> DeliveryResult:
        return await store.deliver_signal(
            run_id, signal_id or uuid.uuid4().hex, name, value, system_clock(), step_id=step_id
        )

    _report_delivery(with_store(url, act), run_id, f"signal {name!r}")


@click.command()
@url_option()
@click.argument("run_id")
@click.argument("approval_id")
@click.option("--yes/--no", "approved", default=None, help="Approve or reject (one is required).")
@click.option("--feedback", help="A note for the workflow (text, or JSON with --json-feedback).")
@click.option("--json-feedback", is_flag=True, help="Parse --feedback as JSON.")
@click.option(
    "--buffer",
    is_flag=True,
    help="Deliver even if the run is not waiting for this approval now (it takes the "
    "answer when it asks for it).",
)
def approve(
    url: str,
    run_id: str,
    approval_id: str,
    approved: bool | None,
    feedback: str | None,
    json_feedback: bool,
    buffer: bool,
) -> None:
    """Answer approval APPROVAL_ID of a run (see `workflow runs show RUN_ID`).

    Refused, and nothing delivered, when the run is not waiting for APPROVAL_ID (a
    mistyped id would otherwise wait in the run's inbox forever), unless --buffer."""
    if approved is None:
        raise click.UsageError("say --yes (approve) or --no (reject)")
    note: JSON = parse_json(feedback, "--feedback") if json_feedback else feedback

    async def act(store: ExecutionStore) -> DeliveryResult | Run:
        if not buffer:
            run = await store.load_run(run_id)
            if run is not None and not await _may_answer(store, run, approval_id):
                return run
        return await store.deliver_approval(
            run_id, approval_id, approved, system_clock(), feedback=note
        )

    verdict = "approval" if approved else "rejection"
    result = with_store(url, act)
    if isinstance(result, Run):
        show = shell_command("workflow", "runs", "show", run_id, "--url", redact_url(url))
        raise CommandError(
            f"run {run_id} is not waiting for approval {approval_id} "
            f"({_waits_for(result)}); nothing was delivered. Check the id with `{show}`, "
            "or pass --buffer to deliver it for an approval the run has not asked for yet"
        )
    _report_delivery(result, run_id, f"{verdict} of {approval_id}")


async def _may_answer(store: ExecutionStore, run: Run, approval_id: str) -> bool:
    """Whether delivering ``approval_id`` now is what the operator means: the run waits
    for it, has ended (the delivery reports that), or already has the answer (the
    delivery reports a duplicate)."""
    wait = run.wait
    if run.status.terminal or (
        wait is not None and wait.kind is WaitKind.APPROVAL and wait.approval_id == approval_id
    ):
        return True
    inbox = await store.read_inbox(run.run_id, include_consumed=True)
    return any(e.kind is InboxKind.APPROVAL and e.key == approval_id for e in inbox)


def _waits_for(run: Run) -> str:
    wait = run.wait
    if run.status is not RunStatus.PAUSED or wait is None:
        return f"it is {run.status.value} and waits for nothing now"
    if wait.kind is WaitKind.APPROVAL:
        return f"it waits for approval {wait.approval_id}"
    if wait.kind is WaitKind.SIGNAL:
        return f"it waits for signal {wait.name!r}"
    if wait.kind is WaitKind.CHILD:
        return f"it waits for child run {wait.name}"
    return f"it sleeps in step {wait.step_id!r}"


@click.group()
def schedules() -> None:
    """Inspect schedules (workers declare them from code)."""


@schedules.command("list")
@url_option()
@click.option("--workflow", "workflow_id", help="Only schedules of this workflow id.")
def list_schedules(url: str, workflow_id: str | None) -> None:
    """List schedules by id."""

    async def act(store: ExecutionStore) -> list[Schedule]:
        return await store.list_schedules(workflow_id=workflow_id)

    found = with_store(url, act, reads_only=True)
    if not found:
        click.echo("no schedules")
        return
    render.emit(render.schedules_table(found))
