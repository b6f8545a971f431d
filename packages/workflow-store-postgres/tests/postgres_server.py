"""The PostgreSQL server these tests run against (``WORKFLOW_TEST_POSTGRES_URL``)."""

from __future__ import annotations

import os

from workflow.contract_tests.sql import SQLServer
from workflow.store.postgres.store import PostgresStore

SERVER = SQLServer(
    PostgresStore.from_url,
    os.environ.get("WORKFLOW_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test"),
    driver="postgresql+psycopg",
    name="PostgreSQL",
    default_port=5432,
)
URL = SERVER.url
