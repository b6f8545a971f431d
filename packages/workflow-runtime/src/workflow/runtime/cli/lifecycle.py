"""Commands that begin and end runs' lives: ``workflow runs start`` and ``workflow runs
purge``.

    workflow runs start myapp.workflows:runtime order --input '{"sku": "A1"}' [--id RUN_ID]
        [--timeout 2h]
    workflow runs purge --finished-before 30d [--limit 1000]
    workflow runs purge --finished-before 2026-01-01T00:00:00Z
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..contract import ExecutionStore
from ..driver import system_clock
from ..hints import shell_command
from ..records import Run
from ..registry import redact_url
from .common import parse_json, url_option, with_store
from .durations import Duration, seconds_in
from .operations import runs
from .worker_command import load_runtime

PURGE_BATCH = 1000
"""Runs deleted per store call: each call is one bounded transaction."""


@runs.command("start")
@url_option()
@click.argument("target", metavar="MODULE:RUNTIME")
@click.argument("workflow_id", metavar="WORKFLOW")
@click.option("--input", "input_json", help="The run's input as JSON (default: null).")
@click.option(
    "--id", "run_id", help="Run id (default: a new one); starting the same id again is a no-op."
)
@click.option(
    "--timeout",
    "timeout_s",
    type=Duration(),
    help="The run's deadline from now (90s, 15m, 2h, 7d): it ends timed_out then.",
)
@click.option("--queue", default="default", show_default=True, help="The run's queue.")
@click.option("--priority", default=0, show_default=True, help="Higher is claimed first.")
@click.option("--key", "partition_key", help="The run's partition key (per-key limits).")
def start_run(
    url: str,
    target: str,
    workflow_id: str,
    input_json: str | None,
    run_id: str | None,
    timeout_s: float | None,
    queue: str,
    priority: int,
    partition_key: str | None,
) -> None:
    """Start a run of WORKFLOW (its latest version in MODULE:RUNTIME, as for `workflow
    worker`); a worker on the store drives it."""
    value = parse_json(input_json, "--input")
    template = load_runtime(target)

    async def act(store: ExecutionStore) -> Run:
        return await template.bind(store).start(
            workflow_id,
            value,
            run_id=run_id,
            timeout=timeout_s,
            queue=queue,
            priority=priority,
            partition_key=partition_key,
        )

    run = with_store(url, act)
    version = run.workflow_version or "-"
    click.echo(f"run {run.run_id} of {run.workflow_id} (version {version}) is {run.status.value}")
    show = shell_command("workflow", "runs", "show", run.run_id, "--url", redact_url(url))
    click.echo(f"follow it: {show}")


def parse_cutoff(text: str, now_ms: int) -> int:
    """``--finished-before``: an age (``90s``, ``45m``, ``12h``, ``30d``, ``2w``: that long before
    ``now_ms``) or an ISO 8601 time (UTC unless it names an offset), as ms since the
    epoch."""
    age = seconds_in(text, unit_required=True)
    if age is not None:
        return now_ms - round(age * 1000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an age (90s, 45m, 12h, 30d, 2w) nor an ISO 8601 time "
            "(2026-01-31 or 2026-01-31T12:00:00Z)",
            param_hint="--finished-before",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@runs.command("purge")
@url_option()
@click.option(
    "--finished-before",
    "cutoff",
    required=True,
    help="Delete runs that ended (finished, errored or cancelled) before this: an age "
    "(30d, 12h, 45m, 90s) or an ISO 8601 time (UTC unless it names an offset).",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="Delete at most this many (default: every run that matches).",
)
def purge_runs(url: str, cutoff: str, limit: int | None) -> None:
    """Delete ended runs, their events and inbox, oldest first. Runs still queued,
    running or paused are never deleted."""
    before = parse_cutoff(cutoff, system_clock())
    if before <= 0:
        raise click.BadParameter(
            f"{cutoff!r} is before 1970: nothing ended then", param_hint="--finished-before"
        )

    async def act(store: ExecutionStore) -> int:
        deleted = 0
        while limit is None or deleted < limit:
            want = PURGE_BATCH if limit is None else min(PURGE_BATCH, limit - deleted)
            done = await store.purge_runs(before, want)
            deleted += done
            if done < want:
                break
        return deleted

    deleted = with_store(url, act)
    stamp = datetime.fromtimestamp(before / 1000, UTC).isoformat(timespec="milliseconds")
    click.echo(f"purged {deleted} run{'s' if deleted != 1 else ''} that ended before {stamp}")
