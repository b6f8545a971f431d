from workflow.store.d1.dialect import D1Dialect
from workflow.store.sql.migration_env import run_env

run_env(D1Dialect())
