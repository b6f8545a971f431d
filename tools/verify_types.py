"""Fail unless every distribution's public API is fully typed for its users.

Runs ``pyright --verifytypes <package> --ignoreexternal`` on each distribution's
package (installed in the running environment) and fails when one scores below 100 %:
a public symbol whose type a checker would infer, or infer differently from mypy,
leaks ``Unknown`` into users' code. The packages must be importable (tox's ``type``
environment installs them editable); pyright comes from requirements/ci.txt.

    python tools/verify_types.py            # every distribution
    python tools/verify_types.py workflow.runtime
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any, cast

PACKAGES = (
    "workflow.runtime",
    "workflow.store.sql",
    "workflow.store.sqlite",
    "workflow.store.postgres",
    "workflow.store.mysql",
    "workflow.store.redis",
    "workflow.store.d1",
    "workflow.contract_tests",
)


def verify(package: str, pyright: str) -> list[str]:
    """The problems pyright reports for ``package`` (none: an empty list)."""
    done = subprocess.run(
        [pyright, "--verifytypes", package, "--ignoreexternal", "--outputjson"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = cast("dict[str, Any]", json.loads(done.stdout))
    except json.JSONDecodeError:
        # pyright could not run at all (not installed, package not importable).
        return [f"pyright failed (exit {done.returncode}): {done.stdout}{done.stderr}".strip()]
    completeness = report["typeCompleteness"]
    score = float(completeness["completenessScore"])
    # The symbols' own diagnostics name what to annotate; general ones, what stopped
    # the analysis.
    found = [d for s in completeness.get("symbols", []) for d in s.get("diagnostics", [])]
    problems = sorted(
        {
            _describe(d)
            for d in [*found, *report.get("generalDiagnostics", [])]
            if d.get("severity") == "error"
        }
    )
    if score < 1 and not problems:
        problems.append(f"type completeness {score:.1%}")
    return problems


def _describe(diagnostic: dict[str, Any]) -> str:
    where = diagnostic.get("file", "")
    if where and "range" in diagnostic:
        where += f":{diagnostic['range']['start']['line'] + 1}"
    return f"{where}: {diagnostic['message']}" if where else str(diagnostic["message"])


def main(argv: list[str]) -> int:
    pyright = shutil.which("pyright")
    if pyright is None:
        print("pyright is not installed (it is in requirements/ci.txt)", file=sys.stderr)
        return 2
    failed = False
    for package in argv or PACKAGES:
        problems = verify(package, pyright)
        print(f"{package}: {'100 %' if not problems else 'FAILED'}")
        for problem in problems:
            print(f"  {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
