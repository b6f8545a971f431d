"""The suite must catch broken stores: each variant in ``broken_stores`` fails it."""

from __future__ import annotations

from pathlib import Path

import pytest
from broken_stores import BROKEN_STORES

HERE = Path(__file__).resolve().parent
INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"

MODULE = """
import sys
sys.path.insert(0, {here!r})

import pytest
from broken_stores import BROKEN_STORES
from workflow.contract_tests import StoreContract
from workflow.runtime import Capability


class TestBrokenStore(StoreContract):
    capabilities = frozenset(
        {{
            Capability.SUBSCRIBE_EVENTS,
            Capability.QUEUES,
            Capability.CHILDREN,
            Capability.DEADLINES,
        }}
    )

    @pytest.fixture
    async def store(self):
        store = BROKEN_STORES[{name!r}](max_payload_bytes=self.max_payload_bytes)
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(self, store):
        async def open_handle():
            return store.handle()
        return open_handle
"""


# The case family that must catch each variant (a -k expression): running just that
# family keeps the suite runs quick, and shows the failure is the right one.
FAMILY = {
    "NoCompareAndSwap": "append or conflict",
    "NoFencing": "superseded or fencing",
    "ReentrantClaim": "claim",
    "ExpiryExclusive": "claim and expire",
    "TokenNotIncremented": "token",
    "DoubleFiringTimers": "timer",
    "LostBufferedSignal": "buffer",
    "BufferedAfterTerminal": "closed or terminal",
    "OffsetCursor": "cursor or page",
    "OverwritingCreate": "create",
    "SettleKeepsLease": "settle",
    "NoValidation": "empty",
    "LossyNumbers": "corpus or payload",
    "RepeatingSchedules": "schedule",
    "PurgesLiveRuns": "purge",
    "TokenOnlyFencing": "another_owner or recreated",
    "OwnerOnlyLogFencing": "earlier_token",
    "ExpiryComparedFencing": "ignores_the_leases_expires_at",
    "InboxTiesByKey": "inbox_ties",
    "ClaimTiesByArrival": "ready_at_ties",
    "TimerTiesByArrival": "wake_at_ties",
    "ScheduleTiesByArrival": "next_fire_at_ties",
    "EventsByCreatedAt": "index_order",
    "PlainStatusStringIgnored": "status_filter_in_each_accepted_form",
    "TupleConsumeIgnored": "list_or_tuple",
    "PlainOverlapIsSkip": "plain_value",
    "QueueLimitsIgnoredByClaimRunnable": "32_claimers",
    "NoCascade": "cascade",
    "DropsChildEntry": "child_entry",
    "ChildEndWakesNobody": "queues_a_parent_paused",
    "KeptChildEntryWakesNobody": "already_there",
    "LateChildOfCancelledParentRuns": "created_cancelled",
    "CascadedChildrenCountInLimit": "one_after_another",
    "CascadeInTwoSteps": "concurrently_has_one_order",
}


def test_every_broken_store_has_a_family() -> None:
    assert set(FAMILY) == set(BROKEN_STORES)


def run_suite(pytester: pytest.Pytester, name: str, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(test_broken=MODULE.format(here=str(HERE), name=name))
    return pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("name", sorted(BROKEN_STORES))
def test_contract_suite_fails_on_broken_store(pytester: pytest.Pytester, name: str) -> None:
    result = run_suite(pytester, name, "-x", "-k", FAMILY[name])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, f"{name} passed the {FAMILY[name]!r} cases"


def test_the_same_families_pass_on_the_reference_store(pytester: pytest.Pytester) -> None:
    # The control: the families fail because of the breakage, not on their own.
    pytester.makeini(INI)
    pytester.makepyfile(
        test_broken=MODULE.format(here=str(HERE), name="NoCompareAndSwap").replace(
            "BROKEN_STORES[",
            "{'NoCompareAndSwap': __import__('workflow.runtime').runtime.InMemoryStore}[",
        )
    )
    expression = " or ".join(f"({family})" for family in FAMILY.values())
    result = pytester.runpytest_inprocess(
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        expression,
        "--deselect",
        "test_broken.py::TestBrokenStore::test_stateful_model",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0
    assert outcomes.get("passed", 0) > 100
