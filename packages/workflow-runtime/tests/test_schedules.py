"""next_fire_at and validate_spec: the one helper every store uses for schedule ticks.

Expected instants are written out as UTC milliseconds computed by hand (the comment
beside each gives the UTC and the local wall-clock time), not derived with zoneinfo.
"""

from __future__ import annotations

import pytest

from workflow.runtime import CronSpec, IntervalSpec, InvalidArgumentError, next_fire_at
from workflow.runtime.records import ScheduleSpec
from workflow.runtime.schedules import validate_spec
from workflow.runtime.validation import MAX_MS

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

JAN_1_2024 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday


def ticks(spec: ScheduleSpec, after: int, until: int) -> list[int]:
    """Every tick of ``spec`` in ``(after, until]``, by repeated next_fire_at."""
    out: list[int] = []
    tick = next_fire_at(spec, after)
    while tick <= until:
        out.append(tick)
        tick = next_fire_at(spec, tick)
    return out


# -- intervals -------------------------------------------------------------------------


def test_interval_ticks_are_anchor_plus_multiples_of_every_ms() -> None:
    spec = IntervalSpec(every_ms=1000, anchor_ms=500)
    assert next_fire_at(spec, 500) == 1500
    assert next_fire_at(spec, 501) == 1500
    assert next_fire_at(spec, 1499) == 1500
    assert ticks(spec, 1500, 4500) == [2500, 3500, 4500]


def test_interval_next_tick_is_strictly_after_an_exact_tick() -> None:
    spec = IntervalSpec(every_ms=HOUR)
    assert next_fire_at(spec, 0) == HOUR
    assert next_fire_at(spec, HOUR - 1) == HOUR
    assert next_fire_at(spec, HOUR) == 2 * HOUR


def test_interval_with_anchor_in_the_past_keeps_its_phase() -> None:
    spec = IntervalSpec(every_ms=DAY, anchor_ms=JAN_1_2024 + 9 * HOUR)
    # 2024-03-05T12:00Z: the next tick is 2024-03-06T09:00Z.
    assert next_fire_at(spec, 1_709_640_000_000) == 1_709_715_600_000


def test_interval_with_anchor_in_the_future_first_fires_at_the_anchor() -> None:
    spec = IntervalSpec(every_ms=1000, anchor_ms=10_000)
    assert next_fire_at(spec, 0) == 10_000
    assert next_fire_at(spec, 9_999) == 10_000
    assert next_fire_at(spec, 10_000) == 11_000


def test_missed_interval_ticks_collapse_into_the_first_tick_after() -> None:
    spec = IntervalSpec(every_ms=MINUTE, anchor_ms=0)
    assert next_fire_at(spec, 10 * DAY + 30_000) == 10 * DAY + MINUTE


def test_interval_of_one_ms() -> None:
    assert ticks(IntervalSpec(1), 0, 3) == [1, 2, 3]


# -- cron in UTC ---------------------------------------------------------------------------


def test_cron_every_five_minutes_in_utc() -> None:
    spec = CronSpec("*/5 * * * *")
    assert spec.timezone == "UTC"
    assert ticks(spec, JAN_1_2024, JAN_1_2024 + 15 * MINUTE) == [
        JAN_1_2024 + 5 * MINUTE,
        JAN_1_2024 + 10 * MINUTE,
        JAN_1_2024 + 15 * MINUTE,
    ]


def test_cron_next_tick_is_strictly_after_an_exact_tick() -> None:
    spec = CronSpec("0 * * * *")
    assert next_fire_at(spec, JAN_1_2024 - 1) == JAN_1_2024
    assert next_fire_at(spec, JAN_1_2024) == JAN_1_2024 + HOUR


@pytest.mark.parametrize("offset", [1, 500, 999, 1000, 59_999])
def test_cron_after_inside_the_ticks_second_gives_the_next_tick(offset: int) -> None:
    spec = CronSpec("0 * * * *")
    assert next_fire_at(spec, JAN_1_2024 + offset) == JAN_1_2024 + HOUR


def test_cron_weekdays_skip_the_weekend() -> None:
    spec = CronSpec("0 9 * * MON-FRI")
    saturday = JAN_1_2024 + 5 * DAY  # 2024-01-06T00:00Z
    # Monday 2024-01-08T09:00Z.
    assert next_fire_at(spec, saturday) == 1_704_704_400_000


