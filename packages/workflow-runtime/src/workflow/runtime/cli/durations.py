"""Durations on the command line: ``90`` or ``90s``, ``15m``, ``12h``, ``7d``, ``2w``."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    # Generic in the locked click; the declared floor (8.1) has a plain class.
    _ParamType = click.ParamType[float, Any]
else:
    _ParamType = click.ParamType

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>[smhdw]?)")


def seconds_in(text: str, *, unit_required: bool = False) -> float | None:
    """``text`` as a duration in seconds, or ``None`` if it is not one (nor a bare number
    with ``unit_required``: where a time is also accepted, ``2021`` is a year)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or (unit_required and not match["unit"]):
        return None
    seconds = float(match["value"]) * _UNITS[match["unit"] or "s"]
    return seconds if math.isfinite(seconds) else None


class Duration(_ParamType):
    """A duration, converted to seconds (a float)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        seconds = seconds_in(str(value))
        if seconds is None:
            self.fail(
                f"{value!r} is not a duration: a number with an optional unit "
                "s, m, h, d or w (90, 15m, 12h, 7d)",
                param,
                ctx,
            )
        return seconds


DURATION = Duration()
