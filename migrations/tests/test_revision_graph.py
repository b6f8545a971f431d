"""Each adapter's history, read through the developer harness (``migrations/alembic.ini``):
one line of revisions, one head, a downgrade in every revision, and ``CHANGES.md``
naming every revision in order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from workflow.store.mysql import MySQLStore
from workflow.store.postgres import PostgresStore
from workflow.store.sql import SQLStore
from workflow.store.sqlite import SQLiteStore

HARNESS = Path(__file__).resolve().parents[1]
ADAPTERS: dict[str, type[SQLStore]] = {
    "sqlite": SQLiteStore,
    "postgres": PostgresStore,
    "mysql": MySQLStore,
}
REVISION_ID = re.compile(r"`([0-9a-f]{12})`")
BODY = re.compile(r"`(r[0-9]{4}_[a-z0-9_]+)`")


def harness_section(adapter: str) -> Config:
    return Config(str(HARNESS / "alembic.ini"), ini_section=adapter)


def oldest_first(adapter: str) -> list[Script]:
    script = ScriptDirectory.from_config(harness_section(adapter))
    return list(reversed(list(script.walk_revisions())))


def changes_columns() -> dict[str, list[str]]:
    """``CHANGES.md``'s table, by column (``body`` and each adapter), top to bottom."""
    lines = (HARNESS / "CHANGES.md").read_text().splitlines()
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in lines
        if line.startswith("|")
    ]
    header, body = rows[0], rows[2:]
    columns = {"body": [m.group(1) for row in body if (m := BODY.fullmatch(row[1]))]}
    assert len(columns["body"]) == len(body), "a body cell is not one revisions module"
    for adapter in ADAPTERS:
        at = header.index(adapter)
        columns[adapter] = [m.group(1) for row in body if (m := REVISION_ID.fullmatch(row[at]))]
        assert len(columns[adapter]) == len(body), f"a {adapter} cell is not one revision id"
    return columns


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_harness_section_is_the_adapters_own_history(adapter: str) -> None:
    location = harness_section(adapter).get_main_option("script_location")
    assert location == ADAPTERS[adapter].migrations


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_one_line_of_revisions_from_one_base_to_one_head(adapter: str) -> None:
    script = ScriptDirectory.from_config(harness_section(adapter))
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1
    revisions = oldest_first(adapter)
    # No merges and no branches: each revision revises exactly the one before it.
    assert [r.down_revision for r in revisions] == [None, *(r.revision for r in revisions[:-1])]
    assert revisions[-1].revision == script.get_current_head()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_every_revision_has_an_upgrade_and_a_downgrade(adapter: str) -> None:
    # Whether each downgrade really undoes its upgrade: test_downgrade.py.
    for revision in oldest_first(adapter):
        assert callable(getattr(revision.module, "upgrade", None)), revision.revision
        assert callable(getattr(revision.module, "downgrade", None)), revision.revision


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_changes_md_names_every_revision_in_order(adapter: str) -> None:
    assert changes_columns()[adapter] == [r.revision for r in oldest_first(adapter)]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_each_revision_runs_the_body_its_changes_md_row_names(adapter: str) -> None:
    # Convention of every versions/ file (README.md): the body is imported as `body`.
    bodies = [f"workflow.store.sql.revisions.{b}" for b in changes_columns()["body"]]
    assert [r.module.body.__name__ for r in oldest_first(adapter)] == bodies
