"""Contract cases: payloads."""

from __future__ import annotations


class PayloadFidelityCases:
    pass
