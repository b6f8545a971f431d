"""The D1 interface over a Python Worker's own binding (``self.env.DB``).

A thin wrapper: statements are checked against D1's limits as over HTTP, and results
come back as the same :class:`~.interface.D1Result`. It runs only inside a Python
Worker (Pyodide, whose ``pyodide.ffi`` turns the binding's JavaScript objects into
Python ones); this repository's tests cannot run it (no Pyodide under the local
workerd without downloads), so it is kept to the calls the binding documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workflow.runtime.errors import InvalidArgumentError

from .interface import D1Result, D1Statement, Param, PreparedStatement, check_statement
from .interface import result_from_json as _from_json


class BindingStatement(PreparedStatement):
    def __init__(self, database: D1Binding, sql: str, params: tuple[Param, ...]) -> None:
        super().__init__(sql, params)
        self.database = database

    def with_params(self, params: tuple[Param, ...]) -> BindingStatement:
        return BindingStatement(self.database, self.sql, params)

    def to_js(self) -> Any:
        return self.database.binding.prepare(self.sql).bind(*self.params)

    async def all(self) -> D1Result:
        return _from_json((await self.to_js().all()).to_py())


class D1Binding:
    """``D1Binding(self.env.DB)`` in a Python Worker."""

    def __init__(self, binding: Any) -> None:
        self.binding = binding

    def prepare(self, sql: str) -> BindingStatement:
        return BindingStatement(self, sql, check_statement(sql, ()))

    async def batch(self, statements: Sequence[D1Statement]) -> list[D1Result]:
        mine = [s for s in statements if isinstance(s, BindingStatement) and s.database is self]
        if len(mine) != len(statements):
            raise InvalidArgumentError("a batch takes statements prepared on the same database")
        if not mine:
            return []
        from pyodide.ffi import to_js  # type: ignore[import-not-found]  # Workers only

        found = await self.binding.batch(to_js([s.to_js() for s in mine]))
        return [_from_json(r.to_py()) for r in found]
