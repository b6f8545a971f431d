"""examples/children.py works as its docstring says, on the in-memory store (its SQLite
case sits with the other examples' in the SQLite package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "children.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("children_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_fan_out_handles_the_failed_child_and_sums_the_others() -> None:
    example = load()
    outcome = await example.main("memory://")
    output = outcome["output"]
    assert [number.split("-")[1] for number in output["sent"]] == ["acme", "globex", "umbrella"]
    assert output["failed"] == {"invoice-initech": "no address for initech"}
    assert output["summary"] == "3 invoices, 400 in total"
    statuses = sorted(outcome["children"].values())
    assert statuses == ["errored", "finished", "finished", "finished", "finished"]
    assert all(child.startswith(outcome["run_id"] + "@child-") for child in outcome["children"])
