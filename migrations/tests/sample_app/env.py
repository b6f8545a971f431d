"""A sample application's Alembic ``env.py``: its own history, its own
``alembic_version``, in the database it shares with a workflow store.

The one line that matters for the store is ``include_name``: without it,
``alembic revision --autogenerate`` would propose dropping the store's tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sample_app.app_models import metadata
from sqlalchemy.pool import NullPool

from workflow.store.sql import ignore_workflow_tables


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None, "the sample app's alembic.ini names its database"
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            include_name=ignore_workflow_tables(table_prefix="workflow_"),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
