"""Contract cases: timers."""

from __future__ import annotations


class TimerCases:
    pass
