"""A workflow module that takes a while to import (as an application's may): the
worker-process test stops a worker while it imports this. It writes the file named
by ``WORKFLOW_TEST_MARKER`` when its import starts."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workflow.runtime import JSON, Context, Runtime, workflow

Path(os.environ["WORKFLOW_TEST_MARKER"]).write_text("importing")
time.sleep(2.0)  # a SIGTERM lands in here


@workflow("noop")
async def noop(ctx: Context, _: JSON) -> JSON:
    return None


runtime = Runtime(workflows=[noop])
