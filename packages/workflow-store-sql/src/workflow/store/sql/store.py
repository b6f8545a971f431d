"""The execution store over SQLAlchemy Core, shared by every SQL dialect.

Concurrency model (READ COMMITTED on Postgres and MySQL, one writer at a time on
SQLite): every operation that changes a run takes that run's row lock first (a
conditional ``UPDATE`` or ``SELECT … FOR UPDATE``) and only then reads anything that
another writer of the same run could have changed. Each later statement sees every
transaction committed before the lock was granted, so a delivery and a pause of the
same run serialize and a wake-up is never lost. Claims of many rows use
``FOR UPDATE SKIP LOCKED`` so concurrent claimers never wait for or share a row.

Where the dialect has data-modifying CTEs (PostgreSQL), the writes that touch several
tables are one statement each instead; :mod:`workflow.store.sql.single_statement`
explains how they keep the same guarantees.

Dialect differences live in :mod:`workflow.store.sql.dialects`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any, ClassVar, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workflow.runtime import arguments, codec, validation
from workflow.runtime.contract import Capability
from workflow.runtime.cursor import decode_cursor, encode_cursor
from workflow.runtime.errors import (
    LeaseLostError,
    LogConflictError,
    RunCancelledError,
    StoreConfigurationError,
    StoreUnavailableError,
    WorkflowStoreError,
)
from workflow.runtime.records import (
    JSON,
    TERMINAL_STATUSES,
    InboxEntry,
    InboxKind,
    InboxRef,
    Lease,
    NewEvent,
    Overlap,
    Page,
    Run,
    RunStatus,
    Schedule,
    ScheduleSpec,
    SchemaStatus,
    StoredEvent,
    Timeline,
    WaitKind,
)
from workflow.runtime.results import (
    AlreadyTerminal,
    Buffered,
    Cancelled,
    CancelResult,
    Claimed,
    ClaimResult,
    Closed,
    Conflict,
    Created,
    CreateResult,
    Delivered,
    DeliveryResult,
    Duplicate,
    Existing,
    NotClaimable,
    NotFound,
    Outcome,
    ScheduleTick,
    TickOutcome,
)
from workflow.runtime.schedules import next_fire_at
from workflow.runtime.subscriptions import poll_events
from workflow.runtime.validation import EncodedEvent, EncodedWait

from . import rows, single_statement
from .coltypes import ID
from .dialects import SQLDialect, dialect_for
from .execution import STORE_TAG, Body, in_transaction, run_body, thread_options
from .failures import operation
from .migrator import Migrator
from .naming import DEFAULT_TABLE_PREFIX, check_schema
from .prepared import Statements, bound, built, lease_guard, lease_guard_params
from .tables import StoreTables, build_tables
from .transactions import explicit_transaction

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="SQLStore")

OWNED_ENGINE: dict[str, Any] = {
    "isolation_level": "AUTOCOMMIT",
    "skip_autocommit_rollback": True,
    # Recycled well before servers drop idle connections (MySQL wait_timeout 8 h).
    "pool_recycle": 1800,
    # Kept open: the runtime's default 8 drives plus its polling. With SQLAlchemy's
    # default 5, the connections above 5 were opened and closed around every
    # operation once a worker ran 8 drives (a connect per call).
    "pool_size": 10,
}
"""``create_async_engine`` options of the engines a store makes for itself (``from_url``):
every connection in autocommit for its whole life, so one statement is one round trip
and a transaction is exactly BEGIN, statements, COMMIT (:meth:`SQLStore._tx`). No
``pool_pre_ping`` (a round trip per checkout): a connection the server dropped fails
its next operation with ``StoreUnavailableError`` and the pool discards it."""
_NOT_TERMINAL = [s.value for s in RunStatus if not s.terminal]
_TERMINAL = [s.value for s in TERMINAL_STATUSES]


class SQLStore:
    """An :class:`~workflow.runtime.ExecutionStore` on an SQLAlchemy ``AsyncEngine``.

    Use the dialect packages' classes (``SQLiteStore``, ``PostgresStore``,
    ``MySQLStore``), which configure the engine and know their migrations.
    """

    migrations: ClassVar[str]
    """The adapter's Alembic ``script_location`` (``"workflow.store.<db>:migrations"``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        owns_engine: bool = False,
    ) -> None:
        self._engine = engine
        self._dialect: SQLDialect = dialect_for(engine.dialect.name)
        self.schema = check_schema(schema)
        self.tables: StoreTables = build_tables(table_prefix)
        self.max_payload_bytes = validation._check_int(
            max_payload_bytes, "max_payload_bytes", 2, 2**31
        )
        self._owns_engine = owns_engine
        options: dict[str, Any] = {}
        # SQLAlchemy keeps the create_engine(isolation_level=...) setting only here.
        autocommit = getattr(engine.dialect, "_on_connect_isolation_level", None) == "AUTOCOMMIT"
        if not (owns_engine or autocommit):
            # An engine of the application's: SQLAlchemy puts its connections in
            # autocommit at checkout and restores them on return (a few more round
            # trips than the engines from_url makes, which are autocommit throughout).
            options["isolation_level"] = "AUTOCOMMIT"
        if self.schema is not None:
            options["schema_translate_map"] = {None: self.schema}
        # Marks this store's statements, wherever they run (statements.recording).
        options[STORE_TAG] = object()
        self._engine = engine.execution_options(**options)
        self._thread_options = thread_options(self._engine)
        self._given_engine = engine
        # Only an application's engine can run another isolation level than ours.
        self._check_isolation = (
            not owns_engine and not autocommit and self._dialect.isolation is not None
        )
        self._closed = False
        self._statements: Statements = {}
        t = self.tables
        self._run_cols = [t.runs.c[name] for name in rows.RUN_COLUMNS]
        self._inbox_cols = [t.inbox.c[name] for name in rows.INBOX_COLUMNS]
        self._event_cols = [t.events.c[name] for name in rows.EVENT_COLUMNS]

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(
            {Capability.SUBSCRIBE_EVENTS, Capability.DURABLE, Capability.MULTI_PROCESS}
        )

    # -- connections -----------------------------------------------------------------
    # Every connection is in autocommit at the driver: a single statement is one round
    # trip, and a transaction is exactly BEGIN, its statements and COMMIT. (Letting
    # SQLAlchemy switch isolation levels per checkout costs extra round trips on some
    # drivers: SET AUTOCOMMIT and a reset on return on MySQL, thread hops on SQLite.)
    async def _run(self, body: Body[T], *, transaction: bool = False) -> T:
        """Run an operation's body (a function of a synchronous connection): in a
        transaction (the dialect's BEGIN, ``BEGIN IMMEDIATE`` on SQLite, READ COMMITTED
        elsewhere; COMMIT, or ROLLBACK when it raises), or in autocommit. On SQLite the
        whole body is one hop to the driver's thread (:mod:`.execution`)."""
        if self._closed:
            raise StoreUnavailableError("this store is closed")
        async with self._engine.connect() as conn:
            if not transaction:
                return await run_body(conn, body, self._thread_options)
            if self._check_isolation:
                self._require_isolation(conn)
            return await run_body(
                conn,
                functools.partial(in_transaction, begin=self._dialect.begin, body=body),
                self._thread_options,
            )

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for a body that must await between its statements (tests that
        interleave two transactions); the operations use :meth:`_run`."""
        async with self._single() as conn:
            if self._check_isolation:
                self._require_isolation(conn)
            async with explicit_transaction(conn, self._dialect.begin):
                yield conn

    @contextlib.asynccontextmanager
    async def _single(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit, for async bodies (see :meth:`_tx`)."""
        if self._closed:
            raise StoreUnavailableError("this store is closed")
        async with self._engine.connect() as conn:
            yield conn

    def _require_isolation(self, conn: AsyncConnection) -> None:
        required = self._dialect.isolation
        if required is not None and conn.default_isolation_level != required:
            raise StoreConfigurationError(
                f"{type(self).__name__} needs transactions at {required}; the engine "
                f"runs {conn.default_isolation_level}: create it with "
                f"isolation_level={required!r}, or let from_url create it"
            )

    # -- shared query pieces ---------------------------------------------------------
    def _outer_run_id(self) -> sa.ColumnElement[Any]:
        """``runs.run_id`` as seen from a subquery in the claim's RETURNING clause.

        SQLAlchemy renders RETURNING columns unqualified on SQLite, and a subquery's
        ``run_id = run_id`` would then compare the inbox row with itself (matching every
        run's entries); the explicit table name keeps the correlation."""
        t = self.tables
        if self._dialect.name == "sqlite":
            return sa.literal_column(f"{t.runs.name}.run_id")
        return t.runs.c.run_id

    def _inbox_json(self, *, consumed: bool | None = False) -> sa.ScalarSelect[Any]:
        t = self.tables
        where = [t.inbox.c.run_id == self._outer_run_id()]
        if consumed is not None:
            where.append(t.inbox.c.consumed == consumed)
        return sa.select(self._dialect.json_rows(*self._inbox_cols)).where(*where).scalar_subquery()

    def _events_json(self) -> sa.ScalarSelect[Any]:
        t = self.tables
        return (
            sa.select(self._dialect.json_rows(*self._event_cols))
            .where(t.events.c.run_id == self._outer_run_id())
            .scalar_subquery()
        )

    def _claim_returning(self, history: bool) -> list[sa.ColumnElement[Any]]:
        cols: list[sa.ColumnElement[Any]] = [*self._run_cols]
        cols.append(self._inbox_json().label("inbox_json"))
        if history:
            cols.append(self._events_json().label("events_json"))
        return cols

    def _claimed(self, row: rows.Row, history: bool) -> Claimed:
        run = rows.run_from_row(row)
        assert run.lease is not None
        return Claimed(
            run=run,
            lease=run.lease,
            inbox=rows.entries_from_json(run.run_id, row["inbox_json"]),
            events=rows.events_from_json(run.run_id, row["events_json"]) if history else None,
        )

    def _claim_values(
        self, owner: Any, expires_at: Any, now: Any
    ) -> list[tuple[sa.Column[Any], Any]]:
        """SET clause of a claim, in order: MySQL evaluates assignments left to right
        and lets later ones see earlier results, so ``updated_at`` (which reads the old
        status) must come before ``status``."""
        runs = self.tables.runs
        return [
            (
                runs.c.updated_at,
                sa.case((runs.c.status == RunStatus.RUNNING.value, runs.c.updated_at), else_=now),
            ),
            (runs.c.status, RunStatus.RUNNING.value),
            (runs.c.lease_owner, owner),
            (runs.c.lease_token, runs.c.lease_token + 1),
            (runs.c.lease_expires_at, expires_at),
        ]

    def _claimable(self, now: Any) -> sa.ColumnElement[bool]:
        runs = self.tables.runs
        return sa.or_(
            runs.c.status == RunStatus.QUEUED.value,
            sa.and_(runs.c.status == RunStatus.RUNNING.value, runs.c.lease_expires_at <= now),
        )

    def _lease_failure(
        self, conn: sa.Connection, run_id: str, lease: Lease, expected: int | None = None
    ) -> WorkflowStoreError:
        """Why a lease-guarded write matched no row."""
        runs = self.tables.runs
        row = (
            conn.execute(
                sa.select(
                    runs.c.status, runs.c.lease_owner, runs.c.lease_token, runs.c.next_event_index
                ).where(runs.c.run_id == run_id)
            )
        ).first()
        if row is None:
            return LeaseLostError(run_id, f"run {run_id!r} does not exist (deleted?)")
        if row.status == RunStatus.CANCELLED.value:
            return RunCancelledError(run_id)
        if row.lease_owner != lease.owner or int(row.lease_token) != lease.token:
            return LeaseLostError(run_id)
        if expected is not None:
            return LogConflictError(run_id, expected, int(row.next_event_index))
        return LeaseLostError(run_id)  # pragma: no cover - the row changed meanwhile

    # -- statements built once (see prepared.py) ---------------------------------------
    def _claim_candidates(self, now: Any, limit: Any) -> sa.Select[Any]:
        """The runs a claim takes, in claim order: ready_at is non-NULL exactly for
        queued and running runs, so an index range scan that skips (SKIP LOCKED) rows
        another claimer is taking."""
        runs = self.tables.runs
        return (
            sa.select(runs.c.run_id)
            .where(runs.c.ready_at.is_not(None), self._claimable(now))
            .order_by(runs.c.ready_at, runs.c.run_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    def _claiming(self, where: sa.ColumnElement[bool], history: bool) -> sa.Update:
        """The conditional UPDATE of a claim (bound: p_now, p_owner, p_expires_at)."""
        runs = self.tables.runs
        now = bound("now", runs.c.updated_at.type)
        return (
            sa.update(runs)
            .where(where, self._claimable(now))
            .ordered_values(
                *self._claim_values(
                    bound("owner", runs.c.lease_owner.type),
                    bound("expires_at", runs.c.lease_expires_at.type),
                    now,
                )
            )
            .returning(*self._claim_returning(history))
        )

    @functools.cached_property
    def _claim_one(self) -> dict[bool, sa.Update]:
        """claim_run's statement, without and with the history."""
        runs = self.tables.runs
        where = runs.c.run_id == bound("run_id", runs.c.run_id.type)
        return {history: self._claiming(where, history) for history in (False, True)}

    @functools.cached_property
    def _claim_many(self) -> dict[bool, sa.Update]:
        """claim_runnable's statement, without and with the history."""
        # A CTE, not `IN (subquery)`: Postgres may evaluate a sublink more than once,
        # and a re-run LIMIT … SKIP LOCKED would claim more than `limit` rows.
        runs = self.tables.runs
        picked = (
            self._claim_candidates(
                bound("now", runs.c.updated_at.type), sa.bindparam("p_limit", type_=sa.Integer())
            )
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        where = runs.c.run_id == picked.c.run_id
        return {history: self._claiming(where, history) for history in (False, True)}

    @functools.cached_property
    def _select_run(self) -> dict[bool, sa.Select[Any]]:
        """A run by id, without and with its row lock."""
        runs = self.tables.runs
        stmt = sa.select(*self._run_cols).where(
            runs.c.run_id == bound("run_id", runs.c.run_id.type)
        )
        return {False: stmt, True: stmt.with_for_update()}

    @functools.cached_property
    def _insert_run(self) -> sa.Insert:
        return sa.insert(self.tables.runs)

    @functools.cached_property
    def _renew(self) -> sa.Update:
        runs = self.tables.runs
        stmt = (
            sa.update(runs)
            .where(
                runs.c.run_id == bound("run_id", runs.c.run_id.type),
                runs.c.lease_owner == bound("owner", runs.c.lease_owner.type),
                runs.c.lease_token == bound("token", runs.c.lease_token.type),
            )
            .values(lease_expires_at=bound("expires_at", runs.c.lease_expires_at.type))
        )
        return stmt.returning(runs.c.lease_owner) if self._dialect.returning else stmt

    def _settling(self, values: dict[str, Any]) -> sa.Update:
        """The guarded UPDATE of a settle, setting the columns of ``values`` (p_v_*)."""
        runs = self.tables.runs
        stmt = (
            sa.update(runs)
            .where(lease_guard(runs))
            .values({k: bound(f"v_{k}", runs.c[k].type) for k in values})
        )
        return stmt.returning(*self._run_cols) if self._dialect.returning else stmt

    def _waking(self, wait: EncodedWait) -> sa.Update:
        """Queue the run (p_run_id) if an unconsumed entry matches a wait of this
        shape (p_wait_step_id, p_wait_key); queued values p_q_*."""
        runs = self.tables.runs
        run_id = bound("run_id", runs.c.run_id.type)
        matches = self._matches(
            run_id,
            wait,
            bound("wait_step_id", runs.c.wait_step_id.type),
            bound("wait_key", runs.c.wait_key.type),
        )
        return (
            sa.update(runs)
            .where(runs.c.run_id == run_id, sa.exists().where(matches))
            .values({k: bound(f"q_{k}", runs.c[k].type) for k in rows.queued_values(0)})
        )

    def _locking_for_delivery(self) -> sa.Select[Any]:
        """The run (p_run_id), row-locked, with the entry of kind p_kind and key p_key
        it already has, if any (columns ``seen_*``)."""
        t = self.tables
        seen = t.inbox.alias("seen")
        return (
            sa.select(
                *self._run_cols,
                *(seen.c[c.name].label(f"seen_{c.name}") for c in self._inbox_cols),
            )
            .select_from(
                t.runs.outerjoin(
                    seen,
                    sa.and_(
                        seen.c.run_id == t.runs.c.run_id,
                        seen.c.kind == bound("kind", seen.c.kind.type),
                        seen.c.key == bound("key", seen.c.key.type),
                    ),
                )
            )
            .where(t.runs.c.run_id == bound("run_id", t.runs.c.run_id.type))
            .with_for_update()
        )

    def _requeuing(self) -> sa.Update:
        """Put the run p_run_id back in the queue (queued values p_q_*)."""
        runs = self.tables.runs
        return (
            sa.update(runs)
            .where(runs.c.run_id == bound("run_id", runs.c.run_id.type))
            .values({k: bound(f"q_{k}", runs.c[k].type) for k in rows.queued_values(0)})
        )

    def _write_log(
        self,
        conn: sa.Connection,
        run_id: str,
        expected: int,
        events: Sequence[EncodedEvent],
        consume: Sequence[InboxRef],
        now: int,
    ) -> None:
        t = self.tables
        if events:
            conn.execute(
                built(self._statements, "insert_events", lambda: sa.insert(t.events)),
                [
                    {
                        "run_id": run_id,
                        "event_index": expected + i,
                        "type": e.type,
                        "step_id": e.step_id,
                        "data": e.data,
                        "created_at": now,
                    }
                    for i, e in enumerate(events)
                ],
            )
        if consume:
            conn.execute(
                sa.update(t.inbox)
                .where(
                    t.inbox.c.run_id == run_id,
                    sa.or_(
                        *(
                            sa.and_(t.inbox.c.kind == ref.kind.value, t.inbox.c.key == ref.key)
                            for ref in consume
                        )
                    ),
                )
                .values(consumed=True)
            )

    def _matches(
        self, run_id: Any, wait: EncodedWait, step_id: Any = None, key: Any = None
    ) -> sa.ColumnElement[bool]:
        """SQL spelling of :meth:`Wait.matches` for unconsumed inbox rows of ``run_id``
        (``step_id`` and ``key``, when given, stand for the wait's: bound parameters of
        a statement built once)."""
        inbox = self.tables.inbox
        step_id = wait.step_id if step_id is None else step_id
        key = wait.key if key is None else key
        options: list[sa.ColumnElement[bool]] = []
        if wait.wake_at is not None:
            options.append(sa.and_(inbox.c.kind == InboxKind.TIMER.value, inbox.c.key == step_id))
        if wait.kind is WaitKind.SIGNAL:
            options.append(
                sa.and_(
                    inbox.c.kind == InboxKind.SIGNAL.value,
                    inbox.c.name == key,
                    sa.or_(inbox.c.step_id.is_(None), inbox.c.step_id == step_id),
                )
            )
        elif wait.kind is WaitKind.APPROVAL:
            options.append(sa.and_(inbox.c.kind == InboxKind.APPROVAL.value, inbox.c.key == key))
        if not options:
            return sa.false()
        return sa.and_(inbox.c.run_id == run_id, inbox.c.consumed == sa.false(), sa.or_(*options))

    def _load(self, conn: sa.Connection, run_id: str, *, lock: bool = False) -> rows.Row | None:
        row = conn.execute(self._select_run[lock], {"p_run_id": run_id}).first()
        return None if row is None else row._mapping

    # -- run lifecycle -------------------------------------------------------------
    @operation
    async def create_run(
        self,
        run_id: str,
        workflow_id: str,
        workflow_version: str | None,
        input: JSON,
        now: int,
    ) -> CreateResult:
        a = arguments.new_run(
            run_id, workflow_id, workflow_version, input, now, max_bytes=self.max_payload_bytes
        )
        values = {
            "run_id": a.run_id,
            "workflow_id": a.workflow_id,
            "workflow_version": a.workflow_version,
            "status": RunStatus.QUEUED.value,
            "input": a.input,
            "lease_token": 0,
            "next_event_index": 0,
            "created_at": a.now,
            "updated_at": a.now,
            "ready_at": a.now,
        }

        def insert(conn: sa.Connection) -> rows.Row | None:
            """None when inserted, else the run that holds the id."""
            try:
                conn.execute(self._insert_run, values)
                return None
            except sa_exc.IntegrityError as exc:
                if not self._dialect.is_duplicate(exc):
                    raise
            return self._load(conn, a.run_id) or {}

        row = await self._run(insert)
        if row is None:
            return Created(rows.run_from_row(_with_defaults(values)))
        if not row:  # deleted between the two statements: try again
            return await self.create_run(run_id, workflow_id, workflow_version, input, now)
        run = rows.run_from_row(row)
        return Existing(run) if run.workflow_id == a.workflow_id else Conflict(run)

    @operation
    async def load_run(self, run_id: str) -> Run | None:
        run_id = validation.check_id(run_id, "run_id")
        row = await self._run(lambda conn: self._load(conn, run_id))
        return None if row is None else rows.run_from_row(row)

    @operation
    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | Collection[RunStatus] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        workflow_id = validation.check_optional_id(workflow_id, "workflow_id")
        statuses = validation.check_statuses(status)
        limit = validation.check_limit(limit)
        after = None if cursor is None else decode_cursor(cursor)
        runs = self.tables.runs
        stmt = sa.select(*self._run_cols)
        if workflow_id is not None:
            stmt = stmt.where(runs.c.workflow_id == workflow_id)
        if statuses is not None:
            stmt = stmt.where(runs.c.status.in_(sorted(s.value for s in statuses)))
        if after is not None:
            stmt = stmt.where(
                self._dialect.keyset_before((runs.c.created_at, runs.c.run_id), after)
            )
        stmt = stmt.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit + 1)
        found = await self._run(
            lambda conn: [rows.run_from_row(r._mapping) for r in conn.execute(stmt)]
        )
        page = found[:limit]
        more = len(found) > limit
        next_cursor = encode_cursor(page[-1].created_at, page[-1].run_id) if more else None
        return Page(page, next_cursor)

    def _read_events(
        self, conn: sa.Connection, run_id: str, from_index: int, limit: int | None
    ) -> list[StoredEvent]:
        events = self.tables.events
        stmt = (
            sa.select(*self._event_cols)
            .where(events.c.run_id == run_id, events.c.event_index >= from_index)
            .order_by(events.c.event_index)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        return [rows.event_from_row(run_id, r._mapping) for r in conn.execute(stmt)]

    @operation
    async def get_timeline(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> Timeline | None:
        run_id = validation.check_id(run_id, "run_id")
        from_index = validation.check_index(from_index, "from_index")
        limit = validation.check_optional_limit(limit)

        def read(conn: sa.Connection) -> Timeline | None:
            row = self._load(conn, run_id)
            if row is None:
                return None
            events = self._read_events(conn, run_id, from_index, limit)
            return Timeline(rows.run_from_row(row), events)

        # One transaction so the run and its events are one consistent snapshot.
        return await self._run(read, transaction=True)

    @operation
    async def cancel_run(self, run_id: str, reason: str, now: int) -> CancelResult:
        a = arguments.cancellation(run_id, reason, now, max_bytes=self.max_payload_bytes)
        runs = self.tables.runs
        values = {
            "status": RunStatus.CANCELLED.value,
            "error": a.error,
            "lease_owner": None,
            "lease_expires_at": None,
            "ready_at": None,
            "finished_at": a.now,
            "updated_at": a.now,
            **rows.wait_values(None),
        }

        def cancel(conn: sa.Connection) -> CancelResult:
            row = self._load(conn, a.run_id, lock=True)
            if row is None:
                return NotFound(a.run_id)
            if RunStatus(row["status"]).terminal:
                return AlreadyTerminal(rows.run_from_row(row))
            conn.execute(sa.update(runs).where(runs.c.run_id == a.run_id).values(values))
            return Cancelled(rows.run_from_row({**row, **values}))

        return await self._run(cancel, transaction=True)

    @operation
    async def delete_run(self, run_id: str) -> bool:
        run_id = validation.check_id(run_id, "run_id")
        runs = self.tables.runs
        # Events and inbox rows go with it (ON DELETE CASCADE).
        stmt = sa.delete(runs).where(runs.c.run_id == run_id)
        return await self._run(lambda conn: bool(conn.execute(stmt).rowcount))

    @operation
    async def purge_runs(self, terminal_before: int, limit: int) -> int:
        terminal_before = validation.check_time(terminal_before, "terminal_before")
        limit = validation.check_limit(limit)
        runs = self.tables.runs
        oldest = (
            sa.select(runs.c.run_id)
            .where(runs.c.finished_at < terminal_before)
            .order_by(runs.c.finished_at, runs.c.run_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

        def purge(conn: sa.Connection) -> int:
            ids = conn.scalars(oldest).all()
            if not ids:
                return 0
            return int(conn.execute(sa.delete(runs).where(runs.c.run_id.in_(ids))).rowcount)

        return await self._run(purge, transaction=True)

    # -- execution -------------------------------------------------------------------
    @operation
    async def claim_run(
        self, run_id: str, owner: str, lease_ms: int, now: int, *, with_history: bool = False
    ) -> ClaimResult:
        a = arguments.claim(run_id, owner, lease_ms, now, with_history)
        runs = self.tables.runs
        if self._dialect.returning:
            # One statement: the conditional UPDATE is the claim, and RETURNING carries
            # the inbox (and history) so the drive can start without another round trip.
            stmt = self._claim_one[a.with_history]
            params = {
                "p_run_id": a.run_id,
                "p_owner": a.owner,
                "p_expires_at": a.now + a.lease_ms,
                "p_now": a.now,
            }

            def claim(conn: sa.Connection) -> ClaimResult:
                row = conn.execute(stmt, params).first()
                if row is not None:
                    return self._claimed(row._mapping, a.with_history)
                current = self._load(conn, a.run_id)
                if current is None:
                    return NotFound(a.run_id)
                return NotClaimable(rows.run_from_row(current))

            return await self._run(claim)

        def lock_and_claim(conn: sa.Connection) -> ClaimResult:
            current = self._load(conn, a.run_id, lock=True)
            if current is None:
                return NotFound(a.run_id)
            run = rows.run_from_row(current)
            if not (
                run.status is RunStatus.QUEUED
                or (run.status is RunStatus.RUNNING and run.lease and run.lease.expires_at <= a.now)
            ):
                return NotClaimable(run)
            conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == a.run_id)
                .ordered_values(*self._claim_values(a.owner, a.now + a.lease_ms, a.now))
            )
            return self._read_claimed(conn, [a.run_id], a.with_history)[0]

        return await self._run(lock_and_claim, transaction=True)

    def _read_claimed(
        self, conn: sa.Connection, run_ids: Sequence[str], history: bool
    ) -> list[Claimed]:
        runs = self.tables.runs
        result = conn.execute(
            sa.select(*self._claim_returning(history)).where(runs.c.run_id.in_(run_ids))
        )
        return [self._claimed(r._mapping, history) for r in result]

    @operation
    async def claim_runnable(
        self, owner: str, lease_ms: int, limit: int, now: int, *, with_history: bool = False
    ) -> list[Claimed]:
        a = arguments.claim_many(owner, lease_ms, limit, now, with_history)
        runs = self.tables.runs
        if self._dialect.returning:
            stmt = self._claim_many[a.with_history]
            params = {
                "p_owner": a.owner,
                "p_expires_at": a.now + a.lease_ms,
                "p_now": a.now,
                "p_limit": a.limit,
            }
            claims = await self._run(
                lambda conn: [
                    self._claimed(r._mapping, a.with_history) for r in conn.execute(stmt, params)
                ]
            )
        else:
            candidates = self._claim_candidates(a.now, a.limit)

            def claim(conn: sa.Connection) -> list[Claimed]:
                ids = conn.scalars(candidates).all()
                if not ids:
                    return []
                conn.execute(
                    sa.update(runs)
                    .where(runs.c.run_id.in_(ids))
                    .ordered_values(*self._claim_values(a.owner, a.now + a.lease_ms, a.now))
                )
                return self._read_claimed(conn, ids, a.with_history)

            claims = await self._run(claim, transaction=True)
        claims.sort(key=lambda c: (c.run.ready_at or 0, c.run.run_id))
        return claims

    @operation
    async def heartbeat(self, run_id: str, lease: Lease, lease_ms: int, now: int) -> Lease:
        a = arguments.renewal(run_id, lease, lease_ms, now)
        params = {
            "p_run_id": a.run_id,
            "p_owner": a.lease.owner,
            "p_token": a.lease.token,
            "p_expires_at": a.now + a.lease_ms,
        }

        def renew(conn: sa.Connection) -> Lease:
            if self._dialect.returning:
                owner = conn.execute(self._renew, params).scalar()
            else:
                owner = a.lease.owner if conn.execute(self._renew, params).rowcount == 1 else None
            if owner is None:
                raise self._lease_failure(conn, a.run_id, a.lease)
            return Lease(owner, a.lease.token, a.now + a.lease_ms)

        return await self._run(renew)

    @operation
    async def append_events(
        self,
        run_id: str,
        lease: Lease,
        expected_next_index: int,
        events: Sequence[NewEvent],
        now: int,
        *,
        consume: Sequence[InboxRef] = (),
    ) -> int:
        log = arguments.log_write(
            run_id,
            lease,
            expected_next_index,
            events,
            now,
            consume,
            max_bytes=self.max_payload_bytes,
        )
        runs = self.tables.runs
        if self._dialect.writable_ctes:
            stmt, params = single_statement.append_events(self.tables, self._statements, log)

            def append_in_one(conn: sa.Connection) -> int:
                if conn.execute(stmt, params).first() is None:
                    raise self._lease_failure(conn, log.run_id, log.lease, log.expected)
                return log.next_index

            return await self._run(append_in_one)

        bump = built(
            self._statements,
            "bump_log",
            lambda: (
                sa.update(runs)
                .where(lease_guard(runs))
                .values(next_event_index=bound("next", runs.c.next_event_index.type))
            ),
        )
        params = {**lease_guard_params(log), "p_next": log.next_index}

        def append(conn: sa.Connection) -> int:
            # The compare-and-swap on next_event_index, fenced by the lease token.
            result = conn.execute(bump, params)
            if result.rowcount != 1:
                raise self._lease_failure(conn, log.run_id, log.lease, log.expected)
            self._write_log(conn, log.run_id, log.expected, log.events, log.consume, log.now)
            return log.next_index

        return await self._run(append, transaction=True)

    @operation
    async def settle_run(
        self,
        run_id: str,
        lease: Lease,
        expected_next_index: int,
        events: Sequence[NewEvent],
        outcome: Outcome,
        now: int,
        *,
        consume: Sequence[InboxRef] = (),
    ) -> Run:
        a = arguments.settlement(
            run_id,
            lease,
            expected_next_index,
            events,
            outcome,
            now,
            consume,
            max_bytes=self.max_payload_bytes,
        )
        log, result = a.log, a.outcome
        values: dict[str, Any] = {
            "next_event_index": log.next_index,
            "lease_owner": None,
            "lease_expires_at": None,
            "status": result.status.value,
            "updated_at": log.now,
            **rows.wait_values(result.wait),
        }
        if result.status is RunStatus.QUEUED:
            values["ready_at"] = log.now
        elif result.status is RunStatus.PAUSED:
            values["ready_at"] = None
        else:
            values.update(
                ready_at=None, finished_at=log.now, output=result.output, error=result.error
            )
        if self._dialect.writable_ctes:
            return await self._settle_in_one(a, values)
        wait = result.wait
        update = built(self._statements, ("settle", tuple(values)), lambda: self._settling(values))
        params = {**lease_guard_params(log), **{f"p_v_{k}": v for k, v in values.items()}}

        def settle(conn: sa.Connection) -> Run:
            if self._dialect.returning:
                row = conn.execute(update, params).first()
                settled = None if row is None else dict(row._mapping)
            else:
                done = conn.execute(update, params).rowcount == 1
                settled = None
                if done:
                    loaded = self._load(conn, log.run_id)
                    settled = None if loaded is None else dict(loaded)
            if settled is None:
                raise self._lease_failure(conn, log.run_id, log.lease, log.expected)
            self._write_log(conn, log.run_id, log.expected, log.events, log.consume, log.now)
            if wait is not None:
                # We hold the run's lock: this statement sees every delivery committed
                # before it, and later deliveries wait for us and then see `paused`.
                shape = (wait.kind, wait.wake_at is not None)
                wake = built(self._statements, ("wake", shape), lambda: self._waking(wait))
                woken = conn.execute(
                    wake,
                    {
                        "p_run_id": log.run_id,
                        "p_wait_step_id": wait.step_id,
                        "p_wait_key": wait.key,
                        **{f"p_q_{k}": v for k, v in rows.queued_values(log.now).items()},
                    },
                )
                if woken.rowcount == 1:
                    settled.update(rows.queued_values(log.now))
            return rows.run_from_row(settled)

        return await self._run(settle, transaction=True)

    async def _settle_in_one(self, a: arguments.Settlement, values: dict[str, Any]) -> Run:
        t, log, result = self.tables, a.log, a.outcome
        run_id, wait = log.run_id, result.wait
        matches = None
        if wait is not None:

            def matches(new: dict[str, sa.BindParameter[Any]]) -> sa.ColumnElement[bool]:
                condition = self._matches(
                    bound("run_id", ID), wait, new["wait_step_id"], new["wait_key"]
                )
                if log.consume:
                    # Entries this settle consumes are still unconsumed in its snapshot.
                    condition = sa.and_(condition, ~single_statement.consumed_refs(t))
                return condition

        shape = None if wait is None else (wait.kind, wait.wake_at is not None)
        stmt, params = single_statement.settle_run(t, self._statements, log, values, shape, matches)

        def settle(conn: sa.Connection) -> Run:
            row = conn.execute(stmt, params).first()
            if row is None:
                raise self._lease_failure(conn, run_id, log.lease, log.expected)
            settled = single_statement.unprefixed(row._mapping, single_statement.UPDATED)
            if (
                result.wait is not None
                and settled["status"] == RunStatus.PAUSED.value
                and row.seq_locked != row.seq_snapshot
            ):
                # A delivery committed while we waited for the row: look again.
                woken = conn.execute(
                    single_statement.wake_if_matched(
                        t, run_id, result.wait, self._matches(run_id, result.wait), log.now
                    )
                ).first()
                if woken is not None:
                    settled = dict(woken._mapping)
            return rows.run_from_row(settled)

        return await self._run(settle)

    @operation
    async def read_events(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        run_id = validation.check_id(run_id, "run_id")
        from_index = validation.check_index(from_index, "from_index")
        limit = validation.check_optional_limit(limit)
        return await self._run(lambda conn: self._read_events(conn, run_id, from_index, limit))

    @operation
    async def read_inbox(self, run_id: str, *, include_consumed: bool = False) -> list[InboxEntry]:
        run_id = validation.check_id(run_id, "run_id")
        include_consumed = validation.check_bool(include_consumed, "include_consumed")
        inbox = self.tables.inbox
        stmt = sa.select(*self._inbox_cols).where(inbox.c.run_id == run_id)
        if not include_consumed:
            stmt = stmt.where(inbox.c.consumed == sa.false())
        stmt = stmt.order_by(inbox.c.received_at, inbox.c.kind, inbox.c.key)
        return await self._run(
            lambda conn: [rows.entry_from_row(run_id, r._mapping) for r in conn.execute(stmt)]
        )

    async def subscribe_events(
        self, run_id: str, from_index: int = 0
    ) -> AsyncIterator[StoredEvent]:
        async for event in poll_events(self, run_id, from_index, interval=0.2):
            yield event

    # -- wake-ups ------------------------------------------------------------------
    async def _deliver(self, d: arguments.Delivery) -> DeliveryResult:
        t = self.tables
        if self._dialect.writable_ctes:
            return await self._deliver_in_one(d)
        run_id, kind, now, values = d.run_id, d.kind, d.now, d.entry_values()

        def deliver(conn: sa.Connection) -> DeliveryResult:
            # Lock the run first: a concurrent settle(Pause) of the same run serializes
            # with us, so the wake-up is decided on the state it leaves behind. The same
            # read brings an entry with our key, if one was delivered before.
            found = conn.execute(
                built(self._statements, "deliver_lock", self._locking_for_delivery),
                {"p_run_id": run_id, "p_kind": kind.value, "p_key": values["key"]},
            ).first()
            if found is None:
                return NotFound(run_id)
            row = found._mapping
            if row["seen_kind"] is not None:
                return Duplicate(
                    rows.entry_from_row(run_id, single_statement.unprefixed(row, "seen_"))
                )
            run = rows.run_from_row(row)
            if run.status.terminal:
                return Closed(run)
            entry_values = {"run_id": run_id, "kind": kind.value, "consumed": False, **values}
            conn.execute(
                built(self._statements, "insert_entry", lambda: sa.insert(t.inbox)), entry_values
            )
            entry = rows.entry_from_row(run_id, entry_values)
            if run.status is RunStatus.PAUSED and run.wait is not None and run.wait.matches(entry):
                queued = rows.queued_values(now)
                conn.execute(
                    built(self._statements, "requeue", self._requeuing),
                    {"p_run_id": run_id, **{f"p_q_{k}": v for k, v in queued.items()}},
                )
                return Delivered(rows.run_from_row({**row, **queued}), entry)
            return Buffered(run, entry)

        return await self._run(deliver, transaction=True)

    async def _deliver_in_one(self, d: arguments.Delivery) -> DeliveryResult:
        run_id, values = d.run_id, d.entry_values()
        stmt, params = single_statement.deliver(self.tables, self._statements, d, _TERMINAL)
        row = await self._run(lambda conn: conn.execute(stmt, params).first())
        if row is None:
            return NotFound(run_id)
        m = row._mapping
        existing = single_statement.unprefixed(m, single_statement.DUPLICATE)
        if existing["kind"] is not None:
            return Duplicate(rows.entry_from_row(run_id, existing))
        run = rows.run_from_row(single_statement.unprefixed(m, single_statement.LOCKED))
        if run.status.terminal:
            return Closed(run)
        after = single_statement.unprefixed(m, single_statement.UPDATED)
        if after["run_id"] is None:
            # A delivery of the same key committed after our snapshot and won the
            # insert; it is visible to a new statement.
            return await self._deliver_in_one(d)
        entry = rows.entry_from_row(run_id, {"kind": d.kind.value, "consumed": False, **values})
        woke = run.status is RunStatus.PAUSED and run.wait is not None and run.wait.matches(entry)
        return (Delivered if woke else Buffered)(rows.run_from_row(after), entry)

    @operation
    async def deliver_signal(
        self,
        run_id: str,
        signal_id: str,
        name: str,
        payload: JSON,
        now: int,
        *,
        step_id: str | None = None,
        meta: JSON = None,
    ) -> DeliveryResult:
        return await self._deliver(
            arguments.signal(
                run_id,
                signal_id,
                name,
                payload,
                now,
                step_id,
                meta,
                max_bytes=self.max_payload_bytes,
            )
        )

    @operation
    async def deliver_approval(
        self,
        run_id: str,
        approval_id: str,
        approved: bool,
        now: int,
        *,
        feedback: JSON = None,
        meta: JSON = None,
    ) -> DeliveryResult:
        return await self._deliver(
            arguments.approval(
                run_id, approval_id, approved, now, feedback, meta, max_bytes=self.max_payload_bytes
            )
        )

    @operation
    async def fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        now = validation.check_now(now)
        limit = validation.check_limit(limit)
        t = self.tables
        runs, inbox = t.runs, t.inbox
        if self._dialect.writable_ctes:
            stmt, params = single_statement.fire_due_timers(t, self._statements, now, limit)
            return await self._run(
                lambda conn: [
                    rows.entry_from_row(r.run_id, r._mapping) for r in conn.execute(stmt, params)
                ]
            )

        def fire(conn: sa.Connection) -> list[InboxEntry]:
            due = (
                conn.execute(
                    sa.select(
                        runs.c.run_id,
                        runs.c.wait_kind,
                        runs.c.wait_step_id,
                        runs.c.wait_key,
                        runs.c.wake_at,
                    )
                    .where(runs.c.wake_at.is_not(None), runs.c.wake_at <= now)
                    .order_by(runs.c.wake_at, runs.c.run_id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not due:
                return []
            ids = [d.run_id for d in due]
            fired = [
                {
                    "run_id": d.run_id,
                    "kind": InboxKind.TIMER.value,
                    "key": d.wait_step_id,
                    "name": d.wait_key if d.wait_kind == WaitKind.SIGNAL.value else None,
                    "step_id": d.wait_step_id,
                    "payload": codec.encode({"wake_at": int(d.wake_at)}),
                    "meta": None,
                    "received_at": now,
                    "consumed": False,
                }
                for d in due
            ]
            # Each firing is a fresh entry, replacing an earlier firing of the same step.
            conn.execute(
                self._dialect.upsert(inbox, ("name", "payload", "meta", "received_at", "consumed")),
                fired,
            )
            conn.execute(
                sa.update(runs).where(runs.c.run_id.in_(ids)).values(rows.queued_values(now))
            )
            # The entries are exactly what the upsert wrote: no need to read them back.
            return [rows.entry_from_row(f["run_id"], f) for f in fired]

        return await self._run(fire, transaction=True)

    # -- schedules -----------------------------------------------------------------
    @operation
    async def upsert_schedule(
        self,
        schedule_id: str,
        workflow_id: str,
        spec: ScheduleSpec,
        now: int,
        *,
        workflow_version: str | None = None,
        overlap: Overlap = Overlap.SKIP,
        input: JSON = None,
        enabled: bool = True,
    ) -> Schedule:
        a = arguments.schedule_declaration(
            schedule_id,
            workflow_id,
            spec,
            now,
            workflow_version,
            overlap,
            input,
            enabled,
            max_bytes=self.max_payload_bytes,
        )
        schedule_id, spec, now, enabled = a.schedule_id, a.spec, a.now, a.enabled
        schedules = self.tables.schedules
        values: dict[str, Any] = {
            "workflow_id": a.workflow_id,
            "workflow_version": a.workflow_version,
            "spec": codec.encode_spec(spec),
            "overlap": a.overlap.value,
            "input": a.input,
            "enabled": enabled,
            "updated_at": now,
        }

        def upsert(conn: sa.Connection) -> Schedule | None:
            """The schedule, or None when a concurrent upsert created it first."""
            existing = conn.execute(
                sa.select(schedules).where(schedules.c.schedule_id == schedule_id).with_for_update()
            ).first()
            if existing is not None:
                old = rows.schedule_from_row(existing._mapping)
                # Keep a due tick across re-declaration; re-plan only when the timing
                # changed or the schedule wakes up.
                changes = dict(values)
                if old.spec != spec or (enabled and not old.enabled):
                    changes["next_fire_at"] = next_fire_at(spec, now)
                conn.execute(
                    sa.update(schedules)
                    .where(schedules.c.schedule_id == schedule_id)
                    .values(changes)
                )
                return rows.schedule_from_row({**existing._mapping, **changes})
            new = {
                **values,
                "schedule_id": schedule_id,
                "next_fire_at": next_fire_at(spec, now),
                "last_fired_at": None,
                "last_run_id": None,
            }
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(schedules).values(new))
            except sa_exc.IntegrityError as exc:
                if not self._dialect.is_duplicate(exc):
                    raise
                return None  # a concurrent upsert created it: update instead
            return rows.schedule_from_row(new)

        for _ in range(2):
            schedule = await self._run(upsert, transaction=True)
            if schedule is not None:
                return schedule
        raise StoreUnavailableError(f"schedule {schedule_id!r} kept changing under upsert")

    @operation
    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        schedule_id = validation.check_schedule_id(schedule_id)
        schedules = self.tables.schedules
        stmt = sa.select(schedules).where(schedules.c.schedule_id == schedule_id)
        row = await self._run(lambda conn: conn.execute(stmt).first())
        return None if row is None else rows.schedule_from_row(row._mapping)

    @operation
    async def list_schedules(self, *, workflow_id: str | None = None) -> list[Schedule]:
        workflow_id = validation.check_optional_id(workflow_id, "workflow_id")
        schedules = self.tables.schedules
        stmt = sa.select(schedules).order_by(schedules.c.schedule_id)
        if workflow_id is not None:
            stmt = stmt.where(schedules.c.workflow_id == workflow_id)
        return await self._run(
            lambda conn: [rows.schedule_from_row(r._mapping) for r in conn.execute(stmt)]
        )

    @operation
    async def delete_schedule(self, schedule_id: str) -> bool:
        schedule_id = validation.check_schedule_id(schedule_id)
        schedules = self.tables.schedules
        stmt = sa.delete(schedules).where(schedules.c.schedule_id == schedule_id)
        return await self._run(lambda conn: bool(conn.execute(stmt).rowcount))

    @operation
    async def fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        now = validation.check_now(now)
        limit = validation.check_limit(limit)
        t = self.tables
        schedules, runs = t.schedules, t.runs
        last_status = (
            sa.select(runs.c.status)
            .where(runs.c.run_id == schedules.c.last_run_id)
            .scalar_subquery()
        )
        busy = sa.and_(last_status.is_not(None), last_status.in_(_NOT_TERMINAL))
        due_query = (
            sa.select(schedules, busy.label("busy"))
            .where(
                schedules.c.enabled == sa.true(),
                schedules.c.next_fire_at <= now,
                # A buffered tick waits without blocking the schedules behind it.
                sa.not_(sa.and_(schedules.c.overlap == Overlap.BUFFER_ONE.value, busy)),
            )
            .order_by(schedules.c.next_fire_at, schedules.c.schedule_id)
            .limit(limit)
        )
        if self._dialect.writable_ctes:
            return await self._fire_schedules_in_two(due_query, now)

        def fire(conn: sa.Connection) -> list[ScheduleTick]:
            ticks: list[ScheduleTick] = []
            due = conn.execute(due_query.with_for_update(skip_locked=True)).all()
            if not due:
                return []
            new_runs: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for d in due:
                s = rows.schedule_from_row(d._mapping)
                fire_at, following = s.next_fire_at, next_fire_at(s.spec, now)
                if s.overlap is Overlap.SKIP and d.busy:
                    ticks.append(
                        ScheduleTick(s.schedule_id, fire_at, TickOutcome.SKIPPED, None, following)
                    )
                    updates.append(
                        {
                            "sid": s.schedule_id,
                            "nfa": following,
                            "lfa": s.last_fired_at,
                            "lri": s.last_run_id,
                        }
                    )
                    continue
                run_id = f"{s.schedule_id}@{fire_at}"
                new_runs.append(
                    {
                        "run_id": run_id,
                        "workflow_id": s.workflow_id,
                        "workflow_version": s.workflow_version,
                        "status": RunStatus.QUEUED.value,
                        "input": d._mapping["input"],
                        "lease_token": 0,
                        "next_event_index": 0,
                        "created_at": now,
                        "updated_at": now,
                        "ready_at": now,
                    }
                )
                updates.append(
                    {"sid": s.schedule_id, "nfa": following, "lfa": fire_at, "lri": run_id}
                )
                ticks.append(
                    ScheduleTick(s.schedule_id, fire_at, TickOutcome.FIRED, run_id, following)
                )
            if new_runs:
                conn.execute(self._dialect.insert_ignore(runs, "run_id"), new_runs)
            # One UPDATE for all of them: an executemany is a round trip per row on
            # PyMySQL.
            sid = schedules.c.schedule_id

            def per_schedule(key: str, column: sa.Column[Any]) -> sa.Case[Any]:
                return sa.case(
                    *((sid == u["sid"], sa.literal(u[key], column.type)) for u in updates),
                    else_=column,
                )

            conn.execute(
                sa.update(schedules)
                .where(sid.in_([u["sid"] for u in updates]))
                .values(
                    next_fire_at=per_schedule("nfa", schedules.c.next_fire_at),
                    last_fired_at=per_schedule("lfa", schedules.c.last_fired_at),
                    last_run_id=per_schedule("lri", schedules.c.last_run_id),
                )
            )
            return ticks

        return await self._run(fire, transaction=True)

    async def _fire_schedules_in_two(
        self, due_query: sa.Select[Any], now: int
    ) -> list[ScheduleTick]:
        """Two round trips: read the due schedules, then one statement that moves each
        on by compare-and-set and inserts the runs of those it moved (the next fire
        time comes from the cron library, so it cannot be computed in SQL)."""
        due = await self._run(lambda conn: conn.execute(due_query).all())
        if not due:
            return []
        plan: list[dict[str, Any]] = []
        ticks: dict[str, ScheduleTick] = {}
        for d in due:
            s = rows.schedule_from_row(d._mapping)
            fire_at, following = s.next_fire_at, next_fire_at(s.spec, now)
            fires = not (s.overlap is Overlap.SKIP and d.busy)
            run_id = f"{s.schedule_id}@{fire_at}" if fires else None
            plan.append(
                {
                    "sid": s.schedule_id,
                    "seen_nfa": fire_at,
                    "seen_updated": s.updated_at,
                    "nfa": following,
                    "lfa": fire_at if fires else s.last_fired_at,
                    "lri": run_id if fires else s.last_run_id,
                    "fires": fires,
                }
            )
            outcome = TickOutcome.FIRED if fires else TickOutcome.SKIPPED
            ticks[s.schedule_id] = ScheduleTick(s.schedule_id, fire_at, outcome, run_id, following)
        stmt, params = single_statement.fire_schedules(self.tables, self._statements, plan, now)
        moved = set(await self._run(lambda conn: conn.execute(stmt, params).scalars().all()))
        return [tick for sid, tick in ticks.items() if sid in moved]

    # -- operations and health -------------------------------------------------------
    @property
    def migrator(self) -> Migrator:
        """This store's migrations (schema, prefix and engine included)."""
        return Migrator(
            self._engine,
            self.migrations,
            schema=self.schema,
            table_prefix=self.tables.prefix,
            url_hint=self.url_hint,
        )

    @property
    def url_hint(self) -> str:
        """The store's URL as an operator would type it (password hidden)."""
        url = self._engine.url.set(drivername=self._engine.url.get_backend_name())
        options = {k: v for k, v in url.query.items() if k != "charset"}
        if self.schema is not None:
            options["schema"] = self.schema
        if self.tables.prefix != DEFAULT_TABLE_PREFIX:
            options["table_prefix"] = self.tables.prefix
        return url.set(query=options).render_as_string(hide_password=True)

    async def create_schema(self) -> None:
        """Run the migrations to head: for tests and demos. Deploys run
        ``workflow migrate upgrade`` (or ``alembic``) instead."""
        await self.migrator.upgrade("head")

    @operation
    async def verify_schema(self) -> None:
        """Raise ``SchemaVersionError`` unless the database is at this adapter's head."""
        await self.migrator.verify()

    @operation
    async def schema_status(self) -> SchemaStatus:
        return await self.migrator.status()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_engine:
            await self._engine.dispose()


def _with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """A freshly inserted run row: every column not given is NULL."""
    row = dict.fromkeys(rows.RUN_COLUMNS)
    row.update(values)
    return row


async def opened(store: S, *, verify_schema: bool = True) -> S:
    """``store``, after checking its schema revision (closing it if that fails)."""
    if verify_schema:
        try:
            await store.verify_schema()
        except BaseException:
            await store.close()
            raise
    return store
