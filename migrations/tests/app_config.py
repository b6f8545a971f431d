"""An application's ``alembic.ini``: its own history (``sample_app/``) in the main
section, and the store's migrations in a ``[workflow]`` section, as
docs/sql-stores.md shows."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from commands import ini_value

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"
APP_REVISION = "5f1c0a9b7e21"


def write_app_ini(
    folder: Path,
    *,
    app_url: str,
    workflow_location: str,
    workflow_url: str,
    table_prefix: str,
    schema: str | None,
) -> Path:
    lines = [
        "[alembic]",
        f"script_location = {SAMPLE_APP}",
        # The app's env.py imports sample_app.app_models, as an app imports its models.
        f"prepend_sys_path = {SAMPLE_APP.parent}",
        "path_separator = os",
        f"sqlalchemy.url = {ini_value(app_url)}",
        "",
        "[workflow]",
        f"script_location = {workflow_location}",
        f"sqlalchemy.url = {ini_value(workflow_url)}",
        f"workflow.table_prefix = {table_prefix}",
    ]
    if schema is not None:
        lines.append(f"workflow.schema = {schema}")
    path = folder / "alembic.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def section(ini: Path, name: str) -> Config:
    """``alembic -c ini --name name`` as a ``Config`` for the in-process command API."""
    return Config(str(ini), ini_section=name)
