"""Mutation testing of the contract suite: how many broken stores does it catch?

mutmut (3.x) mutates one file at a time and runs the tests that reach the mutated
function. It expects one project with its code under ``src/``; this repository is a
monorepo of namespace packages, so this script lays out a staging directory that looks
like one project and runs mutmut there:

* ``src/workflow/runtime/`` (and, for the ``sql`` scope, ``src/workflow/store/sql/``): a
  copy of the package, which mutmut copies again into ``mutants/src`` and puts first on
  ``sys.path``. ``workflow`` and ``workflow.store`` are namespace packages, so the other
  stores and the contract suite still import from the installed packages and see the
  mutated module.
* ``tests/``: the contract suite's test module for the store under test.
* ``pyproject.toml``: mutmut's settings (which file to mutate) and pytest's.

Scopes (docs/contract.md, "Mutation score"):

* ``memory``: ``workflow/runtime/memory.py``, the reference store, with the contract
  suite on the in-memory store as the test command;
* ``sql``: ``workflow/store/sql/store.py``, the SQL operations every SQL store shares,
  with the contract suite on SQLite as the test command: the undecorated helpers behind
  the lease checks and the ordered reads (every mutant);
* ``sql-operations``: the same file's public operations (the ``@operation`` methods),
  with the same test command. Each mutant runs the hundreds of SQLite cases that reach
  its operation, so all of them take about a day: ``--sample N --seed S`` runs a
  uniform random sample of N of their mutant names (seeded, so a rerun draws the same).

mutmut leaves decorated functions alone (it cannot put its trampoline under an arbitrary
decorator). So, in the staging copy only, every method of ``store.py`` decorated with
exactly ``@operation`` is rewritten from::

    @operation
    async def create_run(self, ...): ...

to::

    async def create_run(self, ...): ...
    create_run = operation(create_run)

which Python evaluates the same way (a decorator is that assignment), but which mutmut
mutates: it puts its trampoline on the undecorated ``def`` and ``operation`` wraps the
trampoline (``functools.wraps`` keeps the name the retry logic reports). The rewrite is
done on the ``ast`` positions of the decorators and methods and checked by parsing the
result; ``--check`` runs the test command once on the rewritten, unmutated copy, which
must pass like the original.

Usage (``tox -e mutation``, or by hand from the repository root)::

    python tools/mutation.py memory sql --out /tmp/mutation --max-children 1
    python tools/mutation.py sql-operations --sample 200 --seed 17 --out /tmp/mutation

It prints mutmut's survivors and a summary line, and writes ``summary.json`` in the
staging directory. The staging directory is reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fnmatch
import json
import math
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "packages" / "workflow-runtime" / "src" / "workflow" / "runtime"
SQL = ROOT / "packages" / "workflow-store-sql" / "src" / "workflow" / "store" / "sql"


@dataclass(frozen=True)
class Scope:
    packages: tuple[tuple[Path, str], ...]
    """(source directory, where it goes under src/)."""
    mutate: str
    """The one file mutmut mutates, relative to the staging directory."""
    tests: tuple[Path, ...]
    pytest_args: tuple[str, ...]
    subset: tuple[str, ...] = ()
    """mutmut mutant-name patterns to run (all mutants of the file when empty)."""
    operations: bool = False
    """Rewrite the ``@operation`` methods so mutmut mutates them, and run only their
    mutants (``subset`` is then unused)."""


SCOPES = {
    "memory": Scope(
        packages=((RUNTIME, "workflow/runtime"),),
        mutate="src/workflow/runtime/memory.py",
        tests=(ROOT / "contract-tests" / "tests" / "test_memory_store.py",),
        pytest_args=(),
    ),
    "sql": Scope(
        packages=((RUNTIME, "workflow/runtime"), (SQL, "workflow/store/sql")),
        mutate="src/workflow/store/sql/store.py",
        tests=(ROOT / "packages" / "workflow-store-sqlite" / "tests" / "test_sqlite_contract.py",),
        # The contract class only: the module's statement-budget tests compare SQL text
        # with a golden file and would kill mutants for reasons no store user sees.
        pytest_args=("-k", "TestSQLiteStore"),
        # Every mutant of store.py would take a day on SQLite (each runs the cases that
        # reach its function, often hundreds): the lease checks and the ordered reads.
        # mutmut does not mutate decorated functions, so the public operations
        # (@operation) and the statements built inside them are out of its reach;
        # these are the undecorated helpers they share.
        subset=tuple(
            f"workflow.store.sql.store.{function}__mutmut_*"
            for function in (
                "x_lease_guard",
                "x_lease_guard_params",
                "xǁSQLStoreǁ_lease_failure",
                "xǁSQLStoreǁ_claimable",
                "xǁSQLStoreǁ_claim_candidates",
                "xǁSQLStoreǁ_inbox_json",
                "xǁSQLStoreǁ_events_json",
                "xǁSQLStoreǁ_read_events",
                "xǁSQLStoreǁ_due_schedules",
            )
        ),
    ),
    "sql-operations": Scope(
        packages=((RUNTIME, "workflow/runtime"), (SQL, "workflow/store/sql")),
        mutate="src/workflow/store/sql/store.py",
        tests=(ROOT / "packages" / "workflow-store-sqlite" / "tests" / "test_sqlite_contract.py",),
        pytest_args=("-k", "TestSQLiteStore"),
        operations=True,
    ),
}

DECORATOR = "operation"


def undecorate(source: str) -> tuple[str, list[str]]:
    """Rewrite every method decorated with exactly ``@operation`` into an undecorated
    ``def`` followed by ``name = operation(name)`` in the class body; return the new
    source and the (``Class.method``) names rewritten, in source order."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    # (line index, replacement lines), applied bottom-up so indices stay valid.
    edits: list[tuple[int, int, list[str]]] = []
    names: list[str] = []
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            decorators = fn.decorator_list
            if len(decorators) != 1:
                continue
            (decorator,) = decorators
            if not (isinstance(decorator, ast.Name) and decorator.id == DECORATOR):
                continue
            assert fn.end_lineno is not None
            start = decorator.lineno - 1
            line = lines[start]
            indent = line[: len(line) - len(line.lstrip())]
            assert line.strip() == f"@{DECORATOR}", line
            edits.append(
                (fn.end_lineno, fn.end_lineno, [f"{indent}{fn.name} = {DECORATOR}({fn.name})\n"])
            )
            edits.append((start, start + 1, []))
            names.append(f"{cls.name}.{fn.name}")
    for begin, end, new in sorted(edits, key=lambda edit: edit[0], reverse=True):
        lines[begin:end] = new
    rewritten = "".join(lines)
    ast.parse(rewritten)
    return rewritten, names


