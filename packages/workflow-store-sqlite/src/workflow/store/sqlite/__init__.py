"""workflow.store.sqlite: the sqlite execution store."""

from __future__ import annotations

from .store import SQLiteStore, open_store

__all__ = ["SQLiteStore", "open_store"]
