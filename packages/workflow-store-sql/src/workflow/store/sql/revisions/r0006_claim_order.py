"""0006: the indexes of the claim's two halves (``queue_sql.claimable_in_claim_order``).

``ix_runs_claim`` ``(status, priority DESC, ready_at, run_id)``: the queued runs in
claim order, so a claim of ``limit`` runs reads about ``limit`` index entries instead
of reading and sorting every ready run (``ix_runs_ready`` is ``(ready_at, run_id)``:
not the order of a claim, which leads with priority). ``DESC`` is kept in the index by
PostgreSQL, SQLite, MySQL 8 and MariaDB 10.8+; MariaDB before 10.8 parses and ignores
it (an ascending index: a claim there reads it, then sorts the queued runs).

``ix_runs_expiry`` ``(status, lease_expires_at)``: the running runs whose lease expired
at ``now``, the start of the range of running runs.

One definition for every dialect (no partial index): the same as ``tables.py`` declares.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ..migration_env import store_schema, table_prefix


def upgrade() -> None:
    p, schema = table_prefix(), store_schema()
    runs = f"{p}runs"
    op.create_index(
        f"ix_{p}runs_claim",
        runs,
        ["status", sa.text("priority DESC"), "ready_at", "run_id"],
        schema=schema,
    )
    op.create_index(f"ix_{p}runs_expiry", runs, ["status", "lease_expires_at"], schema=schema)


def downgrade() -> None:
    p, schema = table_prefix(), store_schema()
    for name in ("expiry", "claim"):
        op.drop_index(f"ix_{p}runs_{name}", table_name=f"{p}runs", schema=schema)
