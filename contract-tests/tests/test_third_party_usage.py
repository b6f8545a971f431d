"""A store living outside this repository runs the contract suite the documented way.

Each test lays out a small third-party project (``acme_store`` plus one test module, as
ARCHITECTURE.md and docs/contract.md show it) in a temporary directory and runs pytest
on it in a subprocess: a separate run that finds the plugin only through its ``pytest11``
entry point, exactly as in the adapter author's own repository.
"""

from __future__ import annotations

import re

import pytest

from workflow.contract_tests.support import CAPABILITY_SKIP_PREFIX

ACME_STORE = '''
"""Acme's execution store. It stands in for a third-party adapter: a subclass of the
reference store is enough to show how the suite is consumed."""

from workflow.runtime import InMemoryStore


class AcmeStore(InMemoryStore):
    pass
'''

IMPORTS = """
import pytest

from workflow.contract_tests import StoreContract
from workflow.runtime import Capability

from acme_store import AcmeStore
"""

TEST_CLASS = """

class TestAcmeStore(StoreContract):
    capabilities = frozenset({Capability.SUBSCRIBE_EVENTS})

    @pytest.fixture
    async def store(self):
        store = AcmeStore(max_payload_bytes=self.max_payload_bytes)
        yield store
        await store.close()
"""

STORE_FACTORY = """
    @pytest.fixture
    async def store_factory(self, store):
        handles = []

        async def open_handle():
            handle = store.handle()
            handles.append(handle)
            return handle

        yield open_handle
        for handle in handles:
            await handle.close()
"""

SERVER_SKIP = """

def test_against_the_acme_server():
    pytest.skip("no server")
"""

PYPROJECT = """
[project]
name = "acme-store"
version = "1.0.0"
dependencies = ["workflow-runtime", "workflow-contract-tests"]

[tool.pytest.ini_options]
asyncio_mode = "{mode}"
asyncio_default_fixture_loop_scope = "function"
pythonpath = ["src"]
testpaths = ["tests"]
"""

# The full suite runs in each subprocess; this only stops a hung store from hanging CI.
TIMEOUT_S = 900


def make_project(
    pytester: pytest.Pytester,
    *,
    mode: str = "auto",
    with_store_factory: bool = True,
    with_server_skip: bool = False,
) -> None:
    pytester.makepyprojecttoml(PYPROJECT.format(mode=mode))
    package = pytester.path / "src" / "acme_store"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(ACME_STORE, encoding="utf-8")
    module = IMPORTS + TEST_CLASS
    if with_store_factory:
        module += STORE_FACTORY
    if with_server_skip:
        module += SERVER_SKIP
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_acme.py").write_text(module, encoding="utf-8")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-rsE", "-p", "no:cacheprovider", *args, timeout=TIMEOUT_S)


def collected(result: pytest.RunResult) -> int:
    match = re.search(r"^collected (\d+) items?", result.stdout.str(), re.MULTILINE)
    assert match, result.stdout.str()
    return int(match.group(1))


def skip_lines(result: pytest.RunResult) -> list[tuple[int, str]]:
    """(count, reason) of every ``SKIPPED [n] location: reason`` line of the -rs summary."""
    out = []
    for line in result.outlines:
        match = re.match(r"^SKIPPED \[(\d+)\] [^ ]+: (.*)$", line)
        if match:
            out.append((int(match.group(1)), match.group(2)))
    return out


@pytest.fixture(autouse=True)
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    # The inner runs inherit the environment; a test that wants CI=true sets it itself.
    monkeypatch.delenv("CI", raising=False)


