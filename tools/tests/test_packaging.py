"""Packaging facts read from each distribution's pyproject.toml and sources (tox env
``namespace``, beside tools/check_wheels.py, which builds the wheels and looks inside).

What a user installs: the stores need only the runtime (the command line is their
``cli`` extra), internal pins have an upper bound, every distribution declares its
license, classifiers and URLs and ships the LICENSE, and no distribution reaches into
another's private names.
"""

from __future__ import annotations

import ast
import importlib.util
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = sorted(
    [p.parent for p in (ROOT / "packages").glob("*/pyproject.toml")] + [ROOT / "contract-tests"]
)


def project(directory: Path) -> dict[str, Any]:
    found: dict[str, Any] = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
    return found


PROJECTS: dict[str, dict[str, Any]] = {project(d)["name"]: project(d) for d in DISTRIBUTIONS}
SOURCES: dict[str, Path] = {project(d)["name"]: d / "src" for d in DISTRIBUTIONS}
STORES = sorted(
    name
    for name, p in PROJECTS.items()
    if "workflow.stores" in p.get("entry-points", {}) and name != "workflow-runtime"
)


def requirements(name: str) -> list[tuple[str | None, Requirement]]:
    """Every requirement of ``name``: (None, r) for a dependency, (extra, r) for one
    of an extra."""
    p = PROJECTS[name]
    found: list[tuple[str | None, Requirement]] = [
        (None, Requirement(r)) for r in p.get("dependencies", [])
    ]
    for extra, listed in p.get("optional-dependencies", {}).items():
        found += [(extra, Requirement(r)) for r in listed]
    return found


def test_the_layout_is_what_this_module_expects() -> None:
    assert set(PROJECTS) == {
        "workflow-runtime",
        "workflow-store-sql",
        "workflow-store-sqlite",
        "workflow-store-postgres",
        "workflow-store-mysql",
        "workflow-store-redis",
        "workflow-store-d1",
        "workflow-contract-tests",
    }
    assert STORES == [
        "workflow-store-d1",
        "workflow-store-mysql",
        "workflow-store-postgres",
        "workflow-store-redis",
        "workflow-store-sqlite",
    ]


# -- the command line is an extra -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(PROJECTS) - {"workflow-runtime"}))
def test_no_distribution_needs_the_command_line_to_run(name: str) -> None:
    needs_cli = [str(r) for extra, r in requirements(name) if extra is None and "cli" in r.extras]
    assert needs_cli == [], f"{name} forces the CLI (click, rich) on its users"


@pytest.mark.parametrize("name", STORES)
def test_each_store_offers_the_command_line_as_its_cli_extra(name: str) -> None:
    cli = [Requirement(r) for r in PROJECTS[name].get("optional-dependencies", {}).get("cli", [])]
    assert [(r.name, r.extras) for r in cli] == [("workflow-runtime", {"cli"})]


# -- no private names across distributions -----------------------------------------------


def owner_of(module: str) -> str | None:
    """The distribution whose sources hold ``module`` (a dotted name)."""
    relative = Path(*module.split("."))
    for name, src in SOURCES.items():
        if (src / relative).with_suffix(".py").is_file() or (src / relative).is_dir():
            return name
    return None


def private_uses(name: str, src: Path | None = None) -> list[str]:
    """``module._name`` and ``from module import _name`` in ``name``'s sources (or those
    under ``src``) where ``module`` belongs to another distribution of this repository."""
    found = []
    src = src or SOURCES[name]
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        modules: dict[str, str] = {}  # local name -> module of another distribution
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                other = owner_of(node.module)
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if other not in (None, name) and alias.name.startswith("_"):
                        found.append(f"{path.relative_to(src)}:{node.lineno} imports {full}")
                    if owner_of(full) not in (None, name):
                        modules[alias.asname or alias.name] = full
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and owner_of(alias.name) not in (None, name):
                        modules[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(
                    f"{path.relative_to(src)}:{node.lineno} uses {modules[node.value.id]}."
                    f"{node.attr}"
                )
    return found


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_no_distribution_uses_a_private_name_of_another(name: str) -> None:
    assert private_uses(name) == []


def test_the_private_name_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(
        "from workflow.runtime import validation\n"
        "from workflow.runtime.codec import _check\n"
        "from workflow.store.sqlite import store\n"
        "validation._check_int(1, 'x', 0, 2)\n"
        "store._own_private_is_fine\n"
    )
    assert private_uses("workflow-store-sqlite", tmp_path) == [
        "probe.py:2 imports workflow.runtime.codec._check",
        "probe.py:4 uses workflow.runtime.validation._check_int",
    ]


# -- pins between this repository's distributions ----------------------------------------


def internal_requirements() -> list[tuple[str, str | None, Requirement]]:
    return [
        (name, extra, r)
        for name in sorted(PROJECTS)
        for extra, r in requirements(name)
        if r.name in PROJECTS
    ]


def test_every_internal_requirement_has_an_upper_bound_that_admits_this_checkout() -> None:
    found = internal_requirements()
    assert len(found) >= 12  # every store on the runtime (and the SQL layer), the extras
    for name, extra, r in found:
        where = f"{name}{f'[{extra}]' if extra else ''} -> {r}"
        assert any(s.operator in ("<", "<=", "~=", "==") for s in r.specifier), where
        assert r.specifier.contains(PROJECTS[r.name]["version"]), where


def test_internal_requirements_use_one_range() -> None:
    assert {str(r.specifier) for _, _, r in internal_requirements()} == {"<0.2,>=0.1.0"}


# -- license, classifiers, URLs ----------------------------------------------------------

URL_BASE = "https://workflow.example.invalid/"  # a placeholder: no public host yet
REQUIRED_CLASSIFIERS = {
    "Development Status :: 3 - Alpha",
    "Framework :: AsyncIO",
    "Intended Audience :: Developers",
    "Programming Language :: Python :: 3 :: Only",
    "Typing :: Typed",
}


def test_the_repository_has_an_mit_license() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) ")
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


