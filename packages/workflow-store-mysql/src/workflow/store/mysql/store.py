"""The MySQL 8 / MariaDB 10.6+ store (aiomysql over PyMySQL)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workflow.runtime import codec
from workflow.runtime.errors import InvalidArgumentError
from workflow.store.sql import DEFAULT_TABLE_PREFIX, OWNED_ENGINE, SQLStore, opened
from workflow.store.sql.urls import parse_store_url

# Once per connection. READ COMMITTED: the store's locking model (InnoDB's REPEATABLE
# READ default adds gap locks). group_concat_max_len: MariaDB builds JSON_ARRAYAGG on
# GROUP_CONCAT and silently cuts its result at it (1 MiB by default), so a claim
# carrying a large inbox or history would get truncated JSON.
_SESSION_SETUP = (
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION group_concat_max_len = 4294967295",
)
_SET_UP = "workflow_session_set_up"


def _set_up_session(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # On checkout, not connect: also covers connections an engine we were handed had
    # pooled before the store existed. Two statements per physical connection, once.
    if record.info.get(_SET_UP):
        return
    cursor = dbapi_connection.cursor()
    try:
        for statement in _SESSION_SETUP:
            cursor.execute(statement)
    finally:
        cursor.close()
    record.info[_SET_UP] = True


class MySQLStore(SQLStore):
    """An execution store in MySQL 8.0.1+ or MariaDB 10.6+ (``SKIP LOCKED``).

    Sessions run READ COMMITTED. MySQL has no ``UPDATE … RETURNING``: claims take a
    ``SELECT … FOR UPDATE SKIP LOCKED``, an ``UPDATE`` and a read in one transaction.
    ``schema`` names another database on the same server.
    """

    migrations: ClassVar[str] = "workflow.store.mysql:migrations"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        owns_engine: bool = False,
    ) -> None:
        if engine.dialect.name not in {"mysql", "mariadb"}:
            raise InvalidArgumentError(
                f"MySQLStore needs a mysql engine, got {engine.dialect.name}"
            )
        super().__init__(
            engine,
            schema=schema,
            table_prefix=table_prefix,
            max_payload_bytes=max_payload_bytes,
            owns_engine=owns_engine,
        )
        if not event.contains(engine.sync_engine.pool, "checkout", _set_up_session):
            event.listen(engine.sync_engine.pool, "checkout", _set_up_session)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MySQLStore:
        parsed, from_query = parse_store_url(url, "mysql+aiomysql", ("mysql", "mariadb"))
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        engine = create_async_engine(parsed, **OWNED_ENGINE)
        return cls(engine, owns_engine=True, **{**from_query, **options})


async def open_store(url: str, *, verify_schema: bool = True, **options: Any) -> MySQLStore:
    """Entry point for ``mysql://`` and ``mariadb://``: connects and checks the schema."""
    return await opened(MySQLStore.from_url(url, **options), verify_schema=verify_schema)
