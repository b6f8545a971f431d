"""The schema seam (workflow.runtime.schema) seen from the runtime: a store without a
schema is no SchemaOwner, and the commands that need one say so in one line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from workflow.runtime import InMemoryStore, SchemaMigrator, SchemaOwner
from workflow.runtime.cli import _build


def test_the_memory_store_owns_no_schema() -> None:
    store = InMemoryStore()
    assert not isinstance(store, SchemaOwner)
    assert not isinstance(store, SchemaMigrator)


@pytest.mark.parametrize(
    "args",
    [
        ["current"],
        ["check"],
        ["history"],
        ["upgrade"],
        ["upgrade", "--sql"],
        ["downgrade", "--revision", "base"],
    ],
)
def test_migrate_on_a_store_without_a_schema_is_one_line(args: list[str]) -> None:
    result = CliRunner().invoke(_build(), ["migrate", *args, "--url", "memory://"])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == "Error: the store at memory:// has no migrations"
