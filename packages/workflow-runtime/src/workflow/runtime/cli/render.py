"""Readable tables for runs, timelines and schedules (rich: a maintained terminal
table library that sizes columns, colours statuses and degrades to plain text in
pipes)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click
from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from ..hints import shell_command
from ..history import EventType, field_of
from ..records import (
    JSON,
    CronSpec,
    Run,
    RunStatus,
    Schedule,
    StoredEvent,
    Timeline,
    Wait,
    WaitKind,
)
from ..validation import MAX_MS

STATUS_STYLE = {
    RunStatus.QUEUED: "cyan",
    RunStatus.RUNNING: "bold blue",
    RunStatus.PAUSED: "yellow",
    RunStatus.FINISHED: "green",
    RunStatus.ERRORED: "bold red",
    RunStatus.CANCELLED: "magenta",
    RunStatus.TIMED_OUT: "red",
}

PLAIN_WIDTH = 200
"""Width when stdout is not a terminal: wide enough that ids are never folded."""


def console() -> Console:
    """A console on stdout; in pipes and files: no colour, a fixed wide width."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(width=PLAIN_WIDTH, no_color=True, highlight=False, soft_wrap=False)


def emit(*renderables: RenderableType) -> None:
    """Print to stdout: rich on a terminal; plain lines without trailing padding in pipes
    and files (what scripts and logs want)."""
    out = console()
    if out.is_terminal:
        out.print(*renderables)
        return
    with out.capture() as captured:
        out.print(*renderables)
    for line in captured.get().splitlines():
        click.echo(line.rstrip())


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms >= MAX_MS:
        return "never"
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S") + f".{ms % 1000:03d}Z"


