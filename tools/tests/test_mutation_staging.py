"""tools/mutation.py's rewrite of ``@operation`` methods (the ``sql-operations`` scope):
mutmut only mutates undecorated functions, so the staging copy spells each decorator
out as an assignment. The rewrite must keep the class's behaviour and miss no method."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "packages" / "workflow-store-sql" / "src" / "workflow" / "store" / "sql" / "store.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


SOURCE = textwrap.dedent(
    '''
    calls = []


    def operation(fn):
        def wrapper(self, *args):
            calls.append(fn.__name__)
            return fn(self, *args)

        return wrapper


    def other(fn):
        return fn


    class Store:
        @operation
        def first(self, x):
            """Doc."""
            return x + 1

        @other
        def untouched(self):
            return 0

        @operation
        def last(self):
            return (
                2
            )
    '''
)


def test_rewritten_operations_behave_as_decorated() -> None:
    rewritten, names = _tool().undecorate(SOURCE)
    assert names == ["Store.first", "Store.last"]
    assert "@operation" not in rewritten
    assert "    first = operation(first)\n" in rewritten
    assert "    last = operation(last)\n" in rewritten
    assert "    @other\n" in rewritten
    module: dict[str, Any] = {}
    exec(compile(rewritten, "<rewritten>", "exec"), module)
    store = module["Store"]()
    assert (store.first(1), store.last(), store.untouched()) == (2, 2, 0)
    assert module["calls"] == ["first", "last"]


def test_every_operation_of_the_sql_store_is_rewritten() -> None:
    source = STORE.read_text()
    rewritten, names = _tool().undecorate(source)
    assert len(names) == source.count("    @operation\n") > 0
    assert "@operation" not in rewritten
    compile(rewritten, str(STORE), "exec")
