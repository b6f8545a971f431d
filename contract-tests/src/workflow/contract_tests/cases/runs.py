"""Contract cases: runs."""

from __future__ import annotations


class RunLifecycleCases:
    pass
