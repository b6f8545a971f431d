"""Result kinds of store operations and the outcomes a slice settles with.

Each operation returns one of a closed set of small dataclasses; callers match on
them (``match result: case Created(run): ...``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeAlias

from .records import JSON, ErrorInfo, InboxEntry, Lease, Run, StoredEvent, Wait


@dataclass(frozen=True, slots=True)
class NotFound:
    run_id: str


# create_run
@dataclass(frozen=True, slots=True)
class Created:
    run: Run
    lease: Lease | None = None
    """The lease on the new run when the create also claimed it (``owner`` given):
    the run is ``running``, as if :meth:`claim_run` had claimed it at the same ``now``."""


@dataclass(frozen=True, slots=True)
class Existing:
    """Same id and workflow: idempotent; the stored run (original input) is returned."""

    run: Run


@dataclass(frozen=True, slots=True)
class Conflict:
    """Same id, different workflow: nothing was written."""

    run: Run


CreateResult: TypeAlias = Created | Existing | Conflict


# cancel_run
@dataclass(frozen=True, slots=True)
class Cancelled:
    run: Run


@dataclass(frozen=True, slots=True)
class AlreadyTerminal:
    run: Run


CancelResult: TypeAlias = Cancelled | AlreadyTerminal | NotFound


# claim_run / claim_runnable
@dataclass(frozen=True, slots=True)
class Claimed:
    """A claim: the run (now ``running``), its lease, its unconsumed inbox entries and,
    when asked for with ``with_history=True``, its events."""

    run: Run
    lease: Lease
    inbox: list[InboxEntry] = field(default_factory=list)
    events: list[StoredEvent] | None = None


@dataclass(frozen=True, slots=True)
class NotClaimable:
    run: Run


ClaimResult: TypeAlias = Claimed | NotClaimable | NotFound


# deliver_signal / deliver_approval
@dataclass(frozen=True, slots=True)
class Delivered:
    """The run was waiting for this entry and is now ``queued``."""

    run: Run
    entry: InboxEntry


@dataclass(frozen=True, slots=True)
class Buffered:
    """Stored for a later wait; the run is unchanged."""

    run: Run
    entry: InboxEntry


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The key was seen before; nothing changed. ``entry`` is the first delivery."""

    entry: InboxEntry


@dataclass(frozen=True, slots=True)
class Closed:
    """The run is terminal; nothing was stored."""

    run: Run


DeliveryResult: TypeAlias = Delivered | Buffered | Duplicate | Closed | NotFound


# settle_run outcomes
@dataclass(frozen=True, slots=True)
class Yield:
    """Give the run back: it becomes ``queued`` and claimable again."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait for ``wait``; goes straight to ``queued`` when a matching entry is buffered."""

    wait: Wait


@dataclass(frozen=True, slots=True)
class Finish:
    output: JSON = None


@dataclass(frozen=True, slots=True)
class Fail:
    error: ErrorInfo


Outcome: TypeAlias = Yield | Pause | Finish | Fail


# fire_due_schedules
class TickOutcome(enum.StrEnum):
    FIRED = "fired"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class ScheduleTick:
    """One due tick that ``fire_due_schedules`` handled.

    ``run_id`` is ``f"{schedule_id}@{fire_at}"`` for fired ticks, ``None`` for skipped.
    ``next_fire_at`` is where the schedule now points.
    """

    schedule_id: str
    fire_at: int
    outcome: TickOutcome
    run_id: str | None
    next_fire_at: int
