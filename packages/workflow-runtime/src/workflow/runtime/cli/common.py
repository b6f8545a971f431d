"""What every command shares: the store URL option, running async code against an
opened store, and turning every expected failure into one line."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from ..contract import ExecutionStore
from ..errors import SchemaVersionError, WorkflowStoreError
from ..records import JSON
from ..registry import open_store
from ..workflow_errors import WorkflowError
from . import DEFAULT_URL

T = TypeVar("T")


def one_line(text: str) -> str:
    """``text`` on one line (driver messages sometimes span several)."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


class CommandError(click.ClickException):
    """A failure reported as one line on stderr, exit status 1."""

    def format_message(self) -> str:
        return one_line(self.message)


def url_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--url",
        envvar="WORKFLOW_STORE_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="Store URL (or WORKFLOW_STORE_URL).",
    )


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, SchemaVersionError | WorkflowError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run_async(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``coro_fn()``; store and workflow errors become a one-line CommandError."""
    try:
        return asyncio.run(_call(coro_fn))
    except (WorkflowStoreError, WorkflowError) as exc:
        raise CommandError(describe_error(exc)) from None


async def _call(coro_fn: Callable[[], Awaitable[T]]) -> T:
    return await coro_fn()


DURABILITY_LOGGER = "workflow.durability"
"""Where stores warn that their server may lose acknowledged writes (Redis without the
append-only file)."""


@contextmanager
def quiet_durability_warnings() -> Iterator[None]:
    """Drop durability warnings while a read-only command runs: it writes nothing the
    server could lose, and the warning would drown its output on every call."""
    logger = logging.getLogger(DURABILITY_LOGGER)

    def drop_all(record: logging.LogRecord) -> bool:
        return False

    logger.addFilter(drop_all)
    try:
        yield
    finally:
        logger.removeFilter(drop_all)


def with_store(
    url: str,
    action: Callable[[ExecutionStore], Awaitable[T]],
    *,
    verify_schema: bool = True,
    reads_only: bool = False,
) -> T:
    """Open the store at ``url``, run ``action`` on it, close it. ``reads_only``: the
    action writes nothing, so durability warnings are not printed."""

    async def go() -> T:
        store = await open_store(url, verify_schema=verify_schema)
        try:
            return await action(store)
        finally:
            await store.close()

    if reads_only:
        with quiet_durability_warnings():
            return run_async(go)
    return run_async(go)


def parse_json(text: str | None, what: str) -> JSON:
    """``text`` as JSON (``None`` stays ``None``); bad JSON is a one-line error."""
    if text is None:
        return None
    try:
        value: JSON = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"{text!r}; quote strings, e.g. --payload '\"yes\"' or --payload '{{\"a\": 1}}'"
        ) from None
    return value
