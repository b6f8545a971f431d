"""``ignore_workflow_tables``: which names an application's autogenerate skips.

The whole path (an app's ``env.py`` and ``alembic check`` on real databases) is in
``test_app_alembic_history.py``; these pin the hook's rules."""

from __future__ import annotations

import pytest

from workflow.runtime import InvalidArgumentError
from workflow.store.sql import ignore_workflow_tables, workflow_table_names

OURS = sorted(workflow_table_names("wf_"))


def test_the_names_are_the_five_tables_and_the_version_table() -> None:
    assert OURS == [
        "wf_alembic_version",
        "wf_events",
        "wf_inbox",
        "wf_queues",
        "wf_runs",
        "wf_schedules",
    ]


@pytest.mark.parametrize("name", OURS)
def test_the_stores_tables_in_its_schema_are_skipped(name: str) -> None:
    assert not ignore_workflow_tables("wf_")(name, "table", {"schema_name": None})
    assert not ignore_workflow_tables("wf_", "flows")(name, "table", {"schema_name": "flows"})


@pytest.mark.parametrize("name", OURS)
def test_the_same_names_in_another_schema_are_kept(name: str) -> None:
    assert ignore_workflow_tables("wf_")(name, "table", {"schema_name": "other"})
    assert ignore_workflow_tables("wf_", "flows")(name, "table", {"schema_name": None})


def test_other_tables_other_prefixes_and_other_kinds_of_name_are_kept() -> None:
    hook = ignore_workflow_tables("wf_")
    assert hook("app_orders", "table", {"schema_name": None})
    assert hook("workflow_runs", "table", {"schema_name": None})
    assert hook("alembic_version", "table", {"schema_name": None})
    assert hook("wf_runs", "column", {"schema_name": None, "table_name": "app_orders"})
    assert hook(None, "schema", {})


@pytest.mark.parametrize(("prefix", "schema"), [("Bad-", None), ("wf_", "no such")])
def test_a_bad_prefix_or_schema_is_refused_up_front(prefix: str, schema: str | None) -> None:
    with pytest.raises(InvalidArgumentError):
        ignore_workflow_tables(prefix, schema)