def operation_mutants(out: Path, scope: Scope, methods: list[str]) -> list[str]:
    """The mutmut names of every mutant of ``methods`` in the staged file, as mutmut
    will generate them (its own generator, on the same source)."""
    from mutmut.mutation.file_mutation import (  # type: ignore[import-not-found,unused-ignore]
        mutate_file_contents,
    )
    from mutmut.utils.format_utils import (  # type: ignore[import-not-found,unused-ignore]
        get_mutant_name,
    )

    path = Path(scope.mutate)
    # mutmut reads its configuration (pyproject.toml) from the working directory.
    with contextlib.chdir(out):
        mutated = mutate_file_contents(str(path), path.read_text())
    # mutmut's mangled method names: x + ǁClassǁ + method.
    prefixes = tuple("xǁ{}ǁ{}__mutmut_".format(*method.split(".")) for method in methods)
    return sorted(
        get_mutant_name(path, name) for name in mutated.mutant_names if name.startswith(prefixes)
    )


def stage(scope: Scope, out: Path) -> list[str]:
    """Lay out (or refresh) the staging directory; return the ``@operation`` methods
    rewritten (none unless the scope is an operations scope)."""
    src = out / "src"
    for source, target in scope.packages:
        dest = src / target
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    methods: list[str] = []
    if scope.operations:
        mutate = out / scope.mutate
        rewritten, methods = undecorate(mutate.read_text())
        mutate.write_text(rewritten)
    tests = out / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    for test in scope.tests:
        shutil.copy2(test, tests / test.name)
    # A changed source must not be judged by an earlier run's results.
    mutants = out / "mutants"
    if mutants.exists() and _fingerprint(scope) != _read(out / "fingerprint"):
        shutil.rmtree(mutants)
    (out / "fingerprint").write_text(_fingerprint(scope))
    pytest_args = ["-p", "no:cacheprovider", "-q", *scope.pytest_args]
    (out / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f"only_mutate = [{json.dumps(scope.mutate)}]\n"
        f"pytest_add_cli_args = {json.dumps(pytest_args)}\n"
        'pytest_add_cli_args_test_selection = ["tests"]\n'
        "\n"
        "[tool.pytest.ini_options]\n"
        'asyncio_mode = "auto"\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
    )
    return methods


