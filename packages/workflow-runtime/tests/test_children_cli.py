"""`workflow runs show` names a run's parent and lists its children; `workflow runs
list --parent` lists a run's children (on a named in-memory store, shared in-process)."""

from __future__ import annotations

import asyncio
import re
import uuid

from click.testing import CliRunner

from workflow.runtime import (
    Context,
    ExecutionStore,
    Runtime,
    child_run_id_for,
    open_store,
    workflow,
)
from workflow.runtime.cli import _build


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_build(), list(args))
    return result.exit_code, result.output


@workflow("leaf")
async def leaf(ctx: Context, n: int) -> int:
    if n == 2:
        await ctx.wait_for_signal("go")
    return n


@workflow("tree")
async def tree(ctx: Context, count: int) -> None:
    for i in range(count):
        await ctx.start_child(leaf, i, step_id=f"leaf-{i}")
    await ctx.wait_for_signal("never")


KEPT: list[ExecutionStore] = []
"""A named in-memory dataset lives while a handle on it does: one per test."""


def started(count: int) -> str:
    """A store URL holding run "t" with ``count`` children, settled."""
    url = f"memory://children-cli-{uuid.uuid4().hex}"

    async def go() -> None:
        store = await open_store(url)
        KEPT[:] = [store]
        runtime = Runtime(store, [tree, leaf])
        await runtime.start(tree, count, run_id="t")
        while (await runtime.sweep()).did_work:
            pass

    asyncio.run(go())
    return url


def test_show_lists_the_children_and_a_child_names_its_parent() -> None:
    url = started(3)
    code, out = invoke("runs", "show", "t", "--url", url)
    assert code == 0, out
    assert "children:" in out
    rows = {
        line.split()[0]: line.split()[1:4]
        for line in out.splitlines()
        if line.startswith("t@child-")
    }
    first = child_run_id_for("t", "leaf-0", "leaf")
    waiting = child_run_id_for("t", "leaf-2", "leaf")
    assert rows[first] == ["leaf", "finished", "cancel"]
    assert rows[waiting][:3] == ["leaf", "paused", "cancel"]
    assert len(rows) == 3
    assert "more:" not in out
    code, out = invoke("runs", "show", waiting, "--url", url)
    assert code == 0, out
    assert re.search(r"^parent +t \(policy cancel\)$", out, re.MULTILINE)
    assert "children:" not in out


def test_show_points_to_the_listing_when_there_are_more_children() -> None:
    url = started(23)
    code, out = invoke("runs", "show", "t", "--url", url)
    assert code == 0, out
    assert f"more: workflow runs list --parent t --url {url}" in out


def test_list_parent_lists_only_the_children() -> None:
    url = started(3)
    code, out = invoke("runs", "list", "--parent", "t", "--url", url)
    assert code == 0, out
    listed = sorted(line.split()[0] for line in out.splitlines() if line.startswith("t@child-"))
    assert listed == sorted(child_run_id_for("t", f"leaf-{i}", "leaf") for i in range(3))
    code, out = invoke("runs", "list", "--parent", "t", "--limit", "2", "--url", url)
    assert code == 0, out
    assert "--parent t --limit 2 --cursor" in out
    code, out = invoke("runs", "list", "--parent", "nobody", "--url", url)
    assert (code, out.strip()) == (0, "no runs")


def test_approve_refuses_a_run_waiting_for_a_child_and_says_so() -> None:
    url = f"memory://children-cli-{uuid.uuid4().hex}"

    @workflow("asks-child")
    async def asks_child(ctx: Context, _: None) -> int:
        return await ctx.child(leaf, 2, step_id="leaf")

    async def go() -> None:
        store = await open_store(url)
        KEPT[:] = [store]
        runtime = Runtime(store, [asks_child, leaf])
        await runtime.start(asks_child, None, run_id="a")
        while (await runtime.sweep()).did_work:
            pass

    asyncio.run(go())
    code, out = invoke("approve", "a", "apr-x", "--yes", "--url", url)
    assert code == 1
    assert f"it waits for child run {child_run_id_for('a', 'leaf', 'leaf')}" in out
    code, out = invoke("runs", "show", "a", "--url", url)
    assert f"child run {child_run_id_for('a', 'leaf', 'leaf')} ($child:leaf#1)" in out
