"""A real local D1 for the tests: miniflare (workerd) running d1local/worker.mjs, which
exposes its D1 binding in the shape of Cloudflare's REST API.

Node 22 and miniflare come from the npm registry, pinned in d1local/package-lock.json
(``npm ci`` in d1local/; .ci/run does it). Without them a local run skips loudly and a
CI run (``CI=true``) fails.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from workflow.contract_tests.servers import in_ci
from workflow.store.d1 import D1HttpDatabase

HERE = Path(__file__).resolve().parent / "d1local"
NODE = HERE / "node_modules" / ".bin" / "node"
SERVER = HERE / "server.mjs"
ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
DATABASE_ID = "00000000-0000-4000-8000-000000000d1d"


@dataclass(frozen=True)
class LocalD1:
    base_url: str
    """The REST API's base (as https://api.cloudflare.com/client/v4)."""
    token: str

    def database(self) -> D1HttpDatabase:
        """A new client of the local D1 (close it)."""
        return D1HttpDatabase(ACCOUNT_ID, DATABASE_ID, base_url=self.base_url, api_token=self.token)


def _missing(message: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(f"LOCAL D1 MISSING: {message}")


@pytest.fixture(scope="session")
def local_d1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalD1]:
    """One local D1 for the session (each test uses its own tables or prefix)."""
    if not NODE.exists():
        _missing(f"no Node in {HERE / 'node_modules'}: run `npm ci` in {HERE}")
    token = secrets.token_hex(16)
    persist = tmp_path_factory.mktemp("d1")
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
            _missing(f"the local D1 did not start (exit code {process.wait(30)})")
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
