"""workflow.store.mysql: the mysql execution store."""

from __future__ import annotations

from .store import MySQLStore, open_store

__all__ = ["MySQLStore", "open_store"]