def test_cron_in_a_zone_without_dst_is_shifted_by_its_offset() -> None:
    # 09:00 in Tokyo (UTC+9) is 00:00Z.
    spec = CronSpec("0 9 * * *", "Asia/Tokyo")
    assert next_fire_at(spec, JAN_1_2024 - 1) == JAN_1_2024
    assert next_fire_at(spec, JAN_1_2024) == JAN_1_2024 + DAY


def test_cron_from_the_epoch() -> None:
    assert next_fire_at(CronSpec("* * * * *"), 0) == MINUTE


# -- cron with a seconds field (6 fields, seconds first) -----------------------------------------


def test_cron_seconds_field_comes_first() -> None:
    spec = CronSpec("*/15 * * * * *")
    assert ticks(spec, JAN_1_2024, JAN_1_2024 + MINUTE) == [
        JAN_1_2024 + 15_000,
        JAN_1_2024 + 30_000,
        JAN_1_2024 + 45_000,
        JAN_1_2024 + 60_000,
    ]


def test_cron_seconds_field_at_a_fixed_second_of_each_hour() -> None:
    spec = CronSpec("30 0 * * * *")  # second 30 of minute 0 of every hour
    assert next_fire_at(spec, JAN_1_2024) == JAN_1_2024 + 30_000
    assert next_fire_at(spec, JAN_1_2024 + 30_000) == JAN_1_2024 + HOUR + 30_000


@pytest.mark.parametrize(("offset", "expected"), [(-1, 15_000), (-999, 15_000), (0, 30_000)])
def test_cron_seconds_strictly_after_with_millisecond_precision(offset: int, expected: int) -> None:
    spec = CronSpec("*/15 * * * * *")
    assert next_fire_at(spec, JAN_1_2024 + 15_000 + offset) == JAN_1_2024 + expected


@pytest.mark.parametrize("offset", [1, 500, 999])
def test_cron_seconds_after_inside_a_ticks_second_skips_it(offset: int) -> None:
    spec = CronSpec("*/15 * * * * *")
    assert next_fire_at(spec, JAN_1_2024 + 15_000 + offset) == JAN_1_2024 + 30_000


# -- DST: a daily job fires exactly once on both transition days -----------------------------
#
# Europe/Berlin 2024: CET (+1) -> CEST (+2) on 31 March at 01:00Z (02:00 local jumps to
# 03:00); CEST -> CET on 27 October at 01:00Z (03:00 local falls back to 02:00).
# America/New_York 2024: EST (-5) -> EDT (-4) on 10 March at 07:00Z (02:00 jumps to
# 03:00); EDT -> EST on 3 November at 06:00Z (02:00 falls back to 01:00).
# A local time skipped by spring-forward fires once, right after the gap; an ambiguous
# local time fires once, at its first occurrence.


def test_berlin_daily_0230_on_spring_forward_day_fires_once_after_the_gap() -> None:
    spec = CronSpec("30 2 * * *", "Europe/Berlin")
    assert ticks(spec, 1_711_800_000_000, 1_711_972_800_000) == [  # 03-30 12:00Z .. 04-01 12:00Z
        1_711_846_800_000,  # 2024-03-31T01:00Z = 03:00 CEST (02:30 does not exist)
        1_711_931_400_000,  # 2024-04-01T00:30Z = 02:30 CEST
    ]


def test_berlin_daily_0230_on_fall_back_day_fires_once_at_the_first_occurrence() -> None:
    spec = CronSpec("30 2 * * *", "Europe/Berlin")
    assert ticks(spec, 1_729_944_000_000, 1_730_116_800_000) == [  # 10-26 12:00Z .. 10-28 12:00Z
        1_729_989_000_000,  # 2024-10-27T00:30Z = 02:30 CEST (not again at 01:30Z = 02:30 CET)
        1_730_079_000_000,  # 2024-10-28T01:30Z = 02:30 CET
    ]


def test_new_york_daily_0230_on_spring_forward_day_fires_once_after_the_gap() -> None:
    spec = CronSpec("30 2 * * *", "America/New_York")
    assert ticks(spec, 1_709_985_600_000, 1_710_158_400_000) == [  # 03-09 12:00Z .. 03-11 12:00Z
        1_710_054_000_000,  # 2024-03-10T07:00Z = 03:00 EDT (02:30 does not exist)
        1_710_138_600_000,  # 2024-03-11T06:30Z = 02:30 EDT
    ]


def test_new_york_daily_0230_on_fall_back_day_fires_once() -> None:
    spec = CronSpec("30 2 * * *", "America/New_York")
    assert ticks(spec, 1_730_548_800_000, 1_730_721_600_000) == [  # 11-02 12:00Z .. 11-04 12:00Z
        1_730_619_000_000,  # 2024-11-03T07:30Z = 02:30 EST
        1_730_705_400_000,  # 2024-11-04T07:30Z = 02:30 EST
    ]


