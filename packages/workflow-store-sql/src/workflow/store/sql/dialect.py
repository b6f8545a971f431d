"""What a SQL dialect package provides: the :class:`Dialect` base class.

A dialect package (``workflow-store-postgres``, ``-mysql``, ``-sqlite``) subclasses
:class:`Dialect` and :class:`~workflow.store.sql.store.SQLStore`. Its ``Dialect`` says
how its database spells the statements the shared skeleton builds (upserts, JSON
aggregation, row comparisons), what its driver's errors mean, how its migrations
lock and create a schema; its store class overrides the operations its database can
do in fewer round trips. Nothing in this package compares dialect names: the store
and the Alembic environment ask the dialect object they were given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.sql.dml import Insert

from .compiled import Statement, text_statement
from .failures import Failure


class Dialect:
    """A SQL database as the stores see it. Subclasses set the class attributes and
    implement the methods that raise :class:`NotImplementedError`."""

    name: ClassVar[str]
    """Its name in messages (``postgresql``)."""
    sync_driver: ClassVar[str]
    """The SQLAlchemy ``dialect+driver`` of the engines that run migrations."""
    begin: ClassVar[Statement] = text_statement("BEGIN")
    """How a transaction starts (connections are in autocommit between transactions)."""
    locks_rows: ClassVar[bool] = True
    """Whether a transaction must lock the rows it decides from (``SELECT … FOR
    UPDATE``); SQLite's ``BEGIN IMMEDIATE`` serialises the writers already."""
    render_as_batch: ClassVar[bool] = False
    """Alembic's batch mode (SQLite: ALTER by copying the table)."""

    def compiler_dialect(self) -> sa.Dialect:
        """The SQLAlchemy dialect statements are compiled with, set up for the
        paramstyle the store's driver takes (named)."""
        raise NotImplementedError

    # -- statement spelling (SQLAlchemy Core) -------------------------------------------
    def insert_ignore(self, table: sa.Table) -> Insert:
        """``INSERT`` that skips rows whose primary key exists (no other error hidden)."""
        raise NotImplementedError

    def upsert(self, table: sa.Table, update: Sequence[str]) -> Insert:
        """``INSERT`` that overwrites ``update`` columns when the primary key exists."""
        raise NotImplementedError

    def json_rows(self, *columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        """Aggregate ``columns`` of the matching rows into a JSON array of arrays (text)."""
        raise NotImplementedError

    def keyset_before(
        self, columns: tuple[sa.ColumnElement[Any], ...], values: tuple[Any, ...]
    ) -> sa.ColumnElement[bool]:
        """``columns < values`` in row order, written so the database uses the index."""
        return sa.tuple_(*columns) < sa.tuple_(*values)

    def outer_column(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        """``column`` of the updated table as a subquery of RETURNING sees it."""
        return column

    # -- errors ---------------------------------------------------------------------------
    def is_duplicate(self, exc: BaseException) -> bool:
        """``exc`` is the driver's primary-key (unique) violation."""
        raise NotImplementedError

    def classify(self, exc: BaseException) -> Failure | None:
        """What the driver error ``exc`` means; ``None`` when it is not the driver's.
        :attr:`Failure.RETRY` only where the server rolled the whole transaction back,
        so running the operation again is safe."""
        raise NotImplementedError

    def fix(self, failure: Failure, url: str) -> str | None:
        """The operator's fix for a configuration failure, when the generic one
        (:func:`workflow.store.sql.failures.fix`) does not fit this database."""
        return None

    # -- migrations (synchronous SQLAlchemy connections, inside Alembic) -----------------
    @contextlib.contextmanager
    def migration_lock(
        self, connection: sa.Connection, schema: str | None, prefix: str
    ) -> Iterator[None]:
        """Hold the store's cross-process migration lock for the duration."""
        yield

    def create_schema_sql(self, schema: str) -> str | None:
        """The statement creating the store's schema (MySQL: database), if any."""
        return None

    def use_schema_sql(self, schema: str) -> str | None:
        """The statement an offline script runs to work inside ``schema``."""
        return None

    def configure_engine(self, engine: sa.Engine, *, autocommit: bool) -> None:
        """Set up the connections of an engine that runs migrations (SQLite: pragmas);
        ``autocommit``: the engine's connections are in autocommit at the driver."""
