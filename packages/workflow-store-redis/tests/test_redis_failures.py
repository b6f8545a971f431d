"""Failures map onto the contract's errors; scripts survive a script-cache flush."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import redis.asyncio as aioredis
from local_cluster import cluster_fixture  # noqa: F401  (fixture redis_cluster_url)
from redis.asyncio.cluster import RedisCluster

from workflow.contract_tests import network, worker_stop
from workflow.contract_tests.faults import FaultProxy, fault_proxy
from workflow.contract_tests.servers import poll, require_server
from workflow.runtime import (
    Claimed,
    Created,
    Duplicate,
    Existing,
    Finish,
    Lease,
    NewEvent,
    NotClaimable,
    Pause,
    RunStatus,
    Wait,
    open_store,
)
from workflow.runtime.errors import (
    InvalidArgumentError,
    LeaseLostError,
    LogConflictError,
    SchemaVersionError,
    StoreConfigurationError,
    StoreOperationError,
    StoreUnavailableError,
    WorkflowStoreError,
)
from workflow.store.redis import durability
from workflow.store.redis.durability import problems, read_settings
from workflow.store.redis.keys import Keyspace
from workflow.store.redis.migrator import head
from workflow.store.redis.store import RedisStore
from workflow.store.redis.store import open_store as open_store_redis

URL = os.environ.get("WORKFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = 1_700_000_000_000


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    require_server(URL, "Redis", default_port=6379)
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = aioredis.Redis.from_url(URL)
    keys = [k async for k in client.scan_iter(match=Keyspace(prefix).pattern, count=1000)]
    if keys:
        await client.unlink(*keys)
    await client.aclose()


def _closed_port() -> int:
    # A port that was just free: nothing listens there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_server_raises_store_unavailable() -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await store.create_run("r", "wf", None, None, T0)
        assert caught.value.retryable
        assert caught.value.__cause__ is not None
    finally:
        await store.close()


async def test_open_store_verifies_the_keyspace_revision(prefix: str) -> None:
    with pytest.raises(SchemaVersionError) as caught:
        await open_store(f"{URL}?prefix={prefix}")
    assert (caught.value.current, caught.value.required) == (None, head())
    store = RedisStore.from_url(URL, prefix=prefix)
    await store.create_schema()
    await store.close()
    opened = await open_store(f"{URL}?prefix={prefix}")
    try:
        assert isinstance(opened, RedisStore)
        assert (await opened.schema_status()).up_to_date
    finally:
        await opened.close()


async def test_scripts_are_reloaded_after_the_script_cache_is_flushed(prefix: str) -> None:
    store = RedisStore.from_url(URL, prefix=prefix)
    try:
        assert isinstance(await store.create_run("r", "wf", None, None, T0), Created)
        admin = aioredis.Redis.from_url(URL)
        await admin.script_flush()
        await admin.aclose()
        # The next call gets NOSCRIPT, loads the script again and succeeds.
        assert isinstance(await store.create_run("r", "wf", None, None, T0), Existing)
    finally:
        await store.close()


async def test_scripts_are_reloaded_on_every_cluster_node_after_a_flush(
    redis_cluster_url: str,
) -> None:
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    store = RedisStore.from_url(redis_cluster_url, prefix=prefix, cluster=True)
    # Runs in several buckets, so the calls reach every master.
    ids = [f"r{i}" for i in range(24)]
    try:
        await store.create_schema()
        for run_id in ids:
            assert isinstance(await store.create_run(run_id, "wf", None, None, T0), Created)
        masters = {
            store.client.get_node_from_key(store.keys.run(r)).name  # type: ignore[union-attr]
            for r in ids
        }
        assert len(masters) == 3
        await store.client.script_flush()  # on every primary
        for run_id in ids:
            assert isinstance(await store.create_run(run_id, "wf", None, None, T0), Existing)
        claims = await store.claim_runnable("w", 60_000, 100, T0)
        assert sorted(c.run.run_id for c in claims) == sorted(ids)
    finally:
        async for key in store.client.scan_iter(match=store.keys.pattern):
            await store.client.unlink(key)
        await store.close()


async def _only_pooled_connection(store: RedisStore) -> Any:
    # Observed, not replaced: redis-py's own pool and connection objects.
    pool = store.client.connection_pool  # type: ignore[union-attr]
    assert len(pool._available_connections) == 1
    return pool._available_connections[0]


async def test_a_connection_the_server_closed_is_replaced_before_the_call_is_sent(
    prefix: str,
) -> None:
    store = RedisStore.from_url(URL, prefix=prefix)
    admin = aioredis.Redis.from_url(URL, decode_responses=True)
    try:
        assert isinstance(await store.create_run("r", "wf", None, None, T0), Created)
        conn = await _only_pooled_connection(store)
        old_id = await store.client.client_id()
        await admin.client_kill_filter(_id=str(old_id))
        # Wait until the close has reached the client's socket (a condition, not a
        # clock): the dead connection is then known before the next call checks it out.
        await poll(lambda: _at_eof(conn), "the client to read the server's close")
        loaded = await store.load_run("r")
        assert loaded is not None
        assert loaded.run_id == "r"
        assert await store.client.client_id() != old_id
    finally:
        await admin.aclose()
        await store.close()


async def _at_eof(conn: Any) -> bool:
    return conn._reader is not None and conn._reader.at_eof()


@asynccontextmanager
async def _through_a_proxy(
    prefix: str, **options: Any
) -> AsyncIterator[tuple[RedisStore, FaultProxy]]:
    parts = urlsplit(URL)
    async with fault_proxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        url = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        store = RedisStore.from_url(url, prefix=prefix, **options)
        try:
            await store.create_schema()
            yield store, proxy
        finally:
            await store.close()


async def test_a_command_lost_on_its_way_is_unavailable_and_ran_nowhere(prefix: str) -> None:
    async with _through_a_proxy(prefix) as (store, proxy):
        assert isinstance(await store.create_run("r", "wf", None, None, T0), Created)
        proxy.set_mode("reset_requests")
        with pytest.raises(StoreUnavailableError) as caught:
            await store.claim_run("r", "w", 60_000, T0)
        assert proxy.fired.is_set()
        assert caught.value.retryable
        # Sent once, never retried by the client: the run is as it was.
        loaded = await store.load_run("r")
        assert loaded is not None
        assert loaded.status is RunStatus.QUEUED
        assert isinstance(await store.claim_run("r", "w", 60_000, T0), Claimed)


Stage = Callable[[RedisStore, str], Awaitable[Callable[[], Awaitable[object]]]]


async def _claimed(store: RedisStore, run_id: str) -> Lease:
    assert isinstance(await store.create_run(run_id, "wf", None, None, T0), Created)
    claim = await store.claim_run(run_id, "w", 60_000, T0)
    assert isinstance(claim, Claimed)
    return claim.lease


async def _lost_create(store: RedisStore, run_id: str) -> Callable[[], Awaitable[object]]:
    return lambda: store.create_run(run_id, "wf", None, None, T0)


async def _lost_claim(store: RedisStore, run_id: str) -> Callable[[], Awaitable[object]]:
    assert isinstance(await store.create_run(run_id, "wf", None, None, T0), Created)
    return lambda: store.claim_run(run_id, "w", 60_000, T0)


async def _lost_append(store: RedisStore, run_id: str) -> Callable[[], Awaitable[object]]:
    lease = await _claimed(store, run_id)
    return lambda: store.append_events(run_id, lease, 0, [NewEvent("step", {"n": 1})], T0)


async def _lost_settle(store: RedisStore, run_id: str) -> Callable[[], Awaitable[object]]:
    lease = await _claimed(store, run_id)
    return lambda: store.settle_run(run_id, lease, 0, [], Finish({"ok": True}), T0)


async def _lost_delivery(store: RedisStore, run_id: str) -> Callable[[], Awaitable[object]]:
    assert isinstance(await store.create_run(run_id, "wf", None, None, T0), Created)
    return lambda: store.deliver_signal(run_id, "sig-1", "go", None, T0)


def _is(kind: type) -> Callable[[object], bool]:
    return lambda answer: isinstance(answer, kind)


# What running a transition a second time answers (docs/stores/redis.md, "Errors and
# lost replies"): each staged so the lost reply is the transition's own.
LOST_REPLIES: dict[str, tuple[Stage, Callable[[object], bool]]] = {
    "create_run": (_lost_create, _is(Existing)),
    "claim_run": (_lost_claim, _is(NotClaimable)),
    "append_events": (_lost_append, _is(LogConflictError)),
    "settle_run": (_lost_settle, _is(LeaseLostError)),
    "deliver_signal": (_lost_delivery, _is(Duplicate)),
}


@pytest.mark.parametrize("operation", sorted(LOST_REPLIES))
async def test_a_reply_lost_after_the_script_ran_is_unavailable_then_answers_as_documented(
    prefix: str, operation: str
) -> None:
    stage, expected = LOST_REPLIES[operation]
    async with _through_a_proxy(prefix) as (store, proxy):
        # The same transition once on another run first, so its script is in the
        # server's cache: the reply dropped is the script's, not a NOSCRIPT.
        await (await stage(store, "warm-up"))()
        for attempt in range(3):
            call = await stage(store, f"r{attempt}")
            proxy.set_mode("drop_replies")
            with pytest.raises(StoreUnavailableError) as caught:
                await call()
            assert proxy.fired.is_set()  # the server answered: the script ran
            # Unless another test run flushed the script cache meanwhile (SCRIPT FLUSH
            # is server-wide): the server then answered NOSCRIPT and ran nothing.
            if not proxy.dropped.startswith(b"-NOSCRIPT"):
                break
        assert caught.value.retryable
        try:
            answer: object = await call()
        except WorkflowStoreError as exc:
            answer = exc
        assert expected(answer), answer


async def test_a_closed_store_stays_closed(prefix: str) -> None:
    store = RedisStore.from_url(URL, prefix=prefix)
    await store.create_run("r", "wf", None, None, T0)
    await store.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.load_run("r")


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("redis://127.0.0.1:6379/0?prefix=a{b", {}),
        ("redis://127.0.0.1:6379/0", {"prefix": ""}),
        ("redis://127.0.0.1:6379/0", {"no_such_option": 1}),
        ("redis://127.0.0.1:6379/0", {"max_payload_bytes": 1}),
        ("memcached://127.0.0.1", {}),
        ("redis://127.0.0.1:6379/0?cluster=maybe", {}),
        ("redis://127.0.0.1:6379/0", {"cluster": "yes"}),
        ("redis://127.0.0.1:6379/3?cluster=true", {}),
        ("redis://127.0.0.1:6379/0?buckets=0", {}),
        ("redis://127.0.0.1:6379/0?buckets=many", {}),
        ("redis://127.0.0.1:6379/0", {"buckets": 2000}),
        ("redis://127.0.0.1:6379/0?cluster=", {}),
        ("redis://127.0.0.1:6379/0?buckets=%C2%B2", {}),
        ("redis://127.0.0.1:6379/0?buckets=", {}),
        ("redis://127.0.0.1:6379/0?cluster=true&no_such_parameter=1", {}),
        ("redis://127.0.0.1:6379/0?no_such_parameter=1", {}),
        ("redis://127.0.0.1:6379/0?verify_schema=0", {}),
    ],
)
async def test_bad_url_or_options_raise_invalid_argument(
    url: str, options: dict[str, object]
) -> None:
    with pytest.raises(InvalidArgumentError):
        await open_store_redis(url, **options)


async def test_opening_names_the_persistence_settings_that_can_lose_writes(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durability, "_warned", set())  # nothing warned yet in this process
    # Read the real server's settings; the test's expectation follows from them.
    probe = RedisStore.from_url(URL)
    try:
        settings = await read_settings(probe.client)
    finally:
        await probe.close()
    found = problems(settings)
    prefix = f"wftest:{uuid.uuid4().hex[:12]}:"
    url = f"{URL}{'&' if '?' in URL else '?'}prefix={prefix}"
    with caplog.at_level(logging.WARNING, logger="workflow.durability"):
        store = await open_store(url, verify_schema=False)
        await store.close()
        # Once per process and server: a second store on the same server says nothing.
        other = await open_store(
            f"{URL}{'&' if '?' in URL else '?'}prefix=x{prefix}", verify_schema=False
        )
        await other.close()
    logged = [r.getMessage() for r in caplog.records if r.name == "workflow.durability"]
    assert len(logged) == len(found)
    if found:
        with pytest.raises(StoreConfigurationError, match="may lose acknowledged writes"):
            await open_store(url, verify_schema=False, require_durable=True)
    else:
        await (await open_store(url, verify_schema=False, require_durable=True)).close()


async def test_on_a_cluster_every_primary_s_persistence_is_checked(redis_cluster_url: str) -> None:
    # Each primary keeps its own slots: one without the append-only file loses them.
    # The test cluster runs with AOF on; one primary is switched off for the check.
    store = RedisStore.from_url(redis_cluster_url, cluster=True)
    try:
        assert await store.durability_problems() == []
        client = store.client
        assert isinstance(client, RedisCluster)
        primaries = client.get_primaries()
        assert len(primaries) == 3
        weak = primaries[1]
        direct = aioredis.Redis(host=weak.host, port=int(weak.port), decode_responses=True)
        try:
            await direct.config_set("appendonly", "no")
            found = await store.durability_problems()
        finally:
            await direct.config_set("appendonly", "yes")
            await direct.aclose()
    finally:
        await store.close()
    assert len(found) == 1
    assert found[0].startswith(f"node {weak.name}: appendonly is not yes")


def test_the_settings_that_lose_writes_are_named() -> None:
    safe = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}
    assert problems(safe) == []
    assert [p.split()[0] for p in problems({**safe, "appendonly": "no"})] == ["appendonly"]
    assert "appendfsync" in problems({**safe, "appendfsync": "no"})[0]
    assert "allkeys-lru" in problems({**safe, "maxmemory-policy": "allkeys-lru"})[0]
    assert "could not read" in problems(None)[0]


async def test_a_run_whose_keys_vanished_never_stalls_claims_or_timers(prefix: str) -> None:
    # An eviction policy, or a DEL by hand, can remove a run's hash while the global
    # indexes still name it; the many-run scripts drop such members and go on.
    store = RedisStore.from_url(URL, prefix=prefix)
    try:
        await store.create_schema()
        for run_id in ("gone-q", "gone-p", "live"):
            await store.create_run(run_id, "wf", None, None, T0)
        claimed = await store.claim_run("gone-p", "w", 60_000, T0)
        assert isinstance(claimed, Claimed)
        await store.settle_run("gone-p", claimed.lease, 0, [], Pause(Wait.sleep("s", T0 + 5)), T0)
        await store.client.delete(store.keys.run("gone-q"), store.keys.run("gone-p"))

        assert await store.fire_due_timers(T0 + 10, 10) == []
        claims = await store.claim_runnable("w", 60_000, 10, T0 + 10)
        assert [c.run.run_id for c in claims] == ["live"]
        assert await store.claim_runnable("w", 60_000, 10, T0 + 10) == []
    finally:
        await store.close()


async def test_from_url_reads_the_urls_cluster_flag_unless_an_option_overrides_it(
    redis_cluster_url: str,
) -> None:
    joint = "&" if "?" in redis_cluster_url else "?"
    store = RedisStore.from_url(f"{redis_cluster_url}{joint}cluster=true")
    try:
        assert store.cluster
        assert await store.load_run("r") is None
    finally:
        await store.close()
    require_server(URL, "Redis", default_port=6379)
    joint = "&" if "?" in URL else "?"
    # The option wins, and the URL's value is then not even read.
    store = RedisStore.from_url(f"{URL}{joint}cluster=maybe", cluster=False)
    try:
        assert not store.cluster
        assert await store.load_run("r") is None
    finally:
        await store.close()


async def test_a_stored_bucket_count_that_is_not_ascii_digits_is_an_operation_error(
    prefix: str,
) -> None:
    store = RedisStore.from_url(URL, prefix=prefix)
    try:
        await store.client.set(store.keys.meta("buckets"), "\u00b2")
        with pytest.raises(StoreOperationError, match="not a bucket count"):
            await store.load_run("r")
    finally:
        await store.close()


# -- the network stops answering (a black hole, a half-open connection) ---------------
BOUND = 1.0  # operation_timeout of the stores below: the store's bound ends each call


async def test_a_call_in_a_black_hole_fails_within_its_bound(prefix: str) -> None:
    async with _through_a_proxy(prefix, operation_timeout=BOUND) as (store, proxy):
        await network.black_holed_call_fails_within_its_bound(store, proxy, BOUND, "r")


async def test_a_connect_into_a_black_hole_fails_within_its_bound(prefix: str) -> None:
    parts = urlsplit(URL)
    async with fault_proxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        url = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        store = RedisStore.from_url(url, prefix=prefix, operation_timeout=BOUND)
        try:
            await network.black_hole_on_connect_fails_within_its_bound(store, proxy, BOUND)
        finally:
            await store.close()


def test_the_socket_timeout_is_the_bound() -> None:
    store = RedisStore.from_url(f"{URL}?operation_timeout=2.5")
    kwargs = store.client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert store.operation_timeout == 2.5
    assert kwargs["socket_timeout"] == 2.5


# -- stop means stop: a worker whose store calls hang in a black hole -----------------
async def _hung_worker(
    prefix: str, tmp_path: Path, *, signals: int, grace_period: float
) -> worker_stop.StoppedWorker:
    direct = RedisStore.from_url(URL, prefix=prefix)
    try:
        await direct.create_schema()
        await worker_stop.start_hang(direct, "hang-1")
    finally:
        await direct.close()
    parts = urlsplit(URL)
    async with fault_proxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        # A bound far beyond the test: only the stop can end the hung calls.
        query = urlencode({"prefix": prefix, "operation_timeout": "600"})
        url = parts._replace(netloc=f"127.0.0.1:{proxy.port}", query=query).geturl()
        return await worker_stop.stop_while_hung(
            url, proxy, tmp_path, signals=signals, grace_period=grace_period, run_id="hang-1"
        )


@pytest.mark.parametrize("comes_back", [True, False], ids=["store-comes-back", "stopped-first"])
async def test_a_worker_started_while_the_store_is_unreachable_waits_for_it(
    prefix: str, tmp_path: Path, comes_back: bool
) -> None:
    # It used to exit 1 at once; now it logs and backs off as a running worker does,
    # and SIGTERM while it waits is a clean stop (exit 0).
    direct = RedisStore.from_url(URL, prefix=prefix)
    try:
        await direct.create_schema()
        await worker_stop.start_hang(direct, "hang-1")
    finally:
        await direct.close()
    parts = urlsplit(URL)
    async with fault_proxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        # Each attempt in the black hole gives up after 1 s.
        query = urlencode({"prefix": prefix, "operation_timeout": "1"})
        url = parts._replace(netloc=f"127.0.0.1:{proxy.port}", query=query).geturl()
        stopped = await worker_stop.start_while_unreachable(
            url, proxy, tmp_path, run_id="hang-1", comes_back=comes_back
        )
    worker_stop.assert_waited_for_the_store(stopped, came_back=comes_back)


async def test_sigterm_stops_a_worker_hung_in_a_black_hole_after_the_grace_period(
    prefix: str, tmp_path: Path
) -> None:
    stopped = await _hung_worker(prefix, tmp_path, signals=1, grace_period=1)
    worker_stop.assert_stopped_after_the_grace_period(stopped, 1)


async def test_a_second_sigterm_stops_a_hung_worker_at_once(prefix: str, tmp_path: Path) -> None:
    # The grace period is longer than the test's guard: only the second signal ends it.
    stopped = await _hung_worker(prefix, tmp_path, signals=2, grace_period=3600)
    worker_stop.assert_stopped_hard(stopped)


# -- a partitioned worker's lease runs out locally ------------------------------------
@pytest.fixture
async def partitioned(prefix: str) -> AsyncIterator[tuple[RedisStore, RedisStore, FaultProxy]]:
    direct = RedisStore.from_url(URL, prefix=prefix)
    await direct.create_schema()
    parts = urlsplit(URL)
    async with fault_proxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        # The store's bound is far beyond the lease: only the lease ends the slice.
        url = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        proxied = RedisStore.from_url(url, prefix=prefix, operation_timeout=30)
        try:
            yield proxied, direct, proxy
        finally:
            await proxied.close()
            await direct.close()


async def test_a_partitioned_workers_step_is_cancelled_once_its_lease_is_gone(
    partitioned: tuple[RedisStore, RedisStore, FaultProxy],
) -> None:
    await network.partitioned_step_is_cancelled(*partitioned, "r-async")


async def test_a_partitioned_workers_sync_step_result_is_discarded(
    partitioned: tuple[RedisStore, RedisStore, FaultProxy],
) -> None:
    await network.late_sync_step_result_is_discarded(*partitioned, "r-sync")


async def test_a_partitioned_worker_recovers_by_itself_after_a_heal(
    partitioned: tuple[RedisStore, RedisStore, FaultProxy],
) -> None:
    await network.worker_recovers_after_a_heal(*partitioned, "r-heal")


async def test_only_commands_that_write_print_the_durability_warning(prefix: str) -> None:
    probe = RedisStore.from_url(URL)
    try:
        found = problems(await read_settings(probe.client))
    finally:
        await probe.close()
    url = f"{URL}{'&' if '?' in URL else '?'}prefix={prefix}"
    workflow = str(Path(sys.executable).parent / "workflow")

    # Without the test env's development mode: asyncio's debug mode would add its own
    # lines to stderr on a loaded machine ("Executing <Task ...> took 0.333 seconds").
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [workflow, *args, "--url", url], capture_output=True, text=True, check=False, env=env
        )

    assert run("migrate", "upgrade").returncode == 0
    cancel = run("runs", "cancel", "no-such-run")
    # A write warns of each setting once (the test's expectation follows from the
    # server's settings: the local server runs without the append-only file).
    assert [line for line in cancel.stderr.splitlines() if "may lose" in line] == [
        f"Redis at {url} may lose acknowledged writes: {problem}" for problem in found
    ]
    for command in (("runs", "list"), ("schedules", "list"), ("migrate", "current")):
        done = run(*command)
        assert done.returncode == 0, done.stderr
        assert "may lose" not in done.stderr, command
