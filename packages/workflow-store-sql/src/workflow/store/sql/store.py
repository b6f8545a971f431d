"""The operation skeleton of the SQL stores: validation, statements, rows to records.

:class:`SQLStore` implements every operation of the contract once, portably: each
operation is a *body* (:mod:`.driver`) of SQLAlchemy Core statements compiled once per
store (:mod:`.compiled`) and run on the dialect's own driver. The dialect packages
subclass it and override the operations their database does in fewer round trips
(PostgreSQL: data-modifying CTEs; SQLite and PostgreSQL: ``UPDATE … RETURNING``
claims, :class:`ReturningClaims`).

Concurrency model of the portable bodies (READ COMMITTED on servers, one writer at a
time on SQLite): every operation that changes a run takes that run's row lock first (a
conditional ``UPDATE`` or ``SELECT … FOR UPDATE``) and only then reads anything that
another writer of the same run could have changed. Each later statement sees every
transaction committed before the lock was granted, so a delivery and a pause of the
same run serialize and a wake-up is never lost. Claims of many rows use
``FOR UPDATE SKIP LOCKED`` so concurrent claimers never wait for or share a row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Hashable, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from workflow.runtime import arguments, codec, validation
from workflow.runtime.contract import Capability
from workflow.runtime.cursor import decode_cursor, encode_cursor
from workflow.runtime.errors import (
    InvalidArgumentError,
    LeaseLostError,
    LogConflictError,
    RunCancelledError,
    RunTimedOutError,
    StoreUnavailableError,
    WorkflowStoreError,
)
from workflow.runtime.queues import queue_config, refuse_placement, serves_default
from workflow.runtime.records import (
    JSON,
    InboxEntry,
    InboxKind,
    InboxRef,
    Lease,
    NewEvent,
    Overlap,
    Page,
    ParentPolicy,
    Queue,
    RateLimit,
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
)
from workflow.runtime.schedules import next_fire_at
from workflow.runtime.subscriptions import poll_events
from workflow.runtime.timeouts import DEFAULT_OPERATION_TIMEOUT_S, check_operation_timeout
from workflow.runtime.validation import EncodedEvent, EncodedWait

from . import children_sql, queue_sql, rows
from .compiled import Compiler, Rows, Statement
from .dialect import Dialect
from .driver import Body, Driver, DuplicateKey, Query
from .failures import operation
from .migrator import Migrator
from .naming import DEFAULT_TABLE_PREFIX, check_schema
from .queue_sql import bound
from .schedule_moves import ScheduleMove, planned_moves
from .tables import StoreTables, build_tables

T = TypeVar("T")
S = TypeVar("S", bound="SQLStore")

Params = dict[str, Any]

LIMITED: rows.Row = MappingProxyType({"limited": True})
"""What create_run's insert answers (by identity) when a queue limit needs
_create_limited."""

MAX_LIMITED_HINTS = 1024
"""The most queue names a store handle remembers as limited (``_limited_queues``)."""


RUN_INSERT = (
    "run_id",
    "workflow_id",
    "workflow_version",
    "status",
    "input",
    "lease_token",
    "next_event_index",
    "created_at",
    "updated_at",
    "ready_at",
)
"""The columns a new run is inserted with (the rest take their defaults)."""

CREATED_RUN_INSERT = (*RUN_INSERT, "queue", "priority", "partition_key", "deadline_at")
"""The columns ``create_run`` inserts (a schedule's runs take the default placement and
have no deadline)."""

CLAIMED_RUN_INSERT = (*CREATED_RUN_INSERT, "lease_owner", "lease_expires_at")
"""The columns of a run created claimed (``create_run(..., owner=, lease_ms=)``)."""


def lease_guard(runs: sa.Table) -> sa.ColumnElement[bool]:
    """The guard of every log write: run ``p_run_id`` is held by ``p_owner`` with
    ``p_token`` (the fencing token) and its log ends at ``p_expected``."""
    return sa.and_(
        runs.c.run_id == bound("run_id", runs.c.run_id.type),
        runs.c.lease_owner == bound("owner", runs.c.lease_owner.type),
        runs.c.lease_token == bound("token", runs.c.lease_token.type),
        runs.c.next_event_index == bound("expected", runs.c.next_event_index.type),
    )


def lease_guard_params(log: arguments.LogWrite) -> Params:
    """The values of :func:`lease_guard` for ``log``."""
    return {
        "p_run_id": log.run_id,
        "p_owner": log.lease.owner,
        "p_token": log.lease.token,
        "p_expected": log.expected,
    }


def prefixed(values: dict[str, Any], prefix: str) -> Params:
    """``values`` keyed as the ``p_<prefix><name>`` parameters."""
    return {f"p_{prefix}{k}": v for k, v in values.items()}


def unprefixed(row: rows.Row, prefix: str) -> dict[str, Any]:
    """The columns of ``row`` whose names start with ``prefix``, without it."""
    return {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}


_CASCADING = (RunStatus.CANCELLED, RunStatus.TIMED_OUT)
"""How a parent ends when its ``cancel``-policy children end with it."""


class ParentFirst(WorkflowStoreError):
    """A terminal settle's guard found a run with a parent (still ours to settle): it is
    settled again in a transaction that locks ``parent_run_id`` first. Never leaves
    the store."""

    def __init__(self, parent_run_id: str) -> None:
        super().__init__(f"settle again with parent {parent_run_id!r} locked first")
        self.parent_run_id = parent_run_id


class SQLStore:
    """An :class:`~workflow.runtime.ExecutionStore` on a SQL database.

    Use the dialect packages' classes (``SQLiteStore``, ``PostgresStore``,
    ``MySQLStore``): they bring the dialect, the driver and the migrations.
    """

    migrations: ClassVar[str]
    """The adapter's Alembic ``script_location`` (``"workflow.store.<db>:migrations"``)."""

    children: ClassVar[bool] = True
    """Whether the store keeps parent links (``Capability.CHILDREN``): a child's end
    and a parent's cancellation are transactions that lock the parent first
    (:mod:`.children_sql`). D1 cannot run one."""

    queue_limits: ClassVar[bool] = True
    """Whether claims keep queue limits (``Capability.QUEUES``): it takes a transaction
    that reads before it writes (:mod:`.queue_sql`). D1 cannot run one."""

    def __init__(
        self,
        driver: Driver,
        dialect: Dialect,
        migration_url: sa.URL,
        *,
        schema: str | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S,
    ) -> None:
        self.schema: str | None = check_schema(schema)
        self.operation_timeout: float = check_operation_timeout(operation_timeout)
        """Seconds an operation may take, retries included, before it raises
        :class:`StoreUnavailableError` (:mod:`workflow.runtime.timeouts`)."""
        driver.operation_timeout = self.operation_timeout
        self.tables: StoreTables = build_tables(table_prefix)
        self.max_payload_bytes: int = validation.check_int(
            max_payload_bytes, "max_payload_bytes", 2, 2**31
        )
        self._driver = driver
        self._dialect = dialect
        self._migration_url = migration_url
        self._engine: sa.Engine | None = None
        self._sql = Compiler(dialect.compiler_dialect(), self.schema)
        t = self.tables
        self._run_cols = [t.runs.c[name] for name in rows.RUN_COLUMNS]
        self._limits_seen = False
        """Whether the last limited claim saw queues with limits (``claim_runnable``
        then starts with the limited claim: :meth:`_claim_limited`)."""
        self._limited_queues: set[str] = set()
        """Queues the last ``create_run(..., owner=)`` in them found limited: the next
        one there goes straight to :meth:`_create_limited` (a hint, as
        ``_limits_seen``: both ways keep the limits)."""
        self._inbox_cols = [t.inbox.c[name] for name in rows.INBOX_COLUMNS]
        self._event_cols = [t.events.c[name] for name in rows.EVENT_COLUMNS]

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(
            {
                Capability.SUBSCRIBE_EVENTS,
                Capability.DURABLE,
                Capability.MULTI_PROCESS,
                Capability.CLAIM_ON_CREATE,
                Capability.DEADLINES,
                *((Capability.QUEUES,) if self.queue_limits else ()),
                *((Capability.CHILDREN,) if self.children else ()),
            }
        )

    @property
    def db_system(self) -> str:
        """What its OpenTelemetry spans name as ``db.system`` (the dialect's name:
        ``sqlite``, ``postgresql``, ``mysql``; :mod:`workflow.runtime.traced_store`)."""
        return self._dialect.name

    @property
    def driver(self) -> Driver:
        """The driver the operations run on (statement counting hooks in here)."""
        return self._driver

    @property
    def compiler(self) -> Compiler:
        """The store's compiled statements."""
        return self._sql

    @property
    def engine(self) -> sa.Engine:
        """A synchronous SQLAlchemy engine on the same database, for migrations and
        administration (no pool: a connection per use). The operations never use it."""
        if self._engine is None:
            # Autocommit at the driver: a migration's transaction is spelled out
            # (Migrator), exactly as the operations' are.
            engine = sa.create_engine(
                self._migration_url,
                poolclass=NullPool,
                isolation_level="AUTOCOMMIT",
                skip_autocommit_rollback=True,
            )
            self._dialect.configure_engine(engine, autocommit=True)
            if self.schema is not None:
                engine = engine.execution_options(schema_translate_map={None: self.schema})
            self._engine = engine
        return self._engine

    # -- running bodies ----------------------------------------------------------------
    async def _run(self, body: Body[T], *, transaction: bool = False) -> T:
        """Run ``body`` in autocommit, or in a transaction (the dialect's BEGIN)."""
        return await self._driver.run(body, self._dialect.begin if transaction else None)

    def _q(self, key: Hashable, build: Any, values: Params | Sequence[Params]) -> Query:
        """The compiled statement of ``key`` (built by ``build`` on first use) with
        ``values``."""
        return Query(self._sql.get(key, build), values)

    def _batch(
        self,
        key: Hashable,
        build: Callable[[], Sequence[sa.ClauseElement | str]],
        values: Params,
    ) -> Query:
        """Several statements sent as one text, one round trip (dialects whose server
        runs multi-statement batches): see :func:`.compiled.batch`."""
        return Query(self._sql.get_batch(key, build), values)

    def _once(self, statement: sa.ClauseElement, values: Params | None = None) -> Query:
        """A statement compiled for this call only (its shape varies with values)."""
        return Query(self._sql.compile(statement), values or {})

    # -- shared query pieces ---------------------------------------------------------
    def _outer_run_id(self) -> sa.ColumnElement[Any]:
        return self._dialect.outer_column(self.tables.runs.c.run_id)

    def _inbox_json(self) -> sa.ScalarSelect[Any]:
        t = self.tables
        return (
            sa.select(self._dialect.json_rows(*self._inbox_cols))
            .where(t.inbox.c.run_id == self._outer_run_id(), t.inbox.c.consumed == sa.false())
            .scalar_subquery()
        )

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

    def _claim_values(self) -> list[tuple[sa.Column[Any], Any]]:
        """SET clause of a claim (p_owner, p_expires_at, p_now), in order: MySQL
        evaluates assignments left to right and lets later ones see earlier results,
        so ``updated_at`` (which reads the old status) must come before ``status``."""
        runs = self.tables.runs
        return [
            (
                runs.c.updated_at,
                sa.case(
                    (runs.c.status == RunStatus.RUNNING.value, runs.c.updated_at),
                    else_=bound("now", runs.c.updated_at.type),
                ),
            ),
            (runs.c.status, RunStatus.RUNNING.value),
            (runs.c.lease_owner, bound("owner", runs.c.lease_owner.type)),
            (runs.c.lease_token, runs.c.lease_token + 1),
            (runs.c.lease_expires_at, bound("expires_at", runs.c.lease_expires_at.type)),
        ]

    def _claimable(self) -> sa.ColumnElement[bool]:
        """The run may be claimed at p_now: queued, or running with an expired lease."""
        claimable = self._claimable_any_queue()
        if not self.queue_limits:
            return claimable
        # The one-statement claims leave runs of limited queues to _claim_limited.
        return sa.and_(claimable, queue_sql.unlimited_run(self.tables))

    def _claimable_any_queue(self) -> sa.ColumnElement[bool]:
        """Claimable at p_now, whatever its queue (the limited claim counts first)."""
        t = self.tables
        return sa.or_(queue_sql.queued(t), queue_sql.expired(t))

    def _claim_candidates(self) -> sa.Select[Any]:
        """The runs a claim takes (p_now, p_limit), in claim order, locked (SKIP
        LOCKED): ``run_id`` (``priority``, ``ready_at``) of each; two index ranges
        (:func:`.queue_sql.claimable_in_claim_order`)."""
        t = self.tables
        runs = t.runs
        where: list[sa.ColumnElement[bool]] = []
        if self.queue_limits:
            # While any queue has limits, claims of many go through _claim_limited
            # (one probe per statement), so that they keep one claim order. While none
            # has, every run's queue is unlimited: no need to look up each run's queue
            # (``_claimable`` would, once per run read, not per run claimed; the
            # UPDATE that claims still checks each run it claims).
            where.append(queue_sql.no_limited_queue(t))
        return queue_sql.claimable_in_claim_order(
            t,
            [runs.c.run_id, runs.c.priority, runs.c.ready_at],
            where,
            sa.bindparam("p_limit", type_=sa.Integer()),
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
        elif wait.kind is WaitKind.CHILD:
            options.append(sa.and_(inbox.c.kind == InboxKind.CHILD.value, inbox.c.key == key))
        if not options:
            return sa.false()
        return sa.and_(inbox.c.run_id == run_id, inbox.c.consumed == sa.false(), sa.or_(*options))

    def _wake_notice(self) -> sa.ColumnElement[Any] | None:
        """What a statement that can make a run claimable also evaluates, so that
        watchers in other processes hear of it (PostgreSQL: ``pg_notify``, sent at
        COMMIT); ``None`` for a store whose workers poll (SQLite, MySQL)."""
        return None

    def _insert(self, table: sa.Table, columns: Sequence[str]) -> sa.Insert:
        """``INSERT`` of ``columns``, each bound as ``p_<column>``."""
        return sa.insert(table).values({c: bound(c, table.c[c].type) for c in columns})

    def _queued(self) -> dict[str, sa.BindParameter[Any]]:
        """The queued values of a run, bound as ``p_q_*``."""
        runs = self.tables.runs
        return {k: bound(f"q_{k}", runs.c[k].type) for k in rows.queued_values(0)}

    # -- bodies the operations share -------------------------------------------------
    def _load(self, run_id: str, *, lock: bool = False) -> Body[rows.Row | None]:
        def build() -> sa.Select[Any]:
            runs = self.tables.runs
            stmt = sa.select(*self._run_cols).where(
                runs.c.run_id == bound("run_id", runs.c.run_id.type)
            )
            return stmt.with_for_update() if lock else stmt

        return (yield self._q(("select_run", lock), build, {"p_run_id": run_id})).first()

    def _lease_failure(
        self, run_id: str, lease: Lease, expected: int | None = None, *, settling: bool = False
    ) -> Body[WorkflowStoreError]:
        """Why a lease-guarded write matched no row. ``settling``: the write was a
        settle, whose guard also asks for no parent when it ends the run
        (:func:`.children_sql.settle_guard`); a child that holds its lease gets
        :class:`ParentFirst`, and is settled again with its parent locked first."""
        row = yield from self._load(run_id)
        if (
            settling
            and row is not None
            and row["parent_run_id"] is not None
            and row["lease_owner"] == lease.owner
            and int(row["lease_token"]) == lease.token
            and int(row["next_event_index"]) == expected
            and not RunStatus(row["status"]).terminal
        ):
            return ParentFirst(row["parent_run_id"])
        if row is None:
            return LeaseLostError(run_id, f"run {run_id!r} does not exist (deleted?)")
        if row["status"] == RunStatus.CANCELLED.value:
            return RunCancelledError(run_id)
        if row["status"] == RunStatus.TIMED_OUT.value:
            return RunTimedOutError(run_id)
        if row["lease_owner"] != lease.owner or int(row["lease_token"]) != lease.token:
            return LeaseLostError(run_id)
        if expected is not None:
            return LogConflictError(run_id, expected, int(row["next_event_index"]))
        return LeaseLostError(run_id)  # pragma: no cover - the row changed meanwhile

    def _write_log(
        self,
        run_id: str,
        expected: int,
        events: Sequence[EncodedEvent],
        consume: Sequence[InboxRef],
        now: int,
    ) -> Body[None]:
        """Insert ``events`` from index ``expected`` and consume the ``consume`` entries
        (the caller holds the run's lease, checked in the same transaction)."""
        t = self.tables
        if events:
            columns = ("run_id", "event_index", "type", "step_id", "data", "created_at")
            yield self._q(
                "insert_events",
                lambda: self._insert(t.events, columns),
                [
                    {
                        "p_run_id": run_id,
                        "p_event_index": expected + i,
                        "p_type": e.type,
                        "p_step_id": e.step_id,
                        "p_data": e.data,
                        "p_created_at": now,
                    }
                    for i, e in enumerate(events)
                ],
            )
        if consume:
            n = len(consume)

            def build() -> sa.Update:
                inbox = t.inbox
                refs = (
                    sa.and_(
                        inbox.c.kind == bound(f"kind{i}", inbox.c.kind.type),
                        inbox.c.key == bound(f"key{i}", inbox.c.key.type),
                    )
                    for i in range(n)
                )
                return (
                    sa.update(inbox)
                    .where(inbox.c.run_id == bound("run_id", inbox.c.run_id.type), sa.or_(*refs))
                    .values(consumed=True)
                )

            values: Params = {"p_run_id": run_id}
            for i, ref in enumerate(consume):
                values[f"p_kind{i}"] = ref.kind.value
                values[f"p_key{i}"] = ref.key
            yield self._q(("consume", n), build, values)

    # -- run lifecycle -------------------------------------------------------------

    @operation
    async def create_run(
        self,
        run_id: str,
        workflow_id: str,
        workflow_version: str | None,
        input: JSON,
        now: int,
        *,
        owner: str | None = None,
        lease_ms: int | None = None,
        deadline_at: int | None = None,
        queue: str = "default",
        priority: int = 0,
        partition_key: str | None = None,
        parent_run_id: str | None = None,
        parent_policy: ParentPolicy = ParentPolicy.CANCEL,
    ) -> CreateResult:
        a = arguments.new_run(
            run_id,
            workflow_id,
            workflow_version,
            input,
            now,
            max_bytes=self.max_payload_bytes,
            owner=owner,
            lease_ms=lease_ms,
            deadline_at=deadline_at,
            queue=queue,
            priority=priority,
            partition_key=partition_key,
            parent_run_id=parent_run_id,
            parent_policy=parent_policy,
            children=self.children,
        )
        if not self.queue_limits:
            refuse_placement(a.placement)
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
            "queue": a.placement.queue,
            "priority": a.placement.priority,
            "partition_key": a.placement.partition_key,
            "deadline_at": a.deadline_at,
        }
        queued = dict(values)
        key, build = "insert_run", self._run_insert
        if a.owner is not None:
            # Created claimed: the row a claim at the same ``now`` would leave, in the
            # same INSERT (one round trip); nobody else can see it queued.
            values |= {
                "status": RunStatus.RUNNING.value,
                "lease_token": 1,
                "lease_owner": a.owner,
                "lease_expires_at": a.expires_at,
            }
            # Not claimable, so no wake-up notice either.
            key, build = "insert_claimed_run", self._claimed_run_insert

        def insert() -> Body[rows.Row | None]:
            """None when inserted, else the run that holds the id ({} if it vanished);
            ``LIMITED`` when a claimed insert left a limited queue to _create_limited."""
            try:
                done = yield self._q(key, build, prefixed(values, ""))
                if key == "insert_claimed_run" and self.queue_limits and done.rowcount == 0:
                    return LIMITED
                return None
            except DuplicateKey:
                pass
            return (yield from self._load(a.run_id)) or {}

        if a.parent_run_id is not None:
            return await self._create_child(a, values, queued)
        limited = a.owner is not None and a.placement.queue in self._limited_queues
        for _ in range(3):
            row = LIMITED if limited else await self._run(insert())
            if row is LIMITED:
                try:
                    claimed = await self._create_limited(a, values)
                except DuplicateKey:
                    # The id is taken (the claimed INSERT of a limited queue inserts
                    # nothing either way, so it cannot tell): who holds it?
                    row = await self._run(self._load(a.run_id)) or {}
                else:
                    run = rows.run_from_row(_with_defaults(values if claimed else queued))
                    return Created(run, run.lease)
            if row is None:
                run = rows.run_from_row(_with_defaults(values))
                return Created(run, run.lease)
            if row:
                run = rows.run_from_row(row)
                return Existing(run) if run.workflow_id == a.workflow_id else Conflict(run)
            # Deleted between the two statements: try again.
        raise StoreUnavailableError(f"run {a.run_id!r} kept changing under create_run")

    async def _create_child(
        self, a: arguments.NewRun, values: dict[str, Any], queued: dict[str, Any]
    ) -> CreateResult:
        """``create_run`` with a parent: one transaction that holds the parent's row
        (shared) while it reads its status and inserts the child."""
        for _ in range(3):
            try:
                return await self._run(self._create_child_body(a, values, queued), transaction=True)
            except DuplicateKey:
                continue  # created meanwhile: the next round answers it
        raise StoreUnavailableError(f"run {a.run_id!r} kept changing under create_run")

    def _create_child_body(
        self, a: arguments.NewRun, values: dict[str, Any], queued: dict[str, Any]
    ) -> Body[CreateResult]:
        assert a.parent_run_id is not None
        assert a.parent_policy is not None
        existing = yield from self._load(a.run_id)
        if existing is not None:
            run = rows.run_from_row(existing)
            return Existing(run) if run.workflow_id == a.workflow_id else Conflict(run)
        runs = self.tables.runs
        found = yield self._q(
            "lock_parent_shared",
            lambda: children_sql.lock_share(self.tables, [runs.c.run_id, runs.c.status]),
            {"p_run_id": a.parent_run_id},
        )
        parent = found.first()
        if parent is None:
            raise InvalidArgumentError(
                f"parent_run_id: run {a.parent_run_id!r} does not exist (create the parent first)"
            )
        link = {"parent_run_id": a.parent_run_id, "parent_policy": a.parent_policy.value}
        parent_status = RunStatus(parent["status"])
        if a.parent_policy is ParentPolicy.CANCEL and parent_status in _CASCADING:
            # The cascade it came too late for: created ended, never claimable.
            row = {
                **queued,
                **link,
                **children_sql.cascaded_values(a.now),
                "error": codec.encode_error(
                    arguments.parent_ended_error(a.parent_run_id, parent_status.value)
                ),
            }
            yield self._run_row_insert(row, notify=False)
            return Created(rows.run_from_row(_with_defaults(row)), None)
        if a.owner is not None and self.queue_limits:
            # Its queue may have limits: decided in the INSERT (the id is free: the
            # run was loaded above, and a run created meanwhile raises DuplicateKey).
            claimed, _ = yield from self._limited_insert(a, {**values, **link})
            row = {**(values if claimed else queued), **link}
        else:
            row = {**values, **link}
            yield self._run_row_insert(row, notify=a.owner is None)
        run = rows.run_from_row(_with_defaults(row))
        return Created(run, run.lease)

    def _run_row_insert(self, values: dict[str, Any], *, notify: bool) -> Query:
        """The INSERT of a run row with ``values`` (``notify``: a queued run, which
        notifies watchers where the store can)."""
        columns = tuple(values)

        def build() -> sa.Insert:
            insert = self._insert(self.tables.runs, columns)
            notice = self._wake_notice() if notify else None
            return insert if notice is None else insert.returning(notice.label("woke"))

        return self._q(("insert_run_row", columns, notify), build, prefixed(values, ""))

    def _claimed_run_insert(self) -> sa.Insert:
        """A run created claimed (``create_run(..., owner=, lease_ms=)``); with queue
        limits, only when its queue has none (else no row: _create_limited decides)."""
        runs = self.tables.runs
        if not self.queue_limits:
            return self._insert(runs, CLAIMED_RUN_INSERT)
        q = self.tables.queues
        values = sa.select(*(bound(c, runs.c[c].type) for c in CLAIMED_RUN_INSERT)).where(
            ~sa.exists().where(
                q.c.name == bound("queue", q.c.name.type), queue_sql.limited(self.tables)
            )
        )
        return sa.insert(runs).from_select(list(CLAIMED_RUN_INSERT), values)

    async def _create_limited(self, a: arguments.NewRun, claimed: dict[str, Any]) -> bool:
        """Insert a new run claimed (``claimed``: its values) if its queue and key have
        room, else queued, in one atomic step (:meth:`_limited_insert`); True if
        claimed. An id that exists raises DuplicateKey."""
        claimed_now, limited = await self._run(self._limited_insert(a, claimed), transaction=True)
        self._note_limited(a.placement.queue, limited)
        return claimed_now

    def _note_limited(self, queue: str, limited: bool) -> None:
        """Remember whether ``queue`` had limits at the last create in it."""
        if not limited:
            self._limited_queues.discard(queue)
            return
        if len(self._limited_queues) >= MAX_LIMITED_HINTS:
            self._limited_queues.clear()
        self._limited_queues.add(queue)

    def _lock_limited_queue(self, a: arguments.NewRun) -> Query:
        """Lock the new run's queue's row if it has limits, in a statement before the
        decision: at READ COMMITTED a statement's snapshot is taken when it starts, so
        the decision, started after the lock is held, sees every lease its previous
        holder committed (as the limited claim's, :func:`.queue_sql.lock_limited_names`)."""
        return self._q(
            "lock_limited_queue",
            lambda: queue_sql.lock_limited_queue(self.tables),
            {"p_queue": a.placement.queue},
        )

    def _count_created_claim(self, a: arguments.NewRun) -> Query:
        """Count the new run's claim in its queue's rate window, if it was inserted
        claimed and its queue has a rate limit (else the UPDATE matches nothing)."""
        return self._q(
            "count_created_claim",
            lambda: queue_sql.count_in_windows(self.tables, queue_sql.created_claimed(self.tables)),
            {"p_run_id": a.run_id, "p_now": a.now},
        )

    def _decided_params(self, claimed: dict[str, Any], now: int) -> Params:
        return {**prefixed(claimed, ""), "p_now": now}

    def _limited_insert(
        self, a: arguments.NewRun, claimed: dict[str, Any]
    ) -> Body[tuple[bool, bool]]:
        """In a transaction: lock the queue's row (where the dialect's transaction
        does not serialise writers already), insert the run claimed or queued as
        :func:`.queue_sql.decided_insert` decides, count a claim in the queue's rate
        window (an UPDATE that matches nothing otherwise), and read what was decided:
        whether the run was claimed, and whether its queue has limits (this portable
        body does not read that: True, which keeps the hint)."""
        if self._dialect.locks_rows:
            yield self._lock_limited_queue(a)
        columns = tuple(claimed)
        yield self._q(
            ("decided_insert", columns),
            lambda: queue_sql.decided_insert(self.tables, columns)[0],
            self._decided_params(claimed, a.now),
        )
        yield self._count_created_claim(a)
        row = yield from self._load(a.run_id)
        assert row is not None  # inserted by this transaction
        return row["status"] == RunStatus.RUNNING.value, True

    def _run_insert(self) -> sa.Insert:
        """A new queued run's INSERT (it notifies watchers where the store can)."""
        insert = self._insert(self.tables.runs, CREATED_RUN_INSERT)
        notice = self._wake_notice()
        return insert if notice is None else insert.returning(notice.label("woke"))

    @operation
    async def load_run(self, run_id: str) -> Run | None:
        run_id = validation.check_id(run_id, "run_id")
        row = await self._run(self._load(run_id))
        return None if row is None else rows.run_from_row(row)

    @operation
    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | Collection[RunStatus] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        parent_run_id: str | None = None,
    ) -> Page:
        parent_run_id = arguments.children_listing(parent_run_id, children=self.children)
        workflow_id = validation.check_optional_id(workflow_id, "workflow_id")
        statuses = validation.check_statuses(status)
        limit = validation.check_limit(limit)
        after = None if cursor is None else decode_cursor(cursor)
        wanted = sorted(s.value for s in statuses) if statuses is not None else []
        shape = (
            workflow_id is not None,
            len(wanted) if statuses is not None else None,
            bool(after),
            parent_run_id is not None,
        )

        def build() -> sa.Select[Any]:
            runs = self.tables.runs
            stmt = sa.select(*self._run_cols)
            if parent_run_id is not None:
                stmt = stmt.where(children_sql.children_page(self.tables))
            if workflow_id is not None:
                stmt = stmt.where(
                    runs.c.workflow_id == bound("workflow_id", runs.c.workflow_id.type)
                )
            if statuses is not None:
                options = [bound(f"s{i}", runs.c.status.type) for i in range(len(wanted))]
                stmt = stmt.where(runs.c.status.in_(options) if options else sa.false())
            if after is not None:
                stmt = stmt.where(
                    self._dialect.keyset_before(
                        (runs.c.created_at, runs.c.run_id),
                        (
                            bound("after_at", runs.c.created_at.type),
                            bound("after_id", runs.c.run_id.type),
                        ),
                    )
                )
            return stmt.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(
                sa.bindparam("p_limit", type_=sa.Integer())
            )

        values: Params = {"p_limit": limit + 1, "p_workflow_id": workflow_id}
        if parent_run_id is not None:
            values["p_parent_run_id"] = parent_run_id
        values.update((f"p_s{i}", s) for i, s in enumerate(wanted))
        if after is not None:
            values["p_after_at"], values["p_after_id"] = after

        def select() -> Body[list[Run]]:
            found = yield self._q(("list_runs", shape), build, values)
            return [rows.run_from_row(r) for r in found.mappings()]

        found = await self._run(select())
        page = found[:limit]
        more = len(found) > limit
        next_cursor = encode_cursor(page[-1].created_at, page[-1].run_id) if more else None
        return Page(page, next_cursor)

    def _read_events(
        self, run_id: str, from_index: int, limit: int | None
    ) -> Body[list[StoredEvent]]:
        def build() -> sa.Select[Any]:
            events = self.tables.events
            stmt = (
                sa.select(*self._event_cols)
                .where(
                    events.c.run_id == bound("run_id", events.c.run_id.type),
                    events.c.event_index >= bound("from", events.c.event_index.type),
                )
                .order_by(events.c.event_index)
            )
            return (
                stmt if limit is None else stmt.limit(sa.bindparam("p_limit", type_=sa.Integer()))
            )

        found = yield self._q(
            ("read_events", limit is None),
            build,
            {"p_run_id": run_id, "p_from": from_index, "p_limit": limit},
        )
        return [rows.event_from_row(run_id, r) for r in found.mappings()]

    @operation
    async def get_timeline(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> Timeline | None:
        run_id = validation.check_id(run_id, "run_id")
        from_index = validation.check_index(from_index, "from_index")
        limit = validation.check_optional_limit(limit)

        def read() -> Body[Timeline | None]:
            row = yield from self._load(run_id)
            if row is None:
                return None
            events = yield from self._read_events(run_id, from_index, limit)
            return Timeline(rows.run_from_row(row), events)

        # One transaction so the run and its events are one consistent snapshot.
        return await self._run(read(), transaction=True)

    @staticmethod
    def _cancelled_values(a: arguments.Cancellation) -> dict[str, Any]:
        """The columns of a run ``cancel_run`` cancels: its error, no lease, no wait."""
        return {
            "status": RunStatus.CANCELLED.value,
            "error": a.error,
            "lease_owner": None,
            "lease_expires_at": None,
            "ready_at": None,
            "finished_at": a.now,
            "updated_at": a.now,
            **rows.wait_values(None),
        }

    @operation
    async def cancel_run(self, run_id: str, reason: str, now: int) -> CancelResult:
        a = arguments.cancellation(run_id, reason, now, max_bytes=self.max_payload_bytes)
        values = self._cancelled_values(a)

        def build() -> sa.Update:
            runs = self.tables.runs
            return (
                sa.update(runs)
                .where(runs.c.run_id == bound("run_id", runs.c.run_id.type))
                .values({k: bound(f"v_{k}", runs.c[k].type) for k in values})
            )

        def cancel() -> Body[CancelResult]:
            parent = None
            if self.children:
                row, parent = yield from self._lock_with_parent(a.run_id)
            else:
                row = yield from self._load(a.run_id, lock=True)
            if row is None:
                return NotFound(a.run_id)
            if RunStatus(row["status"]).terminal:
                return AlreadyTerminal(rows.run_from_row(row))
            yield self._q("cancel", build, {"p_run_id": a.run_id, **prefixed(values, "v_")})
            ended = {**row, **values}
            if self.children:
                yield from self._child_ended(parent, ended, a.now)
                yield from self._cascade([(a.run_id, RunStatus.CANCELLED)], a.now)
            return Cancelled(rows.run_from_row(ended))

        return await self._run(cancel(), transaction=True)

    # -- children ----------------------------------------------------------------------
    def _lock_with_parent(self, run_id: str) -> Body[tuple[rows.Row | None, rows.Row | None]]:
        """Lock the run ``run_id``, and its parent's row before it if it has a parent
        (the lock order of :mod:`.children_sql`): (run, parent), each None if absent.
        A run without a parent costs one statement, as a plain lock did."""
        row = (
            yield self._q(
                "lock_orphan",
                lambda: children_sql.lock_orphan(self.tables, self._run_cols),
                {"p_run_id": run_id},
            )
        ).first()
        if row is not None:
            return row, None
        seen = yield from self._load(run_id)
        if seen is None:
            return None, None
        parent = None
        if seen["parent_run_id"] is not None:  # fixed at creation: safe to read unlocked
            parent = yield from self._load(seen["parent_run_id"], lock=True)
        return (yield from self._load(run_id, lock=True)), parent

    def _child_ended(self, parent: rows.Row | None, child: rows.Row, now: int) -> Body[bool]:
        """The end of ``child`` (its row as ended) reaches its live ``parent`` (locked
        by the caller; None: gone): a ``child`` entry (an earlier one of that key is
        kept), and the parent queued if it waits for exactly this child (True)."""
        if parent is None or RunStatus(parent["status"]).terminal:
            return False
        child_id = child["run_id"]
        payload = arguments.child_payload(
            child["status"], codec.decode(child["output"]), codec.decode_error(child["error"])
        )
        entry = {
            "run_id": parent["run_id"],
            "kind": InboxKind.CHILD.value,
            "key": child_id,
            "name": None,
            "step_id": None,
            # The store's own record of values it accepted: no size limit of its own.
            "payload": codec.encode(payload, max_bytes=2**31),
            "meta": None,
            "received_at": now,
            "consumed": False,
        }
        inbox = self.tables.inbox
        yield self._q(
            "insert_child_entry",
            lambda: self._dialect.insert_ignore(inbox).values(
                {c: bound(c, inbox.c[c].type) for c in entry}
            ),
            prefixed(entry, ""),
        )
        if (
            parent["status"] == RunStatus.PAUSED.value
            and parent["wait_kind"] == WaitKind.CHILD.value
            and parent["wait_key"] == child_id
        ):
            yield self._q(
                "wake_parent",
                self._waking_parent,
                {"p_run_id": parent["run_id"], **prefixed(rows.queued_values(now), "q_")},
            )
            return True
        return False

    def _waking_parent(self) -> sa.Update:
        """Queue the run p_run_id (a parent whose awaited child ended; it is locked and
        paused), notifying watchers where the store can."""
        runs = self.tables.runs
        update = (
            sa.update(runs)
            .where(runs.c.run_id == bound("run_id", runs.c.run_id.type))
            .values(self._queued())
        )
        notice = self._wake_notice()
        return update if notice is None else update.returning(notice.label("woke"))

    def _cascade(self, ended: Sequence[tuple[str, RunStatus]], now: int) -> Body[list[str]]:
        """End the live ``cancel``-policy descendants of the runs ``ended`` (just
        cancelled or timed out, still locked), level by level: each level's rows are
        locked after their parents', never before. Each child gets its own parent's
        ``ParentEnded`` error and writes no entry (its parent has ended). Returns the
        ids of the runs it ended."""
        level = {run_id: status for run_id, status in ended}
        values = children_sql.cascaded_values(now)
        done: list[str] = []
        while level:
            parents = sorted(level)
            n = len(parents)
            found = yield self._q(
                ("cancel_children_lock", n),
                lambda n=n: children_sql.live_cancel_children(self.tables, n),
                {f"p_par{i}": p for i, p in enumerate(parents)},
            )
            children = [(r["run_id"], r["parent_run_id"]) for r in found.mappings()]
            if not children:
                break
            used = sorted({p for _, p in children})
            params: Params = {**prefixed(values, "v_")}
            for i, p in enumerate(used):
                params[f"p_par{i}"] = p
                params[f"p_err{i}"] = codec.encode_error(
                    arguments.parent_ended_error(p, level[p].value)
                )
            for i, (child_id, _) in enumerate(children):
                params[f"p_id{i}"] = child_id
            m, k = len(used), len(children)
            yield self._q(
                ("cancel_children", m, k),
                lambda m=m, k=k: children_sql.cancel_children(self.tables, m, k),
                params,
            )
            level = {child_id: RunStatus.CANCELLED for child_id, _ in children}
            done += level
        return done

    @operation
    async def delete_run(self, run_id: str) -> bool:
        run_id = validation.check_id(run_id, "run_id")

        def build() -> sa.Delete:
            runs = self.tables.runs
            return sa.delete(runs).where(runs.c.run_id == bound("run_id", runs.c.run_id.type))

        def delete() -> Body[bool]:
            # Events and inbox rows go with it (ON DELETE CASCADE).
            return bool((yield self._q("delete_run", build, {"p_run_id": run_id})).rowcount)

        return await self._run(delete())

    @operation
    async def purge_runs(self, terminal_before: int, limit: int) -> int:
        terminal_before = validation.check_time(terminal_before, "terminal_before")
        limit = validation.check_limit(limit)
        runs = self.tables.runs

        def build() -> sa.Select[Any]:
            return (
                sa.select(runs.c.run_id)
                .where(runs.c.finished_at < bound("before", runs.c.finished_at.type))
                .order_by(runs.c.finished_at, runs.c.run_id)
                .limit(sa.bindparam("p_limit", type_=sa.Integer()))
                .with_for_update(skip_locked=True)
            )

        def purge() -> Body[int]:
            found = yield self._q(
                "purge_select", build, {"p_before": terminal_before, "p_limit": limit}
            )
            ids = found.scalars()
            if not ids:
                return 0
            n = len(ids)
            deleted = yield self._q(
                ("purge_delete", n),
                lambda: sa.delete(runs).where(
                    runs.c.run_id.in_([bound(f"id{i}", runs.c.run_id.type) for i in range(n)])
                ),
                {f"p_id{i}": r for i, r in enumerate(ids)},
            )
            return deleted.rowcount

        return await self._run(purge(), transaction=True)

    # -- execution -------------------------------------------------------------------
    def _claim_params(self, a: arguments.Claim | arguments.ClaimMany) -> Params:
        return {"p_owner": a.owner, "p_expires_at": a.now + a.lease_ms, "p_now": a.now}

    @operation
    async def claim_run(
        self, run_id: str, owner: str, lease_ms: int, now: int, *, with_history: bool = False
    ) -> ClaimResult:
        a = arguments.claim(run_id, owner, lease_ms, now, with_history)
        return await self._claim_or_limited(a, await self._claim(a))

    async def _claim(self, a: arguments.Claim) -> ClaimResult:
        if self.queue_limits:  # the portable claim: the limited claim counts first
            return await self._claim_run_limited(a)
        return await self._run(self._claim_one(a), transaction=True)

    def _claim_one(self, a: arguments.Claim) -> Body[ClaimResult]:
        """Lock the run, decide, claim, read the claim back (four statements)."""
        current = yield from self._load(a.run_id, lock=True)
        if current is None:
            return NotFound(a.run_id)
        run = rows.run_from_row(current)
        if not (
            run.status is RunStatus.QUEUED
            or (run.status is RunStatus.RUNNING and run.lease and run.lease.expires_at <= a.now)
        ):
            return NotClaimable(run)

        def build() -> sa.Update:
            runs = self.tables.runs
            return (
                sa.update(runs)
                .where(runs.c.run_id == bound("run_id", runs.c.run_id.type))
                .ordered_values(*self._claim_values())
            )

        yield self._q("claim_locked", build, {"p_run_id": a.run_id, **self._claim_params(a)})
        claimed = yield from self._read_claimed([a.run_id], a.with_history)
        return claimed[0]

    def _read_claimed(self, run_ids: Sequence[str], history: bool) -> Body[list[Claimed]]:
        n = len(run_ids)

        def build() -> sa.Select[Any]:
            runs = self.tables.runs
            ids = [bound(f"id{i}", runs.c.run_id.type) for i in range(n)]
            return sa.select(*self._claim_returning(history)).where(runs.c.run_id.in_(ids))

        found = yield self._q(
            ("read_claimed", n, history), build, {f"p_id{i}": r for i, r in enumerate(run_ids)}
        )
        return [self._claimed(r, history) for r in found.mappings()]

    @operation
    async def claim_runnable(
        self,
        owner: str,
        lease_ms: int,
        limit: int,
        now: int,
        *,
        with_history: bool = False,
        queues: Collection[str] | None = None,
    ) -> list[Claimed]:
        a = arguments.claim_many(owner, lease_ms, limit, now, with_history, queues)
        if not self.queue_limits:
            if not serves_default(a.queues):
                return []  # every run of this store is in the default queue
            claims = await self._claim_runnable(a)
        elif a.queues is not None or self._limits_seen:
            claims = await self._claim_limited(a)
        else:
            claims = await self._claim_runnable(a)
            if len(claims) < a.limit:
                # Short: nothing more to claim, or some queue has limits (the one
                # statement took nothing then); the limited claim tells which.
                claims += await self._claim_limited(replace(a, limit=a.limit - len(claims)))
        claims.sort(key=lambda c: (-c.run.priority, c.run.ready_at or 0, c.run.run_id))
        return claims

    async def _claim_runnable(self, a: arguments.ClaimMany) -> list[Claimed]:
        return await self._run(self._claim_many(a), transaction=True)

    def _claim_many(self, a: arguments.ClaimMany) -> Body[list[Claimed]]:
        """Pick (SKIP LOCKED), claim, read back."""
        found = yield self._q(
            "claim_candidates", self._claim_candidates, {"p_now": a.now, "p_limit": a.limit}
        )
        ids = found.scalars()
        if not ids:
            return []
        yield self._claim_ids(a, ids)
        return (yield from self._read_claimed(ids, a.with_history))

    # -- queue limits ------------------------------------------------------------------
    def _claim_ids_update(self, n: int) -> sa.Update:
        """The UPDATE that claims ``n`` runs by id (``p_id<i>``)."""
        runs = self.tables.runs
        return (
            sa.update(runs)
            .where(runs.c.run_id.in_([bound(f"id{i}", runs.c.run_id.type) for i in range(n)]))
            .ordered_values(*self._claim_values())
        )

    def _claim_ids(self, a: arguments.ClaimMany, ids: Sequence[str]) -> Query:
        """The UPDATE that claims the runs ``ids`` (picked and locked already)."""
        n = len(ids)
        return self._q(
            ("claim_picked", n),
            lambda: self._claim_ids_update(n),
            {**self._claim_params(a), **{f"p_id{i}": r for i, r in enumerate(ids)}},
        )

    async def _claim_limited(self, a: arguments.ClaimMany) -> list[Claimed]:
        """``claim_runnable`` where queues may have limits: rounds of one atomic step
        each (:meth:`_limited_round`), until ``limit`` runs are claimed or the page of
        candidates was not full (nothing more to take)."""
        claims: list[Claimed] = []
        after: rows.Row | None = None
        t = queue_sql.TAKE
        while True:
            more = replace(a, limit=a.limit - len(claims))
            got, picked = await self._limited_round(more, after)
            claims += got
            if picked:
                # Which claim the next call starts with: a hint, never a guarantee
                # (both claims keep the limits, the cheaper one is tried first).
                self._limits_seen = bool(picked[0][f"{t}limited"])
            if len(claims) >= a.limit or not picked:
                return claims
            # The last run picked: its place tells whether the page was full.
            after = max(picked, key=_in_claim_order)
            if after[f"{t}picked"] < self._page(more):
                return claims
            # A full page left short by runs whose queue or key had too little room
            # for all of them: the next round starts after it.

    @staticmethod
    def _page(a: arguments.ClaimMany) -> int:
        """Candidates one round reads: a few more than it may take, so that runs of a
        key or queue with less room than runs rarely leave a round short."""
        return a.limit + 16

    def _limited_params(
        self, a: arguments.ClaimMany, after: rows.Row | None, run_id: str | None = None
    ) -> Params:
        t = queue_sql.TAKE
        params: Params = {
            **({"p_run_id": run_id} if run_id is not None else {}),
            **self._claim_params(a),
            "p_limit": a.limit,
            "p_page": self._page(a),
            **{f"p_qn{i}": q for i, q in enumerate(sorted(a.queues or ()))},
        }
        if after is not None:
            params |= {
                "p_after_priority": after[f"{t}priority"],
                "p_after_ready_at": after[f"{t}ready_at"],
                "p_after_run_id": after[f"{t}run_id"],
            }
        return params

    def _limited_takes(self, n_queues: int, after: bool, one_run: bool) -> sa.Select[Any]:
        """The runs one limited round picks, and which it takes
        (:func:`.queue_sql.takes`)."""
        t = self.tables
        lim, keyed, room = self._limits_now()
        candidates = queue_sql.limited_candidates(t, room, n_queues, after, one_run)
        return queue_sql.takes(t, self._picked(candidates), lim, keyed)

    def _limits_now(self) -> tuple[sa.CTE, sa.CTE, sa.ColumnElement[bool]]:
        """``lim``, ``keyed`` (:func:`.queue_sql.limit_state`,
        :func:`.queue_sql.keyed_leases`) and whether a candidate run's queue and key
        have room (:func:`.queue_sql.has_room`) in a limited round's decision, which
        counts them here (a dialect that batches may count them in a statement
        before it)."""
        t = self.tables
        lim = queue_sql.limit_state(t)
        keyed = queue_sql.keyed_leases(t)
        return lim, keyed, queue_sql.has_room(t, lim, keyed)

    def _picked(self, candidates: sa.Select[Any]) -> sa.CTE:
        return candidates.cte("picked")

    async def _limited_round(
        self, a: arguments.ClaimMany, after: rows.Row | None, run_id: str | None = None
    ) -> tuple[list[Claimed], Sequence[rows.Row]]:
        """One atomic step of a limited claim: the claims, and the ``takes`` rows
        (``run_id``: of that run only, for ``claim_run``)."""
        return await self._run(self._limited_body(a, after, run_id), transaction=True)

    async def _limited_batch(
        self,
        a: arguments.ClaimMany,
        after: rows.Row | None,
        run_id: str | None,
        build: Callable[[], Sequence[sa.ClauseElement | str]],
        shape: Hashable = None,
    ) -> tuple[list[Claimed], Sequence[rows.Row]]:
        """A limited round as one batch (dialects that send the lock, the decision and
        the claim as one text): ``build`` gives the statements (``shape``: what else
        their text depends on); the last one's rows are the picked runs, with their
        claims where taken."""
        n_queues, history = len(a.queues or ()), a.with_history

        def claim() -> Body[tuple[list[Claimed], Sequence[rows.Row]]]:
            found = yield self._batch(
                ("limited_claim", n_queues, after is not None, run_id is not None, history, shape),
                build,
                self._limited_params(a, after, run_id),
            )
            picked = found.mappings()
            return [self._claimed(r, history) for r in picked if r["run_id"] is not None], picked

        return await self._run(claim())

    def _limited_body(
        self, a: arguments.ClaimMany, after: rows.Row | None, run_id: str | None
    ) -> Body[tuple[list[Claimed], Sequence[rows.Row]]]:
        """Lock the limited queues (where the dialect's transaction does not serialise
        writers already), pick and decide in one statement, claim, count the windows."""
        if self._dialect.locks_rows:
            yield self._q(
                "lock_limited_names", lambda: queue_sql.lock_limited_names(self.tables), {}
            )
        n_queues = len(a.queues or ())
        one_run = run_id is not None
        found = yield self._q(
            ("limited_takes", n_queues, after is not None, one_run),
            lambda: self._limited_takes(n_queues, after is not None, one_run),
            self._limited_params(a, after, run_id),
        )
        picked = found.mappings()
        t = queue_sql.TAKE
        taken = [r for r in picked if r[f"{t}take"]]
        if not taken:
            return [], picked
        ids = [r[f"{t}run_id"] for r in taken]
        claims = yield from self._claim_picked(a, ids)
        if any(r[f"{t}rated"] for r in taken):
            yield self._count_in_windows(a.now, ids)
        return claims, picked

    def _count_in_windows(self, now: int, ids: Sequence[str]) -> Query:
        """Count the claims of the runs ``ids`` in their queues' rate windows."""
        n = len(ids)

        def windows() -> sa.Update:
            runs = self.tables.runs
            claimed = (
                sa.select(runs.c.queue)
                .where(runs.c.run_id.in_([bound(f"id{i}", runs.c.run_id.type) for i in range(n)]))
                .subquery("claimed")
            )
            return queue_sql.count_in_windows(self.tables, claimed)

        return self._q(
            ("count_in_windows", n),
            windows,
            {"p_now": now, **{f"p_id{i}": r for i, r in enumerate(ids)}},
        )

    def _claim_picked(self, a: arguments.ClaimMany, ids: Sequence[str]) -> Body[list[Claimed]]:
        """Claim the runs ``ids`` (picked and decided already) and read the claims."""
        yield self._claim_ids(a, ids)
        return (yield from self._read_claimed(ids, a.with_history))

    async def _claim_or_limited(self, a: arguments.Claim, answer: ClaimResult) -> ClaimResult:
        """A one-statement claim's answer, unless it left the run to a queue limit:
        then the limited claim's round, for that run only."""
        if not (
            self.queue_limits and isinstance(answer, NotClaimable) and _claimable(answer.run, a.now)
        ):
            return answer
        return await self._claim_run_limited(a)

    async def _claim_run_limited(self, a: arguments.Claim) -> ClaimResult:
        """``claim_run`` through one round of the limited claim, for that run only."""
        many = arguments.ClaimMany(a.owner, a.lease_ms, 1, a.now, a.with_history)
        claims, _ = await self._limited_round(many, None, a.run_id)
        if claims:
            return claims[0]
        current = await self._run(self._load(a.run_id))
        return NotFound(a.run_id) if current is None else NotClaimable(rows.run_from_row(current))

    @operation
    async def upsert_queue(
        self,
        name: str,
        now: int,
        *,
        concurrency: int | None = None,
        per_key_concurrency: int | None = None,
        rate_limit: RateLimit | None = None,
    ) -> Queue:
        queue = queue_config(name, now, concurrency, per_key_concurrency, rate_limit)
        self._require_queue_limits()
        values = prefixed(rows.queue_values(queue), "")

        def upsert() -> Body[None]:
            done = yield self._q(
                "update_queue", lambda: queue_sql.update_queue(self.tables), values
            )
            if done.rowcount == 0:
                yield self._q("insert_queue", lambda: queue_sql.insert_queue(self.tables), values)

        for _ in range(3):
            try:
                await self._run(upsert(), transaction=True)
                return queue
            except DuplicateKey:
                continue  # created meanwhile: update it
        raise StoreUnavailableError(f"queue {queue.name!r} kept changing under upsert_queue")

    @operation
    async def get_queue(self, name: str) -> Queue | None:
        name = validation.check_id(name, "name")
        self._require_queue_limits()

        def get() -> Body[Queue | None]:
            found = yield self._q(
                ("select_queues", True),
                lambda: queue_sql.select_queues(self.tables, True),
                {"p_name": name},
            )
            row = found.first()
            return None if row is None else rows.queue_from_row(row)

        return await self._run(get())

    @operation
    async def list_queues(self) -> list[Queue]:
        self._require_queue_limits()

        def select() -> Body[list[Queue]]:
            found = yield self._q(
                ("select_queues", False), lambda: queue_sql.select_queues(self.tables, False), {}
            )
            return [rows.queue_from_row(r) for r in found.mappings()]

        return await self._run(select())

    def _require_queue_limits(self) -> None:
        if not self.queue_limits:
            raise InvalidArgumentError(
                f"{type(self).__name__} does not declare Capability.QUEUES: it cannot keep "
                "queue limits"
            )

    @operation
    async def heartbeat(self, run_id: str, lease: Lease, lease_ms: int, now: int) -> Lease:
        a = arguments.renewal(run_id, lease, lease_ms, now)
        expires_at = a.now + a.lease_ms

        def build() -> sa.Update:
            runs = self.tables.runs
            return (
                sa.update(runs)
                .where(
                    runs.c.run_id == bound("run_id", runs.c.run_id.type),
                    runs.c.lease_owner == bound("owner", runs.c.lease_owner.type),
                    runs.c.lease_token == bound("token", runs.c.lease_token.type),
                    *((queue_sql.renewable(self.tables),) if self.queue_limits else ()),
                )
                .values(lease_expires_at=bound("expires_at", runs.c.lease_expires_at.type))
            )

        def renew() -> Body[Lease]:
            # Row counts are matched rows on every driver the stores use (MySQL:
            # CLIENT_FOUND_ROWS), so renewing to the same expiry still counts.
            done = yield self._q(
                "renew",
                build,
                {
                    "p_run_id": a.run_id,
                    "p_owner": a.lease.owner,
                    "p_token": a.lease.token,
                    "p_expires_at": expires_at,
                    **({"p_now": a.now} if self.queue_limits else {}),
                },
            )
            if done.rowcount != 1:
                raise (yield from self._lease_failure(a.run_id, a.lease))
            return Lease(a.lease.owner, a.lease.token, expires_at)

        return await self._run(renew())

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
        return await self._append_events(log)

    async def _append_events(self, log: arguments.LogWrite) -> int:
        return await self._run(self._append(log), transaction=True)

    def _append(self, log: arguments.LogWrite) -> Body[int]:
        """The compare-and-swap on next_event_index, fenced by the lease token, then
        the log writes."""

        def build() -> sa.Update:
            runs = self.tables.runs
            return (
                sa.update(runs)
                .where(lease_guard(self.tables.runs))
                .values(next_event_index=bound("next", runs.c.next_event_index.type))
            )

        bumped = yield self._q(
            "bump_log", build, {**lease_guard_params(log), "p_next": log.next_index}
        )
        if bumped.rowcount != 1:
            raise (yield from self._lease_failure(log.run_id, log.lease, log.expected))
        yield from self._write_log(log.run_id, log.expected, log.events, log.consume, log.now)
        return log.next_index

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
        values = settled_values(a)
        try:
            return await self._settle(a, values)
        except ParentFirst as first:
            body = self._settle_child(a, values, first.parent_run_id)
            return await self._run(body, transaction=True)

    def _settle_child(
        self, a: arguments.Settlement, values: dict[str, Any], parent_run_id: str
    ) -> Body[Run]:
        """The terminal settle of a run with a parent: lock the parent, settle (the
        guard without its no-parent clause), then the child's end reaches the parent."""
        log = a.log
        parent = yield from self._load(parent_run_id, lock=True)
        row = yield from self._settle_update(log, values, orphan=False)
        if row is None:
            raise (yield from self._lease_failure(log.run_id, log.lease, log.expected))
        settled = dict(row)
        yield from self._write_log(log.run_id, log.expected, log.events, log.consume, log.now)
        yield from self._child_ended(parent, settled, log.now)
        return rows.run_from_row(settled)

    def _settle_guard(self, values: dict[str, Any]) -> sa.ColumnElement[bool]:
        """The guard of a settle's write: :func:`lease_guard`, and no parent when it ends
        the run (a store with children: :func:`.children_sql.settle_guard`)."""
        guard = lease_guard(self.tables.runs)
        return children_sql.settle_guard(guard, self.tables, values) if self.children else guard

    async def _settle(self, a: arguments.Settlement, values: dict[str, Any]) -> Run:
        return await self._run(self._settle_body(a, values), transaction=True)

    def _settle_update(
        self, log: arguments.LogWrite, values: dict[str, Any], *, orphan: bool = True
    ) -> Body[rows.Row | None]:
        """The guarded UPDATE of a settle; the run as settled, or None when the guard
        failed. Portable: the UPDATE, then a read of the row it locked. ``orphan=False``:
        without the guard's no-parent clause (the parent is locked already)."""

        def build() -> sa.Update:
            runs = self.tables.runs
            guard = self._settle_guard(values) if orphan else lease_guard(runs)
            return (
                sa.update(runs)
                .where(guard)
                .values({k: bound(f"v_{k}", runs.c[k].type) for k in values})
            )

        done = yield self._q(
            ("settle", tuple(values), orphan),
            build,
            {**lease_guard_params(log), **prefixed(values, "v_")},
        )
        if done.rowcount != 1:
            return None
        return (yield from self._load(log.run_id))

    def _settle_body(self, a: arguments.Settlement, values: dict[str, Any]) -> Body[Run]:
        log, wait = a.log, a.outcome.wait
        row = yield from self._settle_update(log, values)
        if row is None:
            raise (
                yield from self._lease_failure(log.run_id, log.lease, log.expected, settling=True)
            )
        settled = dict(row)
        yield from self._write_log(log.run_id, log.expected, log.events, log.consume, log.now)
        if wait is not None:
            # We hold the run's lock: this statement sees every delivery committed
            # before it, and later deliveries wait for us and then see `paused`.
            woken = yield self._wake_query(log.run_id, wait, log.now)
            if woken.rowcount == 1:
                settled.update(rows.queued_values(log.now))
        return rows.run_from_row(settled)

    def _wake_query(self, run_id: str, wait: EncodedWait, now: int) -> Query:
        """:meth:`_waking` for the run ``run_id`` pausing on ``wait`` at ``now``."""
        return self._q(
            ("wake", wait.kind, wait.wake_at is not None),
            lambda: self._waking(wait),
            {
                "p_run_id": run_id,
                "p_wait_step_id": wait.step_id,
                "p_wait_key": wait.key,
                **prefixed(rows.queued_values(now), "q_"),
            },
        )

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
            .values(self._queued())
        )

    @operation
    async def read_events(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        run_id = validation.check_id(run_id, "run_id")
        from_index = validation.check_index(from_index, "from_index")
        limit = validation.check_optional_limit(limit)
        return await self._run(self._read_events(run_id, from_index, limit))

    @operation
    async def read_inbox(self, run_id: str, *, include_consumed: bool = False) -> list[InboxEntry]:
        run_id = validation.check_id(run_id, "run_id")
        include_consumed = validation.check_bool(include_consumed, "include_consumed")

        def build() -> sa.Select[Any]:
            inbox = self.tables.inbox
            stmt = sa.select(*self._inbox_cols).where(
                inbox.c.run_id == bound("run_id", inbox.c.run_id.type)
            )
            if not include_consumed:
                stmt = stmt.where(inbox.c.consumed == sa.false())
            return stmt.order_by(inbox.c.received_at, inbox.c.kind, inbox.c.key)

        def read() -> Body[list[InboxEntry]]:
            found = yield self._q(("read_inbox", include_consumed), build, {"p_run_id": run_id})
            return [rows.entry_from_row(run_id, r) for r in found.mappings()]

        return await self._run(read())

    async def subscribe_events(
        self, run_id: str, from_index: int = 0
    ) -> AsyncIterator[StoredEvent]:
        async for event in poll_events(self, run_id, from_index, interval=0.2):
            yield event

    # -- wake-ups ------------------------------------------------------------------
    async def _deliver(self, d: arguments.Delivery) -> DeliveryResult:
        return await self._run(self._deliver_body(d), transaction=True)

    def _wakes(self, kind: InboxKind, with_step: bool) -> sa.ColumnElement[bool]:
        """SQL spelling of ``Wait.matches(entry)`` for the entry being delivered
        (``p_key``, ``p_name``, ``p_step_id``), on the run's columns: the stores that
        deliver in one batch (MySQL, D1) decide the wake-up in SQL."""
        runs = self.tables.runs
        if kind is InboxKind.SIGNAL:
            match = sa.and_(
                runs.c.wait_kind == WaitKind.SIGNAL.value,
                runs.c.wait_key == bound("name", runs.c.wait_key.type),
            )
            if with_step:
                match = sa.and_(
                    match, runs.c.wait_step_id == bound("step_id", runs.c.wait_step_id.type)
                )
        else:
            match = sa.and_(
                runs.c.wait_kind == WaitKind.APPROVAL.value,
                runs.c.wait_key == bound("key", runs.c.wait_key.type),
            )
        return sa.and_(runs.c.status == RunStatus.PAUSED.value, match)

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

    def _deliver_body(self, d: arguments.Delivery) -> Body[DeliveryResult]:
        # Lock the run first: a concurrent settle(Pause) of the same run serializes
        # with us, so the wake-up is decided on the state it leaves behind. The same
        # read brings an entry with our key, if one was delivered before.
        t = self.tables
        run_id, kind, now, values = d.run_id, d.kind, d.now, d.entry_values()
        found = yield self._q(
            "deliver_lock",
            self._locking_for_delivery,
            {"p_run_id": run_id, "p_kind": kind.value, "p_key": values["key"]},
        )
        row = found.first()
        if row is None:
            return NotFound(run_id)
        if row["seen_kind"] is not None:
            return Duplicate(rows.entry_from_row(run_id, unprefixed(row, "seen_")))
        run = rows.run_from_row(row)
        if run.status.terminal:
            return Closed(run)
        entry_values = {"run_id": run_id, "kind": kind.value, "consumed": False, **values}
        yield self._q(
            "insert_entry",
            lambda: self._insert(t.inbox, ("run_id", *rows.INBOX_COLUMNS)),
            prefixed(entry_values, ""),
        )
        entry = rows.entry_from_row(run_id, entry_values)
        if run.status is RunStatus.PAUSED and run.wait is not None and run.wait.matches(entry):
            queued = rows.queued_values(now)

            def build() -> sa.Update:
                runs = t.runs
                return (
                    sa.update(runs)
                    .where(runs.c.run_id == bound("run_id", runs.c.run_id.type))
                    .values(self._queued())
                )

            yield self._q("requeue", build, {"p_run_id": run_id, **prefixed(queued, "q_")})
            return Delivered(rows.run_from_row({**row, **queued}), entry)
        return Buffered(run, entry)

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
        # Deadlines first: a run they end has no timer left to fire.
        if not self._timers_on_their_own:
            return await self._run(self._fire_due_body(now, limit), transaction=True)
        fired = await self._fire_deadlines(now, limit)
        if len(fired) < limit:
            fired += await self._fire_due_timers(now, limit - len(fired))
        return fired

    _timers_on_their_own: ClassVar[bool] = False
    """Whether the dialect fires timers with a ``_fire_due_timers`` of its own (one
    statement or batch): then deadlines are fired before it, by ``_fire_deadlines``.
    Otherwise both are one transaction of the portable bodies (SQLite: one hop)."""

    def _fire_due_body(self, now: int, limit: int) -> Body[list[InboxEntry]]:
        fired = yield from self._fire_deadlines_body(now, limit)
        if len(fired) < limit:
            fired += yield from self._fire_timers(now, limit - len(fired))
        return fired

    @staticmethod
    def _timed_out_values(now: int) -> dict[str, Any]:
        """The columns of a run its deadline ends: like a cancelled one's."""
        return {
            "status": RunStatus.TIMED_OUT.value,
            "error": codec.encode_error(arguments.TIMED_OUT_ERROR),
            "lease_owner": None,
            "lease_expires_at": None,
            "ready_at": None,
            "finished_at": now,
            "updated_at": now,
            **rows.wait_values(None),
        }

    def _due_deadlines(self) -> sa.Select[Any]:
        """Live runs (``finished_at IS NULL``) whose deadline passed, in due order: an
        index range scan of ``ix_runs_deadline``."""
        runs = self.tables.runs
        return (
            sa.select(runs.c.run_id)
            .where(
                runs.c.finished_at.is_(None),
                runs.c.deadline_at <= bound("now", MS_TYPE),
            )
            .order_by(runs.c.deadline_at, runs.c.run_id)
            .limit(sa.bindparam("p_limit", type_=sa.Integer()))
        )

    def _deadline_entries(self) -> sa.Select[Any]:
        """The deadline entries of the runs ``_due_deadlines`` finds, as inbox rows."""
        runs, inbox = self.tables.runs, self.tables.inbox
        # The payload arguments.deadline_payload writes, built in SQL.
        payload = (
            sa.literal('{"deadline_at":', sa.String())
            + sa.cast(runs.c.deadline_at, sa.String())
            + sa.literal("}", sa.String())
        )
        return sa.select(
            runs.c.run_id,
            sa.literal(InboxKind.DEADLINE.value, inbox.c.kind.type),
            sa.literal(arguments.DEADLINE_KEY, inbox.c.key.type),
            sa.null(),
            sa.null(),
            payload,
            sa.null(),
            bound("now", MS_TYPE),
            sa.false(),
        )

    async def _fire_deadlines(self, now: int, limit: int) -> list[InboxEntry]:
        """A probe outside a transaction first (one round trip, an index range scan),
        so a sweep with no due deadline (the usual one) opens no transaction for them."""

        def probe() -> Body[bool]:
            found = yield self._q(
                "probe_deadlines", self._due_deadlines, {"p_now": now, "p_limit": 1}
            )
            return bool(found.rows)

        if not await self._run(probe()):
            return []
        return await self._run(self._fire_deadlines_body(now, limit), transaction=True)

    def _fire_deadlines_body(self, now: int, limit: int) -> Body[list[InboxEntry]]:
        """Lock the live runs whose deadline passed (SKIP LOCKED: a run a settle holds is
        that settle's; it is re-read after), store their deadline entries, end them.
        With children, the firings happen one after another (:meth:`_fire_in_turn`)."""
        if self.children:
            return (yield from self._fire_in_turn(now, limit))
        runs, inbox = self.tables.runs, self.tables.inbox
        due = yield from self._lock_due_deadlines(now, limit)
        if not due:
            return []
        fired = [self._deadline_entry(d, now) for d in due]
        columns = ("run_id", *rows.INBOX_COLUMNS)

        def insert() -> sa.Insert:
            # One deadline per run: no earlier entry of this key can exist.
            return sa.insert(inbox).values({c: bound(c, inbox.c[c].type) for c in columns})

        yield self._q("fire_deadlines", insert, [prefixed(f, "") for f in fired])
        n = len(due)
        values = self._timed_out_values(now)

        def end() -> sa.Update:
            ids = [bound(f"id{i}", runs.c.run_id.type) for i in range(n)]
            return (
                sa.update(runs)
                .where(runs.c.run_id.in_(ids))
                .values({k: bound(f"v_{k}", runs.c[k].type) for k in values})
            )

        yield self._q(
            ("time_out", n),
            end,
            {
                **prefixed(values, "v_"),
                **{f"p_id{i}": d["run_id"] for i, d in enumerate(due)},
            },
        )
        return [rows.entry_from_row(f["run_id"], f) for f in fired]

    def _lock_due_deadlines(self, now: int, limit: int) -> Body[list[rows.Row]]:
        runs = self.tables.runs

        def due_query() -> sa.Select[Any]:
            extra = (runs.c.parent_run_id,) if self.children else ()
            return (
                self._due_deadlines()
                .add_columns(runs.c.deadline_at, *extra)
                .with_for_update(skip_locked=True)
            )

        found = yield self._q("due_deadlines", due_query, {"p_now": now, "p_limit": limit})
        return list(found.mappings())

    @staticmethod
    def _deadline_entry(due: rows.Row, now: int) -> dict[str, Any]:
        return {
            "run_id": due["run_id"],
            "kind": InboxKind.DEADLINE.value,
            "key": arguments.DEADLINE_KEY,
            "name": None,
            "step_id": None,
            "payload": arguments.deadline_payload(int(due["deadline_at"])),
            "meta": None,
            "received_at": now,
            "consumed": False,
        }

    def _fire_in_turn(self, now: int, limit: int) -> Body[list[InboxEntry]]:
        """Deadlines of a store with children: each firing in ``(deadline_at, run_id)``
        order sees the ones before it (a child that times out first reaches its parent;
        a run an earlier firing's cascade cancelled is neither fired nor counted). A
        run whose parent another transaction holds is left to the next sweep."""
        runs, inbox = self.tables.runs, self.tables.inbox
        values = self._timed_out_values(now)
        fired: list[InboxEntry] = []
        ended: set[str] = set()  # by a firing or a cascade of this call
        skipped: set[str] = set()
        columns = ("run_id", *rows.INBOX_COLUMNS)
        while len(fired) < limit:
            due = yield from self._lock_due_deadlines(now, limit - len(fired) + len(skipped))
            due = [d for d in due if d["run_id"] not in skipped]
            if not due:
                break
            parents, held = yield from self._lock_parents_of(due)
            for d in due:
                run_id = d["run_id"]
                if run_id in ended or len(fired) == limit:
                    continue
                if d["parent_run_id"] in held:
                    skipped.add(run_id)
                    continue
                entry = self._deadline_entry(d, now)
                yield self._q(
                    "fire_deadline",
                    lambda: sa.insert(inbox).values(
                        {c: bound(c, inbox.c[c].type) for c in columns}
                    ),
                    prefixed(entry, ""),
                )
                yield self._q(
                    "time_out_one",
                    lambda: (
                        sa.update(runs)
                        .where(runs.c.run_id == bound("run_id", runs.c.run_id.type))
                        .values({k: bound(f"v_{k}", runs.c[k].type) for k in values})
                    ),
                    {"p_run_id": run_id, **prefixed(values, "v_")},
                )
                fired.append(rows.entry_from_row(run_id, entry))
                ended.add(run_id)
                parent = parents.get(d["parent_run_id"])
                if parent is not None and parent["run_id"] not in ended:
                    woke = yield from self._child_ended(
                        parent, {**d, **values, "output": None}, now
                    )
                    if woke:
                        parents[parent["run_id"]] = {**parent, **rows.queued_values(now)}
                ended.update((yield from self._cascade([(run_id, RunStatus.TIMED_OUT)], now)))
        return fired

    def _lock_parents_of(
        self, due: Sequence[rows.Row]
    ) -> Body[tuple[dict[str, rows.Row], set[str]]]:
        """Lock the parents of the ``due`` runs (held already) that no other transaction
        holds (``SKIP LOCKED``: waiting for a parent while holding its child could
        deadlock with a settle that locked them the other way round). Returns the
        locked parents by id, and the ids of those another transaction holds: their
        children are left to the next sweep."""
        wanted = sorted({d["parent_run_id"] for d in due if d["parent_run_id"] is not None})
        if not wanted:
            return {}, set()
        n = len(wanted)
        found = yield self._q(
            ("lock_parents", n),
            lambda: children_sql.lock_parents(self.tables, self._run_cols, n),
            {f"p_par{i}": p for i, p in enumerate(wanted)},
        )
        locked: dict[str, rows.Row] = {r["run_id"]: r for r in found.mappings()}
        missing = [p for p in wanted if p not in locked]
        if not missing:
            return locked, set()
        m = len(missing)
        runs = self.tables.runs
        # Missing: deleted (its children time out, writing nothing) or held elsewhere.
        exist = yield self._q(
            ("parents_exist", m),
            lambda: sa.select(runs.c.run_id).where(
                runs.c.run_id.in_([bound(f"par{i}", runs.c.run_id.type) for i in range(m)])
            ),
            {f"p_par{i}": p for i, p in enumerate(missing)},
        )
        return locked, set(exist.scalars())

    async def _fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        return await self._run(self._fire_timers(now, limit), transaction=True)

    def _fire_timers(self, now: int, limit: int) -> Body[list[InboxEntry]]:
        """Lock the due runs (SKIP LOCKED), upsert their timer entries, queue them."""
        t = self.tables
        runs, inbox = t.runs, t.inbox

        def due_query() -> sa.Select[Any]:
            return (
                sa.select(
                    runs.c.run_id,
                    runs.c.wait_kind,
                    runs.c.wait_step_id,
                    runs.c.wait_key,
                    runs.c.wake_at,
                )
                .where(runs.c.wake_at.is_not(None), runs.c.wake_at <= bound("now", MS_TYPE))
                .order_by(runs.c.wake_at, runs.c.run_id)
                .limit(sa.bindparam("p_limit", type_=sa.Integer()))
                .with_for_update(skip_locked=True)
            )

        due = (yield self._q("due_timers", due_query, {"p_now": now, "p_limit": limit})).mappings()
        if not due:
            return []
        fired = [
            {
                "run_id": d["run_id"],
                "kind": InboxKind.TIMER.value,
                "key": d["wait_step_id"],
                "name": d["wait_key"] if d["wait_kind"] == WaitKind.SIGNAL.value else None,
                "step_id": d["wait_step_id"],
                "payload": codec.encode({"wake_at": int(d["wake_at"])}),
                "meta": None,
                "received_at": now,
                "consumed": False,
            }
            for d in due
        ]
        columns = ("run_id", *rows.INBOX_COLUMNS)

        def upsert() -> sa.Insert:
            # Each firing is a fresh entry, replacing an earlier firing of the same step.
            stmt = self._dialect.upsert(
                inbox, ("name", "payload", "meta", "received_at", "consumed")
            )
            return stmt.values({c: bound(c, inbox.c[c].type) for c in columns})

        yield self._q("fire_timers", upsert, [prefixed(f, "") for f in fired])
        n = len(due)

        def requeue() -> sa.Update:
            ids = [bound(f"id{i}", runs.c.run_id.type) for i in range(n)]
            return sa.update(runs).where(runs.c.run_id.in_(ids)).values(self._queued())

        yield self._q(
            ("requeue_fired", n),
            requeue,
            {
                **prefixed(rows.queued_values(now), "q_"),
                **{f"p_id{i}": d["run_id"] for i, d in enumerate(due)},
            },
        )
        # The entries are exactly what the upsert wrote: no need to read them back.
        return [rows.entry_from_row(f["run_id"], f) for f in fired]

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

        def upsert() -> Body[Schedule | None]:
            """The schedule, or None when a concurrent upsert created it first."""
            found = yield self._q(
                "lock_schedule",
                lambda: (
                    sa.select(schedules)
                    .where(schedules.c.schedule_id == bound("id", schedules.c.schedule_id.type))
                    .with_for_update()
                ),
                {"p_id": schedule_id},
            )
            existing = found.first()
            if existing is not None:
                old = rows.schedule_from_row(existing)
                # Keep a due tick across re-declaration; re-plan only when the timing
                # changed or the schedule wakes up.
                changes = dict(values)
                if old.spec != spec or (enabled and not old.enabled):
                    changes["next_fire_at"] = next_fire_at(spec, now)
                # A compare-and-set on the row as read: under the row lock it always
                # matches; a store that runs this without one (D1) learns of a
                # concurrent change and tries again.
                done = yield self._once(
                    sa.update(schedules)
                    .where(*(schedules.c[k].is_not_distinct_from(v) for k, v in existing.items()))
                    .values(changes)
                )
                if done.rowcount != 1:
                    return None
                return rows.schedule_from_row({**existing, **changes})
            new = {
                **values,
                "schedule_id": schedule_id,
                "next_fire_at": next_fire_at(spec, now),
                "last_fired_at": None,
                "last_run_id": None,
            }
            try:
                yield self._q(
                    "insert_schedule",
                    lambda: self._insert(schedules, tuple(new)),
                    prefixed(new, ""),
                )
            except DuplicateKey:
                # A concurrent upsert created it: update instead. (PostgreSQL aborted
                # the transaction; nothing else was written, and its COMMIT is a
                # rollback.)
                return None
            return rows.schedule_from_row(new)

        for _ in range(3):
            schedule = await self._run_schedule_upsert(upsert())
            if schedule is not None:
                return schedule
        raise StoreUnavailableError(f"schedule {schedule_id!r} kept changing under upsert")

    async def _run_schedule_upsert(self, body: Body[Schedule | None]) -> Schedule | None:
        """Run an attempt of ``upsert_schedule``: in a transaction, under the schedule's
        row lock (a store without transactions runs it in autocommit: its writes are
        compare-and-set or insert-if-absent, and a lost race is tried again)."""
        return await self._run(body, transaction=True)

    @operation
    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        schedule_id = validation.check_schedule_id(schedule_id)
        schedules = self.tables.schedules

        def get() -> Body[Schedule | None]:
            found = yield self._q(
                "get_schedule",
                lambda: sa.select(schedules).where(
                    schedules.c.schedule_id == bound("id", schedules.c.schedule_id.type)
                ),
                {"p_id": schedule_id},
            )
            row = found.first()
            return None if row is None else rows.schedule_from_row(row)

        return await self._run(get())

    @operation
    async def list_schedules(self, *, workflow_id: str | None = None) -> list[Schedule]:
        workflow_id = validation.check_optional_id(workflow_id, "workflow_id")
        schedules = self.tables.schedules

        def build() -> sa.Select[Any]:
            stmt = sa.select(schedules).order_by(schedules.c.schedule_id)
            if workflow_id is not None:
                stmt = stmt.where(
                    schedules.c.workflow_id == bound("workflow_id", schedules.c.workflow_id.type)
                )
            return stmt

        def select() -> Body[list[Schedule]]:
            found = yield self._q(
                ("list_schedules", workflow_id is not None), build, {"p_workflow_id": workflow_id}
            )
            return [rows.schedule_from_row(r) for r in found.mappings()]

        return await self._run(select())

    @operation
    async def delete_schedule(self, schedule_id: str) -> bool:
        schedule_id = validation.check_schedule_id(schedule_id)
        schedules = self.tables.schedules

        def delete() -> Body[bool]:
            done = yield self._q(
                "delete_schedule",
                lambda: sa.delete(schedules).where(
                    schedules.c.schedule_id == bound("id", schedules.c.schedule_id.type)
                ),
                {"p_id": schedule_id},
            )
            return bool(done.rowcount)

        return await self._run(delete())

    def _due_schedules(self) -> sa.Select[Any]:
        """The due schedules at p_now (up to p_limit), each with ``busy``: its last
        run exists and is not terminal."""
        t = self.tables
        schedules, runs = t.schedules, t.runs
        last_status = (
            sa.select(runs.c.status)
            .where(runs.c.run_id == schedules.c.last_run_id)
            .scalar_subquery()
        )
        not_terminal = [sa.literal(s.value) for s in RunStatus if not s.terminal]
        busy = sa.and_(last_status.is_not(None), last_status.in_(not_terminal))
        return (
            sa.select(schedules, busy.label("busy"))
            .where(
                schedules.c.enabled == sa.true(),
                schedules.c.next_fire_at <= bound("now", MS_TYPE),
                # A buffered tick waits without blocking the schedules behind it.
                sa.not_(sa.and_(schedules.c.overlap == Overlap.BUFFER_ONE.value, busy)),
            )
            .order_by(schedules.c.next_fire_at, schedules.c.schedule_id)
            .limit(sa.bindparam("p_limit", type_=sa.Integer()))
        )

    @operation
    async def fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        now = validation.check_now(now)
        limit = validation.check_limit(limit)
        return await self._fire_due_schedules(now, limit)

    async def _fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        return await self._run(self._fire_schedules(now, limit), transaction=True)

    def _fire_schedules(self, now: int, limit: int) -> Body[list[ScheduleTick]]:
        """Lock the due schedules (SKIP LOCKED), insert the runs of those that fire,
        move every one on."""
        t = self.tables
        schedules, runs = t.schedules, t.runs
        due = yield self._q(
            "due_schedules",
            lambda: self._due_schedules().with_for_update(skip_locked=True),
            {"p_now": now, "p_limit": limit},
        )
        if not due.rows:
            return []
        moves = planned_moves(due.mappings(), now)
        new_runs = [
            {
                "p_run_id": m.last_run_id,
                "p_workflow_id": m.workflow_id,
                "p_workflow_version": m.workflow_version,
                "p_status": RunStatus.QUEUED.value,
                "p_input": m.input,
                "p_lease_token": 0,
                "p_next_event_index": 0,
                "p_created_at": now,
                "p_updated_at": now,
                "p_ready_at": now,
            }
            for m in moves
            if m.fires
        ]
        if new_runs:
            yield self._q(
                "insert_fired_runs",
                lambda: self._dialect.insert_ignore(runs).values(
                    {c: bound(c, runs.c[c].type) for c in RUN_INSERT}
                ),
                new_runs,
            )
        n = len(moves)

        def move_on() -> sa.Update:
            # One UPDATE for all of them: an executemany is a round trip per row on
            # PyMySQL.
            sid = schedules.c.schedule_id

            def per_schedule(key: str, column: sa.Column[Any]) -> sa.Case[Any]:
                return sa.case(
                    *(
                        (sid == bound(f"sid{i}", sid.type), bound(f"{key}{i}", column.type))
                        for i in range(n)
                    ),
                    else_=column,
                )

            return (
                sa.update(schedules)
                .where(sid.in_([bound(f"sid{i}", sid.type) for i in range(n)]))
                .values(
                    next_fire_at=per_schedule("nfa", schedules.c.next_fire_at),
                    last_fired_at=per_schedule("lfa", schedules.c.last_fired_at),
                    last_run_id=per_schedule("lri", schedules.c.last_run_id),
                )
            )

        values: Params = {}
        for i, m in enumerate(moves):
            values.update(
                {
                    f"p_sid{i}": m.tick.schedule_id,
                    f"p_nfa{i}": m.tick.next_fire_at,
                    f"p_lfa{i}": m.last_fired_at,
                    f"p_lri{i}": m.last_run_id,
                }
            )
        yield self._q(("move_schedules", n), move_on, values)
        return [m.tick for m in moves]

    async def _due_schedule_moves(self, now: int, limit: int) -> list[ScheduleMove]:
        """The due schedules, read without locks, and how each moves on: the first of
        the two round trips of a firing by compare-and-set (PostgreSQL, MySQL)."""

        def read() -> Body[list[rows.Row]]:
            found = yield self._q(
                "due_schedules_read", self._due_schedules, {"p_now": now, "p_limit": limit}
            )
            return list(found.mappings())

        return planned_moves(await self._run(read()), now)

    # -- operations and health -------------------------------------------------------
    @property
    def migrator(self) -> Migrator:
        """This store's migrations (schema, prefix and engine included)."""
        return Migrator(
            self.engine,
            self.migrations,
            self._dialect,
            schema=self.schema,
            table_prefix=self.tables.prefix,
            url_hint=self.url_hint,
        )

    @property
    def url_hint(self) -> str:
        """The store's URL as an operator would type it (password hidden)."""
        url = self._migration_url.set(drivername=self._migration_url.get_backend_name())
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
        await self._driver.close()
        if self._engine is not None:
            self._engine.dispose()


MS_TYPE = sa.BigInteger()


class ReturningClaims(SQLStore):
    """Claims and settles as one ``UPDATE … RETURNING`` each (PostgreSQL, SQLite
    3.35+): the conditional UPDATE is the claim, and RETURNING carries the inbox (and
    the history) so the drive starts without another round trip."""

    def _claiming(self, where: sa.ColumnElement[bool], history: bool) -> sa.Update:
        """The conditional UPDATE of a claim (p_now, p_owner, p_expires_at)."""
        runs = self.tables.runs
        return (
            sa.update(runs)
            .where(where, self._claimable())
            .ordered_values(*self._claim_values())
            .returning(*self._claim_returning(history))
        )

    async def _claim(self, a: arguments.Claim) -> ClaimResult:
        runs = self.tables.runs

        def claim() -> Body[ClaimResult]:
            found = yield self._q(
                ("claim_one", a.with_history),
                lambda: self._claiming(
                    runs.c.run_id == bound("run_id", runs.c.run_id.type), a.with_history
                ),
                {"p_run_id": a.run_id, **self._claim_params(a)},
            )
            row = found.first()
            if row is not None:
                return self._claimed(row, a.with_history)
            current = yield from self._load(a.run_id)
            if current is None:
                return NotFound(a.run_id)
            return NotClaimable(rows.run_from_row(current))

        return await self._run(claim())

    async def _claim_runnable(self, a: arguments.ClaimMany) -> list[Claimed]:
        runs = self.tables.runs

        def build() -> sa.Update:
            # A CTE, not `IN (subquery)`: Postgres may evaluate a sublink more than
            # once, and a re-run LIMIT … SKIP LOCKED would claim more than `limit`.
            picked = self._claim_candidates().cte("picked").prefix_with("MATERIALIZED")
            return self._claiming(runs.c.run_id == picked.c.run_id, a.with_history)

        def claim() -> Body[list[Claimed]]:
            found = yield self._q(
                ("claim_many", a.with_history), build, {**self._claim_params(a), "p_limit": a.limit}
            )
            return [self._claimed(r, a.with_history) for r in found.mappings()]

        return await self._run(claim())

    def _claim_picked(self, a: arguments.ClaimMany, ids: Sequence[str]) -> Body[list[Claimed]]:
        n = len(ids)

        def build() -> sa.Update:
            return self._claim_ids_update(n).returning(*self._claim_returning(a.with_history))

        found = yield self._q(
            ("claim_picked_returning", n, a.with_history),
            build,
            {**self._claim_params(a), **{f"p_id{i}": r for i, r in enumerate(ids)}},
        )
        return [self._claimed(r, a.with_history) for r in found.mappings()]

    def _limited_insert(
        self, a: arguments.NewRun, claimed: dict[str, Any]
    ) -> Body[tuple[bool, bool]]:
        # The INSERT answers what it decided (RETURNING): no read after it, and the
        # window is counted only for a claim in a queue with a rate limit.
        if self._dialect.locks_rows:
            yield self._lock_limited_queue(a)
        columns = tuple(claimed)

        def build() -> sa.Insert:
            runs, q = self.tables.runs, self.tables.queues
            queue = self._dialect.outer_column(runs.c.queue)
            insert, _ = queue_sql.decided_insert(self.tables, columns)
            rated = sa.exists().where(q.c.name == queue, q.c.rate_count.is_not(None))
            limited = sa.exists().where(q.c.name == queue, queue_sql.limited(self.tables))
            notice = self._wake_notice()
            return insert.returning(
                runs.c.status,
                sa.case((rated, 1), else_=0).label("rated"),
                sa.case((limited, 1), else_=0).label("limited"),
                # Inserted queued: claimable, so watchers hear of it where they can.
                *(
                    ()
                    if notice is None
                    else (sa.case((runs.c.status == RunStatus.QUEUED.value, notice)).label("woke"),)
                ),
            )

        found = yield self._q(
            ("decided_insert_returning", columns), build, self._decided_params(claimed, a.now)
        )
        row = found.first()
        assert row is not None  # an INSERT of one row
        claimed_now = row["status"] == RunStatus.RUNNING.value
        if claimed_now and row["rated"]:
            yield self._count_created_claim(a)
        return claimed_now, bool(row["limited"])

    def _settle_update(
        self, log: arguments.LogWrite, values: dict[str, Any], *, orphan: bool = True
    ) -> Body[rows.Row | None]:
        def build() -> sa.Update:
            runs = self.tables.runs
            guard = self._settle_guard(values) if orphan else lease_guard(runs)
            return (
                sa.update(runs)
                .where(guard)
                .values({k: bound(f"v_{k}", runs.c[k].type) for k in values})
                .returning(*self._run_cols)
            )

        found = yield self._q(
            ("settle_returning", tuple(values), orphan),
            build,
            {**lease_guard_params(log), **prefixed(values, "v_")},
        )
        return found.first()


def settled_values(a: arguments.Settlement) -> dict[str, Any]:
    """The run's new column values for the settlement's outcome."""
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
        values.update(ready_at=None, finished_at=log.now, output=result.output, error=result.error)
    return values


def _in_claim_order(row: rows.Row) -> tuple[int, int, str]:
    """The sort key of a picked run (a ``takes`` row) in claim order."""
    t = queue_sql.TAKE
    return (-row[f"{t}priority"], row[f"{t}ready_at"], row[f"{t}run_id"])


def _claimable(run: Run, now: int) -> bool:
    return run.status is RunStatus.QUEUED or (
        run.status is RunStatus.RUNNING and run.lease is not None and run.lease.expires_at <= now
    )


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


__all__ = [
    "ReturningClaims",
    "Rows",
    "SQLStore",
    "Statement",
    "bound",
    "lease_guard",
    "lease_guard_params",
    "opened",
    "prefixed",
    "settled_values",
    "unprefixed",
]
