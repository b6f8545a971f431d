from workflow.store.sql.migration_env import run_env
from workflow.store.sqlite.dialect import SQLiteDialect

run_env(SQLiteDialect())
