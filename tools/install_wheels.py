"""Build this repository's wheels and install them into the running interpreter.

tox environments that test a store install what a user installs: the built wheels,
never the source tree. A wheel that misses a migration revision, ``script.py.mako`` or
``py.typed`` then fails the tests instead of passing on files only the checkout has.
Every wheel is built anew on each call (into ``--out``): nothing stale from a cache.

    python tools/install_wheels.py --out DIR store-sqlite[cli] contract-tests

Named with its extras, a package brings the packages of this repository it needs, with
the extras it needs them with (``store-sqlite[cli]``: ``store-sql``, ``runtime[cli]``).

The third-party dependencies are resolved by uv under the environment's constraints
(``UV_CONSTRAINT``: the lock, requirements/ci.txt), or at the lowest versions each
``pyproject.toml`` allows with ``--lowest`` (tox env ``floor``). ``--with REQUIREMENT``
adds what only the tests need, resolved in the same step (so under ``--lowest`` the
OpenTelemetry SDK comes at the API's floor: each SDK release requires its own API).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DIRECTORIES = {
    "runtime": ROOT / "packages" / "workflow-runtime",
    "store-sql": ROOT / "packages" / "workflow-store-sql",
    "store-sqlite": ROOT / "packages" / "workflow-store-sqlite",
    "store-postgres": ROOT / "packages" / "workflow-store-postgres",
    "store-mysql": ROOT / "packages" / "workflow-store-mysql",
    "store-redis": ROOT / "packages" / "workflow-store-redis",
    "store-d1": ROOT / "packages" / "workflow-store-d1",
    "contract-tests": ROOT / "contract-tests",
}
_SPEC = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)(?:\[(?P<extras>[a-z0-9,_-]+)\])?$")
_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)\s*(?:\[(?P<extras>[^\]]*)\])?")


def _uv() -> str:
    found = shutil.which("uv")
    if found is None:
        sys.exit("install_wheels: uv is not installed (pip install uv)")
    return found


def _project(short: str) -> dict[str, Any]:
    text = (DIRECTORIES[short] / "pyproject.toml").read_text()
    project: dict[str, Any] = tomllib.loads(text)["project"]
    return project


def _requirements(short: str, extras: str) -> list[str]:
    """What ``short`` requires with ``extras`` (comma-separated) asked for."""
    project = _project(short)
    wanted = list(project.get("dependencies", []))
    for extra in filter(None, extras.split(",")):
        wanted += project.get("optional-dependencies", {}).get(extra, [])
    return wanted


def _third_party(short: str, extras: str) -> list[str]:
    """What ``short`` (with ``extras``) requires from outside this repository."""
    internal = {_project(other)["name"] for other in DIRECTORIES}
    return [
        r
        for r in _requirements(short, extras)
        if re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0] not in internal
    ]


def _internal_dependencies(short: str, extras: str) -> dict[str, set[str]]:
    """The short names of this repository's packages that ``short`` (with ``extras``)
    depends on, each with the extras it is asked for (``store-sqlite[cli]`` needs
    ``runtime[cli]``)."""
    by_name = {_project(other)["name"]: other for other in DIRECTORIES}
    wanted: dict[str, set[str]] = {}
    for requirement in _requirements(short, extras):
        match = _REQUIREMENT.match(requirement)
        if match is not None and match["name"] in by_name:
            found = wanted.setdefault(by_name[match["name"]], set())
            found.update(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
    return wanted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the wheels are built")
    parser.add_argument(
        "--lowest",
        action="store_true",
        help="resolve every declared dependency at its lowest allowed version",
    )
    parser.add_argument(
        "--with",
        dest="also",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="a third-party requirement the tests need (resolved with the packages: at its "
        "lowest allowed version too under --lowest)",
    )
    parser.add_argument("packages", nargs="+", help=f"of {', '.join(DIRECTORIES)}; [extras]")
    args = parser.parse_args(argv)

    extras: dict[str, str] = {}
    for spec in args.packages:
        match = _SPEC.match(spec)
        if match is None or match["name"] not in DIRECTORIES:
            parser.error(f"unknown package {spec!r}")
        extras[match["name"]] = match["extras"] or ""
    # Every package of this repository that one of them needs is built here too, with
    # the extras it is needed with: a dependency left to the index could resolve to
    # somebody else's distribution.
    todo = list(extras)
    while todo:
        short = todo.pop()
        for needed, needed_extras in _internal_dependencies(short, extras[short]).items():
            have = set(filter(None, extras.get(needed, "").split(",")))
            if needed not in extras or not needed_extras <= have:
                extras[needed] = ",".join(sorted(have | needed_extras))
                todo.append(needed)

    uv = _uv()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    requirements, names = [], []
    for short, extra in sorted(extras.items()):
        built = args.out / short
        subprocess.run(
            [uv, "build", "--wheel", "--quiet", "--out-dir", str(built), str(DIRECTORIES[short])],
            check=True,
        )
        (wheel,) = built.glob("*.whl")
        name = _project(short)["name"]
        names.append(name)
        requirements.append(f"{name}{f'[{extra}]' if extra else ''} @ {wheel.as_uri()}")
    command = [uv, "pip", "install", "--python", sys.executable, "--quiet"]
    # The wheels are new on every call even where the version is not: reinstall them.
    command += [f"--reinstall-package={name}" for name in names]
    if args.lowest:
        # uv counts only what the command names as direct (not what a wheel given by
        # URL requires): name every declared dependency, so each resolves to its floor.
        command += ["--resolution", "lowest-direct"]
        for short, extra in sorted(extras.items()):
            requirements += _third_party(short, extra)
    subprocess.run([*command, *requirements, *args.also], check=True)


if __name__ == "__main__":
    main()
