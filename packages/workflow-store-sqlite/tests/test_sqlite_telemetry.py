"""OpenTelemetry on SQLite: a run started in this process is driven by a worker in
another process on the same file, and that worker's slice and step spans belong to
the trace of the start (the context stored with the run). Store operations are spans
with ``db.system`` ``sqlite``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from workflow.contract_tests.otel_capture import Capture, capturing
from workflow.runtime import JSON, Context, Runtime, workflow
from workflow.store.sqlite.store import SQLiteStore

WORKER = """
import asyncio, json, sys
from workflow.contract_tests.otel_capture import capturing
from workflow.runtime import Runtime, workflow
from workflow.store.sqlite.store import SQLiteStore

@workflow("otel-sqlite")
async def double(ctx, input):
    return await ctx.step("double", lambda: 2 * input)

async def main():
    store = SQLiteStore.from_url(sys.argv[1])
    try:
        with capturing() as otel:
            await Runtime(store, [double]).run_until_idle()
        spans = [
            {
                "name": s.name,
                "trace_id": s.context.trace_id,
                "parent": s.parent.span_id if s.parent else None,
                "db.system": (s.attributes or {}).get("db.system"),
            }
            for s in otel.finished_spans()
        ]
        print(json.dumps(spans))
    finally:
        await store.close()

asyncio.run(main())
"""


@workflow("otel-sqlite")
async def double(ctx: Context, input: JSON) -> JSON:
    return await ctx.step("double", lambda: 2 * int(str(input)))


@pytest.fixture
def otel() -> Iterator[Capture]:
    with capturing() as found:
        yield found


async def test_a_worker_process_continues_the_trace_of_start(otel: Capture, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'otel.db'}"
    store = SQLiteStore.from_url(url)
    try:
        await store.create_schema()
        client = Runtime(store, [double])
        run = await client.start("otel-sqlite", 21)
        [start] = [s for s in otel.finished_spans() if s.name == "workflow.start otel-sqlite"]
        create = next(s for s in otel.finished_spans() if s.name == "create_run")
        assert create.attributes is not None
        assert create.attributes["db.system"] == "sqlite"

        worker = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", WORKER, url],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        spans = json.loads(worker.stdout)
        [run_slice] = [s for s in spans if s["name"] == "workflow.run otel-sqlite"]
        [step] = [s for s in spans if s["name"] == "workflow.step"]
        assert run_slice["trace_id"] == start.context.trace_id
        assert run_slice["parent"] == start.context.span_id
        assert step["trace_id"] == start.context.trace_id
        settle = [s for s in spans if s["name"] == "settle_run"]
        assert settle
        assert {s["db.system"] for s in settle} == {"sqlite"}
        assert await client.result(run.run_id) == 42
    finally:
        await store.close()
