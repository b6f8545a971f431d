"""The D1 database interface: the shape of the Workers binding (``env.DB``).

``db.prepare(sql).bind(*params)`` makes a statement; ``await statement.first()``,
``.all()`` or ``.run()`` runs it alone; ``await db.batch([...])`` runs several as one
atomic unit (all or nothing, in order). D1 has no interactive transactions: whatever
must be atomic is one statement or one batch. Two implementations:
:class:`~workflow.store.d1.http.D1HttpDatabase` (Cloudflare's REST API, from anywhere)
and :class:`~workflow.store.d1.binding.D1Binding` (a Python Worker's binding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from workflow.runtime.errors import InvalidArgumentError

from . import limits

Param: TypeAlias = int | float | str | None
"""A value D1 can bind over JSON (no BLOBs: JSON has no bytes)."""


@dataclass(frozen=True, slots=True)
class D1Meta:
    """What D1 reports of a statement it ran."""

    changes: int = 0
    """Rows inserted, updated or deleted."""
    last_row_id: int = 0
    rows_read: int = 0
    rows_written: int = 0
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class D1Result:
    """One statement's rows (column name to value, in the statement's column order)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    meta: D1Meta = field(default_factory=D1Meta)


class D1Statement(Protocol):
    sql: str
    params: tuple[Param, ...]

    def bind(self, *params: Param) -> D1Statement: ...
    async def first(self) -> dict[str, Any] | None: ...
    async def all(self) -> D1Result: ...
    async def run(self) -> D1Result: ...


class D1Database(Protocol):
    def prepare(self, sql: str) -> D1Statement: ...
    async def batch(self, statements: Sequence[D1Statement]) -> list[D1Result]: ...


def check_statement(sql: str, params: Sequence[Any]) -> tuple[Param, ...]:
    """``params`` as D1 binds them, or :class:`InvalidArgumentError` naming the limit
    the statement breaks (nothing is sent)."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidArgumentError(f"a D1 statement needs SQL text, got {sql!r}")
    size = len(sql.encode())
    if size > limits.MAX_STATEMENT_BYTES:
        raise InvalidArgumentError(
            f"a D1 statement is at most {limits.MAX_STATEMENT_BYTES:,} bytes, this one is {size:,}"
        )
    if len(params) > limits.MAX_BOUND_PARAMETERS:
        raise InvalidArgumentError(
            f"a D1 statement binds at most {limits.MAX_BOUND_PARAMETERS} parameters, "
            f"this one {len(params)}"
        )
    return tuple(_check_param(p, i) for i, p in enumerate(params, 1))


def _check_param(value: Any, position: int) -> Param:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)  # SQLite has no booleans: 1 and 0, as sqlite3 binds them
    if isinstance(value, int):
        if abs(value) > limits.MAX_SAFE_INTEGER:
            raise InvalidArgumentError(
                f"parameter {position}: D1 binds integers up to ±{limits.MAX_SAFE_INTEGER} "
                f"exactly (JavaScript numbers), got {value}"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"parameter {position}: D1 cannot bind {value}")
        return value
    raise InvalidArgumentError(
        f"parameter {position}: D1 binds None, int, float or str, got {type(value).__name__}"
    )
