"""A client of Cloudflare's D1 REST API with the interface of the Workers binding.

One endpoint does everything: ``POST {base}/accounts/{account}/d1/database/{db}/query``
with ``{"sql", "params"}`` for one statement or ``{"batch": [...]}`` for several, which
D1 runs atomically. Requests go over the standard library's :mod:`http.client` on
kept-alive connections (a TLS handshake per statement would double its latency), each
request on a worker thread so the event loop never blocks.

The API token is read from an environment variable (``CLOUDFLARE_API_TOKEN`` unless
told another) or given as an option; it appears in no ``repr``, message or URL.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import select
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from workflow.runtime.errors import (
    InvalidArgumentError,
    StoreConfigurationError,
    StoreOperationError,
    StoreUnavailableError,
)

from .interface import (
    D1Result,
    D1Statement,
    Param,
    PreparedStatement,
    check_statement,
    result_from_json,
)

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# Servers close idle keep-alive connections; one idle for longer is replaced before it
# is used rather than failing a write whose fate would then be unknown. Below 5 s, the
# keep-alive timeout of Node's and workerd's HTTP servers (the local D1 closes an idle
# connection at 5 s, measured): a connection checked open at 4.99 s could be closed by
# the server before the request reaches it, and the write's fate would be unknown (a
# fresh-clone CI under load failed four D1 cases with "Connection reset by peer").
_MAX_IDLE_S = 4.0
_URL_OPTIONS = ("base_url", "api_token_env", "timeout", "connections")


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether the server closed this idle connection: an idle socket turns readable
    only then (end of file). Sending a request on it would fail with its fate unknown,
    so it is replaced before use, not retried after."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class D1QueryError(StoreOperationError):
    """D1 rejected a statement (SQL error, constraint violation); nothing of its
    batch was applied. ``code``: D1's error code; ``message``: its text."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"D1 rejected the statement (code {code}): {message}")
        self.code = code
        self.message = message


class HttpStatement(PreparedStatement):
    """A statement of a :class:`D1HttpDatabase` (``db.prepare(sql).bind(...)``)."""

    def __init__(self, database: D1HttpDatabase, sql: str, params: tuple[Param, ...]) -> None:
        super().__init__(sql, params)
        self.database = database

    def with_params(self, params: tuple[Param, ...]) -> HttpStatement:
        return HttpStatement(self.database, self.sql, params)

    async def all(self) -> D1Result:
        return (await self.database.send({"sql": self.sql, "params": list(self.params)}))[0]


