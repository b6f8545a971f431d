"""0001: runs, events, inbox and schedules with their indexes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from ..coltypes import BOOL, ID, MS, PAYLOAD, SHORT
from ..migration_env import table_prefix

_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    p = table_prefix()
    op.create_table(
        f"{p}runs",
        sa.Column("run_id", ID, primary_key=True),
        sa.Column("workflow_id", ID, nullable=False),
        sa.Column("workflow_version", ID),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("input", PAYLOAD),
        sa.Column("output", PAYLOAD),
        sa.Column("error", PAYLOAD),
        sa.Column("wait_kind", SHORT),
        sa.Column("wait_step_id", ID),
        sa.Column("wait_key", ID),
        sa.Column("wait_meta", PAYLOAD),
        sa.Column("wake_at", MS),
        sa.Column("lease_owner", ID),
        sa.Column("lease_token", MS, nullable=False, server_default="0"),
        sa.Column("lease_expires_at", MS),
        sa.Column("next_event_index", MS, nullable=False, server_default="0"),
        sa.Column("created_at", MS, nullable=False),
        sa.Column("updated_at", MS, nullable=False),
        sa.Column("ready_at", MS),
        sa.Column("finished_at", MS),
        **_MYSQL,
    )
    for name, columns in (
        ("ready", ["ready_at", "run_id"]),
        ("wake", ["wake_at", "run_id"]),
        ("finished", ["finished_at", "run_id"]),
        ("created", ["created_at", "run_id"]),
        ("workflow_created", ["workflow_id", "created_at", "run_id"]),
        ("status_created", ["status", "created_at", "run_id"]),
    ):
        op.create_index(f"ix_{p}runs_{name}", f"{p}runs", columns)
    op.create_table(
        f"{p}events",
        sa.Column("run_id", ID, primary_key=True),
        sa.Column("event_index", MS, primary_key=True, autoincrement=False),
        sa.Column("type", ID, nullable=False),
        sa.Column("step_id", ID),
        sa.Column("data", PAYLOAD),
        sa.Column("created_at", MS, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], [f"{p}runs.run_id"], name=f"fk_{p}events_run", ondelete="CASCADE"
        ),
        **_MYSQL,
    )
    op.create_table(
        f"{p}inbox",
        sa.Column("run_id", ID, primary_key=True),
        sa.Column("kind", SHORT, primary_key=True),
        sa.Column("key", ID, primary_key=True),
        sa.Column("name", ID),
        sa.Column("step_id", ID),
        sa.Column("payload", PAYLOAD),
        sa.Column("meta", PAYLOAD),
        sa.Column("received_at", MS, nullable=False),
        sa.Column("consumed", BOOL, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], [f"{p}runs.run_id"], name=f"fk_{p}inbox_run", ondelete="CASCADE"
        ),
        **_MYSQL,
    )
    op.create_table(
        f"{p}schedules",
        sa.Column("schedule_id", ID, primary_key=True),
        sa.Column("workflow_id", ID, nullable=False),
        sa.Column("workflow_version", ID),
        sa.Column("spec", PAYLOAD, nullable=False),
        sa.Column("overlap", SHORT, nullable=False),
        sa.Column("input", PAYLOAD),
        sa.Column("enabled", BOOL, nullable=False),
        sa.Column("next_fire_at", MS, nullable=False),
        sa.Column("last_fired_at", MS),
        sa.Column("last_run_id", ID),
        sa.Column("updated_at", MS, nullable=False),
        **_MYSQL,
    )
    op.create_index(
        f"ix_{p}schedules_due", f"{p}schedules", ["enabled", "next_fire_at", "schedule_id"]
    )
    op.create_index(f"ix_{p}schedules_workflow", f"{p}schedules", ["workflow_id", "schedule_id"])


def downgrade() -> None:
    p = table_prefix()
    for table in ("schedules", "inbox", "events", "runs"):
        op.drop_table(f"{p}{table}")
