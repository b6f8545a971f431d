"""One empty database namespace per test, on each SQL adapter's real server.

``db`` runs a test three times: SQLite (a file in ``tmp_path``), PostgreSQL (a schema
of its own, dropped afterwards) and MariaDB/MySQL (a database of its own, dropped
afterwards). A missing server skips loudly, or fails under ``CI=true``
(:func:`workflow.contract_tests.servers.require_server`). Servers come from
``WORKFLOW_TEST_POSTGRES_URL`` and ``WORKFLOW_TEST_MYSQL_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from databases import Database
from sqlalchemy.engine import make_url

from workflow.contract_tests.servers import require_server

POSTGRES_URL = os.environ.get("WORKFLOW_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("WORKFLOW_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    adapter: str = request.param
    if adapter == "sqlite":
        yield Database.sqlite(tmp_path / "workflow.db")
        return
    name = f"wf_mig_{uuid.uuid4().hex[:12]}"
    if adapter == "postgres":
        require_server(POSTGRES_URL, "PostgreSQL", default_port=5432)
        database = Database.postgres(make_url(POSTGRES_URL), name)
    else:
        require_server(MYSQL_URL, "MySQL/MariaDB", default_port=3306)
        database = Database.mysql(make_url(MYSQL_URL), name)
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def admin(db: Database) -> Iterator[sa.Engine]:
    """A synchronous engine on the server's own default namespace (not the test's)."""
    engine = db.admin_engine()
    yield engine
    engine.dispose()
