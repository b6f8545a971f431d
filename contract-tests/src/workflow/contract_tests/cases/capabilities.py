"""Contract cases: capabilities."""

from __future__ import annotations


class CapabilityCases:
    pass
