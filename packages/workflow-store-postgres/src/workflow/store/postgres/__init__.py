"""workflow.store.postgres: the postgres execution store."""

from __future__ import annotations

from .store import PostgresStore, open_store

__all__ = ["PostgresStore", "open_store"]
