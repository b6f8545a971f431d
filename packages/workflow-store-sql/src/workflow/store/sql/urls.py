"""Parsing store URLs into an SQLAlchemy URL and store options.

One rule for every SQL store: a query option is a store option (:data:`STORE_OPTIONS`
and the store's own), or one the store passes on to its driver; any other is an
:class:`InvalidArgumentError` naming the valid options, before anything connects. So is
a keyword option ``from_url`` does not know (:func:`check_keywords`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from workflow.runtime.errors import InvalidArgumentError
from workflow.runtime.registry import redact_url, unknown_options
from workflow.runtime.timeouts import parse_operation_timeout

STORE_OPTIONS = ("schema", "table_prefix", "max_payload_bytes", "operation_timeout")
"""Options a URL's query string may carry (``?schema=wf&table_prefix=app_``).

A blank value is that value: ``?table_prefix=`` is the empty prefix (tables named
``runs``, ``events``…), as the keyword ``table_prefix=""`` is."""
INTEGER_OPTIONS = frozenset({"max_payload_bytes", "busy_timeout_ms", "pool_size", "connections"})
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_store_url(
    url: str,
    driver: str,
    schemes: tuple[str, ...],
    *,
    store: str,
    extra: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    driver_options: tuple[str, Collection[str]] | None = None,
) -> tuple[sa.URL, dict[str, Any]]:
    """Split ``url`` into the SQLAlchemy URL for ``driver`` and the store options in its
    query string (:data:`STORE_OPTIONS`, the store's ``extra`` ones and its boolean
    ``flags``: ``true``/``false``). ``driver_options``: the label and names of the
    options that go to the driver (they stay in the URL's query); any other option is
    refused. ``store``: the store's name in messages (``"PostgreSQL"``)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError or ValueError
        raise InvalidArgumentError(f"bad store URL {redact_url(url)!r}: {exc}") from None
    if parsed.get_backend_name() not in schemes:
        raise InvalidArgumentError(
            f"store URL {redact_url(url)!r} does not name a {'/'.join(schemes)} database"
        )
    # SQLAlchemy drops blank values (``?table_prefix=``); read the query ourselves.
    raw: dict[str, str] = {}
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        raw[name] = value  # the last one wins, as in SQLAlchemy's URL
    own = (*STORE_OPTIONS, *extra, *flags)
    passed = driver_options[1] if driver_options is not None else ()
    unknown = [name for name in raw if name not in own and name not in passed]
    if unknown:
        raise unknown_options(f"{store} store URL option", unknown, own, driver=driver_options)
    options: dict[str, Any] = {}
    for name in own:
        if name not in raw:
            continue
        value = raw[name]
        if name in flags:
            options[name] = _flag(url, name, value)
        elif name in INTEGER_OPTIONS:
            options[name] = _integer(url, name, value)
        elif name == "operation_timeout":
            options[name] = parse_operation_timeout(value, f"store URL {redact_url(url)!r}")
        else:
            options[name] = value
    query = {k: v for k, v in parsed.query.items() if k not in own}
    return parsed.set(drivername=driver, query=query), options


def keyword_options(cls: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword-only parameters of ``cls``'s constructor: the options its
    ``from_url`` accepts besides those in the URL."""
    return tuple(
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    )


def check_keywords(store: str, options: Collection[str], valid: Collection[str]) -> None:
    """Refuse keyword options outside ``valid`` (not a ``TypeError`` from deep inside)."""
    unknown = [name for name in options if name not in valid]
    if unknown:
        raise unknown_options(f"{store} store option", unknown, valid)


def _integer(url: str, name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidArgumentError(
            f"store URL {redact_url(url)!r}: {name} must be an integer, not {value!r}"
        ) from None


def _flag(url: str, name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidArgumentError(
        f"store URL {redact_url(url)!r}: {name} must be true or false, not {value!r}"
    )
