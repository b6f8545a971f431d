"""One round trip per hot operation on MySQL and MariaDB: multi-statement batches.

Neither server has ``UPDATE … RETURNING`` or data-modifying CTEs, so an operation
that writes, checks and reads is several statements. They are sent as **one text**
(PyMySQL with ``CLIENT_MULTI_STATEMENTS``: the server runs them in order and answers
them in one reply), ``BEGIN`` and ``COMMIT`` included, so an operation costs one round
trip. The decisions the portable bodies make in Python between statements are made
in SQL instead, with session variables (``@wf_*``, set before they are read in every
batch, so nothing carries over from an earlier operation on the connection):

- ``@wf_ok``: the guarded write matched (``ROW_COUNT()`` right after it); the writes
  that depend on it carry ``WHERE @wf_ok = 1``;
- ``@wf_ids``: the ids a ``SELECT … FOR UPDATE SKIP LOCKED`` picked and locked, as a
  JSON array that ``JSON_TABLE`` turns back into rows, joined to ``runs`` by primary
  key in the ``UPDATE`` and the read.

The locking model is the portable one (:mod:`workflow.store.sql.store`): the run's row
is locked first, everything else is read after. The driver returns the rows of the
batch's last statement that returns rows, and rolls back if any statement fails.
The statement texts are in the package's golden file (``tests/golden``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from workflow.runtime import arguments
from workflow.runtime.records import InboxEntry, InboxKind, Run, RunStatus, WaitKind
from workflow.runtime.results import (
    Buffered,
    Claimed,
    ClaimResult,
    Closed,
    Delivered,
    DeliveryResult,
    Duplicate,
    NotClaimable,
    NotFound,
    ScheduleTick,
)
from workflow.store.sql import queue_sql, rows
from workflow.store.sql.driver import Body
from workflow.store.sql.store import (
    MS_TYPE,
    RUN_INSERT,
    SQLStore,
    bound,
    lease_guard,
    lease_guard_params,
    prefixed,
    unprefixed,
)
from workflow.store.sql.tables import StoreTables

Parts = list[sa.ClauseElement | str]

OK = sa.text("@wf_ok = 1")
_TERMINAL = [s.value for s in RunStatus if s.terminal]


_T = queue_sql.TAKE
_TAKES_COLUMNS = ("run_id", "priority", "ready_at", "take", "picked")
"""What the batch keeps of the ``takes`` rows (``@wf_takes``, in this order)."""
_TAKES = (
    "JSON_TABLE(@wf_takes, '$[*]' COLUMNS ("
    f"{_T}run_id VARCHAR(255) CHARACTER SET utf8mb4 PATH '$[0]', "
    f"{_T}priority INT PATH '$[1]', {_T}ready_at BIGINT PATH '$[2]', "
    f"{_T}take INT PATH '$[3]', {_T}picked INT PATH '$[4]'"
    ")) AS jt"
)
"""The picked runs of a limited claim (``@wf_takes``: their ``takes`` rows as JSON)."""


def _lock_limited(t: StoreTables, one: bool = False) -> sa.Select[Any]:
    """Lock the limited queues' rows (``one``: the queue ``p_queue``'s, if it has
    limits) until COMMIT and count them into ``@wf_limited``
    (:func:`.queue_sql.lock_limited_names` without a result: the client would parse a
    column and a row per queue that it never reads). ``COUNT(*)`` reads the rows it
    locks in the primary key's order, the names' order of the lock everywhere."""
    q = t.queues
    stmt = sa.select(sa.func.count()).select_from(q).where(queue_sql.limited(t))
    if one:
        stmt = stmt.where(q.c.name == bound("queue", q.c.name.type))
    return stmt.with_for_update().suffix_with("INTO @wf_limited")


_LIM_COLUMNS = ("concurrency", "per_key_concurrency", "rate_count", "w_used", "leased")
"""What ``@wf_lim`` holds of each limited queue after its name (in this order)..."""
_BOUNDS = ("concurrency", "rate_count", "per_key_concurrency")
"""... then these limits again, :data:`_NO_BOUND` where there is none."""
_NO_BOUND = 1 << 62
"""More than any count: a limit that is not set, where a look-up must not read JSON
``null`` (``JSON_EXTRACT`` gives ``null``, which ``CAST`` turns into 0)."""


def _pair(queue: sa.ColumnElement[Any], key: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A (queue, key) as one string (a JSON array's text): the key of ``@wf_keyed``."""
    return _utf8(sa.func.JSON_ARRAY(_utf8(queue), _utf8(key)))


