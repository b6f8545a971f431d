"""Importing workflow.runtime needs only the standard library and cronsim."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

# Runs in a fresh interpreter: this test process has pytest, hypothesis and friends loaded.
# Modules present before the import (site's .pth hooks: virtualenv's _virtualenv,
# setuptools' _distutils_hack, editable-install finders) are not workflow.runtime's doing.
PROBE = """
import json, sys
before = {m.split('.')[0] for m in sys.modules}
import workflow.runtime
added = {m.split('.')[0] for m in sys.modules} - before
files = {m: getattr(sys.modules.get(m), '__file__', None) for m in sorted(added)}
print(json.dumps(files))
"""

ALLOWED = set(sys.stdlib_module_names) | {"workflow", "cronsim"}


def in_stdlib_dir(file: str | None) -> bool:
    # sys.stdlib_module_names leaves out platform-named stdlib modules such as
    # _sysconfigdata__linux_x86_64-linux-gnu; those live in the stdlib directory.
    if file is None:
        return False
    path = Path(file).resolve()
    stdlib = {Path(sysconfig.get_path(p)).resolve() for p in ("stdlib", "platstdlib")}
    site = {Path(sysconfig.get_path(p)).resolve() for p in ("purelib", "platlib")}
    return any(path.is_relative_to(d) for d in stdlib) and not any(
        path.is_relative_to(d) for d in site
    )


def imported_by_workflow_runtime() -> dict[str, str | None]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    files: dict[str, str | None] = json.loads(proc.stdout)
    return files


def test_import_pulls_in_only_the_standard_library_and_cronsim() -> None:
    added = imported_by_workflow_runtime()
    assert {"workflow", "cronsim"} <= added.keys()
    third_party = {m: f for m, f in added.items() if m not in ALLOWED and not in_stdlib_dir(f)}
    assert third_party == {}


def test_the_stdlib_check_would_catch_a_third_party_import() -> None:
    # pytest is installed in site-packages: the check above must not mistake it for stdlib.
    import pytest

    assert "pytest" not in ALLOWED
    assert not in_stdlib_dir(pytest.__file__)
