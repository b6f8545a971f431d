"""Running an operation's statements on the driver: bodies, and the two ways to run them.

Every store operation is written once, as a *body*: a generator that yields each
:class:`Query` it needs and receives the :class:`~.compiled.Rows` the driver returned::

    def load(run_id: str) -> Body[Run | None]:
        row = (yield Query(select_run, {"p_run_id": run_id})).first()
        return None if row is None else rows.run_from_row(row)

A body never touches a connection, so the same body runs on both kinds of driver:

- :class:`AsyncDriver` (PostgreSQL, psycopg's async connections): each statement is
  one round trip awaited on the event loop;
- :class:`ThreadDriver` (SQLite's sqlite3, MySQL's PyMySQL, both blocking): the
  **whole body** runs on the connection's own thread, so an operation costs the event
  loop one hop, however many statements it has.

A transaction is spelled out: the dialect's ``BEGIN``, the body's statements,
``COMMIT`` (``ROLLBACK`` when anything raises). Connections are in autocommit
otherwise, so one statement outside a transaction is one round trip and nothing else
is sent. A primary-key violation is thrown into the body as :class:`DuplicateKey`
(a body that inserts may catch it); every other driver error leaves the body and is
classified by the store (:mod:`.failures`).

Every operation has a deadline (:data:`DEADLINE`, set by the store's operation
wrapper; ``operation_timeout`` seconds from now otherwise). A statement still
unanswered then is not waited for: the driver breaks its connection from the event
loop (:meth:`Driver.abort`: the socket shut down, SQLite's interrupt), so the call
blocked on it returns at once with a driver error, which becomes
:class:`OperationTimedOut`; the connection is discarded, never reused (a late reply
would answer the next statement sent on it).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from workflow.runtime.errors import StoreUnavailableError
from workflow.runtime.timeouts import DEFAULT_OPERATION_TIMEOUT_S

from .compiled import Rows, Statement, text_statement

T = TypeVar("T")
C = TypeVar("C")

Params = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement with the values of its ``p_*`` parameters (a list of them: the
    statement runs once per item, as the driver's ``executemany``)."""

    statement: Statement
    values: Params | Sequence[Params]

    @property
    def many(self) -> bool:
        return not isinstance(self.values, dict)

    def params(self) -> Params | list[Params]:
        if isinstance(self.values, dict):
            return self.statement.bind(self.values)
        return [self.statement.bind(v) for v in self.values]


Body = Generator[Query, Rows, T]
"""An operation: yields queries, receives their rows, returns its result."""


class DuplicateKey(Exception):
    """Thrown into a body whose statement violated a primary key or unique index."""


class OperationTimedOut(Exception):
    """The operation's deadline passed with a statement unanswered: the driver broke
    its connection (the original driver error is the ``__cause__``)."""


DEADLINE: ContextVar[float | None] = ContextVar("workflow_store_deadline", default=None)
"""The event loop time (``loop.time()``) by which the current operation must end."""

COMMIT = text_statement("COMMIT")
ROLLBACK = text_statement("ROLLBACK")


class Driver(abc.ABC):
    """Runs bodies on a database's connections."""

    def __init__(self, is_duplicate: Callable[[BaseException], bool]) -> None:
        self._is_duplicate = is_duplicate
        self.seen: list[str] | None = None
        """When a list, the verb of every statement sent (tests count round trips)."""
        self.texts: list[str] | None = None
        """When a list, the text of every statement sent (the golden SQL files)."""
        self.hops = 0
        """Operations handed to a connection (ThreadDriver: hops to its thread)."""
        self.closed = False
        self.operation_timeout = DEFAULT_OPERATION_TIMEOUT_S
        """Seconds an operation may take (the store sets it from its option)."""

    @abc.abstractmethod
    async def run(self, body: Body[T], begin: Statement | None = None) -> T:
        """Run ``body``: in a transaction opened by ``begin``, or in autocommit."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection; later calls raise :class:`StoreUnavailableError`."""

    def abort(self, raw: Any) -> None:  # noqa: B027 (a hook; doing nothing is a valid one)
        """Break ``raw``'s connection, from the event loop thread, so a call blocked on
        it returns now with an error. Not every driver can (the default does nothing:
        the store's backstop then cancels the call)."""

    def deadline(self) -> float:
        """The current operation's deadline (event loop time)."""
        found = DEADLINE.get()
        if found is None:
            return asyncio.get_running_loop().time() + self.operation_timeout
        return found

    @contextlib.contextmanager
    def _watch(self, raw: Callable[[], Any]) -> Iterator[None]:
        """Abort the connection ``raw()`` returns if the block is still running at the
        deadline; the error the abort caused leaves as :class:`OperationTimedOut`."""
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            connection = raw()
            if connection is not None:
                self.abort(connection)

        handle = asyncio.get_running_loop().call_at(self.deadline(), expire)
        try:
            yield
        except Exception as exc:
            if fired:
                raise OperationTimedOut(str(exc)) from exc
            raise
        finally:
            handle.cancel()

    def _check_open(self) -> None:
        if self.closed:
            raise StoreUnavailableError("this store is closed")

    def _record(self, statement: Statement) -> None:
        if self.seen is not None:
            self.seen.append(statement.verb)
        if self.texts is not None:
            self.texts.append(statement.sql)


# -- the blocking drivers, one thread per connection ------------------------------------


