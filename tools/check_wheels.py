"""Build every distribution's wheel and check the PEP 420 namespace.

A wheel that ships ``workflow/__init__.py`` or ``workflow/store/__init__.py`` turns
the shared namespace into a regular package and silently hides every other
distribution's modules, so CI fails on it. Each wheel must also ship ``py.typed``.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"workflow/__init__.py", "workflow/store/__init__.py"}


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
        names = set(zipfile.ZipFile(wheel).namelist())
        bad = sorted(names & FORBIDDEN)
        if bad:
            failures.append(f"{wheel.name} ships {', '.join(bad)} (breaks the PEP 420 namespace)")
        if not any(n.endswith("/py.typed") for n in names):
            failures.append(f"{wheel.name} ships no py.typed marker")
        print(
            f"{wheel.name}: {len(names)} files, namespace ok" if not bad else f"{wheel.name}: BAD"
        )
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
