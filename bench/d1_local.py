"""The ``d1-local`` target: the D1 store over its REST client against a **local** D1
(miniflare's workerd on this machine, over loopback HTTP), not Cloudflare's network,
so its figures say what the store and the client cost, not what D1's latency is.

Imported only when ``d1-local`` is named (``bench.targets.d1_local``): the default
targets run without the d1 package or Node. The local D1 is started the way its tests
start it, by packages/workflow-store-d1/tests/local_d1_server.py (loaded by path:
the test tree is not a package).

- the raw floor (:class:`D1Floor`): one single-row statement per call over the same
  :class:`~workflow.store.d1.D1HttpDatabase` client, i.e. one HTTP request, with the
  SQLite texts of ``bench.raw_floor`` (D1 is SQLite);
- the recorder (:func:`d1_requests`): one label per HTTP request the client sends.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from workflow.runtime import ExecutionStore
from workflow.store.d1 import D1HttpDatabase, D1Result, D1Store

from .hot_ops import Call, Floor
from .raw_floor import FLOOR_RUN, RawFloor, _params, _templates
from .targets import SERVER_SETUP, ServerMissing, Target

LAUNCHER = (
    Path(__file__).resolve().parents[1]
    / "packages"
    / "workflow-store-d1"
    / "tests"
    / "local_d1_server.py"
)
CONNECTIONS = 8
"""The store client's kept-alive connections: one per concurrent caller of the
8-caller mode (``bench.ops_suite.CALLERS``), as a SQL store's pool gives them."""


def _launcher() -> ModuleType:
    name = "local_d1_server"
    found = sys.modules.get(name)
    if found is not None:
        return found
    spec = importlib.util.spec_from_file_location(name, LAUNCHER)
    if spec is None or spec.loader is None:
        raise ServerMissing(f"no local D1 launcher at {LAUNCHER}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


class D1Floor:
    driver = "D1HttpDatabase (REST, http.client on a worker thread)"

    def __init__(self, database: D1HttpDatabase, runs_table: str, version: str) -> None:
        self._db = database
        self._version = version
        self._sql = _templates('"', f'"{runs_table}"', "?", returning=True)
        self._stamps = itertools.count(1)
        self.run_id = FLOOR_RUN

    def statement(self, floor: Floor) -> str:
        return self._sql[floor]

    def call(self, floor: Floor) -> Call:
        prepared = self._db.prepare(self._sql[floor])

        async def run(i: int) -> object:
            return await prepared.bind(*_params(floor, self._stamps, self.run_id)).all()

        return run

    async def server_version(self) -> str:
        # D1 refuses sqlite_version(): the version is miniflare's, read from its package.
        return self._version

    async def close(self) -> None:
        await self._db.close()


@contextlib.contextmanager
def d1_requests() -> Iterator[list[str]]:
    """One label per request any :class:`D1HttpDatabase` sends: ``query`` for one
    statement, ``BATCH[n]`` for a batch of n. Patched on the class (the store's client
    and the helper's alike: only the timed calls run inside); restored on exit."""
    seen: list[str] = []
    original = D1HttpDatabase.send

    async def counted(self: D1HttpDatabase, body: dict[str, Any]) -> list[D1Result]:
        batch = body.get("batch")
        seen.append("query" if batch is None else f"BATCH[{len(batch)}]")
        return await original(self, body)

    D1HttpDatabase.send = counted  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        D1HttpDatabase.send = original  # type: ignore[method-assign]


def _miniflare_version(local_dir: Path) -> str:
    try:
        found = json.loads((local_dir / "node_modules" / "miniflare" / "package.json").read_text())
    except (OSError, ValueError):
        return "?"
    return str(found.get("version", "?"))


async def _emptied(store: D1Store) -> ExecutionStore:
    t = store.tables
    # Children first (foreign keys); the names are the store's own, not user input.
    statements: Sequence[Any] = [
        store.database.prepare(f'DELETE FROM "{table.name}"')
        for table in (t.events, t.inbox, t.schedules, t.runs)
    ]
    await store.database.batch(statements)
    return store


@contextlib.asynccontextmanager
async def d1_local() -> AsyncIterator[Target]:
    launcher = _launcher()
    with tempfile.TemporaryDirectory(prefix="wf-bench-d1-") as tmp, contextlib.ExitStack() as stack:
        try:
            local = stack.enter_context(launcher.started(Path(tmp)))
        except launcher.LocalD1Missing as exc:
            raise ServerMissing(str(exc)) from None
        async with _opened(local, launcher.HERE) as target:
            yield target


@contextlib.asynccontextmanager
async def _opened(local: Any, local_dir: Path) -> AsyncIterator[Target]:
    """``local``: the launcher's ``LocalD1`` (its module is loaded by path, untyped);
    ``local_dir``: the directory of its node_modules."""
    prefix = f"wfb{secrets.token_hex(4)}_"

    def open_store(connections: int = 4) -> D1Store:
        return D1Store(
            local.database(connections=connections), table_prefix=prefix, close_database=True
        )

    store, helper = open_store(CONNECTIONS), open_store()
    runs = store.tables.runs.name
    version = f"local D1, miniflare {_miniflare_version(local_dir)}"

    async def open_floor() -> RawFloor:
        return D1Floor(local.database(), runs, version)

    try:
        await store.create_schema()
        floor = await open_floor()
        try:
            yield Target(
                "d1-local",
                f"local D1 (miniflare workerd) at {local.base_url}, loopback HTTP, "
                f"table prefix {prefix}",
                lambda: _emptied(store),
                None,
                floor,
                helper,
                SERVER_SETUP,
                recorder=d1_requests,
                open_floor=open_floor,
                store=store,
                unit="requests",
                open_handle=open_store,
            )
        finally:
            await floor.close()
    finally:
        await helper.close()
        await store.close()
