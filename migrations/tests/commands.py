"""Running the real ``workflow`` and ``alembic`` commands in their own processes."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

# Generous: only a hung server or lock would take this long; no result depends on it.
TIMEOUT_S = 300


def console_script(name: str) -> str:
    """The console script ``name`` of the running interpreter's environment."""
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (folder / name).exists():
            return str(folder / name)
    raise FileNotFoundError(f"no {name} console script next to {sys.executable}")


def start(command: str, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [console_script(command), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait for ``process``: (exit code, stdout, stderr)."""
    out, err = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, out, err


def run(command: str, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    return finish(start(command, *args, cwd=cwd))


def ini_value(value: str) -> str:
    """``value`` for an ``alembic.ini`` (configparser reads ``%`` as interpolation)."""
    return value.replace("%", "%%")
