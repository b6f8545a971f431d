"""The MySQL/MariaDB server these tests run against (``WORKFLOW_TEST_MYSQL_URL``)."""

from __future__ import annotations

import os

from workflow.contract_tests.sql import SQLServer
from workflow.store.mysql.store import MySQLStore

SERVER = SQLServer(
    MySQLStore.from_url,
    os.environ.get("WORKFLOW_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
    driver="mysql+pymysql",
    name="MySQL/MariaDB",
    default_port=3306,
    drop="DROP DATABASE IF EXISTS {name}",
)
URL = SERVER.url