def _count_limits(t: StoreTables) -> sa.Select[Any]:
    """After the lock: the limited queues' limits, rate windows and leases into
    ``@wf_lim`` (a JSON object by queue name of ``lim``'s rows: name, then
    :data:`_LIM_COLUMNS`), the leases per key of those with a per-key limit into
    ``@wf_keyed`` (an object by :func:`_pair` of ``keyed``'s rows: queue, key,
    count), for the decision to read instead of counting: one range of
    ``ix_runs_queue_leases`` per limited queue, read once per claim. (In the
    decision's ``WITH``, MariaDB 10.11 materializes ``lim`` once per reference and
    looks each candidate's queue up in it: Handler_read_key 7, _next 2 per lease.)

    A statement of its own, after the lock's: at READ COMMITTED each statement reads
    a snapshot of its own (InnoDB takes it at the statement's first read), so this
    one counts what the locks' previous holder committed. (Counted in the locking
    statement, a queue's leases could be read before the lock of the next queue is
    granted, in a snapshot older than that lock.) A queue with a per-key limit has
    its range read twice: counted, then grouped by key."""
    q, runs = t.queues, t.runs
    columns = {c.name: c for c in queue_sql.limit_columns(t)}
    lim = (
        sa.select(
            sa.func.JSON_OBJECTAGG(
                _utf8(q.c.name),
                sa.func.JSON_ARRAY(
                    _utf8(q.c.name),
                    *(columns[c] for c in _LIM_COLUMNS),
                    # For the room's look-ups (:func:`_has_room`): no limit, no bound.
                    *(sa.func.coalesce(columns[c], _NO_BOUND) for c in _BOUNDS),
                ),
            )
        )
        .where(queue_sql.limited(t))
        .scalar_subquery()
    )
    per_key = (
        sa.select(runs.c.queue, runs.c.partition_key, sa.func.count().label("n"))
        .where(
            runs.c.queue.in_(sa.select(q.c.name).where(q.c.per_key_concurrency.is_not(None))),
            runs.c.status == RunStatus.RUNNING.value,
            runs.c.lease_expires_at > bound("now", runs.c.lease_expires_at.type),
            runs.c.partition_key.is_not(None),
        )
        .group_by(runs.c.queue, runs.c.partition_key)
        .subquery("per_key")
    )
    pk = per_key.c
    keyed = sa.select(
        sa.func.JSON_OBJECTAGG(
            _pair(pk.queue, pk.partition_key),
            sa.func.JSON_ARRAY(_utf8(pk.queue), _utf8(pk.partition_key), pk.n),
        )
    ).scalar_subquery()
    # Counted only where a queue has a per-key limit: the grouping's temporary tables
    # cost MariaDB 10.11 about 0.5 ms of CPU per claim even with nothing to group.
    any_per_key = sa.exists().where(q.c.per_key_concurrency.is_not(None))
    return sa.select(lim, sa.case((any_per_key, keyed))).suffix_with("INTO @wf_lim, @wf_keyed")


def _json_rows(variable: str, name: str, columns: Sequence[tuple[str, str]]) -> sa.CTE:
    """The rows of the JSON object of arrays in ``variable`` as the CTE ``name``, with
    ``columns`` (name, SQL type; ``ID``: an identifier, compared as the binary the
    tables hold)."""
    spec = ", ".join(
        f"{c} {'VARCHAR(255) CHARACTER SET utf8mb4' if ty == 'ID' else ty} PATH '$[{i}]'"
        for i, (c, ty) in enumerate(columns)
    )
    select = ", ".join(
        f"CAST(jt.{c} AS BINARY) AS {c}" if ty == "ID" else f"jt.{c}" for c, ty in columns
    )
    return (
        sa.text(f"SELECT {select} FROM JSON_TABLE({variable}, '$.*' COLUMNS ({spec})) AS jt")
        .columns(
            *(
                sa.column(c, sa.LargeBinary() if ty == "ID" else sa.BigInteger())
                for c, ty in columns
            )
        )
        .cte(name)
    )


