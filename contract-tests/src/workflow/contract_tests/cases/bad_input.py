"""Contract cases: bad_input."""

from __future__ import annotations


class BadInputCases:
    pass
