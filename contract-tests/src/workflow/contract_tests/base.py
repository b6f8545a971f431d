"""The base class adapter authors subclass to run the contract suite.

```python
import pytest_asyncio  # its fixtures run in pytest-asyncio's strict and auto modes alike

from workflow.contract_tests import StoreContract

class TestMyStore(StoreContract):
    capabilities = frozenset({Capability.DURABLE})

    @pytest_asyncio.fixture
    async def store(self):                 # a fresh, isolated store
        ...

    @pytest_asyncio.fixture
    async def store_factory(self, store):  # opens more handles on the SAME data
        ...
```
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from workflow.runtime import Capability, ExecutionStore
from workflow.runtime.codec import DEFAULT_MAX_PAYLOAD_BYTES

from .cases.argument_forms import ArgumentFormCases
from .cases.bad_input import BadInputCases
from .cases.capabilities import CapabilityCases
from .cases.children import ChildCases
from .cases.claim_on_create import ClaimOnCreateCases
from .cases.claims import ClaimCases
from .cases.deadlines import DeadlineCases
from .cases.events import EventLogCases
from .cases.fencing import LeaseIdentityCases
from .cases.listing import ListingCases
from .cases.ordering import TieBreakCases
from .cases.payloads import PayloadFidelityCases
from .cases.queues import QueueCases
from .cases.runs import RunLifecycleCases
from .cases.runtime import RuntimeCases
from .cases.schedules import ScheduleCases
from .cases.signals import DeliveryCases
from .cases.timers import TimerCases
from .cases.wakeups import WakeupCases
from .child_races import ChildRaceCases
from .concurrency import ConcurrencyCases
from .queue_races import QueueRaceCases
from .stateful import StatefulCases
from .support import StoreFactory


class StoreContract(
    RunLifecycleCases,
    ListingCases,
    ClaimCases,
    ClaimOnCreateCases,
    LeaseIdentityCases,
    EventLogCases,
    TieBreakCases,
    ArgumentFormCases,
    DeliveryCases,
    TimerCases,
    DeadlineCases,
    ChildCases,
    ChildRaceCases,
    ScheduleCases,
    BadInputCases,
    PayloadFidelityCases,
    CapabilityCases,
    ConcurrencyCases,
    QueueCases,
    QueueRaceCases,
    StatefulCases,
    RuntimeCases,
    WakeupCases,
):
    """Every case of the execution-store contract.

    Subclasses provide two fixtures and declare what they support:

    * ``store``: a fresh store on empty, isolated data (its own database, schema,
      file or key prefix), closed at teardown.
    * ``store_factory``: an async callable opening one more handle on the *same*
      data as ``store`` (a new connection); the concurrency cases race such handles.
      The fixture closes the handles it opened at teardown.
    * ``store_url`` (optional): a URL that ``workflow.runtime.open_store`` opens on the
      same data, for the cases that need ``Capability.MULTI_PROCESS``.
    * ``capabilities``: the optional :class:`~workflow.runtime.Capability` values the
      store supports. Cases needing an undeclared capability are skipped with a reason
      naming it; nothing else is ever skipped.
    * ``max_payload_bytes``: the payload limit the ``store`` fixture configures.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    max_payload_bytes: ClassVar[int] = DEFAULT_MAX_PAYLOAD_BYTES

    # Plain functions: they only fail, which needs no event loop in either of
    # pytest-asyncio's modes; the overrides are async.
    @pytest.fixture
    def store(self) -> ExecutionStore:
        pytest.fail(f"{type(self).__name__} must override the `store` fixture")

    @pytest.fixture
    def store_factory(self, store: ExecutionStore) -> StoreFactory:
        pytest.fail(f"{type(self).__name__} must override the `store_factory` fixture")

    @pytest.fixture
    def store_url(self) -> str | None:
        return None
