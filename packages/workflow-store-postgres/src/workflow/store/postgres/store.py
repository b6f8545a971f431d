"""The PostgreSQL store (psycopg 3 on psycopg_pool)."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Hashable, Sequence
from typing import Any, ClassVar

import psycopg
import psycopg_pool
import sqlalchemy as sa
from psycopg import pq
from psycopg.conninfo import make_conninfo

from workflow.runtime import arguments, codec
from workflow.runtime.contract import Capability
from workflow.runtime.errors import InvalidArgumentError
from workflow.runtime.records import InboxEntry, Run, RunStatus
from workflow.runtime.registry import check_flag
from workflow.runtime.results import (
    Buffered,
    Claimed,
    Closed,
    Delivered,
    DeliveryResult,
    Duplicate,
    NotFound,
    ScheduleTick,
)
from workflow.runtime.timeouts import DEFAULT_OPERATION_TIMEOUT_S, check_operation_timeout
from workflow.runtime.wakeups import Watchers
from workflow.store.sql import DEFAULT_TABLE_PREFIX, ReturningClaims, opened, queue_sql, rows
from workflow.store.sql.coltypes import ID
from workflow.store.sql.driver import Body, Params, Query
from workflow.store.sql.store import bound, unprefixed
from workflow.store.sql.urls import check_keywords, keyword_options, parse_store_url

from . import listener
from . import one_statement as one
from .dialect import PostgresDialect
from .driver import (
    DEFAULT_POOL_SIZE,
    DEFAULT_POOL_TIMEOUT_S,
    Connection,
    PsycopgDriver,
    network_parameters,
)

_TERMINAL = [s.value for s in RunStatus if s.terminal]


class PostgresStore(ReturningClaims):
    """An execution store in PostgreSQL (12+), optionally in its own schema.

    Every hot operation is one statement (data-modifying CTEs, :mod:`.one_statement`),
    sent on psycopg's async connections. The schema is rendered into every statement,
    never set through ``search_path``, and no server-side prepared statements are used
    unless asked for (``prepare=True``): both keep the store working behind PgBouncer
    in transaction mode.

    ``pool``: an application's own :class:`psycopg_pool.AsyncConnectionPool` (opened,
    its connections in ``autocommit``); the store uses it and never closes it. ``url``
    is still needed: migrations run on a connection of their own.

    ``notify`` (default ``True``): the statements that can make a run claimable send
    a NOTIFY and :meth:`watch_runnable` LISTENs (:mod:`.listener`). ``False`` behind
    PgBouncer in transaction mode, where LISTEN cannot work: workers then poll.
    """

    migrations: ClassVar[str] = "workflow.store.postgres:migrations"

    def __init__(
        self,
        url: str | sa.URL,
        *,
        schema: str | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        pool_size: int = DEFAULT_POOL_SIZE,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT_S,
        prepare: bool = False,
        pool: psycopg_pool.AsyncConnectionPool[Connection] | None = None,
        notify: bool = True,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S,
    ) -> None:
        parsed = sa.make_url(url) if isinstance(url, str) else url
        self.notify: bool = check_flag("notify", notify)
        if parsed.get_backend_name() != "postgresql":
            raise InvalidArgumentError(
                f"PostgresStore needs a postgresql:// URL, got {parsed.drivername}://"
            )
        operation_timeout = check_operation_timeout(operation_timeout)
        network = network_parameters(operation_timeout)
        parsed = parsed.update_query_dict(
            {k: v for k, v in network.items() if k not in parsed.query}
        )
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise InvalidArgumentError(f"pool_size must be a positive integer, got {pool_size!r}")
        dialect = PostgresDialect()
        migration_url = parsed.set(drivername=dialect.sync_driver)
        conninfo = _conninfo(migration_url)
        super().__init__(
            PsycopgDriver(
                conninfo,
                dialect,
                size=pool_size,
                timeout=pool_timeout,
                prepare=prepare,
                pool=pool,
            ),
            dialect,
            migration_url,
            schema=schema,
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            operation_timeout=operation_timeout,
        )
        self.wake_channel: str = listener.channel_for(self.schema, self.tables.prefix)
        """The channel this store's NOTIFYs go to (``LISTEN "<it>"`` to watch by hand)."""
        self._notice = listener.notice(self.wake_channel) if self.notify else None
        self._listener_conninfo = listener.listener_conninfo(conninfo)
        self._watchers = Watchers("PostgresStore")
        self._prepares = prepare

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        """``postgresql://user:password@host:port/database?schema=…&table_prefix=…``;
        also ``pool_size``, ``prepare=true``, ``notify=false``. Other query options are libpq's
        connection parameters (``sslmode``, ``application_name``…), passed on."""
        check_keywords("PostgreSQL", options, keyword_options(cls))
        parsed, from_query = parse_store_url(
            url,
            "postgresql+psycopg",
            ("postgresql", "postgres"),
            store="PostgreSQL",
            extra=("pool_size",),
            flags=("prepare", "notify"),
            driver_options=("libpq's connection parameters", libpq_parameters()),
        )
        return cls(parsed, **{**from_query, **options})

    @property
    def capabilities(self) -> frozenset[Capability]:
        if not self.notify:
            return super().capabilities
        return super().capabilities | {Capability.NOTIFY_RUNNABLE}

    def _wake_notice(self) -> sa.ColumnElement[Any] | None:
        return self._notice

    def watch_runnable(self) -> AsyncGenerator[None, None]:
        """Yields when a run may have become claimable (LISTEN on a connection of its
        own, shared by every watcher in the process on the same server and channel; see
        :class:`workflow.runtime.RunnableNotifier`)."""
        if not self.notify:
            raise InvalidArgumentError(
                "this PostgresStore was opened with notify=false: it sends no NOTIFY, so "
                "there is nothing to watch (workers poll)"
            )
        # One LISTEN per process for every handle on the same server and channel.
        key = ("postgresql", self._listener_conninfo, self.wake_channel)
        return self._watchers.watch(
            listener.session(self._listener_conninfo, self.wake_channel), key
        )

    async def close(self) -> None:
        await self._watchers.close()
        await super().close()

    # -- one statement per hot operation (data-modifying CTEs) -------------------------
    async def _append_events(self, log: arguments.LogWrite) -> int:
        key, build, params = one.append_events(self.tables, log)

        def append() -> Body[int]:
            found = yield self._q(key, build, params)
            if found.first() is None:
                raise (yield from self._lease_failure(log.run_id, log.lease, log.expected))
            return log.next_index

        return await self._run(append())

    async def _settle(self, a: arguments.Settlement, values: dict[str, Any]) -> Run:
        t, log, wait = self.tables, a.log, a.outcome.wait
        run_id = log.run_id
        matches = None
        if wait is not None:

            def matches(new: dict[str, sa.BindParameter[Any]]) -> sa.ColumnElement[bool]:
                condition = self._matches(
                    bound("run_id", ID), wait, new["wait_step_id"], new["wait_key"]
                )
                if log.consume:
                    # Entries this settle consumes are still unconsumed in its snapshot.
                    condition = sa.and_(condition, ~one.consumed_refs(t))
                return condition

        shape = None if wait is None else (wait.kind, wait.wake_at is not None)
        key, build, params = one.settle_run(
            t, log, values, shape, matches, self._notice, lambda: self._settle_guard(values)
        )

        def settle() -> Body[Run]:
            row = (yield self._q(key, build, params)).first()
            if row is None:
                raise (
                    yield from self._lease_failure(run_id, log.lease, log.expected, settling=True)
                )
            settled = unprefixed(row, one.UPDATED)
            if (
                wait is not None
                and settled["status"] == RunStatus.PAUSED.value
                and row["seq_locked"] != row["seq_snapshot"]
            ):
                # A delivery committed while we waited for the row: look again.
                woken = yield self._once(
                    one.wake_if_matched(
                        t, run_id, wait, self._matches(run_id, wait), log.now, self._notice
                    )
                )
                again = woken.first()
                if again is not None:
                    settled = again
            return rows.run_from_row(settled)

        return await self._run(settle())

    async def _deliver(self, d: arguments.Delivery) -> DeliveryResult:
        run_id, values = d.run_id, d.entry_values()
        key, build, params = one.deliver(self.tables, d, _TERMINAL, self._notice)

        def deliver() -> Body[DeliveryResult | None]:
            m = (yield self._q(key, build, params)).first()
            if m is None:
                return NotFound(run_id)
            existing = unprefixed(m, one.DUPLICATE)
            if existing["kind"] is not None:
                return Duplicate(rows.entry_from_row(run_id, existing))
            run = rows.run_from_row(unprefixed(m, one.LOCKED))
            if run.status.terminal:
                return Closed(run)
            after = unprefixed(m, one.UPDATED)
            if after["run_id"] is None:
                # A delivery of the same key committed after our snapshot and won the
                # insert; it is visible to a new statement.
                return None
            entry = rows.entry_from_row(run_id, {"kind": d.kind.value, "consumed": False, **values})
            woke = (
                run.status is RunStatus.PAUSED and run.wait is not None and run.wait.matches(entry)
            )
            return (Delivered if woke else Buffered)(rows.run_from_row(after), entry)

        while True:
            result = await self._run(deliver())
            if result is not None:
                return result

    # -- the limited claim: one round trip (lock, then decide and claim) ----------------
    def _picked(self, candidates: sa.Select[Any]) -> sa.CTE:
        # Evaluated once: a re-run LIMIT … SKIP LOCKED could pick other rows.
        return candidates.cte("picked").prefix_with("MATERIALIZED")

    def _batch(
        self,
        key: Hashable,
        build: Callable[[], Sequence[sa.ClauseElement | str]],
        values: Params,
    ) -> Query:
        # Where the connections prepare statements: a pipeline, one round trip all the
        # same, each statement over the extended protocol and prepared, so the big
        # deciding statement is not parsed and planned at every claim (a text of
        # several statements goes over the simple protocol, which prepares nothing).
        # Where they do not (the default, for PgBouncer before 1.21), the text: there,
        # a pipeline of unnamed statements measured slower than it, in latency and in
        # client and server CPU (docs/sql-stores.md, Queues).
        if self._prepares:
            return Query(self.compiler.get_pipeline(key, build), values)
        return Query(self.compiler.get_batch(key, build), values)

    async def _limited_round(
        self, a: arguments.ClaimMany, after: rows.Row | None, run_id: str | None = None
    ) -> tuple[list[Claimed], Sequence[rows.Row]]:
        """One round trip (:meth:`.driver.PsycopgDriver.execute`): lock the limited
        queues' rows, then :func:`.one_statement.limited_claim`; with ``prepare=True``
        a pipeline of prepared statements, ``BEGIN``, those two, ``COMMIT``, else the
        two as one text (:meth:`_batch`). The lock and the claim must be two
        statements: a statement's snapshot is taken when it starts, so a count in the
        statement that waited for the locks would miss what their previous holder
        committed meanwhile; the second statement starts after the locks are held."""
        n_queues, history = len(a.queues or ()), a.with_history

        def build() -> list[sa.ClauseElement | str]:
            statements: list[sa.ClauseElement | str] = [
                queue_sql.lock_limited_names(self.tables),
                one.limited_claim(
                    self.tables,
                    self._limited_takes(n_queues, after is not None, run_id is not None),
                    self._claim_values(),
                    self._claim_returning(history),
                ),
            ]
            if not self._prepares:
                # One text over the simple protocol: an implicit transaction already.
                return statements
            return [self._dialect.begin.sql, *statements, "COMMIT"]

        return await self._limited_batch(a, after, run_id, build)

    async def _create_limited(self, a: arguments.NewRun, claimed: dict[str, Any]) -> bool:
        """One round trip, as the limited claim's (:meth:`_limited_round`): lock the
        queue's row if it has limits, then :func:`.one_statement.created_in_limited_queue`
        (decide, insert, count the claim in the rate window) in a statement of its own,
        which starts once the lock is held and so sees what its previous holder
        committed."""
        columns = tuple(claimed)

        def build() -> list[sa.ClauseElement | str]:
            statements: list[sa.ClauseElement | str] = [
                queue_sql.lock_limited_queue(self.tables),
                one.created_in_limited_queue(self.tables, columns, self._notice),
            ]
            if not self._prepares:
                return statements  # one text: an implicit transaction already
            return [self._dialect.begin.sql, *statements, "COMMIT"]

        def create() -> Body[tuple[bool, bool]]:
            found = yield self._batch(
                ("created_in_limited_queue", columns), build, self._decided_params(claimed, a.now)
            )
            row = found.first()
            assert row is not None  # an INSERT of one row
            return row["status"] == RunStatus.RUNNING.value, bool(row["limited"])

        claimed_now, limited = await self._run(create())
        self._note_limited(a.placement.queue, limited)
        return claimed_now

    _timers_on_their_own = True

    async def _fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        key, build, params = one.fire_due_timers(self.tables, now, limit, self._notice)

        def fire() -> Body[list[InboxEntry]]:
            found = yield self._q(key, build, params)
            return [rows.entry_from_row(r["run_id"], r) for r in found.mappings()]

        return await self._run(fire())

    async def _fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        """Two round trips: read the due schedules, then one statement that moves each
        on by compare-and-set and inserts the runs of those it moved (the next fire
        time comes from the cron library, so it cannot be computed in SQL)."""
        moves = await self._due_schedule_moves(now, limit)
        if not moves:
            return []
        key, build, params = one.fire_schedules(
            self.tables, [m.params() for m in moves], now, self._notice
        )

        def move() -> Body[set[str]]:
            return set((yield self._q(key, build, params)).scalars())

        moved = await self._run(move())
        return [m.tick for m in moves if m.tick.schedule_id in moved]


@functools.cache
def libpq_parameters() -> frozenset[str]:
    """The connection parameters the installed libpq knows (``PQconndefaults``)."""
    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def _conninfo(url: sa.URL) -> str:
    """libpq's connection string for ``url`` (its query options are libpq's too)."""
    parts: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
    }
    parts.update(url.query)
    try:
        return make_conninfo("", **{k: v for k, v in parts.items() if v is not None})
    except psycopg.ProgrammingError as exc:  # a parameter libpq does not know
        raise InvalidArgumentError(f"bad PostgreSQL connection parameter: {exc}") from None


async def open_store(url: str, *, verify_schema: bool = True, **options: Any) -> PostgresStore:
    """Entry point for ``postgresql://``: connects and checks the schema revision."""
    check_flag("verify_schema", verify_schema)
    return await opened(PostgresStore.from_url(url, **options), verify_schema=verify_schema)
