"""``workflow demo``: the order workflow end to end on a store (see ``runtime.demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import click

from ..demo import run_demo
from ..hints import shell_command
from ..records import RunStatus, Timeline
from ..registry import open_store, redact_url
from ..schema import SchemaOwner
from .common import CommandError, run_async, url_option
from .operations import print_timeline


class _Terminated(Exception):
    """SIGTERM arrived while the demo ran."""


class _Stopped(CommandError):
    """The demo was stopped by a signal: the one line it ends with says its run is saved
    and how to resume it."""

    how = "stopped"

    def __init__(self, url: str) -> None:
        resume = shell_command("workflow", "demo", "--url", redact_url(url))
        super().__init__(
            f"{self.how}: the demo run is saved in the store and resumes where it stopped "
            f"with `{resume}`"
        )


class _Interrupted(_Stopped):
    how = "interrupted"
    exit_code = 128 + signal.SIGINT  # as a shell reports Ctrl-C


class _TerminatedExit(_Stopped):
    how = "terminated"
    exit_code = 128 + signal.SIGTERM


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
        # SIGTERM ends the demo as Ctrl-C does (SIGINT: asyncio.run cancels this task
        # and raises KeyboardInterrupt), instead of killing it without a word.
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None
        terminated = False

        def terminate() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(signal.SIGTERM, terminate)
        try:
            return await demo_run()
        except asyncio.CancelledError:
            if terminated:
                raise _Terminated from None
            raise
        finally:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGTERM)

    async def demo_run() -> Timeline:
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

    try:
        timeline = run_async(go)
    except KeyboardInterrupt:
        raise _Interrupted(url) from None
    except _Terminated:
        raise _TerminatedExit(url) from None
    click.echo("")
    print_timeline(timeline, url)
    run = timeline.run
    click.echo("")
    again = shell_command("workflow", "runs", "show", run.run_id, "--url", redact_url(url))
    click.echo(f"see it again: {again}")
    if run.status is not RunStatus.FINISHED:
        raise CommandError(f"demo run {run.run_id} ended {run.status.value}")
