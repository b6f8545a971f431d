"""Next-tick computation for schedules: one helper every store calls.

Cron expressions are evaluated by `cronsim` (maintained, dependency-free, and
DST-correct in the Debian-cron sense: a local time skipped by a spring-forward
transition fires once right after it, an ambiguous autumn time fires once). We do
not parse cron ourselves: the edge cases are where home-grown parsers fail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import InvalidArgumentError
from .records import CronSpec, IntervalSpec, ScheduleSpec
from .validation import MAX_MS, check_time

_UTC = UTC


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def validate_spec(spec: object) -> ScheduleSpec:
    """Check a spec fully (expression parses, zone exists, interval positive)."""
    if isinstance(spec, CronSpec):
        if type(spec.expression) is not str or type(spec.timezone) is not str:
            raise InvalidArgumentError("CronSpec.expression and CronSpec.timezone must be str")
        try:
            zone = _zone(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidArgumentError(f"unknown IANA time zone {spec.timezone!r}") from None
        try:
            CronSim(spec.expression, datetime(2000, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            raise InvalidArgumentError(f"bad cron expression {spec.expression!r}: {exc}") from None
        return spec
    if isinstance(spec, IntervalSpec):
        check_time(spec.every_ms, "IntervalSpec.every_ms")
        if spec.every_ms == 0:
            raise InvalidArgumentError("IntervalSpec.every_ms must be > 0")
        check_time(spec.anchor_ms, "IntervalSpec.anchor_ms")
        return spec
    raise InvalidArgumentError(
        f"schedule spec must be a CronSpec or an IntervalSpec, not {type(spec).__name__}"
    )


def next_fire_at(spec: ScheduleSpec, after: int) -> int:
    """The first tick of ``spec`` strictly after ``after`` (ms since the epoch).

    Ticks past :data:`~workflow.runtime.validation.MAX_MS` (year 9999) are reported as
    ``MAX_MS``: such a schedule never fires.
    """
    if isinstance(spec, IntervalSpec):
        if after < spec.anchor_ms:
            return spec.anchor_ms
        k = (after - spec.anchor_ms) // spec.every_ms + 1
        return min(spec.anchor_ms + k * spec.every_ms, MAX_MS)
    zone = _zone(spec.timezone)
    try:
        start = datetime.fromtimestamp(after / 1000, tz=_UTC).astimezone(zone)
        tick = next(CronSim(spec.expression, start))
        ms = int(tick.timestamp()) * 1000
    except (StopIteration, OverflowError, ValueError):
        # No match within cronsim's 50-year horizon (e.g. "0 0 */31 * MON#5"), or past
        # the year 9999.
        return MAX_MS
    # cronsim works in whole seconds; ``after`` may fall inside the tick's second.
    return min(ms, MAX_MS) if ms > after else next_fire_at(spec, ms + 999)
