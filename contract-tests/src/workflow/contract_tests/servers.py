"""Reaching the real server a store's tests need.

A store is tested against its real server. When the server cannot be reached, a
local run skips with a loud reason, and a CI run (``CI=true``) fails: in CI a
missing server is a broken environment, never a pass.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(what: str, message: str) -> NoReturn:
    """A part of the test environment is missing: skip loudly (``WHAT MISSING: ...``,
    naming the fix) on a local run, fail a CI run (``CI=true``)."""
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(f"{what.upper()} MISSING: {message}")


def require_server(url: str, what: str, *, default_port: int) -> None:
    """Skip (locally) or fail (``CI=true``) unless ``url``'s host accepts TCP connections."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        message = (
            f"{what} is not reachable at {host}:{port} ({exc}); start it or point the "
            "tests elsewhere with the documented environment variable"
        )
    missing("server", message)


async def poll(
    probe: Callable[[], Awaitable[Any]],
    what: str,
    *,
    patience: float = 30.0,
    interval: float = 0.05,
) -> Any:
    """``probe()``'s first truthy result; fails after ``patience`` seconds (generous on
    a loaded machine: a limit to give up, never an assertion on speed)."""
    for _ in range(int(patience / interval)):
        found = await probe()
        if found:
            return found
        await asyncio.sleep(interval)
    raise AssertionError(f"gave up waiting for {what}")
