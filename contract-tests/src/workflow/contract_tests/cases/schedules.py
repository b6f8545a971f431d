"""Contract cases: schedules."""

from __future__ import annotations


class ScheduleCases:
    pass
