"""How each due schedule moves on when it is fired: decided in Python, once for every
SQL store, because the next fire time comes from the cron library.

A store reads the due schedules, plans their moves with :func:`planned_moves`, and
writes them the way its database allows (the portable body under the rows' locks;
PostgreSQL and MySQL by compare-and-set on the values each schedule was read with).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from workflow.runtime.records import Overlap
from workflow.runtime.results import ScheduleTick, TickOutcome
from workflow.runtime.schedules import next_fire_at

from . import rows


@dataclass(frozen=True)
class ScheduleMove:
    """One due schedule: the tick it reports and the values it is moved to."""

    tick: ScheduleTick
    workflow_id: str
    workflow_version: str | None
    input: str | None
    """The schedule's input (the fired run's), as stored."""
    seen_updated_at: int
    """``updated_at`` as read: a compare-and-set moves the schedule only if it is
    unchanged since (an upsert in between wins)."""
    last_fired_at: int | None
    last_run_id: str | None

    @property
    def fires(self) -> bool:
        return self.tick.outcome is TickOutcome.FIRED

    def params(self) -> dict[str, Any]:
        """The values a compare-and-set binds: ``sid`` and what it was read with
        (``seen_nfa``, ``seen_updated``), what it moves to (``nfa``, ``lfa``, ``lri``),
        and whether a run is inserted (``fires``)."""
        return {
            "sid": self.tick.schedule_id,
            "seen_nfa": self.tick.fire_at,
            "seen_updated": self.seen_updated_at,
            "nfa": self.tick.next_fire_at,
            "lfa": self.last_fired_at,
            "lri": self.last_run_id,
            "fires": self.fires,
        }


def planned_moves(due: Iterable[rows.Row], now: int) -> list[ScheduleMove]:
    """The move of each due schedule (rows of ``SQLStore._due_schedules``): it fires a
    run ``f"{schedule_id}@{fire_at}"`` unless it skips overlaps and its last run is still
    going (``busy``), and points to its next fire time after ``now`` either way."""
    moves = []
    for d in due:
        s = rows.schedule_from_row(d)
        fire_at, following = s.next_fire_at, next_fire_at(s.spec, now)
        fires = not (s.overlap is Overlap.SKIP and d["busy"])
        run_id = f"{s.schedule_id}@{fire_at}" if fires else None
        outcome = TickOutcome.FIRED if fires else TickOutcome.SKIPPED
        moves.append(
            ScheduleMove(
                ScheduleTick(s.schedule_id, fire_at, outcome, run_id, following),
                workflow_id=s.workflow_id,
                workflow_version=s.workflow_version,
                input=d["input"],
                seen_updated_at=s.updated_at,
                last_fired_at=fire_at if fires else s.last_fired_at,
                last_run_id=run_id if fires else s.last_run_id,
            )
        )
    return moves