def short_json(value: JSON, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_text(status: RunStatus) -> Text:
    return Text(status.value, style=STATUS_STYLE[status])


def wait_text(wait: Wait | None) -> str:
    if wait is None:
        return ""
    if wait.kind is WaitKind.SLEEP:
        return f"sleep {wait.step_id} until {when(wait.wake_at)}"
    if wait.kind is WaitKind.SIGNAL:
        text = f"signal {wait.name!r} ({wait.step_id})"
    elif wait.kind is WaitKind.CHILD:
        text = f"child run {wait.name} ({wait.step_id})"
    else:
        text = f"approval {wait.approval_id} ({wait.step_id})"
    return text if wait.wake_at is None else f"{text}, times out {when(wait.wake_at)}"


def note_text(run: Run) -> str:
    """What a run waits for, or its error: the last column of the run tables."""
    if run.error is not None:
        return f"{run.error.type}: {run.error.message}"
    return wait_text(run.wait)


def runs_table(runs: list[Run]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("RUN ID", no_wrap=True, overflow="fold")
    table.add_column("WORKFLOW", no_wrap=True)
    table.add_column("VERSION")
    table.add_column("STATUS", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    table.add_column("UPDATED", no_wrap=True)
    table.add_column("WAITING FOR / ERROR")
    for run in runs:
        table.add_row(
            run.run_id,
            run.workflow_id,
            run.workflow_version or "-",
            status_text(run.status),
            when(run.created_at),
            when(run.updated_at),
            note_text(run),
        )
    return table


def children_table(children: list[Run]) -> Table:
    """A run's child runs: id, workflow, status (and what each waits for, or its error)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("CHILD RUN ID", no_wrap=True, overflow="fold")
    table.add_column("WORKFLOW", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("POLICY", no_wrap=True)
    table.add_column("WAITING FOR / ERROR")
    for run in children:
        table.add_row(
            run.run_id,
            run.workflow_id,
            status_text(run.status),
            run.parent_policy.value if run.parent_policy is not None else "-",
            note_text(run),
        )
    return table


def event_detail(event: StoredEvent) -> str:
    """The interesting part of an engine event's data, in a few words."""
    error = field_of(event, "error")
    failure = f"{error.get('type')}: {error.get('message')}" if isinstance(error, dict) else ""
    match event.type:
        case EventType.STEP_COMPLETED:
            return (
                f"attempt {field_of(event, 'attempt')} -> {short_json(field_of(event, 'result'))}"
            )
        case EventType.STEP_ATTEMPT_FAILED | EventType.RUN_ATTEMPT_FAILED:
            return (
                f"attempt {field_of(event, 'attempt')} failed: {failure}; "
                f"retry at {when(_int(field_of(event, 'retry_at')))}"
            )
        case EventType.STEP_FAILED | EventType.RUN_FAILED:
            return failure
        case EventType.SLEEP_STARTED:
            return f"until {when(_int(field_of(event, 'wake_at')))}"
        case EventType.SIGNAL_WAITING:
            return f"for {field_of(event, 'name')!r}"
        case EventType.SIGNAL_RECEIVED:
            return f"{field_of(event, 'name')!r} -> {short_json(field_of(event, 'payload'))}"
        case EventType.APPROVAL_REQUESTED:
            return f"{field_of(event, 'title')} (approval id {field_of(event, 'approval_id')})"
        case EventType.APPROVAL_DECIDED:
            verdict = "approved" if field_of(event, "approved") is True else "rejected"
            feedback = field_of(event, "feedback")
            return verdict if feedback is None else f"{verdict}: {short_json(feedback)}"
        case EventType.NOW_RECORDED:
            return when(_int(field_of(event, "now")))
        case EventType.UUID_RECORDED:
            return str(field_of(event, "uuid"))
        case EventType.CHILD_STARTED:
            return f"{field_of(event, 'child_run_id')} ({field_of(event, 'workflow_id')})"
        case EventType.CHILD_WAITING:
            timeout_at = _int(field_of(event, "timeout_at"))
            until = "" if timeout_at is None else f" until {when(timeout_at)}"
            return f"for {field_of(event, 'child_run_id')}{until}"
        case EventType.CHILD_FINISHED:
            return f"-> {short_json(event.data)}"
        case EventType.CHILD_FAILED:
            return (
                f"{field_of(event, 'status')}: {failure}"
                if failure
                else str(field_of(event, "status"))
            )
        case EventType.SLEEP_COMPLETED | EventType.RUN_FINISHED:
            return ""
    return "" if event.data is None else short_json(event.data)


def _int(value: JSON) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def timeline_table(timeline: Timeline) -> Table:
    start = timeline.run.created_at
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("AT", justify="right", no_wrap=True)
    table.add_column("EVENT", no_wrap=True)
    table.add_column("STEP", no_wrap=True, overflow="fold")
    table.add_column("DETAILS")
    for event in timeline.events:
        style = "red" if "FAILED" in event.type else ("green" if "COMPLETED" in event.type else "")
        table.add_row(
            str(event.index),
            f"+{(event.created_at - start) / 1000:.3f}s",
            Text(event.type, style=style),
            event.step_id or "",
            event_detail(event),
        )
    return table


def run_summary(run: Run, url: str | None = None) -> Table:
    """The run's fields; ``url`` (password hidden) goes into the commands it prints."""
    on_store = ("--url", url) if url is not None else ()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("run", run.run_id)
    grid.add_row("workflow", f"{run.workflow_id} (version {run.workflow_version or '-'})")
    grid.add_row("status", status_text(run.status))
    grid.add_row(
        "queue",
        f"{run.queue} (priority {run.priority}, key {run.partition_key or '-'})",
    )
    grid.add_row("created", when(run.created_at))
    grid.add_row("updated", when(run.updated_at))
    if run.deadline_at is not None:
        grid.add_row("deadline", when(run.deadline_at))
    if run.parent_run_id is not None:
        policy = run.parent_policy.value if run.parent_policy is not None else "-"
        grid.add_row("parent", f"{run.parent_run_id} (policy {policy})")
    grid.add_row("input", short_json(run.input, 200))
    if run.status is RunStatus.FINISHED:
        grid.add_row("output", short_json(run.output, 200))
    if run.error is not None:
        grid.add_row("error", f"{run.error.type}: {run.error.message} ({run.error.code})")
    if run.wait is not None:
        grid.add_row("waiting for", wait_text(run.wait))
        if run.wait.kind is WaitKind.APPROVAL:
            grid.add_row(
                "approve with",
                shell_command(
                    "workflow", "approve", run.run_id, run.wait.approval_id or "", *on_store
                )
                + " --yes   (or --no)",
            )
        elif run.wait.kind is WaitKind.SIGNAL:
            grid.add_row(
                "signal with",
                shell_command("workflow", "signal", run.run_id, run.wait.name or "", *on_store)
                + " --payload '<json>'",
            )
    if run.lease is not None:
        grid.add_row(
            "lease",
            f"{run.lease.owner} (token {run.lease.token}, expires {when(run.lease.expires_at)})",
        )
    grid.add_row("events", str(run.next_event_index))
    return grid


def spec_text(schedule: Schedule) -> str:
    spec = schedule.spec
    if isinstance(spec, CronSpec):
        return f"cron {spec.expression!r} {spec.timezone}"
    every = spec.every_ms / 1000
    return f"every {every:g} s"


def schedules_table(schedules: list[Schedule]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("SCHEDULE ID", no_wrap=True, overflow="fold")
    table.add_column("WORKFLOW", no_wrap=True)
    table.add_column("SPEC")
    table.add_column("OVERLAP")
    table.add_column("ENABLED")
    table.add_column("NEXT FIRE", no_wrap=True)
    table.add_column("LAST FIRED", no_wrap=True)
    table.add_column("LAST RUN", overflow="fold")
    for s in schedules:
        table.add_row(
            s.schedule_id,
            s.workflow_id,
            spec_text(s),
            s.overlap.value,
            "yes" if s.enabled else Text("no", style="dim"),
            when(s.next_fire_at) if s.enabled else "-",
            when(s.last_fired_at),
            s.last_run_id or "-",
        )
    return table
