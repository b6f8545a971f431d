"""Contract cases: events."""

from __future__ import annotations


class EventLogCases:
    pass
