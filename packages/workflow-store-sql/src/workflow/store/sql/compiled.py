"""Statements compiled once per store, sent on the driver with a dict of values.

SQLAlchemy builds the statements (tables, dialect spelling, bind casts); this module
turns each into the text its driver runs, **once per store**: the schema and table
prefix are rendered into the text (no ``schema_translate_map`` rewriting per call), the
literal values SQLAlchemy bound for us (``status = 'queued'``) are kept as defaults,
and a call only supplies the ``p_*`` values. No SQLAlchemy code runs per execution:
profiles put its execution path (cache lookup, schema translation, result processing)
at a third of a store call's client CPU, more than the driver itself.

The drivers the stores use take named parameters (psycopg and PyMySQL ``%(name)s``,
sqlite3 ``:name``), so the values stay a dict from the store to the driver.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

T = TypeVar("T")

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement as its driver runs it."""

    sql: str
    """The text, with the schema, the table names and the placeholders rendered."""
    verb: str
    """Its first word (``SELECT``, ``WITH``…): what statement counting records."""
    defaults: Mapping[str, Any]
    """Values SQLAlchemy bound itself (literals in the statement), by parameter name."""
    processors: tuple[tuple[str, Processor], ...] = ()
    """Conversions of parameter values the column types ask for (MySQL: ids to bytes)."""
    parts: tuple[Statement, ...] = ()
    """A :func:`pipeline`'s statements, each sent with its own text and values."""

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters of one execution: the defaults, then ``values``."""
        params = {**self.defaults, **values}
        for name, process in self.processors:
            value = params[name]
            if value is not None:
                params[name] = process(value)
        return params


def text_statement(sql: str) -> Statement:
    """A statement written as text (``BEGIN``, session setup)."""
    return Statement(sql, sql.split(None, 1)[0].upper(), {})


def compile_statement(
    statement: sa.ClauseElement, dialect: sa.Dialect, schema: str | None
) -> Statement:
    """Compile ``statement`` for ``dialect``, ``schema`` rendered into the text.

    Every bound parameter must have a name the store chose (``p_*``) or a value
    SQLAlchemy knows (a literal): a parameter with neither would be sent as NULL,
    so it is refused here, when the store is built, not at the first call."""
    compiled = cast(
        SQLCompiler,
        statement.compile(
            dialect=dialect,
            schema_translate_map={None: schema} if schema is not None else None,
            render_schema_translate=schema is not None,
        ),
    )
    sql = str(compiled)
    if "POSTCOMPILE" in sql:
        # IN (a list): write each item as its own bind (sa.literal or a p_ bindparam).
        raise ValueError(f"expanding parameters are not supported: {sql}")
    defaults: dict[str, Any] = {}
    processors: list[tuple[str, Processor]] = []
    bind_processors = cast(Mapping[str, Processor], compiled._bind_processors)
    for name, value in compiled.construct_params(_check=False).items():
        if not name.startswith("p_"):
            if value is None and compiled.binds[name].required:
                raise ValueError(f"parameter {name!r} has no value and no p_ name")
            value = (
                bind_processors[name](value)
                if name in bind_processors and value is not None
                else value
            )
            defaults[name] = value
        elif name in bind_processors:
            processors.append((name, bind_processors[name]))
    return Statement(sql, sql.split(None, 1)[0].upper(), defaults, tuple(processors))


_PYFORMAT = re.compile(r"%\(([^)]+)\)s")


def batch(statements: Sequence[Statement], verb: str = "BATCH") -> Statement:
    """One text of several ``pyformat`` statements, sent as one round trip to a server
    that runs a multi-statement batch (MySQL's ``CLIENT_MULTI_STATEMENTS``).

    Each statement's own literals (``status_1``…) are renamed apart (``b<i>_status_1``),
    since two statements may give the same name different values; the ``p_*``
    parameters are the caller's and shared by every statement."""
    texts: list[str] = []
    defaults: dict[str, Any] = {}
    processors: dict[str, Processor] = {}
    for i, statement in enumerate(statements):

        def rename(match: re.Match[str], i: int = i) -> str:
            name = match.group(1)
            return match.group(0) if name.startswith("p_") else f"%(b{i}_{name})s"

        texts.append(_PYFORMAT.sub(rename, statement.sql).strip())
        defaults.update((f"b{i}_{k}", v) for k, v in statement.defaults.items())
        processors.update(statement.processors)
    return Statement(";\n".join(texts), verb, defaults, tuple(processors.items()))


def pipeline(statements: Sequence[Statement]) -> Statement:
    """Several statements sent one after the other without waiting for their replies,
    the replies read at the end: one round trip (PostgreSQL's pipeline mode). Unlike a
    :func:`batch`, each statement keeps its own text, literals and placeholders, so the
    driver can prepare each (server-side plan reuse). ``sql`` is their texts joined,
    for the record only (golden files, statement counting: one ``PIPELINE``)."""
    return Statement(
        ";\n".join(s.sql.strip() for s in statements), "PIPELINE", {}, (), tuple(statements)
    )


class Compiler:
    """A store's compiled statements, by key (an operation and the shape of its
    arguments: which optional parts it has, never values)."""

    def __init__(self, dialect: sa.Dialect, schema: str | None) -> None:
        self.dialect = dialect
        self.schema = schema
        self._statements: dict[Hashable, Statement] = {}
        self.compiled: list[str] | None = None
        """When a list, the verb of every statement compiled (tests: a warm store
        compiles nothing)."""

    def get(self, key: Hashable, build: Callable[[], sa.ClauseElement]) -> Statement:
        """The statement of ``key``, built and compiled on first use."""
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = self.compile(build())
        return found

    def get_batch(
        self, key: Hashable, build: Callable[[], Sequence[sa.ClauseElement | str]]
    ) -> Statement:
        """The :func:`batch` of ``key``'s statements (text items: ``BEGIN``, ``SET
        @v = ROW_COUNT()``…), built and compiled on first use."""
        return self._combined(key, build, batch)

    def get_pipeline(
        self, key: Hashable, build: Callable[[], Sequence[sa.ClauseElement | str]]
    ) -> Statement:
        """The :func:`pipeline` of ``key``'s statements (text items: ``BEGIN``,
        ``COMMIT``), built and compiled on first use."""
        return self._combined(key, build, pipeline)

    def _combined(
        self,
        key: Hashable,
        build: Callable[[], Sequence[sa.ClauseElement | str]],
        combine: Callable[[Sequence[Statement]], Statement],
    ) -> Statement:
        found = self._statements.get(key)
        if found is None:
            parts = [
                text_statement(part) if isinstance(part, str) else self.compile(part)
                for part in build()
            ]
            found = self._statements[key] = combine(parts)
        return found

    def compile(self, statement: sa.ClauseElement) -> Statement:
        """Compile a statement (one that is not kept: its shape varies with values)."""
        compiled = compile_statement(statement, self.dialect, self.schema)
        if self.compiled is not None:
            self.compiled.append(compiled.verb)
        return compiled

    def items(self) -> Iterable[tuple[Hashable, Statement]]:
        return self._statements.items()


class Rows:
    """What one statement returned: its rows (tuples), column names and row count."""

    __slots__ = ("names", "rowcount", "rows")

    def __init__(self, names: Sequence[str], rows: Sequence[Sequence[Any]], rowcount: int) -> None:
        self.names: Sequence[str] = names
        self.rows: Sequence[Sequence[Any]] = rows
        self.rowcount: int = rowcount

    def first(self) -> dict[str, Any] | None:
        """The first row by column name, or ``None``."""
        return dict(zip(self.names, self.rows[0], strict=True)) if self.rows else None

    def mappings(self) -> list[dict[str, Any]]:
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in self.rows]

    def scalar(self) -> Any:
        """The first column of the first row, or ``None``."""
        return self.rows[0][0] if self.rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]
