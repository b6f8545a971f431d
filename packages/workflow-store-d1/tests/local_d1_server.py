"""Starting and stopping the local D1 (miniflare's workerd running d1local/worker.mjs,
which exposes its D1 binding in the shape of Cloudflare's REST API), without pytest:
the tests' fixture (local_d1.py) and the benchmark's ``d1-local`` target (bench/d1_local.py)
both start it through :func:`started`.

Node 22 and miniflare come from the npm registry, pinned in d1local/package-lock.json
(``npm ci`` in d1local/; .ci/run does it).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from workflow.store.d1 import D1HttpDatabase

HERE = Path(__file__).resolve().parent / "d1local"
NODE = HERE / "node_modules" / ".bin" / "node"
SERVER = HERE / "server.mjs"
ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
DATABASE_ID = "00000000-0000-4000-8000-000000000d1d"


class LocalD1Missing(Exception):
    """The local D1 cannot run here (no Node, or the server did not start)."""


@dataclass(frozen=True)
class LocalD1:
    base_url: str
    """The REST API's base (as https://api.cloudflare.com/client/v4)."""
    token: str

    def database(self, connections: int = 4) -> D1HttpDatabase:
        """A new client of the local D1 with ``connections`` kept-alive connections
        (close it)."""
        return D1HttpDatabase(
            ACCOUNT_ID,
            DATABASE_ID,
            base_url=self.base_url,
            api_token=self.token,
            connections=connections,
        )


@contextlib.contextmanager
def started(persist: Path) -> Iterator[LocalD1]:
    """A local D1 keeping its data in ``persist``, stopped on exit."""
    if not NODE.exists():
        raise LocalD1Missing(f"no Node in {HERE / 'node_modules'}: run `npm ci` in {HERE}")
    token = secrets.token_hex(16)
    process = subprocess.Popen(
        [str(NODE), str(SERVER), str(persist), token],
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server's first line, or "" if it died
        if not line:
            raise LocalD1Missing(f"the local D1 did not start (exit code {process.wait(30)})")
        url = json.loads(line)["url"].rstrip("/")
        yield LocalD1(f"{url}/client/v4", token)
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the server stops when its stdin closes
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
