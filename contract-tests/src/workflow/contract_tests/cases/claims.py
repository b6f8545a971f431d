"""Contract cases: claims."""

from __future__ import annotations


class ClaimCases:
    pass