def _has_room(t: StoreTables) -> sa.ColumnElement[bool]:
    """The run's queue and key have room (:func:`.queue_sql.has_room`), as
    expressions: its queue's entry in ``@wf_lim`` and its key's in ``@wf_keyed``,
    looked up by path (``$."<name>"[i]``, the name quoted as JSON). No subquery: a
    ``NOT EXISTS`` per candidate has its results cached by MariaDB 10.11 in a
    temporary table looked up by key (a Handler_read_key each), and an aggregate of
    the full queues once per statement (``JSON_ARRAYAGG``) costs it about 0.7 ms of
    CPU, a temporary table even for one row. (``JSON_EXTRACT``, not ``JSON_VALUE``:
    MySQL has that from 8.0.21 only.)"""
    runs = t.runs

    def entry(variable: str, key: sa.ColumnElement[Any], i: int) -> sa.ColumnElement[Any]:
        path = sa.func.concat("$.", sa.func.JSON_QUOTE(key), f"[{i}]")
        found = sa.func.JSON_EXTRACT(sa.literal_column(variable), path)
        return sa.cast(sa.func.JSON_UNQUOTE(found), mysql.BIGINT())

    def of_queue(column: str) -> sa.ColumnElement[Any]:
        if column in _BOUNDS:
            return entry(
                "@wf_lim", _utf8(runs.c.queue), 1 + len(_LIM_COLUMNS) + _BOUNDS.index(column)
            )
        return entry("@wf_lim", _utf8(runs.c.queue), 1 + _LIM_COLUMNS.index(column))

    # A queue or key without an entry (no limit, no lease) compares NULL: room.
    queue_full = sa.or_(
        of_queue("leased") >= of_queue("concurrency"),
        of_queue("w_used") >= of_queue("rate_count"),
    )
    key_full = sa.and_(
        sa.literal_column("@wf_keyed").is_not(None),
        entry("@wf_keyed", _pair(runs.c.queue, runs.c.partition_key), 2)
        >= of_queue("per_key_concurrency"),
    )
    return sa.func.coalesce(sa.or_(queue_full, key_full), False) == sa.false()


MAX_SLOTS = 32
"""The most ids a limited claim's statements list one by one (see :func:`_taken`)."""


def _slots(limit: int) -> int:
    """How many ids ``@wf_taken`` may hold for a round of ``limit``: the runs taken
    and the last one picked (``''``), rounded up to a power of two, so that a store
    compiles a few texts, not one per limit; 0 past :data:`MAX_SLOTS`."""
    slots = 1 << limit.bit_length()
    return slots if slots <= MAX_SLOTS else 0


def _taken(run_id: sa.ColumnElement[Any], slots: int) -> sa.ColumnElement[bool]:
    """``run_id`` is one of the runs taken. With ``slots``, an ``IN`` of the ids in
    ``@wf_taken``, each read from the JSON once per statement: a range of the primary
    key. ``IN (SELECT … FROM JSON_TABLE(…))`` is not one: MariaDB runs that subquery
    for every row of a scan of the whole table an ``UPDATE`` writes. Without slots
    (a limit past :data:`MAX_SLOTS`, whose list would make the text long), the join
    to ``@wf_taken`` as a table (:func:`_is_picked`: a statement with this condition
    reads from both, the ``UPDATE`` becomes a multi-table one); its ``''`` (a run not
    taken) joins no run."""
    if not slots:
        return _is_picked(run_id, _json_ids("@wf_taken", "taken"))
    return run_id.in_(
        [
            sa.literal_column(f"CAST(JSON_UNQUOTE(JSON_EXTRACT(@wf_taken, '$[{i}]')) AS BINARY)")
            for i in range(slots)
        ]
    )


def _takes_rows() -> sa.Subquery:
    """The rows of ``@wf_takes`` (``t_run_id`` as text, as the JSON holds it)."""
    return (
        sa.text(f"SELECT * FROM {_TAKES}")
        .columns(*(sa.column(f"{_T}{c}") for c in _TAKES_COLUMNS))
        .subquery("takes")
    )


