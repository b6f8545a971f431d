"""Driver errors turned into the contract's errors, in one decorator.

Every public operation of :class:`~workflow.store.sql.store.SQLStore` is wrapped in
:func:`operation`: no driver exception leaves a store raw. Each dialect sorts its
driver's errors into a :class:`Failure` (:meth:`~workflow.store.sql.dialect.Dialect.
classify`), and the failure decides the error:

- :attr:`Failure.RETRY` (deadlock, serialization failure, lock timeout, SQLite busy):
  the transaction was rolled back whole, so the operation runs again, at most
  :data:`RETRIES` times in all, then :class:`StoreUnavailableError`;
- :attr:`Failure.UNAVAILABLE` (cannot connect, connection lost, server shutting down or
  overloaded): :class:`StoreUnavailableError`, retryable;
- the configuration failures (database, credentials, permission, tables):
  :class:`StoreConfigurationError`, naming the fix; retrying cannot help;
- :attr:`Failure.FAILED` (syntax, data and every other unexpected error):
  :class:`StoreOperationError`, not retryable.

A store's operation (not a migration) is also bounded in time, retries included: the
driver breaks the connection of a statement still unanswered at the deadline
(``operation_timeout`` seconds after the call began, :mod:`.driver`), and a backstop
cancels the call :data:`BACKSTOP_S` later if the driver could not be interrupted;
either way the call raises :class:`StoreUnavailableError` naming the operation and the
bound (:func:`workflow.runtime.timeouts.timed_out`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import random
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from sqlalchemy import exc as sa_exc

from workflow.runtime.errors import (
    StoreConfigurationError,
    StoreOperationError,
    StoreUnavailableError,
    WorkflowStoreError,
)
from workflow.runtime.hints import shell_command
from workflow.runtime.timeouts import OPERATION_NAMES, operation_name, timed_out

from .driver import DEADLINE, OperationTimedOut

if TYPE_CHECKING:
    from .dialect import Dialect

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])


class _Operations(Protocol):
    """What :func:`operation` needs of the object whose methods it wraps (a store, a
    migrator): the dialect that classifies errors, and the URL to name in fixes."""

    @property
    def _dialect(self) -> Dialect: ...

    @property
    def url_hint(self) -> str: ...


S = TypeVar("S", bound=_Operations)

__all__ = ["OPERATION_NAMES", "Failure", "fix", "operation", "operation_name"]

RETRIES = 3
"""Attempts in all for an operation whose transaction the server rolled back."""
BACKSTOP_S = 1.0
"""Seconds past an operation's deadline before it is cancelled from outside: the
driver's own abort (a socket shut down, SQLite's interrupt) ends it at the deadline;
the backstop covers waits it cannot reach (a connect, a pool checkout)."""


class Failure(enum.Enum):
    """What a driver error means for the operation that raised it."""

    RETRY = "retry"
    """Rolled back whole by the server (deadlock, serialization failure): run it again."""
    UNAVAILABLE = "unavailable"
    """The server cannot be reached or dropped the connection: the caller may retry."""
    NO_DATABASE = "no database"
    """The database (the SQLite file's directory) does not exist."""
    AUTHENTICATION = "authentication"
    """The server rejected the user or password."""
    PERMISSION = "permission"
    """The user (the process, for SQLite) may not do what the operation needs."""
    NO_TABLES = "no tables"
    """A table or column is missing: the schema was not migrated."""
    NOT_A_DATABASE = "not a database"
    """The SQLite file exists but is not a database."""
    FAILED = "failed"
    """Anything else (syntax, data): a bug, not retryable."""


def fix(failure: Failure, dialect: Dialect, url: str) -> str:
    """What the operator should do about a configuration failure."""
    own = dialect.fix(failure, url)
    if own is not None:
        return own
    return {
        Failure.NO_DATABASE: f"the database does not exist: create it, or correct the URL {url}",
        Failure.AUTHENTICATION: f"authentication failed: correct the user or password in {url}",
        Failure.PERMISSION: (
            f"permission denied: grant the store's user access to the workflow tables of {url} "
            "(see 'Least privilege' in the SQL stores documentation)"
        ),
        Failure.NO_TABLES: (
            "the workflow tables are missing or incomplete: run "
            f"`{shell_command('workflow', 'migrate', 'upgrade', '--url', url)}`"
        ),
        Failure.NOT_A_DATABASE: f"the file is not a database: correct the path in {url}",
    }[failure]


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception (SQLAlchemy, on the migration path, wraps it)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def _describe(exc: BaseException) -> str:
    """The driver's error in one line: its type and the first line of its message."""
    orig = driver_error(exc)
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _backoff(attempt: int) -> float:
    # Jitter, so two transactions that deadlocked do not meet again in the same order.
    return random.uniform(0, 0.01 * 2**attempt)


def operation(fn: F) -> F:
    """Map driver errors to the contract's errors (the original is kept as
    ``__cause__``); run the operation again when the server rolled it back whole."""
    # Typed as fn's own type: to pyright an ``async def`` returns ``CoroutineType``,
    # and a method rebuilt as ``Callable[..., Coroutine]`` would no longer satisfy the
    # ``async def`` methods of ExecutionStore (nor SchemaMigrator).
    return cast(F, _wrapped(fn))


def _wrapped(
    fn: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:

    @functools.wraps(fn)
    async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        bound: float | None = getattr(self, "operation_timeout", None)
        if bound is None:  # a migration: as long as it takes
            return await attempts(self, *args, **kwargs)
        deadline = asyncio.get_running_loop().time() + bound
        token = DEADLINE.set(deadline)
        backstop = asyncio.timeout_at(deadline + BACKSTOP_S)
        try:
            async with backstop:
                return await attempts(self, *args, **kwargs)
        except OperationTimedOut as exc:
            raise timed_out(self._dialect.name, fn.__name__, bound) from exc
        except TimeoutError as exc:
            if not backstop.expired():
                raise
            raise timed_out(self._dialect.name, fn.__name__, bound) from exc
        finally:
            # ValueError: closed outside the context it ran in (a coroutine abandoned
            # with its task when a loop was torn down mid-call, closed later by the
            # garbage collector). That context is gone; there is nothing to restore.
            with contextlib.suppress(ValueError):
                DEADLINE.reset(token)

    async def attempts(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        dialect, op = self._dialect, operation_name(fn.__name__)
        for attempt in range(1, RETRIES + 1):
            try:
                return await fn(self, *args, **kwargs)
            except (WorkflowStoreError, OperationTimedOut):
                raise
            except Exception as exc:
                failure = dialect.classify(driver_error(exc))
                if failure is None:
                    if not isinstance(exc, (OSError, TimeoutError, sa_exc.SQLAlchemyError)):
                        raise  # not the database's: a bug, with its own traceback
                    # A socket error, a pool that could not connect in time, or
                    # SQLAlchemy (migrations) failing outside the driver.
                    failure = (
                        Failure.FAILED
                        if isinstance(exc, sa_exc.SQLAlchemyError)
                        and not isinstance(exc, (sa_exc.TimeoutError, sa_exc.DisconnectionError))
                        else Failure.UNAVAILABLE
                    )
                if failure is Failure.RETRY:
                    if attempt < RETRIES:
                        await asyncio.sleep(_backoff(attempt))
                        continue
                    raise StoreUnavailableError(
                        f"{dialect.name} store gave up trying to {op} after {RETRIES} "
                        "attempts, each undone by contention (deadlock or lock): "
                        f"{_describe(exc)}"
                    ) from exc
                raise _error(failure, dialect, op, exc, self.url_hint) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    return cast(Callable[Concatenate[S, P], Coroutine[Any, Any, T]], wrapper)


def _error(
    failure: Failure, dialect: Dialect, op: str, exc: BaseException, url: str
) -> WorkflowStoreError:
    name = dialect.name
    if failure is Failure.UNAVAILABLE:
        return StoreUnavailableError(f"{name} store unavailable, could not {op}: {_describe(exc)}")
    if failure is Failure.FAILED:
        return StoreOperationError(
            f"{name} store failed to {op}: {_describe(exc)} (a bug in the store or a "
            "server it does not support; not retryable: report it with this message)"
        )
    return StoreConfigurationError(
        f"{name} store cannot {op}: {_describe(exc)}; {fix(failure, dialect, url)}"
    )
