"""The pytest plugin (entry point ``pytest11``) behind the contract suite.

* Skips a case that needs a capability its store class does not declare, with a
  reason naming the declaration, and lists those at the end of the run.
* With ``CI=true`` in the environment, any other skip fails the run: a missing server,
  an ``importorskip`` or a stray ``pytest.skip`` never passes quietly in CI.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

from workflow.runtime import Capability

from .servers import in_ci
from .support import CAPABILITY_SKIP_PREFIX

_STATE_KEY = pytest.StashKey["_SkipLedger"]()
_LEDGERS: list[_SkipLedger] = []


@dataclass(eq=False)
class _SkipLedger:
    capability: dict[str, set[str]] = field(default_factory=dict)
    """Store class -> capabilities it does not declare (that some case needed)."""
    other: list[tuple[str, str]] = field(default_factory=list)
    """(nodeid, reason) of skips that are not capability declarations."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "workflow_requires(capability): the case needs a store Capability; stores that do "
        "not declare it skip it (the only skip the contract suite allows)",
    )
    config.stash[_STATE_KEY] = _SkipLedger()
    # A stack, not one global: pytester runs nested sessions in one process.
    _LEDGERS.append(config.stash[_STATE_KEY])


def pytest_unconfigure(config: pytest.Config) -> None:
    ledger = config.stash.get(_STATE_KEY, None)
    if ledger is not None and ledger in _LEDGERS:
        _LEDGERS.remove(ledger)


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, None]:
    """Mark the suite's own async cases ``asyncio``, so they run whatever pytest-asyncio's
    mode: its default, strict, runs only marked coroutines (auto marks them all).

    Innermost of the wrappers (``trylast``): the mark is on each case by the time
    pytest-asyncio's wrapper, outside this one, turns marked coroutines into its items.
    """
    outcome = yield
    cls = getattr(collector, "cls", None)
    if cls is None or not _is_contract(cls):
        return
    made = outcome.get_result()
    for item in made if isinstance(made, list) else [made]:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and item.get_closest_marker("asyncio") is None
        ):
            item.add_marker(pytest.mark.asyncio)


def _is_contract(cls: type) -> bool:
    from .base import StoreContract

    return issubclass(cls, StoreContract)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    cls = getattr(item, "cls", None)
    declared: frozenset[Capability] = getattr(cls, "capabilities", frozenset())
    # A case may need several capabilities (one mark each): the skip names the first missing one.
    for marker in item.iter_markers("workflow_requires"):
        needed = Capability(marker.args[0])
        if needed in declared:
            continue
        owner = cls.__name__ if cls else item.nodeid
        item.config.stash[_STATE_KEY].capability.setdefault(owner, set()).add(needed.value)
        names = ", ".join(sorted(c.value for c in declared)) or "none"
        pytest.skip(
            f"{CAPABILITY_SKIP_PREFIX} {needed.value!r} ({owner}.capabilities declares: {names})"
        )


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if CAPABILITY_SKIP_PREFIX not in reason:
            _ledger_of(report).other.append((report.nodeid, reason))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _ledger_of(report).other.append((report.nodeid, _skip_reason(report)))


def _ledger_of(report: object) -> _SkipLedger:
    return _LEDGERS[-1]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ledger = session.config.stash[_STATE_KEY]
    if in_ci() and ledger.other and exitstatus in (0, 5):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    ledger = terminalreporter.config.stash[_STATE_KEY]
    if ledger.capability:
        terminalreporter.section("workflow store capabilities not declared")
        for owner, caps in sorted(ledger.capability.items()):
            terminalreporter.line(
                f"{owner}: {', '.join(sorted(caps))} (cases skipped by declaration)"
            )
    if ledger.other:
        verdict = (
            "FAILING the run (CI=true)" if in_ci() else "allowed locally; CI=true fails on them"
        )
        terminalreporter.section(
            f"skips that are not capability declarations: {verdict}", red=in_ci()
        )
        for nodeid, reason in ledger.other:
            terminalreporter.line(f"{nodeid}: {reason}")
