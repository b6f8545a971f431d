from workflow.store.mysql.dialect import MySQLDialect
from workflow.store.sql.migration_env import run_env

run_env(MySQLDialect())