def _fingerprint(scope: Scope) -> str:
    parts = [
        f"{path.relative_to(ROOT)}:{path.stat().st_mtime_ns}"
        for source, _ in scope.packages
        for path in sorted(source.rglob("*.py"))
    ]
    parts += [f"{t.relative_to(ROOT)}:{t.stat().st_mtime_ns}" for t in scope.tests]
    return "\n".join(parts)


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def run(out: Path, max_children: int, subset: tuple[str, ...]) -> dict[str, object]:
    """Run mutmut in ``out`` (only the mutants ``subset`` names, when given); return
    the status of every mutant run."""
    mutmut = [sys.executable, "-m", "mutmut"]
    selected = list(subset)
    subprocess.run(
        [*mutmut, "run", "--max-children", str(max_children), *selected], cwd=out, check=True
    )
    listed = subprocess.run(
        [*mutmut, "results", "--all", "true"], cwd=out, check=True, capture_output=True, text=True
    ).stdout
    status = dict(line.strip().rsplit(": ", 1) for line in listed.splitlines() if ": " in line)
    if subset:
        status = {
            name: what
            for name, what in status.items()
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in subset)
        }
    counts = Counter(status.values())
    summary: dict[str, object] = {
        "counts": dict(counts),
        "not_killed": {name: what for name, what in status.items() if what != "killed"},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


def wilson(caught: int, judged: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of ``caught / judged`` (a sample's score)."""
    if not judged:
        return 0.0, 0.0
    z = 1.959964
    p = caught / judged
    centre = (p + z * z / (2 * judged)) / (1 + z * z / judged)
    half = (
        z * math.sqrt(p * (1 - p) / judged + z * z / (4 * judged * judged)) / (1 + z * z / judged)
    )
    return 100 * (centre - half), 100 * (centre + half)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scopes", nargs="+", choices=sorted(SCOPES), metavar="SCOPE")
    parser.add_argument(
        "--out", type=Path, required=True, help="staging directories go in OUT/SCOPE"
    )
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument(
        "--sample",
        type=int,
        help="operations scope: run a uniform random sample of N of its mutants",
    )
    parser.add_argument("--seed", type=int, default=17, help="the sample's seed")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only stage, and run the test command once on the unmutated staged copy",
    )
    args = parser.parse_args(argv)
    for name in args.scopes:
        scope = SCOPES[name]
        out: Path = (args.out / name).resolve()
        out.mkdir(parents=True, exist_ok=True)
        methods = stage(scope, out)
        if args.check:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "-q",
                    *scope.pytest_args,
                    "tests",
                ],
                cwd=out,
                env={**os.environ, "PYTHONPATH": str(out / "src")},
                check=True,
            )
            continue
        subset = scope.subset
        if scope.operations:
            names = operation_mutants(out, scope, methods)
            if args.sample is not None and args.sample < len(names):
                names = sorted(random.Random(args.seed).sample(names, args.sample))
                print(f"{name}: a sample of {len(names)} mutants (seed {args.seed})")
            (out / "selected.txt").write_text("".join(f"{n}\n" for n in names))
            subset = tuple(names)
        summary = run(out, args.max_children, subset)
        counts = summary["counts"]
        not_killed = summary["not_killed"]
        assert isinstance(counts, dict)
        assert isinstance(not_killed, dict)
        for mutant, status in sorted(not_killed.items()):
            print(f"{name}: {status}: {mutant}")
        # A timeout counts as caught: the mutant made the suite hang.
        caught = counts.get("killed", 0) + counts.get("timeout", 0)
        judged = caught + counts.get("survived", 0)
        score = 100 * caught / judged if judged else 0.0
        print(f"{name}: {sum(counts.values())} mutants: {json.dumps(counts)}")
        low, high = wilson(caught, judged)
        print(
            f"{name}: caught {caught} of {judged} reached by a case ({score:.1f} %;"
            f" 95 % interval {low:.1f}-{high:.1f} % if a sample)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
