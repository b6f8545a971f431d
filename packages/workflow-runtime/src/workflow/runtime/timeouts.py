"""The bound on a store operation's duration, shared by every store.

A store call on a connection the network dropped without a reset (a half-open TCP
connection, a black hole) would wait for a reply forever: nothing in TCP ends it while
the peer's kernel never answers. Every store therefore bounds each operation by
``operation_timeout`` seconds (one option name and unit on every store, in its URL or as
a keyword): past it the call raises :class:`StoreUnavailableError` naming the operation
and the bound, and the connection it used is discarded, never reused (its state is
unknown: the statement may have run, and a late reply would answer the next one).
"""

from __future__ import annotations

import math

from .errors import InvalidArgumentError, StoreUnavailableError

DEFAULT_OPERATION_TIMEOUT_S = 10.0
"""Seconds a store operation may take before it fails: a third of the runtime's default
lease (30 s), so a heartbeat stuck on a dead connection fails, and the next one can be
tried, well before the lease it renews runs out."""
MAX_OPERATION_TIMEOUT_S = 86_400.0

OPERATION_NAMES: dict[str, str] = {
    # The contract's operations.
    "create_run": "create a run",
    "load_run": "read a run",
    "list_runs": "list runs",
    "cancel_run": "cancel a run",
    "delete_run": "delete a run",
    "purge_runs": "purge finished runs",
    "claim_run": "claim a run",
    "claim_runnable": "claim runnable runs",
    "heartbeat": "renew a lease",
    "append_events": "append events to a run's log",
    "read_events": "read a run's events",
    "get_timeline": "read a run's timeline",
    "settle_run": "record a run's progress",
    "deliver_signal": "deliver a signal",
    "deliver_approval": "deliver an approval",
    "read_inbox": "read a run's inbox",
    "fire_due_timers": "fire due timers",
    "upsert_schedule": "save a schedule",
    "delete_schedule": "delete a schedule",
    "get_schedule": "read a schedule",
    "list_schedules": "list schedules",
    "fire_due_schedules": "fire due schedules",
    "schema_status": "read the schema revision",
    "verify_schema": "check the schema revision",
    "create_schema": "create the schema",
    "durability_problems": "check the server's durability settings",
    # The migrators'.
    "current": "read the schema revision",
    "status": "read the schema revision",
    "verify": "check the schema revision",
    "upgrade": "upgrade the schema",
    "downgrade": "downgrade the schema",
}
"""What each store method does, as error messages say it (a user reads "cannot read
the schema revision", never a method name)."""


def operation_name(method: str) -> str:
    """The user-facing name of the operation ``method`` implements."""
    return OPERATION_NAMES.get(method, method.replace("_", " "))


def check_operation_timeout(value: object) -> float:
    """``operation_timeout``: seconds, an int or float, finite, above 0 and at most a
    day. Returned as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(
            f"operation_timeout must be a number of seconds, not {type(value).__name__}"
        )
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_OPERATION_TIMEOUT_S):
        raise InvalidArgumentError(
            f"operation_timeout must be above 0 and at most {MAX_OPERATION_TIMEOUT_S:g} "
            f"seconds, got {value!r}"
        )
    return seconds


def parse_operation_timeout(text: str, where: str) -> float:
    """``operation_timeout`` read from a URL's query string (``?operation_timeout=2.5``);
    ``where`` names the URL in the error."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgumentError(
            f"{where}: operation_timeout must be a number of seconds, not {text!r}"
        ) from None
    return check_operation_timeout(value)


def timed_out(store: str, method: str, bound: float) -> StoreUnavailableError:
    """The error of an operation that got no answer within ``bound`` seconds."""
    return StoreUnavailableError(
        f"{store} store unavailable, could not {operation_name(method)} within "
        f"operation_timeout={bound:g} s: no answer in time (the connection was "
        "discarded; the operation may or may not have taken effect)"
    )
