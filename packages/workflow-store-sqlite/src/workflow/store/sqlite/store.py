"""The SQLite store: the embedded default (one file, WAL mode, no server)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from workflow.runtime import Claimed, arguments, codec, validation
from workflow.runtime.errors import InvalidArgumentError, SchemaVersionError
from workflow.runtime.hints import shell_command
from workflow.runtime.registry import check_flag, redact_url
from workflow.runtime.timeouts import DEFAULT_OPERATION_TIMEOUT_S
from workflow.store.sql import DEFAULT_TABLE_PREFIX, ReturningClaims, opened, queue_sql, rows
from workflow.store.sql.driver import Body
from workflow.store.sql.urls import check_keywords, keyword_options, parse_store_url

from .dialect import SQLiteDialect
from .driver import SQLiteDriver


class SQLiteStore(ReturningClaims):
    """An execution store in one SQLite database file.

    Every write transaction is ``BEGIN IMMEDIATE`` (SQLite serializes writers per
    database); claims are conditional ``UPDATE … RETURNING`` statements. Operations run
    on ``sqlite3`` connections, each on its own thread: an operation is one hop from
    the event loop to that thread, however many statements it has.

    ``connections``: at most this many (each with its thread; writers take turns
    anyway, so more only helps readers). ``on_connect``: called with each new
    ``sqlite3`` connection, on its thread, after the store's own settings (an
    application's own ``PRAGMA``).
    """

    migrations: ClassVar[str] = "workflow.store.sqlite:migrations"

    def __init__(
        self,
        path: str | Path,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        busy_timeout_ms: int = 10_000,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S,
        connections: int = 8,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
        schema: None = None,
    ) -> None:
        if schema is not None:
            raise InvalidArgumentError(
                "SQLite has no schemas: use table_prefix, or another database file"
            )
        if not isinstance(path, (str, Path)) or str(path) in ("", ":memory:"):
            raise InvalidArgumentError(
                f"a SQLite store needs a file path, got {path!r} (no in-memory databases: "
                "each connection would see its own)"
            )
        busy_timeout_ms = validation.check_int(busy_timeout_ms, "busy_timeout_ms", 0, 2**31 - 1)
        connections = validation.check_int(connections, "connections", 1, 1024)
        dialect = SQLiteDialect(busy_timeout_ms)
        super().__init__(
            SQLiteDriver(str(path), dialect, connections, on_connect),
            dialect,
            sa.URL.create("sqlite+pysqlite", database=str(path)),
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            operation_timeout=operation_timeout,
        )

    # -- the limited claim: the decision inside the claiming UPDATE ----------------------
    async def _claim_limited(self, a: arguments.ClaimMany) -> list[Claimed]:
        return await self._run(self._claim_decided(a, None), transaction=True)

    async def _limited_round(
        self, a: arguments.ClaimMany, after: rows.Row | None, run_id: str | None = None
    ) -> tuple[list[Claimed], Sequence[rows.Row]]:
        # Only claim_run's round comes here (claim_runnable: _claim_limited above).
        claims = await self._run(self._claim_decided(a, run_id), transaction=True)
        return claims, ()

    def _claim_decided(self, a: arguments.ClaimMany, run_id: str | None) -> Body[list[Claimed]]:
        """A limited claim as ``UPDATE … RETURNING`` statements whose ``WHERE run_id IN
        (…)`` is the decision (:func:`.queue_sql.takes`), in ``BEGIN IMMEDIATE`` (one
        writer: nothing to lock), each deciding on a page of ``limit`` runs (those
        still to take); the common claim is one statement (two with a rate limit: its
        window). A page is never left without a run taken: its runs' queue and key
        have room (:func:`.queue_sql.has_room`), so its first run is taken. Runs it
        leaves (their key or queue had room for fewer) are filtered out of the next
        page, which counts the runs just claimed: statements go on until ``limit``
        runs are claimed or one takes nothing (no run has room). The decision's rows
        never reach Python: what the store needs from them comes in ``RETURNING``
        (whether queues have limits: the next claim's first try; whether the run's
        queue has a rate limit)."""
        n_queues, history, one_run = len(a.queues or ()), a.with_history, run_id is not None
        t = queue_sql.TAKE
        claims: list[Claimed] = []
        while len(claims) < a.limit:
            more = replace(a, limit=a.limit - len(claims))
            found = yield self._q(
                ("limited_decided_claim", n_queues, one_run, history),
                lambda: self._decided_claim(n_queues, one_run, history),
                self._limited_params(more, None, run_id),
            )
            got = found.mappings()
            if not got:
                break
            self._limits_seen = bool(got[0][f"{t}limited"])
            claimed = [self._claimed(r, history) for r in got]
            if any(r[f"{t}rated"] for r in got):
                yield self._count_in_windows(a.now, [c.run.run_id for c in claimed])
            claims += claimed
        return claims

    @staticmethod
    def _page(a: arguments.ClaimMany) -> int:
        # The runs still to take: a page a key or queue leaves short costs another
        # statement in the same hop, not a round trip (see _claim_decided).
        return a.limit

    def _decided_claim(self, n_queues: int, one_run: bool, history: bool) -> sa.Update:
        runs, q, t = self.tables.runs, self.tables.queues, queue_sql.TAKE
        takes = self._limited_takes(n_queues, False, one_run).cte("takes")
        queue = self._dialect.outer_column(runs.c.queue)
        rated = sa.exists().where(q.c.name == queue, q.c.rate_count.is_not(None))
        n_limited = sa.select(sa.func.count()).where(queue_sql.limited(self.tables))
        taken = sa.select(takes.c[f"{t}run_id"]).where(takes.c[f"{t}take"] == 1)
        return (
            sa.update(runs)
            .where(runs.c.run_id.in_(taken))
            .ordered_values(*self._claim_values())
            .returning(
                *self._claim_returning(history),
                sa.case((rated, 1), else_=0).label(f"{t}rated"),
                n_limited.scalar_subquery().label(f"{t}limited"),
            )
        )

    @property
    def path(self) -> str:
        """The database file."""
        return str(self._migration_url.database)

    async def verify_schema(self) -> None:
        """Raise :class:`SchemaVersionError` unless the file exists and is at the head
        revision. A missing file is reported without opening it: sqlite3 would create
        an empty one, and a typo in a read-only command's path would leave it behind.
        (In a directory that does not exist, sqlite3 creates nothing and the store's
        StoreConfigurationError says so.)"""
        if await asyncio.to_thread(_missing_in_existing_directory, Path(self.path)):
            head = self.migrator.head
            fix = shell_command("workflow", "migrate", "upgrade", "--url", self.url_hint)
            raise SchemaVersionError(
                f"no SQLite database at {self.path!r} (nothing was created); the adapter "
                f"needs revision {head}: run `{fix}` to create it",
                current=None,
                required=head,
            )
        await super().verify_schema()

    @classmethod
    def from_path(cls, path: str | Path, **options: Any) -> SQLiteStore:
        return cls(path, **options)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        """``sqlite:///relative/path.db`` or ``sqlite:////abs/path.db``, with the query
        options ``table_prefix``, ``max_payload_bytes``, ``busy_timeout_ms`` and
        ``connections``; ``options``: the constructor's keyword options (they win over
        the URL's). Any other option is an :class:`InvalidArgumentError`."""
        check_keywords("SQLite", options, keyword_options(cls))
        parsed, from_query = parse_store_url(
            url,
            "sqlite+pysqlite",
            ("sqlite",),
            store="SQLite",
            extra=("busy_timeout_ms", "connections"),
        )
        if parsed.username or parsed.password or parsed.host or parsed.port:
            raise InvalidArgumentError(
                f"a sqlite:// URL names a file, not a server (no user, password, host or "
                f"port), got {redact_url(url)!r}: sqlite:///relative/path.db or "
                "sqlite:////abs/path.db"
            )
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidArgumentError(
                "a SQLite store needs a file: sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        return cls(parsed.database, **{**from_query, **options})


def _missing_in_existing_directory(path: Path) -> bool:
    return not path.exists() and path.parent.is_dir()


async def open_store(url: str, *, verify_schema: bool = True, **options: Any) -> SQLiteStore:
    """Entry point for ``sqlite:///path``: opens the file and checks its schema revision."""
    check_flag("verify_schema", verify_schema)
    return await opened(SQLiteStore.from_url(url, **options), verify_schema=verify_schema)