class D1HttpDatabase:
    """A D1 database over the REST API. ``connections``: kept-alive HTTP connections
    (requests beyond that wait); ``timeout``: seconds a request may take."""

    def __init__(
        self,
        account_id: str,
        database_id: str,
        *,
        api_token: str | None = None,
        api_token_env: str = DEFAULT_TOKEN_ENV,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        connections: int = 4,
    ) -> None:
        for name, value in (("account_id", account_id), ("database_id", database_id)):
            if not isinstance(value, str) or not _ID.match(value):
                raise InvalidArgumentError(
                    f"{name} must be Cloudflare's identifier (letters, digits, '-'), got {value!r}"
                )
        base = urllib.parse.urlsplit(base_url) if isinstance(base_url, str) else None
        if base is None or base.scheme not in ("https", "http") or not base.hostname:
            raise InvalidArgumentError(
                f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}, got {base_url!r}"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be a positive number, got {timeout!r}")
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise InvalidArgumentError(f"connections must be a positive int, got {connections!r}")
        token = api_token if api_token is not None else os.environ.get(api_token_env)
        if not token:
            raise StoreConfigurationError(
                f"no D1 API token: set the environment variable {api_token_env} (or pass "
                "api_token=); create one with the D1 Edit permission in Cloudflare's dashboard"
            )
        self.account_id = account_id
        self.database_id = database_id
        self.base_url: str = base_url.rstrip("/")
        self.timeout: float = float(timeout)
        self._token_env = api_token_env
        self._token = token
        self._https = base.scheme == "https"
        self._host = base.hostname
        self._port = base.port
        self._path = (
            f"{base.path.rstrip('/')}/accounts/{account_id}/d1/database/{database_id}/query"
        )
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._idle_lock = threading.Lock()
        self._slots = asyncio.Semaphore(connections)
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> D1HttpDatabase:
        """``d1://ACCOUNT_ID/DATABASE_ID`` with the query options ``base_url``,
        ``api_token_env``, ``timeout`` and ``connections``; ``options`` win over them.
        The token never goes in the URL (URLs end up in logs)."""
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme != "d1" or parts.username or parts.password:
            raise InvalidArgumentError(
                "a D1 URL is d1://ACCOUNT_ID/DATABASE_ID (the API token comes from "
                f"{DEFAULT_TOKEN_ENV} or the api_token option)"
            )
        database = parts.path.lstrip("/")
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        if "api_token" in query:
            raise InvalidArgumentError(
                "a D1 URL does not carry the API token (URLs end up in logs): set "
                f"{DEFAULT_TOKEN_ENV} or another variable named by api_token_env"
            )
        unknown = sorted(set(query) - set(_URL_OPTIONS))
        if unknown:
            raise InvalidArgumentError(
                f"unknown D1 URL option(s) {unknown}: valid ones are {list(_URL_OPTIONS)}"
            )
        found: dict[str, Any] = {k: v[-1] for k, v in query.items()}
        for name, convert in (("timeout", float), ("connections", int)):
            if name in found:
                try:
                    found[name] = convert(found[name])
                except ValueError:
                    raise InvalidArgumentError(
                        f"{name} in a D1 URL must be a number, got {found[name]!r}"
                    ) from None
        return cls(parts.hostname or "", database, **{**found, **options})

    # -- the binding's interface -------------------------------------------------------
    def prepare(self, sql: str) -> HttpStatement:
        return HttpStatement(self, sql, check_statement(sql, ()))

    async def batch(self, statements: Sequence[D1Statement]) -> list[D1Result]:
        """Run ``statements`` in order as one atomic unit; their results, in order."""
        for statement in statements:
            if not isinstance(statement, HttpStatement) or statement.database is not self:
                raise InvalidArgumentError("a batch takes statements prepared on the same database")
        if not statements:
            return []
        body = {"batch": [{"sql": s.sql, "params": list(s.params)} for s in statements]}
        found = await self.send(body)
        if len(found) != len(statements):
            raise StoreOperationError(
                f"D1 answered a batch of {len(statements)} statements with {len(found)} results"
            )
        return found

    # -- HTTP -------------------------------------------------------------------------
    async def send(self, body: dict[str, Any]) -> list[D1Result]:
        """POST ``body`` to the query endpoint; one result per statement."""
        if self._closed:
            raise StoreUnavailableError("this D1 database is closed")
        payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        async with self._slots:
            status, answer, retry_after = await asyncio.to_thread(self._post, payload)
        return self._results(status, answer, retry_after)

    def _connection(self) -> http.client.HTTPConnection:
        now = time.monotonic()
        with self._idle_lock:
            while self._idle:
                connection, since = self._idle.pop()
                if now - since < _MAX_IDLE_S and not _dropped(connection):
                    return connection
                connection.close()
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self.timeout)

    def _post(self, payload: bytes) -> tuple[int, Any, str | None]:
        connection = self._connection()
        try:
            connection.request(
                "POST",
                self._path,
                payload,
                {
                    "Authorization": f"Bearer {self._token}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                },
            )
            response = connection.getresponse()
            raw = response.read()
            status, retry_after = response.status, response.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            # A request in flight may have been applied: the caller learns it is unknown.
            raise StoreUnavailableError(
                f"D1 at {self.base_url} did not answer ({type(exc).__name__}: {exc}); a "
                "write sent may or may not have been applied"
            ) from exc
        if response.will_close or self._closed:
            connection.close()
        else:
            with self._idle_lock:
                self._idle.append((connection, time.monotonic()))
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        return status, answer, retry_after

    def _results(self, status: int, answer: Any, retry_after: str | None) -> list[D1Result]:
        errors = answer.get("errors") if isinstance(answer, dict) else None
        first = errors[0] if isinstance(errors, list) and errors else {}
        code = first.get("code") if isinstance(first, dict) else None
        text = str(first.get("message", "")) if isinstance(first, dict) else ""
        said = f"HTTP {status}" + (f": {text}" if text else "")
        if status in (401, 403):
            raise StoreConfigurationError(
                f"D1 refused the API token ({said}): check that {self._token_env} (or "
                "api_token) holds a token with the D1 Edit permission for this account"
            )
        if status == 404:
            raise StoreConfigurationError(
                f"D1 knows no database {self.database_id!r} in account {self.account_id!r} "
                f"at {self.base_url} ({said}): correct the d1:// URL"
            )
        if status == 429:
            wait = f" (Retry-After: {retry_after} s)" if retry_after else ""
            raise StoreUnavailableError(f"the D1 REST API rate-limited this token{wait}")
        if status >= 500:
            raise StoreUnavailableError(f"D1 failed ({said})")
        if status != 200 or not isinstance(answer, dict) or not answer.get("success"):
            raise D1QueryError(code if isinstance(code, int) else None, text or said)
        found = answer.get("result")
        if not isinstance(found, list):
            raise StoreOperationError(f"D1 answered without results ({said})")
        return [result_from_json(r) for r in found]

    async def close(self) -> None:
        self._closed = True
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection, _since in idle:
            connection.close()

    def __repr__(self) -> str:
        return (
            f"D1HttpDatabase(account_id={self.account_id!r}, database_id={self.database_id!r}, "
            f"base_url={self.base_url!r})"
        )