def test_third_party_store_runs_the_whole_suite_through_the_entry_point(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under CI=true too: capability skips are declarations and never fail a run.
    monkeypatch.setenv("CI", "true")
    make_project(pytester)
    result = run(pytester)

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    total = collected(result)
    assert total >= 150
    outcomes = result.parseoutcomes()
    skipped = outcomes.get("skipped", 0)
    assert outcomes.get("passed", 0) == total - skipped
    assert set(outcomes) <= {"passed", "skipped", "warnings"}
    assert skipped >= 1
    # Every skip is a capability the class does not declare, and the reason says so.
    skips = skip_lines(result)
    assert sum(n for n, _ in skips) == skipped
    missing = set()
    for _, reason in skips:
        match = re.fullmatch(
            re.escape(CAPABILITY_SKIP_PREFIX)
            + r" '(\w+)' \(TestAcmeStore\.capabilities declares: subscribe_events\)",
            reason,
        )
        assert match, reason
        missing.add(match.group(1))
    assert "subscribe_events" not in missing
    # The end-of-run summary lists exactly the capabilities those skips named.
    result.stdout.fnmatch_lines(
        [
            "*workflow store capabilities not declared*",
            f"TestAcmeStore: {', '.join(sorted(missing))} (cases skipped by declaration)",
        ]
    )
    assert "skips that are not capability declarations" not in result.stdout.str()


def test_missing_store_factory_fails_telling_the_author_to_override_it(
    pytester: pytest.Pytester,
) -> None:
    make_project(pytester, with_store_factory=False)
    result = run(pytester)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    # Only the cases that open a second handle error (at setup); the rest still pass.
    assert outcomes.get("errors", 0) >= 1
    assert outcomes.get("failed", 0) == 0
    assert outcomes.get("passed", 0) >= 100
    errors = [line for line in result.outlines if line.startswith("ERROR tests/test_acme.py::")]
    assert len(errors) == outcomes["errors"]
    # Each error's report ends in the base fixture's message.
    told = [
        line
        for line in result.outlines
        if re.fullmatch(
            r"E\s+Failed: TestAcmeStore must override the `store_factory` fixture", line
        )
    ]
    assert len(told) == outcomes["errors"]


BROKEN_LOAD = """
import pytest_asyncio

from workflow.contract_tests import StoreContract
from workflow.runtime import InMemoryStore


class ForgetfulStore(InMemoryStore):
    async def load_run(self, run_id):
        return None


class TestForgetfulStore(StoreContract):
    @pytest_asyncio.fixture
    async def store(self):
        store = ForgetfulStore()
        yield store
        await store.close()
"""


def test_strict_asyncio_mode_runs_the_cases_and_shows_what_a_failing_one_compared(
    pytester: pytest.Pytester,
) -> None:
    # pytest-asyncio's default mode, strict, runs only coroutines marked asyncio: the
    # plugin marks its own. A case's assert is rewritten like a test module's, so the
    # failure shows the values it compared, not a bare AssertionError.
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nasyncio_mode = "strict"\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
    )
    pytester.makepyfile(test_forgetful=BROKEN_LOAD)
    result = run(
        pytester,
        "-k",
        "create_run_then_load_run_returns_the_same_run or "
        "create_run_returns_created_queued_run_with_exact_fields",
    )

    outcomes = result.parseoutcomes()
    assert (outcomes.get("failed"), outcomes.get("passed")) == (1, 1), result.stdout.str()
    result.stdout.fnmatch_lines(["E *assert None == Run(run_id='run-1'*"])
    assert not [line for line in result.outlines if line.split() == ["E", "AssertionError"]]


@pytest.mark.parametrize(
    ("ci", "exit_code", "verdict"),
    [
        ("", pytest.ExitCode.OK, "allowed locally; CI=true fails on them"),
        ("true", pytest.ExitCode.TESTS_FAILED, "FAILING the run (CI=true)"),
    ],
    ids=["local", "ci"],
)
def test_ci_fails_the_run_on_a_skip_that_is_not_a_capability_declaration(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    ci: str,
    exit_code: pytest.ExitCode,
    verdict: str,
) -> None:
    if ci:
        monkeypatch.setenv("CI", ci)
    make_project(pytester, with_server_skip=True)
    # The contract cases themselves are covered above; this run needs only the stray skip.
    result = run(pytester, "tests/test_acme.py::test_against_the_acme_server")

    assert result.ret == exit_code, result.stdout.str()
    # Nothing failed: the verdict comes from the skip alone.
    assert result.parseoutcomes() == {"skipped": 1}
    result.stdout.fnmatch_lines(
        [
            f"*skips that are not capability declarations: {verdict}*",
            "tests/test_acme.py::test_against_the_acme_server: *no server*",
        ]
    )
