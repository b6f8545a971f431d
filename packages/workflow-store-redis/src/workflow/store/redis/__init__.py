"""workflow.store.redis: the Redis execution store."""

from __future__ import annotations

from .keys import Keyspace
from .store import RedisStore, open_store

__all__ = ["Keyspace", "RedisStore", "open_store"]
