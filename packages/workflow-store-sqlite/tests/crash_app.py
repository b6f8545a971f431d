"""Workflows the worker-process tests run in real `workflow worker` processes.

Every step writes ``enter``/``exit`` lines to the ledger file named by
``WORKFLOW_TEST_LEDGER`` (one ``O_APPEND`` write per line, so lines of concurrent
processes never mix and appear in the order they happened).
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from workflow.runtime import Context, Runtime, current_step, workflow

STEPS = 8


def note(line: str) -> None:
    fd = os.open(os.environ["WORKFLOW_TEST_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


async def work(n: int, i: int, seconds: float) -> dict[str, int]:
    call = current_step()
    note(f"enter {call.run_id} {call.step_id} {os.getpid()}")
    await asyncio.sleep(seconds)
    note(f"exit {call.run_id} {call.step_id} {os.getpid()}")
    return {"step": i, "value": n * 100 + i}


def expected(n: int) -> list[dict[str, int]]:
    return [{"step": i, "value": n * 100 + i} for i in range(STEPS)]


@workflow("crashy")
async def crashy(ctx: Context, input: dict[str, Any]) -> list[dict[str, int]]:
    out = []
    for i in range(STEPS):
        out.append(await ctx.step(f"step-{i}", work, input["n"], i, random.uniform(0.02, 0.12)))
        if i % 3 == 2:
            await ctx.sleep(0.05, step_id=f"nap-{i}")
    return out


@workflow("slow")
async def slow(ctx: Context, input: Any) -> str:
    await ctx.step("long", work, 0, 0, 1.5)
    await ctx.step("after", work, 0, 1, 0.0)
    return "done"


runtime = Runtime(workflows=[crashy, slow])
