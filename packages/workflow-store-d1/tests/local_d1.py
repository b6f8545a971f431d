"""A real local D1 for the tests (started by local_d1_server.py). Without Node and
miniflare (``npm ci`` in d1local/) a local run skips loudly and a CI run
(``CI=true``) fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_d1_server import ACCOUNT_ID, DATABASE_ID, LocalD1, LocalD1Missing, started

from workflow.contract_tests.servers import missing

__all__ = ["ACCOUNT_ID", "DATABASE_ID", "LocalD1", "local_d1"]


@pytest.fixture(scope="session")
def local_d1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalD1]:
    """One local D1 for the session (each test uses its own tables or prefix)."""
    try:
        with started(tmp_path_factory.mktemp("d1")) as found:
            yield found
            return
    except LocalD1Missing as exc:
        message = str(exc)
    missing("local D1", message)