def _utf8(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """An identifier (VARBINARY: UTF-8 bytes) as utf8mb4 text, for JSON."""
    return sa.cast(column, mysql.CHAR(charset="utf8mb4"))


def _json_ids(variable: str, name: str) -> sa.TableValuedAlias:
    """The ids in the JSON array of session ``variable`` as a table ``name`` (one
    ``id`` column, utf8mb4 text)."""
    return (
        sa.func.JSON_TABLE(
            sa.literal_column(variable),
            sa.literal_column("'$[*]' COLUMNS (id VARCHAR(255) CHARACTER SET utf8mb4 PATH '$')"),
        )
        .table_valued(sa.column("id", sa.String()))
        .alias(name)
    )


def _picked() -> sa.TableValuedAlias:
    """The ids in ``@wf_ids`` as a table (``picked``)."""
    return _json_ids("@wf_ids", "picked")


def _is_picked(
    run_id: sa.ColumnElement[Any], picked: sa.TableValuedAlias
) -> sa.ColumnElement[bool]:
    """The join of a table to :func:`_picked`, by the binary identifiers the tables hold.

    A join, not ``run_id IN (SELECT … FROM JSON_TABLE(…))``: MariaDB 10.11 runs an
    ``UPDATE`` with that subquery as a scan of the whole table with the subquery per
    row (EXPLAIN: 'index' over every run, DEPENDENT SUBQUERY), finished runs
    included. Joined (a multi-table ``UPDATE … , JSON_TABLE(…) AS picked … WHERE``),
    it reads the few picked ids and probes the primary key for each (eq_ref), with
    no bound on their number (the limited claim's slots, :func:`_taken`, have one)."""
    return run_id == sa.cast(picked.c.id, sa.LargeBinary())


def _pick_into_ids(candidates: sa.Select[Any]) -> sa.Select[Any]:
    """``SELECT … INTO @wf_ids``: the run ids ``candidates`` locks (``NULL`` if none)."""
    picked = candidates.subquery("candidates")
    return sa.select(sa.func.JSON_ARRAYAGG(_utf8(picked.c.run_id))).suffix_with("INTO @wf_ids")


class OneTripBatches(SQLStore):
    """The hot operations of :class:`SQLStore` as one multi-statement batch each."""

    # -- claims --------------------------------------------------------------------------
    async def _claim(self, a: arguments.Claim) -> ClaimResult:
        runs = self.tables.runs

        def build() -> Parts:
            run_id = runs.c.run_id == bound("run_id", runs.c.run_id.type)
            return [
                sa.update(runs)
                .where(run_id, self._claimable())
                .ordered_values(*self._claim_values()),
                # ROW_COUNT(): the UPDATE just before (matched rows: CLIENT_FOUND_ROWS).
                sa.select(
                    sa.literal_column("ROW_COUNT()").label("claimed"),
                    *self._claim_returning(a.with_history),
                ).where(run_id),
            ]

        def claim() -> Body[ClaimResult]:
            row = (
                yield self._batch(
                    ("claim_one", a.with_history),
                    build,
                    {"p_run_id": a.run_id, **self._claim_params(a)},
                )
            ).first()
            if row is None:
                return NotFound(a.run_id)
            if row["claimed"] != 1:
                return NotClaimable(rows.run_from_row(row))
            return self._claimed(row, a.with_history)

        return await self._run(claim())

    async def _claim_runnable(self, a: arguments.ClaimMany) -> list[Claimed]:
        runs = self.tables.runs

        def build() -> Parts:
            picked = _picked()
            is_picked = _is_picked(runs.c.run_id, picked)
            return [
                "BEGIN",
                _pick_into_ids(self._claim_candidates()),
                # The manuals promise no order of assignment in a multi-table UPDATE;
                # the servers assign left to right (the table written as the join
                # reads it) or compute every value from the row as read (written
                # after the join): updated_at, first, reads the old status in both,
                # as _claim_values needs (contract: claims.py, updated_at of a
                # queued run claimed and of a stale takeover).
                sa.update(runs).where(is_picked).ordered_values(*self._claim_values()),
                sa.select(*self._claim_returning(a.with_history)).select_from(
                    picked.join(runs, is_picked)
                ),
                "COMMIT",
            ]

        def claim() -> Body[list[Claimed]]:
            found = yield self._batch(
                ("claim_many", a.with_history),
                build,
                {**self._claim_params(a), "p_limit": a.limit},
            )
            return [self._claimed(r, a.with_history) for r in found.mappings()]

        return await self._run(claim())

    def _limits_now(self) -> tuple[sa.CTE, sa.CTE, sa.ColumnElement[bool]]:
        """``lim`` and ``keyed`` as counted before the decision (:func:`_count_limits`),
        and the room of a candidate's queue and key as :func:`_has_room` decides it."""
        lim = _json_rows("@wf_lim", "lim", [("name", "ID"), *((c, "BIGINT") for c in _LIM_COLUMNS)])
        keyed = _json_rows(
            "@wf_keyed", "keyed", [("queue", "ID"), ("partition_key", "ID"), ("n", "BIGINT")]
        )
        return lim, keyed, _has_room(self.tables)

    async def _limited_round(
        self, a: arguments.ClaimMany, after: rows.Row | None, run_id: str | None = None
    ) -> tuple[list[Claimed], Sequence[rows.Row]]:
        """One batch: lock the limited queues' rows (counting them into
        ``@wf_limited``), decide (``takes`` as JSON in ``@wf_takes``, the ids taken in
        ``@wf_taken``: each statement at READ COMMITTED reads what the locks' previous
        holder committed), claim the runs taken, count them in the rate windows, read
        every picked run with its claim."""
        runs = self.tables.runs
        n_queues, history = len(a.queues or ()), a.with_history
        slots = _slots(a.limit)

        def build() -> Parts:
            takes = self._limited_takes(n_queues, after is not None, run_id is not None).subquery(
                "takes"
            )
            taken = _taken(runs.c.run_id, slots)
            as_json = sa.func.JSON_ARRAY(
                _utf8(takes.c[f"{_T}run_id"]),
                *(takes.c[f"{_T}{c}"] for c in _TAKES_COLUMNS[1:]),
            )
            # '' for a run not taken: no run has an empty id.
            taken_id = sa.case((takes.c[f"{_T}take"] == 1, _utf8(takes.c[f"{_T}run_id"])), else_="")
            decided = _takes_rows()
            return [
                "BEGIN",
                _lock_limited(self.tables),
                _count_limits(self.tables),
                sa.select(
                    sa.func.JSON_ARRAYAGG(as_json), sa.func.JSON_ARRAYAGG(taken_id)
                ).suffix_with("INTO @wf_takes, @wf_taken"),
                sa.update(runs).where(taken).ordered_values(*self._claim_values()),
                queue_sql.count_in_windows(
                    self.tables, sa.select(runs.c.queue).where(taken).subquery("claimed")
                ),
                # What the loop reads of the picked runs (the rest stays in the batch).
                sa.select(
                    *(decided.c[f"{_T}{c}"] for c in ("run_id", "priority", "ready_at", "picked")),
                    sa.literal_column("@wf_limited").label(f"{_T}limited"),
                    *self._claim_returning(history),
                ).select_from(
                    decided.outerjoin(
                        runs,
                        sa.and_(
                            runs.c.run_id == sa.cast(decided.c[f"{_T}run_id"], sa.LargeBinary()),
                            decided.c[f"{_T}take"] == 1,
                        ),
                    )
                ),
                "COMMIT",
            ]

        return await self._limited_batch(a, after, run_id, build, slots)

    async def _create_limited(self, a: arguments.NewRun, claimed: dict[str, Any]) -> bool:
        """One batch, as the limited claim's: lock the queue's row if it has limits
        (counted into ``@wf_limited``), insert the run claimed or queued as
        :func:`.queue_sql.decided_insert` decides (a statement of its own, whose read
        view at READ COMMITTED sees what the lock's previous holder committed), count
        a claim in the queue's rate window, read the run's status."""
        runs = self.tables.runs
        columns = tuple(claimed)

        def build() -> Parts:
            return [
                "BEGIN",
                _lock_limited(self.tables, one=True),
                queue_sql.decided_insert(self.tables, columns)[0],
                queue_sql.count_in_windows(self.tables, queue_sql.created_claimed(self.tables)),
                sa.select(runs.c.status, sa.literal_column("@wf_limited").label("limited")).where(
                    runs.c.run_id == bound("run_id", runs.c.run_id.type)
                ),
                "COMMIT",
            ]

        def create() -> Body[tuple[bool, bool]]:
            found = yield self._batch(
                ("created_in_limited_queue", columns), build, self._decided_params(claimed, a.now)
            )
            row = found.first()
            assert row is not None  # inserted by this batch
            return row["status"] == RunStatus.RUNNING.value, bool(row["limited"])

        claimed_now, limited = await self._run(create())
        self._note_limited(a.placement.queue, limited)
        return claimed_now

    # -- the log -------------------------------------------------------------------------
    def _log_writes(self, n_events: int, n_consume: int) -> Parts:
        """The events (``p_e<i>_*``) and the consumed entries (``p_c<i>_*``) of a log
        write, each only if ``@wf_ok = 1``."""
        t = self.tables
        parts: Parts = []
        if n_events:
            events = t.events
            columns = ("run_id", "event_index", "type", "step_id", "data", "created_at")
            selects = [
                sa.select(
                    bound("run_id", events.c.run_id.type),
                    *(
                        bound(f"e{i}_{c}", events.c[c].type)
                        for c in ("event_index", "type", "step_id", "data")
                    ),
                    bound("now", MS_TYPE),
                ).where(OK)
                for i in range(n_events)
            ]
            source = selects[0] if n_events == 1 else sa.union_all(*selects)
            parts.append(sa.insert(events).from_select(columns, source))
        if n_consume:
            inbox = t.inbox
            refs = (
                sa.and_(
                    inbox.c.kind == bound(f"c{i}_kind", inbox.c.kind.type),
                    inbox.c.key == bound(f"c{i}_key", inbox.c.key.type),
                )
                for i in range(n_consume)
            )
            parts.append(
                sa.update(inbox)
                .where(OK, inbox.c.run_id == bound("run_id", inbox.c.run_id.type), sa.or_(*refs))
                .values(consumed=True)
            )
        return parts

    @staticmethod
    def _log_params(log: arguments.LogWrite) -> dict[str, Any]:
        values: dict[str, Any] = {**lease_guard_params(log), "p_now": log.now}
        for i, e in enumerate(log.events):
            values.update(
                {
                    f"p_e{i}_event_index": log.expected + i,
                    f"p_e{i}_type": e.type,
                    f"p_e{i}_step_id": e.step_id,
                    f"p_e{i}_data": e.data,
                }
            )
        for i, ref in enumerate(log.consume):
            values[f"p_c{i}_kind"] = ref.kind.value
            values[f"p_c{i}_key"] = ref.key
        return values

    async def _append_events(self, log: arguments.LogWrite) -> int:
        runs = self.tables.runs
        shape = (len(log.events), len(log.consume))

        def build() -> Parts:
            return [
                "BEGIN",
                sa.update(runs)
                .where(lease_guard(runs))
                .values(next_event_index=bound("next", runs.c.next_event_index.type)),
                "SET @wf_ok = ROW_COUNT()",
                *self._log_writes(*shape),
                "SELECT @wf_ok AS ok",
                "COMMIT",
            ]

        def append() -> Body[int]:
            found = yield self._batch(
                ("append", shape), build, {**self._log_params(log), "p_next": log.next_index}
            )
            if found.scalar() != 1:
                raise (yield from self._lease_failure(log.run_id, log.lease, log.expected))
            return log.next_index

        return await self._run(append())

    async def _settle(self, a: arguments.Settlement, values: dict[str, Any]) -> Run:
        runs = self.tables.runs
        log, wait = a.log, a.outcome.wait
        shape = (
            len(log.events),
            len(log.consume),
            tuple(values),
            None if wait is None else (wait.kind, wait.wake_at is not None),
        )

        def build() -> Parts:
            parts: Parts = [
                "BEGIN",
                sa.update(runs)
                .where(self._settle_guard(values))
                .values({k: bound(f"v_{k}", runs.c[k].type) for k in values}),
                "SET @wf_ok = ROW_COUNT()",
                *self._log_writes(*shape[:2]),
            ]
            if wait is not None:
                # We hold the run's lock: this sees every delivery committed before
                # it, and later deliveries wait for us and then see `paused`.
                parts.append(self._waking(wait).where(OK))
            parts += [
                sa.select(sa.literal_column("@wf_ok").label("ok"), *self._run_cols).where(
                    runs.c.run_id == bound("run_id", runs.c.run_id.type)
                ),
                "COMMIT",
            ]
            return parts

        params = {**self._log_params(log), **prefixed(values, "v_")}
        if wait is not None:
            params.update(
                {
                    "p_wait_step_id": wait.step_id,
                    "p_wait_key": wait.key,
                    **prefixed(rows.queued_values(log.now), "q_"),
                }
            )

        def settle() -> Body[Run]:
            row = (yield self._batch(("settle", shape), build, params)).first()
            if row is None or row["ok"] != 1:
                raise (
                    yield from self._lease_failure(
                        log.run_id, log.lease, log.expected, settling=True
                    )
                )
            return rows.run_from_row(row)

        return await self._run(settle())

    # -- wake-ups ------------------------------------------------------------------------
    async def _deliver(self, d: arguments.Delivery) -> DeliveryResult:
        t = self.tables
        runs, inbox = t.runs, t.inbox
        values = d.entry_values()
        shape = (d.kind, values["step_id"] is not None)

        def build() -> Parts:
            run_id = bound("run_id", runs.c.run_id.type)
            same_key = sa.and_(
                inbox.c.run_id == run_id,
                inbox.c.kind == bound("kind", inbox.c.kind.type),
                inbox.c.key == bound("key", inbox.c.key.type),
            )
            entry = [
                run_id,
                bound("kind", inbox.c.kind.type),
                *(bound(c, inbox.c[c].type) for c in values),
                sa.false(),
            ]
            seen = inbox.alias("seen")
            return [
                "BEGIN",
                "SET @wf_status = NULL",
                # Lock the run first: a concurrent settle(Pause) serializes with us.
                sa.select(runs.c.status)
                .where(runs.c.run_id == run_id)
                .with_for_update()
                .suffix_with("INTO @wf_status"),
                sa.insert(inbox).from_select(
                    ["run_id", "kind", *values, "consumed"],
                    sa.select(*entry).where(
                        sa.text("@wf_status IS NOT NULL"),
                        sa.literal_column("@wf_status").not_in([sa.literal(s) for s in _TERMINAL]),
                        ~sa.exists().where(same_key),
                    ),
                ),
                "SET @wf_ok = ROW_COUNT()",
                sa.update(runs)
                .where(runs.c.run_id == run_id, OK, self._wakes(*shape))
                .values(self._queued()),
                sa.select(
                    sa.literal_column("@wf_ok").label("stored"),
                    sa.literal_column("ROW_COUNT()").label("woke"),
                    *self._run_cols,
                    *(seen.c[c.name].label(f"seen_{c.name}") for c in self._inbox_cols),
                )
                .select_from(
                    runs.outerjoin(
                        seen,
                        sa.and_(
                            seen.c.run_id == runs.c.run_id,
                            seen.c.kind == bound("kind", seen.c.kind.type),
                            seen.c.key == bound("key", seen.c.key.type),
                        ),
                    )
                )
                .where(runs.c.run_id == run_id),
                "COMMIT",
            ]

        params = {
            "p_run_id": d.run_id,
            "p_kind": d.kind.value,
            **prefixed(values, ""),
            **prefixed(rows.queued_values(d.now), "q_"),
        }

        def deliver() -> Body[DeliveryResult]:
            row = (yield self._batch(("deliver", shape), build, params)).first()
            if row is None:
                return NotFound(d.run_id)
            if row["stored"] != 1:
                if row["seen_kind"] is not None:
                    return Duplicate(rows.entry_from_row(d.run_id, unprefixed(row, "seen_")))
                return Closed(rows.run_from_row(row))
            entry = rows.entry_from_row(
                d.run_id, {"kind": d.kind.value, "consumed": False, **values}
            )
            run = rows.run_from_row(row)
            return Delivered(run, entry) if row["woke"] == 1 else Buffered(run, entry)

        return await self._run(deliver())

    _timers_on_their_own = True

    async def _fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        t = self.tables
        runs, inbox = t.runs, t.inbox

        def build() -> Parts:
            picked = _picked()
            is_picked = _is_picked(runs.c.run_id, picked)
            due = (
                sa.select(runs.c.run_id)
                .where(runs.c.wake_at.is_not(None), runs.c.wake_at <= bound("now", MS_TYPE))
                .order_by(runs.c.wake_at, runs.c.run_id)
                .limit(sa.bindparam("p_limit", type_=sa.Integer()))
                .with_for_update(skip_locked=True)
            )
            # The payload codec.encode({"wake_at": n}) writes, built in SQL.
            payload = sa.func.concat('{"wake_at":', runs.c.wake_at, "}")
            columns = ["run_id", *rows.INBOX_COLUMNS]
            fired = sa.select(
                runs.c.run_id,
                sa.literal(InboxKind.TIMER.value, inbox.c.kind.type),
                runs.c.wait_step_id,
                sa.case(
                    (runs.c.wait_kind == WaitKind.SIGNAL.value, runs.c.wait_key), else_=sa.null()
                ),
                runs.c.wait_step_id,
                payload,
                sa.null(),
                bound("now", MS_TYPE),
                sa.false(),
            ).select_from(picked.join(runs, is_picked))
            # Each firing is a fresh entry, replacing an earlier firing of the same step.
            upsert = mysql.insert(inbox).from_select(columns, fired)
            upsert = upsert.on_duplicate_key_update(
                {
                    c: upsert.inserted[c]
                    for c in ("name", "payload", "meta", "received_at", "consumed")
                }
            )
            entries = (
                sa.select(inbox.c.run_id, *self._inbox_cols)
                .select_from(
                    picked.join(runs, is_picked).join(
                        inbox,
                        sa.and_(
                            inbox.c.run_id == runs.c.run_id,
                            inbox.c.kind == InboxKind.TIMER.value,
                            inbox.c.key == runs.c.wait_step_id,
                        ),
                    )
                )
                .order_by(runs.c.wake_at, runs.c.run_id)
            )
            return [
                "BEGIN",
                _pick_into_ids(due),
                upsert,
                entries,  # before the runs are queued: the join needs their wait
                sa.update(runs).where(is_picked).values(self._queued()),
                "COMMIT",
            ]

        def fire() -> Body[list[InboxEntry]]:
            found = yield self._batch(
                "fire_timers",
                build,
                {"p_now": now, "p_limit": limit, **prefixed(rows.queued_values(now), "q_")},
            )
            return [rows.entry_from_row(r["run_id"], r) for r in found.mappings()]

        return await self._run(fire())

    async def _fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        """Two round trips: read the due schedules, then one batch that moves each on
        by compare-and-set on the values it was read with and inserts the runs of
        those it moved (the next fire time comes from the cron library, so it cannot
        be computed in SQL)."""

        moves = await self._due_schedule_moves(now, limit)
        if not moves:
            return []
        params: dict[str, Any] = {"p_now": now}
        for i, m in enumerate(moves):
            params.update({f"p_{name}{i}": value for name, value in m.params().items()})
        n = len(moves)
        found = await self._run(self._move_schedules(n, params))
        moved = found.first() or {}
        return [m.tick for i, m in enumerate(moves) if moved.get(f"m{i}") == 1]

    def _move_schedules(self, n: int, params: dict[str, Any]) -> Body[Any]:
        t = self.tables
        schedules, runs = t.schedules, t.runs

        def build() -> Parts:
            sid, ty = schedules.c.schedule_id, schedules.c.schedule_id.type
            parts: Parts = ["BEGIN"]
            for i in range(n):
                parts += [
                    sa.update(schedules)
                    .where(
                        sid == bound(f"sid{i}", ty),
                        schedules.c.next_fire_at == bound(f"seen_nfa{i}", MS_TYPE),
                        schedules.c.updated_at == bound(f"seen_updated{i}", MS_TYPE),
                        schedules.c.enabled == sa.true(),
                    )
                    .values(
                        next_fire_at=bound(f"nfa{i}", MS_TYPE),
                        last_fired_at=bound(f"lfa{i}", MS_TYPE),
                        last_run_id=bound(f"lri{i}", schedules.c.last_run_id.type),
                    ),
                    f"SET @wf_m{i} = ROW_COUNT()",
                    self._dialect.insert_ignore(runs).from_select(
                        list(RUN_INSERT),
                        sa.select(
                            bound(f"lri{i}", runs.c.run_id.type),
                            schedules.c.workflow_id,
                            schedules.c.workflow_version,
                            sa.literal(RunStatus.QUEUED.value, runs.c.status.type),
                            schedules.c.input,
                            sa.literal(0, MS_TYPE),
                            sa.literal(0, MS_TYPE),
                            bound("now", MS_TYPE),
                            bound("now", MS_TYPE),
                            bound("now", MS_TYPE),
                        ).where(
                            sid == bound(f"sid{i}", ty),
                            sa.text(f"@wf_m{i} = 1"),
                            bound(f"fires{i}", sa.Boolean()) == sa.true(),
                        ),
                    ),
                ]
            parts += [
                "SELECT " + ", ".join(f"@wf_m{i} AS m{i}" for i in range(n)),
                "COMMIT",
            ]
            return parts

        found = yield self._batch(("move_schedules", n), build, params)
        return found
