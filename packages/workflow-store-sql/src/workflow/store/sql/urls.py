"""Parsing store URLs into an SQLAlchemy URL and store options."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from workflow.runtime.errors import InvalidArgumentError
from workflow.runtime.registry import redact_url

STORE_OPTIONS = ("schema", "table_prefix", "max_payload_bytes")
"""Options a URL's query string may carry (``?schema=wf&table_prefix=app_``)."""
INTEGER_OPTIONS = frozenset({"max_payload_bytes", "busy_timeout_ms", "pool_size", "connections"})
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_store_url(
    url: str,
    driver: str,
    schemes: tuple[str, ...],
    *,
    extra: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> tuple[sa.URL, dict[str, Any]]:
    """Split ``url`` into the SQLAlchemy URL for ``driver`` and the store options in its
    query string (:data:`STORE_OPTIONS`, the store's ``extra`` ones and its boolean
    ``flags``: ``true``/``false``); anything else in the query goes to the driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError or ValueError
        raise InvalidArgumentError(f"bad store URL {redact_url(url)!r}: {exc}") from None
    if parsed.get_backend_name() not in schemes:
        raise InvalidArgumentError(
            f"store URL {redact_url(url)!r} does not name a {'/'.join(schemes)} database"
        )
    options: dict[str, Any] = {}
    query = dict(parsed.query)
    for name in (*STORE_OPTIONS, *extra):
        if name in query:
            raw = query.pop(name)
            value = raw if isinstance(raw, str) else raw[-1]
            options[name] = _integer(url, name, value) if name in INTEGER_OPTIONS else value
    for name in flags:
        if name in query:
            raw = query.pop(name)
            options[name] = _flag(url, name, raw if isinstance(raw, str) else raw[-1])
    return parsed.set(drivername=driver, query=query), options


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
