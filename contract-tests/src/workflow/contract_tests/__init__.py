"""The execution-store contract suite (a pytest plugin).

Adapter authors subclass :class:`StoreContract`; see its docstring.
"""

from __future__ import annotations

import pkgutil

import pytest

# Before the modules are imported: pytest rewrites assertions only in test modules and
# the modules registered here, and a failing case should show its compared values, not
# a bare AssertionError. (An installed plugin's files are registered by pytest itself;
# an editable install, a checkout, is not.)
pytest.register_assert_rewrite(
    *(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name != "plugin")
)

from .base import StoreContract  # noqa: E402
from .cases.wakeups import WatchKiller  # noqa: E402
from .support import LEASE_MS, T0, StoreFactory, requires  # noqa: E402

__all__ = ["LEASE_MS", "T0", "StoreContract", "StoreFactory", "WatchKiller", "requires"]
