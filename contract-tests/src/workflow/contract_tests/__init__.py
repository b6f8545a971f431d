"""The execution-store contract suite (a pytest plugin).

Adapter authors subclass :class:`StoreContract`; see its docstring.
"""

from __future__ import annotations

from .base import StoreContract
from .cases.wakeups import WatchKiller
from .support import LEASE_MS, T0, StoreFactory, requires

__all__ = ["LEASE_MS", "T0", "StoreContract", "StoreFactory", "WatchKiller", "requires"]
