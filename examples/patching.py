"""Changing a workflow's code under runs in flight with ``ctx.patched``.

A deploy adds a fraud check to the "order" workflow while a run started by the old code
waits for its payment. The old run resumes on the new code and replays the old path
(no fraud check: its log has none where the check would be); a run started after the
deploy takes the new path. Both on one SQLite file, in one process for the demo: in
production the two "deploys" are two versions of your worker.

    python examples/patching.py [STORE_URL]        # default: sqlite:///workflow-patching.db
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from workflow.runtime import JSON, Context, Runtime, SchemaOwner, open_store, workflow


async def reserve(order: JSON) -> str:
    return f"reserved {order}"


async def fraud_check(order: JSON) -> str:
    return f"checked {order}"


async def ship(order: JSON) -> str:
    return f"shipped {order}"


@workflow("order")
async def before_the_deploy(ctx: Context, order: JSON) -> JSON:
    done: list[JSON] = [await ctx.step("reserve", reserve, order)]
    done.append(await ctx.wait_for_signal("paid"))
    done.append(await ctx.step("ship", ship, order))
    return done


@workflow("order")
async def after_the_deploy(ctx: Context, order: JSON) -> JSON:
    done: list[JSON] = [await ctx.step("reserve", reserve, order)]
    # New code, for new runs only: a run that recorded the old path replays it.
    if ctx.patched("fraud-check"):
        done.append(await ctx.step("fraud-check", fraud_check, order))
    done.append(await ctx.wait_for_signal("paid"))
    done.append(await ctx.step("ship", ship, order))
    return done


async def main(url: str) -> dict[str, JSON]:
    store = await open_store(url, verify_schema=False)
    try:
        if isinstance(store, SchemaOwner):
            await store.create_schema()  # a demo; deploys run `workflow migrate upgrade`
        tag = uuid.uuid4().hex[:6]
        old, new = f"old-{tag}", f"new-{tag}"

        v1 = Runtime(store, [before_the_deploy])
        await v1.start("order", "A-1", run_id=old)
        await v1.run_until_idle()  # waits for "paid"

        v2 = Runtime(store, [after_the_deploy])  # the deploy
        await v2.start("order", "B-2", run_id=new)
        await v2.run_until_idle()  # waits for "paid", fraud check done
        for run_id in (old, new):
            await v2.signal(run_id, "paid", "paid")
        await v2.run_until_idle()
        return {run_id: await v2.result(run_id) for run_id in (old, new)}
    finally:
        await store.close()


if __name__ == "__main__":
    results = asyncio.run(
        main(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///workflow-patching.db")
    )
    for run_id, output in results.items():
        print(f"{run_id}: {output}")
