"""Contract cases: concurrency."""

from __future__ import annotations


class ConcurrencyCases:
    pass
