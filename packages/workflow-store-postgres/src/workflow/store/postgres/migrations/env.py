from workflow.store.postgres.dialect import PostgresDialect
from workflow.store.sql.migration_env import run_env

run_env(PostgresDialect())
