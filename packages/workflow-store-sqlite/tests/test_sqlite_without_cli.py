"""The SQL stores run without the command line: click, rich and python-json-logger come
only with the ``cli`` extra (``pip install "workflow-store-sqlite[cli]"``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement

CLI_ONLY = ("click", "rich", "pythonjsonlogger")

# A fresh interpreter in which the CLI's libraries cannot be imported, as if the extra
# were not installed: every module of the SQL layer and of the SQLite store imports, a
# store migrates and runs an operation, and the `workflow` command says what to install.
PROBE = textwrap.dedent(
    """
    import asyncio, importlib, pkgutil, sys

    BLOCKED = {blocked!r}

    class Absent:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Absent())

    import workflow.store.sql, workflow.store.sqlite
    for package in (workflow.store.sql, workflow.store.sqlite):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)

    from workflow.runtime import open_store

    async def go():
        store = await open_store({url!r}, verify_schema=False)
        await store.migrator.upgrade()
        await store.close()
        store = await open_store({url!r})
        created = await store.create_run("r1", "wf", None, {{"x": 1}}, 1000)
        print("created", created.run.run_id)
        await store.close()

    asyncio.run(go())
    assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]

    from workflow.runtime.cli import main
    try:
        main(["migrate", "--help"])
    except SystemExit as exc:
        print("exit", exc.code)
    """
)


def test_the_store_works_and_the_command_says_what_to_install_without_click(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(blocked=CLI_ONLY, url=url)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["created", "r1", "exit", "2"]
    assert "pip install 'workflow-runtime[cli]'" in proc.stderr
    assert "'workflow-store-postgres[cli]'" in proc.stderr


def test_the_installed_stores_ask_for_the_cli_only_in_their_cli_extra() -> None:
    # The installed metadata (what pip resolves), not the pyproject.toml files.
    for distribution in ("workflow-store-sql", "workflow-store-sqlite"):
        declared = [Requirement(r) for r in requires(distribution) or []]
        runtime = [r for r in declared if r.name == "workflow-runtime"]
        plain = [r for r in runtime if r.marker is None]
        assert plain, f"{distribution} does not depend on workflow-runtime"
        assert all(not r.extras for r in plain), f"{distribution} needs {plain} unasked"
        in_extra = [r for r in runtime if r.marker is not None]
        assert all(r.marker is not None and r.marker.evaluate({"extra": "cli"}) for r in in_extra)
        if distribution == "workflow-store-sqlite":
            assert [r.extras for r in in_extra] == [{"cli"}]
