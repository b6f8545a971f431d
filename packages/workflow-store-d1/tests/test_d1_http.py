"""The REST client (D1HttpDatabase) against a real local D1."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from local_d1 import ACCOUNT_ID, DATABASE_ID, LocalD1, local_d1  # noqa: F401 (fixture)

from workflow.runtime.errors import (
    InvalidArgumentError,
    StoreConfigurationError,
    StoreOperationError,
    StoreUnavailableError,
)
from workflow.store.d1 import D1HttpDatabase, D1QueryError
from workflow.store.d1.limits import MAX_BOUND_PARAMETERS, MAX_SAFE_INTEGER, MAX_STATEMENT_BYTES


@pytest.fixture
async def db(local_d1: LocalD1) -> AsyncIterator[D1HttpDatabase]:  # noqa: F811
    database = local_d1.database()
    yield database
    await database.close()


@pytest.fixture
async def table(db: D1HttpDatabase) -> str:
    name = f"t_{uuid.uuid4().hex}"
    await db.prepare(f"CREATE TABLE {name} (k INTEGER PRIMARY KEY, v TEXT)").run()
    return name


async def test_statement_binds_and_returns_rows(db: D1HttpDatabase, table: str) -> None:
    done = (
        await db.prepare(f"INSERT INTO {table} VALUES (?, ?), (?, ?)").bind(1, "a", 2, None).run()
    )
    assert done.meta.changes == 2
    found = await db.prepare(f"SELECT k, v FROM {table} ORDER BY k").all()
    assert found.results == [{"k": 1, "v": "a"}, {"k": 2, "v": None}]
    assert await db.prepare(f"SELECT v FROM {table} WHERE k = ?").bind(1).first() == {"v": "a"}
    assert await db.prepare(f"SELECT v FROM {table} WHERE k = ?").bind(9).first() is None


async def test_batch_is_atomic(db: D1HttpDatabase, table: str) -> None:
    insert = db.prepare(f"INSERT INTO {table} VALUES (?, ?)")
    await insert.bind(1, "kept").run()
    with pytest.raises(D1QueryError, match="UNIQUE constraint failed"):
        await db.batch([insert.bind(2, "rolled back"), insert.bind(1, "duplicate")])
    found = await db.prepare(f"SELECT k FROM {table}").all()
    assert found.results == [{"k": 1}]


async def test_batch_results_are_in_order(db: D1HttpDatabase, table: str) -> None:
    insert = db.prepare(f"INSERT INTO {table} VALUES (?, ?) RETURNING k")
    found = await db.batch(
        [insert.bind(1, "a"), insert.bind(2, "b"), db.prepare(f"SELECT count(*) AS n FROM {table}")]
    )
    assert [r.results for r in found] == [[{"k": 1}], [{"k": 2}], [{"n": 2}]]


async def test_conditional_claim_is_taken_once(db: D1HttpDatabase, table: str) -> None:
    await db.prepare(f"INSERT INTO {table} VALUES (1, NULL)").run()
    claim = db.prepare(f"UPDATE {table} SET v = ? WHERE k = 1 AND v IS NULL RETURNING v")
    assert (await claim.bind("first").all()).results == [{"v": "first"}]
    assert (await claim.bind("second").all()).results == []


async def test_transactions_are_rejected_by_d1(db: D1HttpDatabase) -> None:
    # Why every operation of the D1 store is one statement or one batch.
    with pytest.raises(D1QueryError, match="transaction"):
        await db.prepare("BEGIN IMMEDIATE").run()


async def test_limits_are_checked_before_sending(db: D1HttpDatabase) -> None:
    too_many = ", ".join("?" * (MAX_BOUND_PARAMETERS + 1))
    with pytest.raises(InvalidArgumentError, match="at most 100 parameters"):
        db.prepare(f"SELECT {too_many}").bind(*range(MAX_BOUND_PARAMETERS + 1))
    with pytest.raises(InvalidArgumentError, match="bytes"):
        db.prepare("SELECT '" + "x" * MAX_STATEMENT_BYTES + "'")
    with pytest.raises(InvalidArgumentError, match="exactly"):
        db.prepare("SELECT ?").bind(MAX_SAFE_INTEGER + 1)
    with pytest.raises(InvalidArgumentError, match="binds None, int, float or str"):
        db.prepare("SELECT ?").bind(b"bytes")
    largest = await db.prepare("SELECT ? AS n").bind(MAX_SAFE_INTEGER).first()
    assert largest == {"n": MAX_SAFE_INTEGER}


async def test_a_batch_takes_only_its_own_statements(
    db: D1HttpDatabase,
    local_d1: LocalD1,  # noqa: F811
) -> None:
    other = local_d1.database()
    with pytest.raises(InvalidArgumentError, match="same database"):
        await db.batch([other.prepare("SELECT 1")])
    await other.close()


async def test_a_wrong_token_is_a_configuration_error_that_hides_it(
    local_d1: LocalD1,  # noqa: F811
) -> None:
    wrong = "wrong-" + local_d1.token
    db = D1HttpDatabase(ACCOUNT_ID, DATABASE_ID, base_url=local_d1.base_url, api_token=wrong)
    with pytest.raises(StoreConfigurationError, match="CLOUDFLARE_API_TOKEN") as caught:
        await db.prepare("SELECT 1").run()
    assert wrong not in str(caught.value)
    assert wrong not in repr(db)
    await db.close()


def test_the_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    with pytest.raises(StoreConfigurationError, match="CLOUDFLARE_API_TOKEN"):
        D1HttpDatabase.from_url(f"d1://{ACCOUNT_ID}/{DATABASE_ID}")
    monkeypatch.setenv("MY_D1_TOKEN", "secret-value")
    db = D1HttpDatabase.from_url(f"d1://{ACCOUNT_ID}/{DATABASE_ID}?api_token_env=MY_D1_TOKEN")
    assert "secret-value" not in repr(db)
    assert db.base_url == "https://api.cloudflare.com/client/v4"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        (f"d1://{ACCOUNT_ID}/{DATABASE_ID}?api_token=x", "does not carry the API token"),
        (f"d1://{ACCOUNT_ID}/{DATABASE_ID}?colour=red", "unknown D1 URL option"),
        (f"d1://{ACCOUNT_ID}/{DATABASE_ID}?timeout=soon", "must be a number"),
        (f"d1://{ACCOUNT_ID}/a/b", "database_id"),
        (f"d1://{ACCOUNT_ID}", "database_id"),
        (f"d1://user:pw@{ACCOUNT_ID}/{DATABASE_ID}", "d1://ACCOUNT_ID/DATABASE_ID"),
        (f"sqlite://{ACCOUNT_ID}/{DATABASE_ID}", "d1://ACCOUNT_ID/DATABASE_ID"),
        (f"d1://{ACCOUNT_ID}/{DATABASE_ID}?base_url=ftp://x", "base_url"),
    ],
)
def test_bad_urls_are_refused(url: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        D1HttpDatabase.from_url(url, api_token="t")


async def test_an_unreachable_server_is_unavailable() -> None:
    db = D1HttpDatabase(
        ACCOUNT_ID, DATABASE_ID, base_url="http://127.0.0.1:9/client/v4", api_token="t"
    )
    with pytest.raises(StoreUnavailableError, match="did not answer"):
        await db.prepare("SELECT 1").run()
    await db.close()


async def test_an_unknown_endpoint_is_a_configuration_error(local_d1: LocalD1) -> None:  # noqa: F811
    base = local_d1.base_url.replace("/client/v4", "/elsewhere")
    db = D1HttpDatabase(ACCOUNT_ID, DATABASE_ID, base_url=base, api_token=local_d1.token)
    with pytest.raises(StoreConfigurationError, match="correct the d1:// URL"):
        await db.prepare("SELECT 1").run()
    await db.close()


async def test_a_closed_database_refuses_work(db: D1HttpDatabase) -> None:
    await db.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await db.prepare("SELECT 1").run()


# What the store's batches are built on: D1 has no BEGIN, so a write that depends on an
# earlier one's outcome is guarded in SQL. changes() still counts the batch's previous
# write, and a guard that fails raises (json() of text that is not JSON), which rolls
# back everything the batch did before it.
GUARD = "SELECT CASE WHEN changes() = 1 THEN 1 ELSE json('guard failed') END AS ok"


async def test_a_guard_sees_the_previous_write_of_its_batch(db: D1HttpDatabase, table: str) -> None:
    await db.prepare(f"INSERT INTO {table} VALUES (1, NULL)").run()
    claim = db.prepare(f"UPDATE {table} SET v = ? WHERE k = 1 AND v IS NULL")
    insert = db.prepare(f"INSERT INTO {table} VALUES (?, ?)")
    found = await db.batch([claim.bind("a"), db.prepare(GUARD), insert.bind(2, "after")])
    assert found[1].results == [{"ok": 1}]
    with pytest.raises(D1QueryError, match="malformed JSON"):
        await db.batch([insert.bind(3, "rolled back"), claim.bind("b"), db.prepare(GUARD)])
    rows = await db.prepare(f"SELECT k, v FROM {table} ORDER BY k").all()
    assert rows.results == [{"k": 1, "v": "a"}, {"k": 2, "v": "after"}]


async def test_named_parameters_bind_in_order_of_first_appearance(db: D1HttpDatabase) -> None:
    # The SQL stores compile :name placeholders; D1 binds them by position.
    found = await db.prepare("SELECT :b AS b, :a AS a, :b AS b2").bind("first", "second").first()
    assert found == {"b": "first", "a": "second", "b2": "first"}


class _ClosesAfterEachAnswer(BaseHTTPRequestHandler):
    """Answers like D1, keeps the connection open in the headers, then closes it: as a
    server closing an idle keep-alive connection does."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(
            {"success": True, "errors": [], "messages": [], "result": [{"results": [{"n": 1}]}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    closed = threading.Semaphore(0)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.closed.release()  # the connection is closed on the server's side


@pytest.fixture
def closing_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _ClosesAfterEachAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


async def test_a_connection_the_server_closed_is_not_reused(closing_server: _Server) -> None:
    port = closing_server.server_address[1]
    db = D1HttpDatabase(
        ACCOUNT_ID, DATABASE_ID, base_url=f"http://127.0.0.1:{port}/client/v4", api_token="t"
    )
    try:
        for _ in range(3):
            assert await db.prepare("SELECT 1 AS n").first() == {"n": 1}
            await asyncio.to_thread(closing_server.closed.acquire)
    finally:
        await db.close()


class _Answers(BaseHTTPRequestHandler):
    """Answers every POST with the server's ``answer``: (status, headers, body)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, headers, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _cloudflare_error(code: int, message: str) -> bytes:
    return json.dumps(
        {"success": False, "errors": [{"code": code, "message": message}], "messages": []}
    ).encode()


# What Cloudflare's API answers that a local D1 never does: a rate limit and failures of
# its own. Each must reach the caller as the documented error, with what it said.
@pytest.mark.parametrize(
    ("status", "headers", "body", "error", "match"),
    [
        (
            429,
            {"Retry-After": "7", "Content-Type": "application/json"},
            _cloudflare_error(971, "Please wait and consider throttling your request speed"),
            StoreUnavailableError,
            r"rate-limited this token \(Retry-After: 7 s\)",
        ),
        (429, {}, b"", StoreUnavailableError, r"rate-limited this token \(retryable"),
        (
            503,
            {"Content-Type": "application/json"},
            _cloudflare_error(7500, "Internal error"),
            StoreUnavailableError,
            r"D1 failed \(HTTP 503: Internal error\)",
        ),
        (
            502,
            {"Content-Type": "text/html"},
            b"<html><body>Bad gateway</body></html>",
            StoreUnavailableError,
            r"D1 failed \(HTTP 502\) \(retryable",
        ),
        (
            400,
            {"Content-Type": "application/json"},
            _cloudflare_error(7500, 'near "SELEC": syntax error'),
            D1QueryError,
            "syntax error",
        ),
        (
            200,
            {"Content-Type": "application/json"},
            json.dumps({"success": True, "errors": []}).encode(),
            StoreOperationError,
            "answered without results",
        ),
    ],
)
async def test_the_apis_own_failures_are_typed_errors(
    status: int, headers: dict[str, str], body: bytes, error: type[Exception], match: str
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.answer = (status, headers, body)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    db = D1HttpDatabase(
        ACCOUNT_ID,
        DATABASE_ID,
        base_url=f"http://127.0.0.1:{server.server_address[1]}/client/v4",
        api_token="t",
    )
    try:
        with pytest.raises(error, match=match):
            await db.prepare("SELECT 1 AS n").first()
    finally:
        await db.close()
        server.shutdown()
        server.server_close()
        thread.join()
