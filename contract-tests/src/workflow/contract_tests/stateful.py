"""Contract cases: stateful."""

from __future__ import annotations


class StatefulCases:
    pass
