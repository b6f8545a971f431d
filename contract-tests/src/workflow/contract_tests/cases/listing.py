"""Contract cases: listing."""

from __future__ import annotations


class ListingCases:
    pass
