"""Running the store's statements on a D1 database: one statement, or one batch.

D1 has no interactive transactions (``BEGIN`` is refused): an operation is a single
statement (the shared bodies run in autocommit, one statement per round trip) or one
:meth:`D1Driver.batch`, which D1 runs atomically. A body that asks for a transaction is
a bug of the store (every such operation has a batch form in :mod:`.batches`), so it is
refused rather than run without one.

The statements are the SQLite dialect's, with ``:name`` placeholders; D1 binds by
position, so each is rewritten once to ``?N`` (the number of the name's first
appearance) and its values are sent in that order.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from workflow.store.sql.compiled import Rows, Statement
from workflow.store.sql.driver import AsyncDriver, Body, Query, T

from .dialect import D1Dialect
from .interface import D1Database, D1Result, D1Statement

# A quoted string (skipped: a ':' inside it is text) or a :name placeholder.
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True, slots=True)
class Positional:
    """A statement's text with numbered placeholders and the names they stand for."""

    sql: str
    names: tuple[str, ...]

    def values(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params[name] for name in self.names)


def positional(sql: str) -> Positional:
    """``sql`` with each ``:name`` written ``?N`` (N: the order of first appearance)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        return f"?{names.index(name) + 1}"

    return Positional(_PLACEHOLDER.sub(number, sql), tuple(names))


def _rows(result: D1Result) -> Rows:
    found = result.results
    names = list(found[0]) if found else []
    return Rows(names, [tuple(row.values()) for row in found], result.meta.changes)


class D1Driver(AsyncDriver[D1Database]):
    """Statements and batches on one D1 database (the binding or the REST client,
    which keeps its own connections)."""

    def __init__(
        self, database: D1Database, dialect: D1Dialect, *, close_database: bool = False
    ) -> None:
        super().__init__(dialect.is_duplicate)
        self.database = database
        self._close_database = close_database
        self._positional: dict[str, Positional] = {}

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[D1Database]:
        yield self.database

    async def run(self, body: Body[T], begin: Statement | None = None) -> T:
        if begin is not None:
            raise RuntimeError(
                "D1 has no interactive transactions: this operation needs a batch form"
            )
        return await super().run(body)

    def _statements(self, query: Query) -> list[D1Statement]:
        found = self._positional.get(query.statement.sql)
        if found is None:
            found = self._positional[query.statement.sql] = positional(query.statement.sql)
        params = query.params()
        values = params if isinstance(params, list) else [params]
        prepared = self.database.prepare(found.sql)
        return [prepared.bind(*found.values(v)) for v in values]

    async def execute(self, raw: D1Database, query: Query) -> Rows:
        statements = self._statements(query)
        if len(statements) == 1:
            return _rows(await statements[0].all())
        # executemany: the statement once per item, atomically.
        results = await raw.batch(statements)
        return Rows((), [], sum(r.meta.changes for r in results))

    async def batch(self, queries: Sequence[Query]) -> list[Rows]:
        """Run ``queries`` as one D1 batch (one round trip, all or nothing); the rows of
        each (a query with a list of values counts as one, its row counts summed)."""
        self._check_open()
        self.hops += 1
        shapes: list[int] = []
        statements: list[D1Statement] = []
        for query in queries:
            self._record(query.statement)
            found = self._statements(query)
            shapes.append(len(found))
            statements += found
        results = await self.database.batch(statements)
        out: list[Rows] = []
        at = 0
        for n in shapes:
            part = results[at : at + n]
            at += n
            out.append(
                _rows(part[0]) if n == 1 else Rows((), [], sum(r.meta.changes for r in part))
            )
        return out

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        close = getattr(self.database, "close", None)
        if self._close_database and close is not None:
            await close()
