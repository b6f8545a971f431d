"""The ``workflow`` command line (needs the ``cli`` extra: ``pip install 'workflow-runtime[cli]'``,
or a store's, which names it: ``pip install 'workflow-store-postgres[cli]'``).

Built on click (a maintained CLI library: argument parsing, help, exit codes) and rich
(tables). Every failure is one line on stderr and a non-zero exit, never a traceback
(``WORKFLOW_DEBUG=1`` shows the traceback of an unexpected error).

    workflow demo                                    # the README's main job
    workflow worker myapp.workflows:runtime --url postgresql://app@db/app
    workflow runs start myapp.workflows:runtime order --input '{"sku": "A1"}'
    workflow runs list --status paused
    workflow runs show RUN_ID
    workflow signal RUN_ID payment --payload '{"eur": 9.5}'
    workflow approve RUN_ID APPROVAL_ID --yes
    workflow runs purge --finished-before 30d
    workflow migrate upgrade --url sqlite:///workflow.db
"""

from __future__ import annotations

import os
import sys
from typing import Any

try:
    import click
    import rich  # noqa: F401  # checked here so a missing extra is one clear line

    HAVE_CLI_EXTRA = True
except ImportError:  # pragma: no cover - exercised only without the extra
    HAVE_CLI_EXTRA = False

DEFAULT_URL = "sqlite:///workflow.db"


def _build() -> click.Group:
    from . import lifecycle  # noqa: F401  (adds `runs start` and `runs purge` to `runs`)
    from .demo_command import demo
    from .migrate import migrate
    from .operations import approve, runs, schedules, signal
    from .worker_command import worker

    @click.group()
    def main() -> None:
        """Durable workflows: run workers, inspect and steer runs, migrate stores."""

    for command in (demo, worker, runs, signal, approve, schedules, migrate):
        main.add_command(command)
    return main


def _fail(message: str, code: int) -> None:
    from .common import one_line

    sys.stderr.write(f"Error: {one_line(message)}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """The ``workflow`` console script."""
    if not HAVE_CLI_EXTRA:
        sys.stderr.write(
            "the workflow command line needs its extra: pip install 'workflow-runtime[cli]'"
            " (or the store's, e.g. 'workflow-store-postgres[cli]')\n"
        )
        sys.exit(2)
    try:
        result: Any = _build().main(args=argv, prog_name="workflow", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("WORKFLOW_DEBUG"):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (WORKFLOW_DEBUG=1 shows the traceback)", 1)
    sys.exit(result if isinstance(result, int) else 0)


__all__ = ["DEFAULT_URL", "main"]