@pytest.mark.parametrize("directory", DISTRIBUTIONS, ids=lambda d: d.name)
def test_each_distribution_declares_and_ships_the_license(directory: Path) -> None:
    p = project(directory)
    assert p["license"] == "MIT"
    assert p["license-files"] == ["LICENSE"]
    # license-files may not point outside the project directory: each holds a copy.
    assert (directory / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    build = tomllib.loads((directory / "pyproject.toml").read_text())["build-system"]
    (hatchling,) = [Requirement(r) for r in build["requires"] if r.startswith("hatchling")]
    assert not hatchling.specifier.contains("1.26.3"), "license-files needs hatchling 1.27"


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_each_distribution_has_its_classifiers(name: str) -> None:
    classifiers = PROJECTS[name].get("classifiers", [])
    assert set(classifiers) >= REQUIRED_CLASSIFIERS
    assert classifiers == sorted(classifiers)
    # PEP 639: a License classifier beside a license expression is deprecated (PyPI
    # refuses the upload); `license = "MIT"` says it.
    assert not [c for c in classifiers if c.startswith("License ::")]
    # One classifier per Python minor version that requires-python admits, from 3.11 on.
    requires_python = SpecifierSet(PROJECTS[name]["requires-python"])
    versions = [
        c.rsplit(" ", 1)[1]
        for c in classifiers
        if c.startswith("Programming Language :: Python :: 3.")
    ]
    assert versions == ["3.11", "3.12", "3.13"]
    assert all(requires_python.contains(f"{v}.0") for v in versions)
    assert not requires_python.contains("3.10.0")


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_each_distribution_has_its_urls(name: str) -> None:
    urls = PROJECTS[name].get("urls", {})
    assert sorted(urls) == ["Documentation", "Homepage", "Issues", "Source"]
    assert all(url.startswith(URL_BASE) for url in urls.values()), urls
    assert urls["Homepage"] == URL_BASE
    # Documentation is the page mkdocs builds from docs/<path>.md (directory URLs), and
    # the site's navigation has it.
    page = urls["Documentation"].removeprefix(URL_BASE)
    assert page.endswith("/")
    source = f"{page.removesuffix('/')}.md"
    assert (ROOT / "docs" / source).is_file(), source
    assert f": {source}" in (ROOT / "mkdocs.yml").read_text()


def load_check_wheels() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_wheels", ROOT / "tools" / "check_wheels.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheel_check_finds_a_missing_or_foreign_license(tmp_path: Path) -> None:
    check = load_check_wheels()
    info = "workflow_x-0.1.0.dist-info"
    metadata = "Metadata-Version: 2.4\nName: workflow-x\nLicense-Expression: MIT\n"

    def wheel(license: bytes | None, file_line: bool = True) -> list[str]:
        path = tmp_path / "x.whl"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(
                f"{info}/METADATA",
                metadata + ("License-File: LICENSE\n" if file_line else "") + "\nREADME\n",
            )
            if license is not None:
                z.writestr(f"{info}/licenses/LICENSE", license)
        with zipfile.ZipFile(path) as z:
            problems: list[str] = check.license_problems(z)
            return problems

    assert wheel((ROOT / "LICENSE").read_bytes()) == []
    assert wheel(None) == [f"ships no {info}/licenses/LICENSE"]
    assert wheel(b"Apache") == [
        f"ships a {info}/licenses/LICENSE that is not the repository's LICENSE"
    ]
    assert wheel((ROOT / "LICENSE").read_bytes(), file_line=False) == [
        "METADATA has no 'License-File: LICENSE'"
    ]


# -- no SQLAlchemy asyncio layer ---------------------------------------------------------


def test_the_sql_layer_asks_for_sqlalchemy_core_only() -> None:
    # The stores run on the raw drivers (psycopg, PyMySQL, sqlite3): the [asyncio]
    # extra would only force greenlet on every user.
    (sqlalchemy,) = [r for _, r in requirements("workflow-store-sql") if r.name == "sqlalchemy"]
    assert sqlalchemy.extras == set()
    assert not [
        (name, str(r))
        for name in PROJECTS
        for _, r in requirements(name)
        if r.name == "sqlalchemy" and "asyncio" in r.extras
    ]


def test_nothing_imports_sqlalchemy_asyncio() -> None:
    # Sources and tests alike: the tests run without greenlet too.
    found = []
    for top in ("packages", "contract-tests", "migrations", "tools"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "node_modules" in path.parts:
                continue  # npm packages of the D1 tests' local D1 (Node ships .py helpers)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                if any(n.split(".")[:3] == ["sqlalchemy", "ext", "asyncio"] for n in names):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
