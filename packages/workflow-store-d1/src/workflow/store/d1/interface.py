"""The D1 database interface: the shape of the Workers binding (``env.DB``).

``db.prepare(sql).bind(*params)`` makes a statement; ``await statement.first()``,
``.all()`` or ``.run()`` runs it alone; ``await db.batch([...])`` runs several as one
atomic unit (all or nothing, in order). D1 has no interactive transactions: whatever
must be atomic is one statement or one batch. Two implementations:
:class:`~workflow.store.d1.http.D1HttpDatabase` (Cloudflare's REST API, from anywhere)
and :class:`~workflow.store.d1.binding.D1Binding` (a Python Worker's binding).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from workflow.runtime.errors import InvalidArgumentError, StoreOperationError

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


class PreparedStatement(abc.ABC):
    """What both implementations' statements share: binding (checked against D1's
    limits), and ``first``/``run`` in terms of ``all``."""

    def __init__(self, sql: str, params: tuple[Param, ...]) -> None:
        self.sql = sql
        self.params = params

    @abc.abstractmethod
    def with_params(self, params: tuple[Param, ...]) -> PreparedStatement:
        """The same statement with ``params`` bound (already checked)."""

    @abc.abstractmethod
    async def all(self) -> D1Result:
        """Run the statement alone: its rows and what D1 reports."""

    def bind(self, *params: Any) -> PreparedStatement:
        return self.with_params(check_statement(self.sql, params))

    async def first(self) -> dict[str, Any] | None:
        found = (await self.all()).results
        return found[0] if found else None

    async def run(self) -> D1Result:
        return await self.all()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sql!r}, {len(self.params)} params)"


def result_from_json(raw: Any) -> D1Result:
    """A statement's result as D1 gives it (``{"results": [...], "meta": {...}}``, the
    REST API's JSON and the binding's object alike)."""
    if not isinstance(raw, dict):
        raise StoreOperationError(f"D1 answered a statement with {type(raw).__name__}")
    meta = raw.get("meta") or {}
    return D1Result(
        list(raw.get("results") or []),
        D1Meta(
            changes=int(meta.get("changes") or 0),
            last_row_id=int(meta.get("last_row_id") or 0),
            rows_read=int(meta.get("rows_read") or 0),
            rows_written=int(meta.get("rows_written") or 0),
            duration_ms=float(meta.get("duration") or 0.0),
        ),
    )


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
