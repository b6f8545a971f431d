"""Build every distribution's wheel and check the PEP 420 namespace.

A wheel that ships ``workflow/__init__.py`` or ``workflow/store/__init__.py`` turns
the shared namespace into a regular package and silently hides every other
distribution's modules, so CI fails on it. Each wheel must also ship ``py.typed``, and
the repository's LICENSE (PEP 639: ``*.dist-info/licenses/LICENSE``, named by a
``License-File`` line beside ``License-Expression: MIT`` in its METADATA).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"workflow/__init__.py", "workflow/store/__init__.py"}
LICENSE = (ROOT / "LICENSE").read_bytes()


def license_problems(wheel: zipfile.ZipFile) -> list[str]:
    """What is wrong with the license a wheel ships (nothing: an empty list)."""
    names = wheel.namelist()
    dist_info = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    if len(dist_info) != 1:
        return [f"has {len(dist_info)} .dist-info directories"]
    (info,) = dist_info
    problems = []
    shipped = f"{info}/licenses/LICENSE"
    if shipped not in names:
        problems.append(f"ships no {shipped}")
    elif wheel.read(shipped) != LICENSE:
        problems.append(f"ships a {shipped} that is not the repository's LICENSE")
    metadata = wheel.read(f"{info}/METADATA").decode().split("\n\n", 1)[0].splitlines()
    for line in ("License-Expression: MIT", "License-File: LICENSE"):
        if line not in metadata:
            problems.append(f"METADATA has no '{line}'")
    return problems


def distributions() -> list[Path]:
    found = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
    return [*found, ROOT / "contract-tests"]


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for dist in distributions():
        before = set(out.glob("*.whl"))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "build",
                "--wheel",
                "--installer",
                "uv",
                "--outdir",
                str(out),
                str(dist),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (wheel,) = set(out.glob("*.whl")) - before
        with zipfile.ZipFile(wheel) as opened:
            names = set(opened.namelist())
            failures += [f"{wheel.name} {problem}" for problem in license_problems(opened)]
        bad = sorted(names & FORBIDDEN)
        if bad:
            failures.append(f"{wheel.name} ships {', '.join(bad)} (breaks the PEP 420 namespace)")
        if not any(n.endswith("/py.typed") for n in names):
            failures.append(f"{wheel.name} ships no py.typed marker")
        print(
            f"{wheel.name}: {len(names)} files, namespace ok, LICENSE"
            if not bad
            else f"{wheel.name}: BAD"
        )
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
