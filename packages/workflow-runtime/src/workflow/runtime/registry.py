"""Open a store from a URL.

Stores register under the entry-point group ``workflow.stores``, one entry per URL
scheme, pointing at ``async def open(url: str, **options) -> ExecutionStore``. The
runtime imports no store package itself: installing ``workflow-store-postgres`` is
what makes ``postgresql://`` work.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterable
from importlib.metadata import entry_points
from typing import cast
from urllib.parse import urlsplit

from .contract import ExecutionStore
from .errors import InvalidArgumentError, UnknownStoreError

ENTRY_POINT_GROUP = "workflow.stores"

Opener = Callable[..., Awaitable[ExecutionStore]]

# Which distribution serves which scheme, for the "pip install ..." hint.
KNOWN_SCHEMES: dict[str, str] = {
    "memory": "workflow-runtime",
    "sqlite": "workflow-store-sqlite",
    "postgresql": "workflow-store-postgres",
    "postgres": "workflow-store-postgres",
    "mysql": "workflow-store-mysql",
    "mariadb": "workflow-store-mysql",
    "redis": "workflow-store-redis",
    "rediss": "workflow-store-redis",
    "d1": "workflow-store-d1",
}


def url_scheme(url: object) -> str:
    """The store scheme of ``url``: ``postgresql+psycopg://`` gives ``postgresql``."""
    if type(url) is not str or not url:
        raise InvalidArgumentError(f"store URL must be a non-empty str, got {url!r}")
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:
        raise InvalidArgumentError(f"bad store URL {redact_url(url)!r}: {exc}") from None
    if not scheme or "://" not in url:
        raise InvalidArgumentError(
            f"bad store URL {redact_url(url)!r}: expected SCHEME://..., e.g. sqlite:///workflow.db"
        )
    return scheme.split("+", 1)[0].lower()


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and error messages)."""
    if "://" not in url:
        # No authority part to parse: hide everything after the scheme.
        scheme, sep, _ = url.partition(":")
        return f"{scheme}:***" if sep and "@" in url else url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def unknown_options(
    what: str,
    unknown: Iterable[str],
    valid: Iterable[str],
    *,
    driver: tuple[str, Iterable[str]] | None = None,
) -> InvalidArgumentError:
    """The error for options a store does not know, naming the valid ones (and the
    closest valid name of each unknown one). ``what``: ``"SQLite store URL option"``;
    ``driver``: the label and names of the options passed on to the driver."""
    names, own = sorted(set(unknown)), sorted(set(valid))
    every = [*own, *(driver[1] if driver else ())]
    plural = "s" if len(names) > 1 else ""
    message = f"unknown {what}{plural}: {', '.join(repr(n) for n in names)}"
    close = {n: difflib.get_close_matches(n, every, n=1, cutoff=0.75) for n in names}
    guesses = [
        repr(m[0]) if len(names) == 1 else f"{m[0]!r} for {n!r}" for n, m in close.items() if m
    ]
    if guesses:
        message += f" (did you mean {', '.join(guesses)}?)"
    message += f"; valid options: {', '.join(own) if own else 'none'}"
    if driver is not None:
        message += f", and {driver[0]}: {', '.join(sorted(set(driver[1])))}"
    return InvalidArgumentError(message)


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a bool; anything else (``"yes"``, ``1``) is refused, not read
    by its truth."""
    if type(value) is not bool:
        raise InvalidArgumentError(f"{name} must be True or False, got {value!r}")
    return value


def find_opener(url: str) -> Opener:
    scheme = url_scheme(url)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == scheme:
            return cast("Opener", ep.load())
    package = KNOWN_SCHEMES.get(scheme)
    if package is None:
        installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
        known = ", ".join(sorted({*KNOWN_SCHEMES, *installed}))
        raise UnknownStoreError(
            f"no workflow store handles URL scheme {scheme!r} ({redact_url(url)}); "
            f"known schemes: {known}"
        )
    raise UnknownStoreError(
        f"the store for {scheme}:// URLs is not installed: pip install {package}"
    )


async def open_store(url: str, **options: object) -> ExecutionStore:
    """Open the store ``url`` names, verifying its schema (see each store's docs for
    ``options``). Raises :class:`UnknownStoreError` naming the package to install when
    no installed store handles the scheme."""
    return await find_opener(url)(url, **options)
