"""Contract cases: signals."""

from __future__ import annotations


class DeliveryCases:
    pass