def test_new_york_daily_0130_on_fall_back_day_fires_once_at_the_first_occurrence() -> None:
    # 01:30 happens twice in New York on 3 November: 05:30Z (EDT) and 06:30Z (EST).
    spec = CronSpec("30 1 * * *", "America/New_York")
    assert ticks(spec, 1_730_548_800_000, 1_730_721_600_000) == [
        1_730_611_800_000,  # 2024-11-03T05:30Z = 01:30 EDT
        1_730_701_800_000,  # 2024-11-04T06:30Z = 01:30 EST
    ]


def test_new_york_daily_0130_on_spring_forward_day_is_before_the_gap() -> None:
    spec = CronSpec("30 1 * * *", "America/New_York")
    assert next_fire_at(spec, 1_709_985_600_000) == 1_710_052_200_000  # 03-10 06:30Z = 01:30 EST


def test_same_spec_in_utc_ignores_dst() -> None:
    spec = CronSpec("30 2 * * *")
    assert ticks(spec, 1_711_800_000_000, 1_711_972_800_000) == [
        1_711_852_200_000,  # 2024-03-31T02:30Z
        1_711_938_600_000,  # 2024-04-01T02:30Z
    ]


# -- a cron that never matches --------------------------------------------------------------


def test_never_matching_cron_returns_max_ms() -> None:
    # Day 1 of the month is never the fifth Monday: it parses, but never fires.
    spec = validate_spec(CronSpec("0 0 */31 * MON#5"))
    assert next_fire_at(spec, JAN_1_2024) == MAX_MS


def test_cron_naming_a_day_no_month_has_is_rejected_up_front() -> None:
    # cronsim refuses 30 February when parsing, so it can never reach a store.
    with pytest.raises(InvalidArgumentError, match=r"^bad cron expression '0 0 30 2 \*'"):
        validate_spec(CronSpec("0 0 30 2 *"))


# -- validate_spec --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        CronSpec("* * * * *"),
        CronSpec("0 9 * * MON-FRI", "America/New_York"),
        CronSpec("*/10 * * * * *", "Europe/Berlin"),
        CronSpec("0 0 L * *", "Australia/Lord_Howe"),
        IntervalSpec(1),
        IntervalSpec(MAX_MS, MAX_MS),
    ],
    ids=repr,
)
def test_validate_spec_returns_a_valid_spec_unchanged(spec: ScheduleSpec) -> None:
    assert validate_spec(spec) is spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (CronSpec("not a cron"), r"^bad cron expression 'not a cron': "),
        (CronSpec("61 * * * *"), r"^bad cron expression '61 \* \* \* \*': "),
        (CronSpec("* * * * * * *"), r"^bad cron expression "),
        (CronSpec(""), r"^bad cron expression '': "),
        (
            CronSpec("* * * * *", "Mars/Olympus_Mons"),
            r"^unknown IANA time zone 'Mars/Olympus_Mons'$",
        ),
        (CronSpec("* * * * *", "europe/berlin"), r"^unknown IANA time zone 'europe/berlin'$"),
        (CronSpec("* * * * *", ""), r"^unknown IANA time zone ''$"),
        (CronSpec("* * * * *", "../../etc/passwd"), r"^unknown IANA time zone"),
        (CronSpec(5, "UTC"), r"^CronSpec.expression and CronSpec.timezone must be str$"),  # type: ignore[arg-type]
        (IntervalSpec(0), r"^IntervalSpec.every_ms must be > 0$"),
        (IntervalSpec(-1), r"^IntervalSpec.every_ms must be between 0 and"),
        (IntervalSpec(MAX_MS + 1), r"^IntervalSpec.every_ms must be between 0 and"),
        (IntervalSpec(1.5), r"^IntervalSpec.every_ms must be an int, not float$"),  # type: ignore[arg-type]
        (IntervalSpec(1000, -1), r"^IntervalSpec.anchor_ms must be between 0 and"),
        (IntervalSpec(True), r"^IntervalSpec.every_ms must be an int, not bool$"),
    ],
    ids=repr,
)
def test_validate_spec_rejects(spec: ScheduleSpec, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        validate_spec(spec)


def test_validate_spec_rejects_other_types() -> None:
    with pytest.raises(
        InvalidArgumentError,
        match=r"^schedule spec must be a CronSpec or an IntervalSpec, not str$",
    ):
        validate_spec("*/5 * * * *")