class ThreadConnection(Generic[C]):
    """A blocking driver connection and the one thread that uses it."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self.executor = executor
        self.raw: C | None = None


class ThreadDriver(Driver, Generic[C]):
    """A pool of blocking connections (sqlite3, PyMySQL), each used on its own thread.

    An operation takes an idle connection (or opens one, up to ``size``), and runs its
    whole body on that connection's thread in one hop. A connection whose operation
    failed with an error that leaves it unusable (:meth:`keep_after`) is closed."""

    def __init__(self, is_duplicate: Callable[[BaseException], bool], size: int) -> None:
        super().__init__(is_duplicate)
        self._size = size
        self._idle: list[ThreadConnection[C]] = []
        self._slots: asyncio.Semaphore | None = None
        self._open: set[ThreadConnection[C]] = set()

    # What a dialect provides (each runs on the connection's thread).
    @abc.abstractmethod
    def connect(self) -> C:
        """Open and set up a connection."""

    @abc.abstractmethod
    def execute(self, raw: C, query: Query) -> Rows:
        """Run one query."""

    @abc.abstractmethod
    def close_raw(self, raw: C) -> None:
        """Close a connection (errors ignored)."""

    def keep_after(self, exc: BaseException) -> bool:
        """Whether a connection stays usable after ``exc`` (a driver error)."""
        return True

    def stale(self, raw: C) -> bool:
        """Whether an idle connection is to be replaced before its next operation
        (MySQL: open for longer than servers keep idle connections)."""
        return False

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[ThreadConnection[C]]:
        self._check_open()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        async with self._slots:
            conn = self._idle.pop() if self._idle else self._new()
            keep = True
            try:
                yield conn
            except BaseException as exc:
                # Cancelled or timed out: the thread may still be using the connection
                # (and its state is unknown): never back in the pool.
                keep = (
                    conn.raw is not None
                    and isinstance(exc, Exception)
                    and not isinstance(exc, OperationTimedOut)
                    and self.keep_after(exc)
                )
                raise
            finally:
                if keep and not self.closed:
                    self._idle.append(conn)
                else:
                    self._discard(conn)

    def _new(self) -> ThreadConnection[C]:
        conn: ThreadConnection[C] = ThreadConnection(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="workflow-store")
        )
        self._open.add(conn)
        return conn

    def _discard(self, conn: ThreadConnection[C]) -> None:
        self._open.discard(conn)
        raw, conn.raw = conn.raw, None
        if raw is not None:
            conn.executor.submit(self.close_raw, raw)
        conn.executor.shutdown(wait=False)

    async def run(self, body: Body[T], begin: Statement | None = None) -> T:
        async with self._connection() as conn:
            self.hops += 1
            loop = asyncio.get_running_loop()
            with self._watch(lambda: conn.raw):
                return await loop.run_in_executor(conn.executor, self._on_thread, conn, body, begin)

    def _on_thread(self, conn: ThreadConnection[C], body: Body[T], begin: Statement | None) -> T:
        if conn.raw is not None and self.stale(conn.raw):
            stale, conn.raw = conn.raw, None
            self.close_raw(stale)
        if conn.raw is None:
            conn.raw = self.connect()
        raw = conn.raw

        def execute(query: Query) -> Rows:
            self._record(query.statement)
            return self.execute(raw, query)

        if begin is None:
            return self._drive(execute, body)
        execute(Query(begin, {}))
        try:
            result = self._drive(execute, body)
            execute(Query(COMMIT, {}))
        except BaseException:
            try:
                execute(Query(ROLLBACK, {}))
            except BaseException:
                conn.raw = None  # unusable: never back in the pool with a transaction
                self.close_raw(raw)
            raise
        return result

    def _drive(self, execute: Callable[[Query], Rows], body: Body[T]) -> T:
        try:
            query = next(body)
            while True:
                try:
                    rows = execute(query)
                except Exception as exc:
                    if not self._is_duplicate(exc):
                        raise
                    query = body.throw(DuplicateKey(str(exc)))
                else:
                    query = body.send(rows)
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)


# -- the async drivers -----------------------------------------------------------------


class AsyncDriver(Driver, Generic[C]):
    """A driver whose connections are awaited on the event loop (psycopg)."""

    @abc.abstractmethod
    def connection(self) -> contextlib.AbstractAsyncContextManager[C]:
        """A connection for one operation, returned afterwards."""

    @abc.abstractmethod
    async def execute(self, raw: C, query: Query) -> Rows:
        """Run one query."""

    async def run(self, body: Body[T], begin: Statement | None = None) -> T:
        self._check_open()
        async with self.connection() as raw:
            self.hops += 1
            with self._watch(lambda: raw):
                if begin is None:
                    return await self._drive(raw, body)
                await self._send(raw, Query(begin, {}))
                try:
                    result = await self._drive(raw, body)
                    await self._send(raw, Query(COMMIT, {}))
                except BaseException:
                    # A connection that cannot even roll back is left broken and the
                    # pool discards it.
                    with contextlib.suppress(Exception):
                        await self._send(raw, Query(ROLLBACK, {}))
                    raise
                return result

    async def _send(self, raw: C, query: Query) -> Rows:
        self._record(query.statement)
        return await self.execute(raw, query)

    async def _drive(self, raw: C, body: Body[T]) -> T:
        try:
            query = next(body)
            while True:
                try:
                    rows = await self._send(raw, query)
                except Exception as exc:
                    if not self._is_duplicate(exc):
                        raise
                    query = body.throw(DuplicateKey(str(exc)))
                else:
                    query = body.send(rows)
        except StopIteration as stop:
            result: T = stop.value
            return result
