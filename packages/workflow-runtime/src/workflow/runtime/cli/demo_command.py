"""``workflow demo``: the order workflow end to end on a store (see ``runtime.demo``)."""

from __future__ import annotations

import click

from ..demo import run_demo
from ..hints import shell_command
from ..records import RunStatus, Timeline
from ..registry import open_store, redact_url
from ..schema import SchemaOwner
from .common import CommandError, run_async, url_option
from .operations import print_timeline


@click.command()
@url_option()
@click.option(
    "--auto-approve/--manual-approve",
    default=True,
    show_default=True,
    help="Approve the shipment automatically, or wait for `workflow approve`.",
)
def demo(url: str, auto_approve: bool) -> None:
    """Run (or resume) a demo order: steps, a retry, a sleep, an approval, a schedule."""

    async def go() -> Timeline:
        # A demo may set up its own schema; deploys run `workflow migrate upgrade`.
        store = await open_store(url, verify_schema=False)
        try:
            if isinstance(store, SchemaOwner):
                await store.create_schema()
            click.echo(f"workflow demo on {redact_url(url)}")
            run = await run_demo(
                store, say=click.echo, auto_approve=auto_approve, url=redact_url(url)
            )
            timeline = await store.get_timeline(run.run_id)
            assert timeline is not None
            return timeline
        finally:
            await store.close()

    timeline = run_async(go)
    click.echo("")
    print_timeline(timeline)
    run = timeline.run
    click.echo("")
    again = shell_command("workflow", "runs", "show", run.run_id, "--url", redact_url(url))
    click.echo(f"see it again: {again}")
    if run.status is not RunStatus.FINISHED:
        raise CommandError(f"demo run {run.run_id} ended {run.status.value}")
