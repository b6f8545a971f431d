"""A store seen through OpenTelemetry: every contract operation in a client span.

:func:`traced` wraps the store a :class:`~workflow.runtime.Runtime` uses when the
OpenTelemetry API is installed. Spans follow the database conventions: ``db.system``
is what the store declares in its ``db_system`` attribute (``sqlite``, ``postgresql``,
``mysql``, ``redis``, ``memory``; ``other`` when it declares none) and
``db.operation.name`` the contract operation (``claim_runnable``). While no tracer
provider is configured an operation is one extra call and one ``isinstance`` check.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, cast, runtime_checkable

from . import telemetry
from .contract import ExecutionStore

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

OPERATIONS: Final = frozenset(
    name
    for name, member in vars(ExecutionStore).items()
    if not name.startswith("_") and inspect.iscoroutinefunction(member)
)
"""The contract's coroutine operations (``subscribe_events`` yields for as long as a
run lives: a span around it would say nothing about the store)."""


@runtime_checkable
class NamesItsDatabase(Protocol):
    """A store that names its database system for the spans (``db_system``); not part
    of the contract, as a store that owns a schema is not (:mod:`.schema`)."""

    @property
    def db_system(self) -> str:
        """The semantic conventions' ``db.system`` value: ``postgresql``, ``redis``..."""
        ...


class TracedStore:
    """Delegates everything to ``store``; the contract operations run in a span."""

    def __init__(self, store: ExecutionStore) -> None:
        self.inner = store
        system = store.db_system if isinstance(store, NamesItsDatabase) else None
        self._attributes = {"db.system": system if isinstance(system, str) else "other"}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if name not in OPERATIONS:
            return value
        wrapped = self._wrap(name, value)
        # Kept on the instance: __getattr__ is not asked again for this operation.
        setattr(self, name, wrapped)
        return wrapped

    def _wrap(
        self, name: str, operation: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        attributes = {**self._attributes, "db.operation.name": name}

        @functools.wraps(operation)
        def call(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            tracer = telemetry.tracer()
            if tracer is None:
                return operation(*args, **kwargs)  # no coroutine of its own: no cost
            return _in_span(tracer, name, attributes, operation(*args, **kwargs))

        return call

    def __repr__(self) -> str:
        return f"TracedStore({self.inner!r})"


async def _in_span(
    tracer: Tracer, name: str, attributes: dict[str, str], call: Awaitable[Any]
) -> Any:
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
        return await call


def traced(store: ExecutionStore) -> ExecutionStore:
    """``store`` in a :class:`TracedStore` when the OpenTelemetry API is installed
    (once: a traced store is returned as it is); else ``store`` itself."""
    if isinstance(store, TracedStore) or not telemetry.available():
        return store
    return cast("ExecutionStore", TracedStore(store))
