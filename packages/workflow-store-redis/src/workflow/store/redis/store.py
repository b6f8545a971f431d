"""RedisStore: the execution store on Redis, one Lua script per state transition.

Every operation validates its arguments with :mod:`workflow.runtime.arguments` first,
then runs one script (or, for plain reads, one command; listings read with
pipelines) so it is atomic. Scripts are registered once and called by SHA; redis-py
reloads them when the server answers ``NOSCRIPT`` (after a restart or ``SCRIPT
FLUSH``; on a cluster, on the node that answered). Time is always the caller's
``now``; the server clock is never read.

The store runs on a standalone server (or a primary with replicas) and on Redis
Cluster (``cluster=true``). A one-run operation is one script on the run's bucket
(:mod:`.keys`) either way. An operation across runs (claim_runnable, fire_due_timers,
purge_runs, fire_due_schedules) is one script over every bucket on a standalone
server; on a cluster it asks each bucket what it would act on (``dry``), merges the
answers in ``(score, id)`` order and then acts on the buckets that hold the winners,
naming them (rather than visiting buckets in turn and stopping at the first claims,
which would break the contract's global order). docs/stores/redis.md tabulates the round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import re
import sys
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Iterable,
    Sequence,
)
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, SSLConnection
from redis.commands.core import AsyncScript
from redis.connection import URL_QUERY_ARGUMENT_PARSERS
from workflow.runtime import arguments, codec, validation
from workflow.runtime.contract import Capability
from workflow.runtime.cursor import decode_cursor, encode_cursor
from workflow.runtime.errors import (
    InvalidArgumentError,
    LeaseLostError,
    LogConflictError,
    RunCancelledError,
    RunTimedOutError,
    StoreConfigurationError,
    StoreOperationError,
    StoreUnavailableError,
    WorkflowStoreError,
)
from workflow.runtime.queues import MAX_PRIORITY, queue_config
from workflow.runtime.records import (
    DEFAULT_QUEUE,
    JSON,
    InboxEntry,
    InboxKind,
    InboxRef,
    Lease,
    NewEvent,
    Overlap,
    Page,
    ParentPolicy,
    Queue,
    RateLimit,
    Run,
    RunStatus,
    Schedule,
    ScheduleSpec,
    SchemaStatus,
    StoredEvent,
    Timeline,
    Wait,
    WaitKind,
)
from workflow.runtime.registry import check_flag, redact_url, unknown_options
from workflow.runtime.results import (
    AlreadyTerminal,
    Buffered,
    Cancelled,
    CancelResult,
    Claimed,
    ClaimResult,
    Closed,
    Conflict,
    Created,
    CreateResult,
    Delivered,
    DeliveryResult,
    Duplicate,
    Existing,
    NotClaimable,
    NotFound,
    Outcome,
    ScheduleTick,
    TickOutcome,
)
from workflow.runtime.schedules import next_fire_at
from workflow.runtime.subscriptions import poll_events
from workflow.runtime.timeouts import (
    DEFAULT_OPERATION_TIMEOUT_S,
    OPERATION_NAMES,
    check_operation_timeout,
    parse_operation_timeout,
    timed_out,
)
from workflow.runtime.wakeups import Watchers

from . import durability, lua, subscriber
from .connections import client_options
from .keys import (
    DEFAULT_BUCKETS,
    DEFAULT_PREFIX,
    Keyspace,
    created_member,
    escape,
    run_placement,
)
from .migrator import Client, RedisMigrator

T = TypeVar("T")
_CLAIM_INDEXES = ("ready", "leases")
"""The bucket indexes claim_runnable declares (it reads the per-queue ones too)."""
_LIST_BATCH = 200
"""Members each bucket contributes per round of a list_runs filtered by a workflow and
a status (the one listing that reads an index holding more than what it lists)."""
_CLAIM_ROUNDS = 4
"""Rounds of a cluster's claim_runnable that read on past the runs of queues and keys the
call filled (each reads at most limit + 1,000 candidates per bucket, as a standalone
server's one script does per call)."""
_ScriptCall = tuple[AsyncScript, list[str], list[object]]
"""A script call: the script, its keys, its arguments."""
_ClaimArgs = Callable[[int, bool, Sequence[str], Sequence[str], str], list[object]]
"""claim_runnable's script arguments: (limit, dry, full, named, after)."""


# Failover, loading and memory pressure: the script was refused before its first
# write. A lost connection or a timeout: it ran whole or not at all, and running it
# again is safe (docs/stores/redis.md, "Errors and lost replies"). The caller may retry.
# On a cluster also: a slot that moves or is being migrated (redis-py follows MOVED/ASK
# and TRYAGAIN until its redirect budget runs out: ClusterError "TTL exhausted"), a
# slot no node serves, or no node reachable (RedisClusterException, which is not a
# RedisError).
_UNAVAILABLE = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.BusyLoadingError,
    rex.ReadOnlyError,
    rex.MasterDownError,
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.OutOfMemoryError,
    rex.ClusterError,
    rex.RedisClusterException,
)
# Script errors a cluster in motion produces: a key the script derives (not in its
# KEYS) was migrated away meanwhile, or the cluster lost a slot mid-script.
_UNAVAILABLE_SCRIPT_ERRORS = ("non local key", "cluster is down")
_NOT_A_CLUSTER = "Cluster mode is not enabled"


class RedisStore:
    """The :class:`~workflow.runtime.ExecutionStore` on Redis (standalone or Cluster)."""

    db_system = "redis"
    """``db.system`` on its OpenTelemetry spans (:mod:`workflow.runtime.traced_store`)."""

    def __init__(
        self,
        client: Client,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        url_hint: str = "redis://HOST:PORT/DB",
        buckets: int = DEFAULT_BUCKETS,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT_S,
    ) -> None:
        # The keyspace's own bucket count (P{g}:buckets) replaces ``buckets`` once read:
        # ``buckets`` only decides the count of a keyspace that create_schema creates.
        self.keys: Keyspace = Keyspace(prefix, buckets)
        self._buckets_known = False
        joint = "&" if "?" in url_hint else "?"
        self._url_hint = (
            url_hint if prefix == DEFAULT_PREFIX else f"{url_hint}{joint}prefix={prefix}"
        )
        self.max_payload_bytes: int = validation.check_int(
            max_payload_bytes, "max_payload_bytes", 2, 2**31
        )
        self.operation_timeout: float = check_operation_timeout(operation_timeout)
        """Seconds a round trip may take before it raises :class:`StoreUnavailableError`
        (the client's socket timeout is the same bound when :meth:`from_url` made it)."""
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._closed = False
        self._watchers = Watchers("RedisStore")
        self._subscriptions = 0
        # Cluster: the queues and keys the last claim_runnable found full (a hint its
        # next call checks: _claim_on_cluster).
        self._full_hint: list[str] = []
        # A cluster's seeds as given (the client replaces them by the nodes it finds).
        self._seeds: tuple[str, ...] = (
            tuple(sorted(client.nodes_manager.startup_nodes))
            if isinstance(client, RedisCluster)
            else ()
        )
        self.wake_channel: str = subscriber.channel_for(prefix)
        """The channel the scripts PUBLISH wake-up hints on (``SUBSCRIBE`` to watch)."""

        def script(body: str) -> AsyncScript:
            return client.register_script(lua.PRELUDE + body)

        self._create = script(lua.CREATE_RUN)
        self._cancel = script(lua.CANCEL_RUN)
        self._delete = script(lua.DELETE_RUN)
        self._purge = script(lua.PURGE_RUNS)
        self._claim = script(lua.CLAIM_RUN)
        self._claim_many = script(lua.CLAIM_RUNNABLE)
        self._heartbeat = script(lua.HEARTBEAT)
        self._append = script(lua.APPEND_EVENTS)
        self._settle = script(lua.SETTLE_RUN)
        self._deliver_script = script(lua.DELIVER)
        self._fire_timers = script(lua.FIRE_DUE_TIMERS)
        self._fire_deadlines = script(lua.FIRE_DUE_DEADLINES)
        self._upsert_schedule = script(lua.UPSERT_SCHEDULE)
        self._delete_schedule = script(lua.DELETE_SCHEDULE)
        self._fire_schedules = script(lua.FIRE_DUE_SCHEDULES)
        self._read_timeline = script(lua.READ_TIMELINE)
        self._read_inbox = script(lua.READ_INBOX)
        self._upsert_queue_script = script(lua.UPSERT_QUEUE)
        self._list_queues = script(lua.LIST_QUEUES)

        def queue_script(body: str) -> AsyncScript:
            return client.register_script(lua.PRELUDE + lua.QUEUE_PRELUDE + body)

        self._queue_room = queue_script(lua.QUEUE_ROOM)
        self._queue_reserve = queue_script(lua.QUEUE_RESERVE)
        self._queue_release = queue_script(lua.QUEUE_RELEASE)
        self._queue_extend = queue_script(lua.QUEUE_EXTEND)
        self._queue_forget = queue_script(lua.QUEUE_FORGET)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str | None = None,
        max_payload_bytes: int | None = None,
        cluster: bool | None = None,
        buckets: int | None = None,
        operation_timeout: float | None = None,
    ) -> RedisStore:
        """A store on the server at ``url`` (``redis://`` or ``rediss://``); with
        ``cluster=True`` ``url`` names any node of a Redis Cluster.

        The URL's ``prefix``, ``buckets``, ``cluster``, ``max_payload_bytes`` and
        ``operation_timeout`` query
        parameters are read like :func:`open_store` reads them (an option given here
        wins over the URL's); the other query parameters go to redis-py, which must know
        them (one it does not is an :class:`InvalidArgumentError` naming the valid
        ones)."""
        parts = urlsplit(url)
        query = parse_qs(parts.query, keep_blank_values=True)
        in_url = {name: query.pop(name)[-1] for name in URL_OPTIONS if name in query}
        # The URL's values are read only where no option overrides them.
        if prefix is None:
            prefix = in_url.get("prefix", DEFAULT_PREFIX)
        if buckets is None:
            buckets = _count(in_url.get("buckets", str(DEFAULT_BUCKETS)), "buckets")
        if cluster is None:
            cluster = _flag(in_url.get("cluster", "false"))
        if max_payload_bytes is None:
            text = in_url.get("max_payload_bytes")
            max_payload_bytes = (
                codec.DEFAULT_MAX_PAYLOAD_BYTES
                if text is None
                else _count(text, "max_payload_bytes")
            )
        if operation_timeout is None:
            text = in_url.get("operation_timeout")
            operation_timeout = (
                DEFAULT_OPERATION_TIMEOUT_S
                if text is None
                else parse_operation_timeout(text, f"Redis URL {redact_url(url)!r}")
            )
        operation_timeout = check_operation_timeout(operation_timeout)
        # Check the options before a client (and its pool) exists, so nothing leaks.
        Keyspace(prefix, buckets)
        validation.check_int(max_payload_bytes, "max_payload_bytes", 2, 2**31)
        if type(cluster) is not bool:
            raise InvalidArgumentError("cluster must be a bool")
        rest = parts._replace(query=urlencode(query, doseq=True)).geturl()
        # What a dead connection does to a call is the store's policy (connections.py);
        # the URL's own socket_timeout=… etc. win over its timeouts.
        client: Client
        try:
            if cluster:
                if parts.path.strip("/") not in ("", "0"):
                    raise ValueError("a Redis Cluster has only database 0")
                client = RedisCluster.from_url(
                    rest,
                    decode_responses=True,
                    **client_options(cluster=True, operation_timeout=operation_timeout),
                )
            else:
                client = aioredis.Redis.from_url(
                    rest,
                    decode_responses=True,
                    **client_options(cluster=False, operation_timeout=operation_timeout),
                )
                # redis-py hands unknown query parameters to each new connection, so a
                # misspelt one would fail only at the first command: build one now
                # (no socket is opened) to refuse it here.
                pool = client.connection_pool
                pool.connection_class(**pool.connection_kwargs)
        except TypeError as exc:
            # A query parameter redis-py does not know (it passes them on as keyword
            # arguments).
            found = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
            if found is None:
                raise InvalidArgumentError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
            raise unknown_options(
                "Redis store URL option",
                [found.group(1)],
                URL_OPTIONS,
                driver=("redis-py's connection options", redis_py_options()),
            ) from None
        except (ValueError, rex.RedisClusterException) as exc:
            raise InvalidArgumentError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
        # The URL a `workflow migrate` hint names: redis-py's part, and what creating
        # the keyspace needs (the prefix is added by __init__).
        hint = redact_url(rest)
        extra = (["cluster=true"] if cluster else []) + (
            [f"buckets={buckets}"] if buckets != DEFAULT_BUCKETS else []
        )
        if extra:
            hint += ("&" if "?" in hint else "?") + "&".join(extra)
        return cls(
            client,
            prefix=prefix,
            max_payload_bytes=max_payload_bytes,
            url_hint=hint,
            buckets=buckets,
            operation_timeout=operation_timeout,
        )

    @property
    def client(self) -> Client:
        """The redis-py client this store sends its commands through."""
        return self._client

    @property
    def cluster(self) -> bool:
        """Whether the client is a Redis Cluster client."""
        return self._cluster

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(
            {
                Capability.SUBSCRIBE_EVENTS,
                Capability.DURABLE,
                Capability.MULTI_PROCESS,
                Capability.CLAIM_ON_CREATE,
                Capability.NOTIFY_RUNNABLE,
                Capability.DEADLINES,
                Capability.CHILDREN,
                Capability.QUEUES,
            }
        )

    def watch_runnable(self) -> AsyncGenerator[None, None]:
        """Yields when a run may have become claimable (a pub/sub subscriber of its
        own, shared by every watcher in the process on the same server and prefix;
        see :class:`workflow.runtime.RunnableNotifier` and :mod:`.subscriber`)."""
        return self._watchers.watch(self._subscribe, self._watch_key())

    def _watch_key(self) -> Hashable:
        """What this handle's watchers share one subscriber per process by: the
        server (a cluster's seed nodes) and the channel."""
        if isinstance(self._client, RedisCluster):
            return ("redis-cluster", self._seeds, self.wake_channel)
        pool = self._client.connection_pool
        plain = (str, int, float, bool, type(None))
        kwargs = sorted((k, v) for k, v in pool.connection_kwargs.items() if isinstance(v, plain))
        return ("redis", pool.connection_class, tuple(kwargs), self.wake_channel)

    async def _subscribe(self, ring: Callable[[], None]) -> None:
        """One subscription: on the server, or on the next primary of a cluster."""
        name = subscriber.client_name(self.keys.prefix)
        connection_class: type[Any]
        kwargs: dict[str, Any]
        if isinstance(self._client, RedisCluster):
            await self._client.initialize()
            nodes = self._client.get_primaries()
            node = nodes[self._subscriptions % len(nodes)]
            self._subscriptions += 1
            connection_class, kwargs = node.connection_class, node.connection_kwargs
        else:
            pool = self._client.connection_pool
            connection_class, kwargs = pool.connection_class, pool.connection_kwargs
        listen = subscriber.session(connection_class, kwargs, self.wake_channel, name)
        await listen(ring)

    # -- plumbing --------------------------------------------------------------------
    async def _io(self, call: Callable[[], Awaitable[T]], *, bounded: bool = True) -> T:
        """Run one round trip, mapping driver errors onto the contract's errors; past
        ``operation_timeout`` it is cancelled (redis-py then disconnects the connection:
        a late reply never answers another call). ``bounded=False``: a migration, as
        long as it takes."""
        if self._closed:
            # redis-py would silently open a new connection; a closed store stays closed.
            raise StoreUnavailableError("this RedisStore is closed")
        try:
            if not bounded:
                return await call()
            async with asyncio.timeout(self.operation_timeout):
                return await call()
        except (TimeoutError, rex.TimeoutError) as exc:
            raise timed_out("Redis", _operation(), self.operation_timeout) from exc
        except rex.AuthenticationError as exc:
            raise StoreConfigurationError(f"Redis rejected the credentials: {exc}") from exc
        except rex.NoPermissionError as exc:
            raise StoreConfigurationError(f"Redis denied the command (ACL): {exc}") from exc
        except _UNAVAILABLE as exc:
            if _NOT_A_CLUSTER in str(exc):
                raise StoreConfigurationError(
                    f"Redis at {self._url_hint} is not a Redis Cluster ({exc}): "
                    "drop cluster=true from the URL (or cluster=True from the options)"
                ) from exc
            raise StoreUnavailableError(f"Redis is unavailable: {exc}") from exc
        except rex.ResponseError as exc:
            if str(exc).startswith("BUSY"):  # another script is running: retry later
                raise StoreUnavailableError(f"Redis is busy: {exc}") from exc
            if any(text in str(exc) for text in _UNAVAILABLE_SCRIPT_ERRORS):
                raise StoreUnavailableError(f"Redis Cluster is resharding: {exc}") from exc
            raise StoreOperationError(f"Redis rejected the operation: {exc}") from exc
        except rex.RedisError as exc:
            raise StoreOperationError(f"Redis rejected the operation: {exc}") from exc
        except WorkflowStoreError:
            raise  # the contract's own errors (a migration's SchemaVersionError …)
        except Exception as exc:
            # redis-py's cluster client has bugs on paths taken only while nodes fail
            # (after a node hang, concurrent commands hit an AttributeError in its
            # connection handling). Raised inside the driver on a cluster, such an
            # exception means the cluster could not serve the call, not that the call
            # was wrong: retryable. One raised in our own code is a bug and stays raw.
            if self._cluster and _raised_in_driver(exc):
                raise StoreUnavailableError(f"Redis Cluster client failed: {exc!r}") from exc
            raise

    async def _ks(self) -> Keyspace:
        """The keyspace, with the bucket count the keyspace was created with (read
        once; a keyspace not created yet keeps the configured count)."""
        if not self._buckets_known:
            found = await self._io(lambda: self._client.get(self.keys.meta("buckets")))
            if found is not None:
                if not (str(found).isascii() and str(found).isdigit()):
                    raise StoreOperationError(
                        f"{self.keys.meta('buckets')} holds {found!r}, not a bucket count"
                    )
                self.keys = Keyspace(self.keys.prefix, int(found))
                self._buckets_known = True
        return self.keys

    async def _run_script(self, script: AsyncScript, keys: list[str], *args: object) -> Any:
        """A one-run (one-bucket) script: ``keys`` are the keys it touches."""
        return await self._io(lambda: script(keys=keys, args=list(args)))  # type: ignore[arg-type]

    def _limits(self, ks: Keyspace) -> tuple[object, object]:
        """What a claim script needs to keep queue limits (``P, B``, lua.admit): the
        prefix and the bucket count on a standalone server; nothing on a cluster, where
        no queue has limits."""
        return ("", "") if self._cluster else (ks.prefix, ks.buckets)

    async def _many(
        self,
        script: AsyncScript,
        ks: Keyspace,
        buckets: Iterable[int],
        names: Sequence[str],
        args: Sequence[object],
    ) -> Any:
        """A many-run script over ``buckets``, declaring their indexes ``names``."""
        _, keys, argv = _bucket_call(script, ks, buckets, names, args)
        return await self._io(lambda: script(keys=keys, args=argv))  # type: ignore[arg-type]

    async def _pipelined(self, calls: Sequence[_ScriptCall]) -> list[Any]:
        """Cluster: script calls in one pipeline, which writes once to each node they
        reach (redis-py's cluster pipeline groups its commands by node and sends to the
        nodes concurrently): a round trip per node rather than per bucket. A script a
        node has not loaded yet (``NOSCRIPT``: the pipeline does not load it) is sent
        again on its own, which loads it."""
        if not calls:
            return []

        async def send() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for script, keys, argv in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *argv)  # type: ignore[arg-type]
            replies = list(await pipe.execute(raise_on_error=False))
            for i, reply in enumerate(replies):
                if isinstance(reply, rex.NoScriptError):
                    script, keys, argv = calls[i]
                    replies[i] = await script(keys=keys, args=argv)  # type: ignore[arg-type]
                elif isinstance(reply, Exception):
                    raise reply
            return replies

        return await self._io(send)

    async def _merged(
        self,
        script: AsyncScript,
        names: Sequence[str],
        limit: int,
        make_args: Callable[[int, bool], Sequence[object]],
    ) -> list[Any]:
        """Run a many-run script whose rows start ``(score, member)`` over every
        bucket: the rows of the first ``limit`` members in ``(score, member)`` order.

        ``make_args(limit, dry)`` gives the script's arguments (before the named
        members, :mod:`.lua`). Standalone: one call over every bucket. Cluster: a dry
        call per bucket (one pipeline: one write per node), then one acting call per
        bucket that holds a winner (one pipeline), naming its winners: it acts on those
        that still qualify and on nothing else, so a cluster acts on the runs a
        standalone server would (a winner taken meanwhile by another caller is simply
        not acted on: fewer rows, never others)."""
        ks = await self._ks()
        if not self._cluster:
            return list(
                await self._many(
                    script, ks, range(ks.buckets), names, [*make_args(limit, False), 0]
                )
            )
        peeks = await self._pipelined(
            [
                _bucket_call(script, ks, [k], names, [*make_args(limit, True), 0])
                for k in range(ks.buckets)
            ]
        )
        ranked = sorted(
            (int(row[0]), str(row[1]), k) for k, rows in enumerate(peeks) for row in rows
        )[:limit]
        wins: dict[int, list[str]] = {}
        for _, member, k in ranked:
            wins.setdefault(k, []).append(member)
        acted = await self._pipelined(
            [
                _bucket_call(script, ks, [k], names, [*make_args(len(ms), False), len(ms), *ms])
                for k, ms in wins.items()
            ]
        )
        return sorted((row for rows in acted for row in rows), key=lambda r: (int(r[0]), r[1]))

    @staticmethod
    def _fields(flat: Sequence[str]) -> dict[str, str]:
        return dict(zip(flat[::2], flat[1::2], strict=True))

    @staticmethod
    def _run(flat: Sequence[str] | dict[str, str]) -> Run:
        f = flat if isinstance(flat, dict) else RedisStore._fields(flat)
        lease = None
        if "l_token" in f:
            lease = Lease(f["l_owner"], int(f["l_token"]), int(f["l_exp"]))
        wait = None
        if "w_kind" in f:
            kind = WaitKind(f["w_kind"])
            key = f.get("w_key")
            wake = f.get("w_wake")
            wait = Wait(
                kind,
                f["w_step"],
                name=key if kind in (WaitKind.SIGNAL, WaitKind.CHILD) else None,
                approval_id=key if kind is WaitKind.APPROVAL else None,
                wake_at=None if wake is None else int(wake),
                meta=codec.decode(f.get("w_meta")),
            )
        ready = f.get("ready")
        deadline = f.get("deadline")
        policy = f.get("ppolicy")
        return Run(
            run_id=f["id"],
            workflow_id=f["wf"],
            workflow_version=f.get("ver"),
            status=RunStatus(f["status"]),
            input=codec.decode(f.get("input")),
            output=codec.decode(f.get("output")),
            error=codec.decode_error(f.get("error")),
            wait=wait,
            lease=lease,
            next_event_index=int(f["next"]),
            created_at=int(f["created"]),
            updated_at=int(f["updated"]),
            ready_at=None if ready is None else int(ready),
            deadline_at=None if deadline is None else int(deadline),
            queue=f.get("q", DEFAULT_QUEUE),
            priority=int(f.get("pri", "0")),
            partition_key=f.get("pk"),
            parent_run_id=f.get("parent"),
            parent_policy=None if policy is None else ParentPolicy(policy),
        )

    @staticmethod
    def _entry(run_id: str, field: str, record: str, consumed: bool) -> InboxEntry:
        kind, key = field.split(":", 1)
        name, step_id, payload, meta, received_at = json.loads(record)
        return InboxEntry(
            run_id=run_id,
            kind=InboxKind(kind),
            key=key,
            name=name,
            step_id=step_id,
            payload=codec.decode(payload),
            meta=codec.decode(meta),
            received_at=int(received_at),
            consumed=consumed,
        )

    def _inbox(
        self, run_id: str, flat: Sequence[str], consumed: Collection[str], include_consumed: bool
    ) -> list[InboxEntry]:
        entries = [
            self._entry(run_id, field, record, field in consumed)
            for field, record in self._fields(flat).items()
        ]
        return sorted(
            (e for e in entries if include_consumed or not e.consumed),
            key=lambda e: (e.received_at, e.kind.value, e.key),
        )

    @staticmethod
    def _events(run_id: str, records: Sequence[str], from_index: int) -> list[StoredEvent]:
        out: list[StoredEvent] = []
        for i, record in enumerate(records, start=from_index):
            etype, step_id, data, created_at = json.loads(record)
            out.append(StoredEvent(run_id, i, etype, step_id, codec.decode(data), created_at))
        return out

    def _claimed(self, reply: Sequence[Any], with_history: bool) -> Claimed:
        run = self._run(reply[0])
        assert run.lease is not None
        return Claimed(
            run=run,
            lease=run.lease,
            # The script sent only the entries not consumed yet.
            inbox=self._inbox(run.run_id, reply[1], (), False),
            events=self._events(run.run_id, reply[2], 0) if with_history else None,
        )

    @staticmethod
    def _lease_error(run_id: str, problem: str) -> LeaseLostError:
        if problem == "cancelled":
            return RunCancelledError(run_id)
        if problem == "timed_out":
            return RunTimedOutError(run_id)
        if problem == "gone":
            return LeaseLostError(run_id, f"run {run_id!r} does not exist (deleted?)")
        return LeaseLostError(run_id)

    @staticmethod
    def _log_args(log: arguments.LogWrite) -> list[object]:
        events = [
            json.dumps([e.type, e.step_id, e.data, log.now], ensure_ascii=False) for e in log.events
        ]
        fields = [_field(ref) for ref in log.consume]
        return [log.expected, log.now, len(events), *events, len(fields), *fields]

    # -- run lifecycle -------------------------------------------------------------
    async def create_run(
        self,
        run_id: str,
        workflow_id: str,
        workflow_version: str | None,
        input: JSON,
        now: int,
        *,
        owner: str | None = None,
        lease_ms: int | None = None,
        deadline_at: int | None = None,
        queue: str = "default",
        priority: int = 0,
        partition_key: str | None = None,
        parent_run_id: str | None = None,
        parent_policy: ParentPolicy = ParentPolicy.CANCEL,
    ) -> CreateResult:
        a = arguments.new_run(
            run_id,
            workflow_id,
            workflow_version,
            input,
            now,
            max_bytes=self.max_payload_bytes,
            owner=owner,
            lease_ms=lease_ms,
            deadline_at=deadline_at,
            queue=queue,
            priority=priority,
            partition_key=partition_key,
            parent_run_id=parent_run_id,
            parent_policy=parent_policy,
        )
        p = a.placement
        ks = await self._ks()
        parent_hex = ""
        if a.parent_run_id is not None and ks.run_bucket(a.parent_run_id) == ks.run_bucket(
            a.run_id
        ):
            parent_hex = escape(a.parent_run_id)
        owner, granted = a.owner, False
        if self._cluster and owner is not None:
            # The claim's place is reserved first (the lease's token will be 1).
            (granted,) = await self._reserve(
                ks, a.now, a.expires_at or 0, 1, [(escape(a.run_id), 1, p.queue, p.partition_key)]
            )
            owner = owner if granted else None
        reply = await self._run_script(
            self._create,
            ks.run_keys(a.run_id, a.workflow_id),
            ks.run_tag(a.run_id),
            escape(a.run_id),
            a.run_id,
            a.workflow_id,
            a.workflow_version or "",
            a.input or "",
            a.now,
            created_member(a.now, a.run_id),
            escape(a.workflow_id),
            owner or "",
            a.expires_at or 0,
            "" if a.deadline_at is None else a.deadline_at,
            "" if p.queue == DEFAULT_QUEUE else p.queue,
            p.priority or "",
            f"{MAX_PRIORITY - p.priority:010d}" if p.priority else "",
            p.partition_key or "",
            *self._limits(ks),
            a.parent_run_id or "",
            parent_hex,
            "" if a.parent_policy is None else a.parent_policy.value,
        )
        kind = reply[0]
        run = self._run(reply[1]) if kind in ("created", "existing") else None
        if granted and (kind != "created" or run is None or run.lease is None):
            # No claim happened (the run existed, was created ended under its parent,
            # or was refused): this claim's share of the place goes.
            await self._release(ks, [(escape(a.run_id), 1)], unused=True)
        if kind == "parent_elsewhere":
            raise InvalidArgumentError(
                f"parent_run_id: run {a.run_id!r} would live in bucket "
                f"{ks.run_bucket(a.run_id)} and its parent {a.parent_run_id!r} in bucket "
                f"{ks.run_bucket(a.parent_run_id or '')}; a child must share its parent's "
                f"bucket, which an id of the form {run_placement(a.parent_run_id or '') + '@…'!r} "
                "always does"
            )
        if kind == "no_parent" or run is None:
            raise InvalidArgumentError(
                f"parent_run_id: no run {a.parent_run_id!r} (a child's parent must exist)"
            )
        if kind == "created":
            return Created(run, run.lease)
        return Existing(run) if run.workflow_id == a.workflow_id else Conflict(run)

    async def load_run(self, run_id: str) -> Run | None:
        run_id = validation.check_id(run_id, "run_id")
        key = (await self._ks()).run(run_id)
        fields = await self._io(lambda: self._client.hgetall(key))
        return self._run(cast("dict[str, str]", fields)) if fields else None

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: RunStatus | Collection[RunStatus] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        parent_run_id: str | None = None,
    ) -> Page:
        parent = arguments.children_listing(parent_run_id, children=True)
        workflow_id = validation.check_optional_id(workflow_id, "workflow_id")
        statuses = validation.check_statuses(status)
        limit = validation.check_limit(limit)
        after = None if cursor is None else decode_cursor(cursor)
        ks = await self._ks()
        # The sources, (bucket, index): each sorts like (created_at, run_id). Without a
        # workflow, a status filter reads the per-status indexes, which hold only
        # matching runs; with both, the workflow's index is read and filtered. A run's
        # children are one index in its bucket (they share it), read and filtered.
        sources: list[tuple[int, str]] = []
        if parent is not None:
            sources.append((ks.run_bucket(parent), ks.children(parent)))
        else:
            for k in range(ks.buckets):
                if workflow_id is not None:
                    sources.append((k, ks.created_by_workflow(k, workflow_id)))
                elif statuses is not None:
                    sources += [(k, ks.index(k, f"status:{s.value}")) for s in sorted(statuses)]
                else:
                    sources.append((k, ks.index(k, "created")))
        # The index read applies one filter; any other is applied to the runs loaded.
        filters = (parent is not None) + (workflow_id is not None) + (statuses is not None)
        exact = filters <= 1
        # A round reads `batch` members below the cursor from every source (one
        # pipeline) and merges them; members below the last one read from a source that
        # may hold more are left for the next round, since that source's unread members
        # could come first. Exact sources need one page plus one row; a filtered one is
        # read ahead in rounds of bounded size.
        start = "+" if after is None else "(" + created_member(*after)
        found: list[Run] = []
        batch = limit + 1 if exact else _LIST_BATCH
        while len(found) <= limit:

            async def read(start: str = start) -> list[Any]:
                pipe = self._client.pipeline(transaction=False)
                for _, index in sources:
                    pipe.zrange(index, start, "-", desc=True, bylex=True, offset=0, num=batch)
                return await pipe.execute()

            per_source = cast("list[list[str]]", await self._io(read))
            members = sorted(
                ((m, sources[i][0]) for i, got in enumerate(per_source) for m in got),
                reverse=True,
            )
            if not members:
                break
            full = [got[-1] for got in per_source if len(got) == batch]
            if full:
                boundary = max(full)
                members = [x for x in members if x[0] >= boundary]
            more_left = bool(full)
            if exact and len(members) > limit + 1 - len(found):
                members = members[: limit + 1 - len(found)]
                more_left = True  # (a run may vanish meanwhile: then read on)
            runs = await self._load_many(ks, [(k, m.split(":", 1)[1]) for m, k in members])
            for run in runs:
                # A run deleted since the index was read is simply not listed.
                if (
                    run is not None
                    and (statuses is None or run.status in statuses)
                    and (workflow_id is None or run.workflow_id == workflow_id)
                ):
                    found.append(run)
            start = "(" + members[-1][0]
            if not more_left:
                break
        page = found[:limit]
        more = len(found) > limit
        next_cursor = encode_cursor(page[-1].created_at, page[-1].run_id) if more else None
        return Page(page, next_cursor)

    async def _load_many(self, ks: Keyspace, runs: Sequence[tuple[int, str]]) -> list[Run | None]:
        """The runs named by (bucket, escaped id), in that order (one pipeline)."""

        async def load() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for k, h in runs:
                pipe.hgetall(ks.run_in(k, h))
            return await pipe.execute()

        replies = await self._io(load) if runs else []
        return [self._run(cast("dict[str, str]", r)) if r else None for r in replies]

    async def get_timeline(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> Timeline | None:
        run_id = validation.check_id(run_id, "run_id")
        from_index = validation.check_index(from_index, "from_index")
        limit = validation.check_optional_limit(limit)
        end = -1 if limit is None else from_index + limit - 1
        ks = await self._ks()
        fields, records = await self._run_script(
            self._read_timeline,
            ks.run_keys(run_id),
            ks.run_tag(run_id),
            escape(run_id),
            from_index,
            end,
        )
        if not fields:
            return None
        return Timeline(self._run(fields), self._events(run_id, records, from_index))

    async def cancel_run(self, run_id: str, reason: str, now: int) -> CancelResult:
        a = arguments.cancellation(run_id, reason, now, max_bytes=self.max_payload_bytes)
        ks = await self._ks()
        reply = await self._run_script(
            self._cancel,
            ks.run_keys(a.run_id),
            ks.run_tag(a.run_id),
            escape(a.run_id),
            a.error,
            a.now,
        )
        if reply[0] == "notfound":
            return NotFound(a.run_id)
        if self._cluster and reply[0] == "cancelled" and reply[2]:
            await self._release(ks, [(escape(a.run_id), int(reply[2]))])
        if self._cluster and reply[0] == "cancelled" and reply[3]:
            # The leased runs the cascade cancelled: their queue places are free.
            await self._forget(ks, list(reply[3]))
        run = self._run(reply[1])
        return Cancelled(run) if reply[0] == "cancelled" else AlreadyTerminal(run)

    async def delete_run(self, run_id: str) -> bool:
        run_id = validation.check_id(run_id, "run_id")
        ks = await self._ks()
        deleted = await self._run_script(
            self._delete, ks.run_keys(run_id), ks.run_tag(run_id), escape(run_id)
        )
        if deleted and self._cluster:
            await self._forget(ks, [escape(run_id)])
        return bool(deleted)

    async def purge_runs(self, terminal_before: int, limit: int) -> int:
        terminal_before = validation.check_time(terminal_before, "terminal_before")
        limit = validation.check_limit(limit)
        purged = await self._merged(
            self._purge,
            ("terminal",),
            limit,
            lambda n, dry: [terminal_before, n, "1" if dry else "0"],
        )
        return len(purged)

    # -- execution -------------------------------------------------------------------
    async def claim_run(
        self, run_id: str, owner: str, lease_ms: int, now: int, *, with_history: bool = False
    ) -> ClaimResult:
        a = arguments.claim(run_id, owner, lease_ms, now, with_history)
        ks = await self._ks()
        token, h, nonce = "", escape(a.run_id), 0
        if self._cluster:
            found = await self._io(lambda: self._client.hgetall(ks.run(a.run_id)))
            if not found:
                return NotFound(a.run_id)
            fields = cast("dict[str, str]", found)
            run = self._run(fields)
            stale = run.lease is not None and run.lease.expires_at <= a.now
            if not (run.status is RunStatus.QUEUED or (run.status is RunStatus.RUNNING and stale)):
                return NotClaimable(run)
            token = fields["token"]
            nonce = int(token) + 1
            (granted,) = await self._reserve(
                ks, a.now, a.now + a.lease_ms, 1, [(h, nonce, run.queue, run.partition_key)]
            )
            if not granted:
                return NotClaimable(run)
        reply = await self._run_script(
            self._claim,
            ks.run_keys(a.run_id),
            ks.run_tag(a.run_id),
            escape(a.run_id),
            a.owner,
            a.now + a.lease_ms,
            a.now,
            "1" if a.with_history else "0",
            *self._limits(ks),
            token,
        )
        if reply[0] != "claimed" and self._cluster:
            await self._release(ks, [(h, nonce)], unused=True)
        if reply[0] == "notfound":
            return NotFound(a.run_id)
        if reply[0] == "notclaimable":
            return NotClaimable(self._run(reply[1]))
        return self._claimed(reply[1], a.with_history)

    async def claim_runnable(
        self,
        owner: str,
        lease_ms: int,
        limit: int,
        now: int,
        *,
        with_history: bool = False,
        queues: Collection[str] | None = None,
    ) -> list[Claimed]:
        a = arguments.claim_many(owner, lease_ms, limit, now, with_history, queues)
        history = "1" if a.with_history else "0"
        ks = await self._ks()
        wanted = sorted(a.queues or ())

        def args(
            n: int, dry: bool, full: Sequence[str], named: Sequence[str], after: str = ""
        ) -> list[object]:
            return [
                a.owner,
                a.now + a.lease_ms,
                n,
                a.now,
                history,
                "1" if dry else "0",
                after,
                *self._limits(ks),
                len(wanted),
                *wanted,
                len(full),
                *full,
                len(named),
                *named,
            ]

        if not self._cluster:
            rows = await self._many(
                self._claim_many,
                ks,
                range(ks.buckets),
                _CLAIM_INDEXES,
                args(a.limit, False, (), ()),
            )
            return [self._claimed(row[2], a.with_history) for row in rows]
        return await self._claim_on_cluster(a, ks, args)

    async def _claim_on_cluster(
        self, a: arguments.ClaimMany, ks: Keyspace, args: _ClaimArgs
    ) -> list[Claimed]:
        """claim_runnable on a cluster (docs/stores/redis.md, Queues). Rounds of: what
        each bucket would claim past the queues and keys that are full (dry, one
        pipeline: one write per node), places reserved in claim order for the
        candidates every bucket has been read up to ({g}; it answers which queues and
        keys are full now). A round that reserved fewer than ``limit`` places, having
        passed over runs of queues or keys it filled, is followed by one reading on past
        the candidates it decided (at most _CLAIM_ROUNDS rounds), as a standalone
        server's script reads on past the runs it passes over. Last, the buckets' claims
        of the reserved runs (one pipeline, each still at the token its place was
        reserved for), and the unused places given back."""
        expires = a.now + a.lease_ms
        need, after = a.limit, ""
        reading = list(range(ks.buckets))
        wins: dict[int, list[str]] = {}
        reserved: dict[str, int] = {}

        def dry(buckets: Iterable[int], full: Sequence[str]) -> list[_ScriptCall]:
            return [
                _bucket_call(
                    self._claim_many, ks, [k], _CLAIM_INDEXES, args(need, True, full, (), after)
                )
                for k in buckets
            ]

        # The first round passes over the runs of the entries the previous call found
        # full (a hint) and reads the room (QUEUE_ROOM) in the same pipeline, where it
        # shares the {g} node's write instead of costing a round trip before it. A
        # bucket that passed over runs of an entry that has room after all reads again.
        hint = self._full_hint
        room, *peeks = await self._pipelined(
            [(self._queue_room, [ks.queues], [ks.prefix, a.now]), *dry(reading, hint)]
        )
        full = [str(x) for x in room]
        stale = set(hint) - set(full)
        redo = [i for i, peek in enumerate(peeks) if stale & {str(e) for e in peek[2]}]
        if redo:
            again = await self._pipelined(dry((reading[i] for i in redo), full))
            for i, peek in zip(redo, again, strict=True):
                peeks[i] = peek
        self._full_hint = full
        try:
            for round_ in range(_CLAIM_ROUNDS):
                if round_:
                    peeks = await self._pipelined(dry(reading, full))
                # Every bucket has been read up to `bound` (the earliest point where one
                # stopped with candidates left): only candidates up to it are decided this
                # round, in claim order; one behind it could come after an unread one.
                stops = [str(peek[0]) for peek in peeks if peek[0]]
                bound = min(stops) if stops else None
                ranked = sorted(
                    (
                        (str(row[0]), k, row)
                        for k, peek in zip(reading, peeks, strict=True)
                        for row in peek[1]
                        if bound is None or str(row[0]) <= bound
                    ),
                    key=lambda x: x[0],
                )
                if ranked:
                    granted, full = await self._reserve_round(ks, a.now, expires, need, ranked)
                    self._full_hint = full
                    for (_, k, row), ok in zip(ranked, granted, strict=True):
                        if ok:
                            wins.setdefault(k, []).append(f"{row[1]}:{row[2]}")
                            reserved[row[1]] = int(row[2]) + 1
                            need -= 1
                if need == 0 or bound is None:
                    break
                # The next round reads on from `bound`, in the buckets that may hold more.
                reading = [
                    k
                    for k, peek in zip(reading, peeks, strict=True)
                    if peek[0] or any(str(row[0]) > bound for row in peek[1])
                ]
                after = bound
        except WorkflowStoreError:
            # Nothing is claimed yet, and the places the earlier rounds reserved would
            # hold their runs until the leases they were for expired: give them back
            # (best effort, as any release; a failed round's own places are unknown).
            if reserved:
                await self._release(ks, list(reserved.items()), unused=True)
            raise
        if not wins:
            return []
        acted = await self._pipelined(
            [
                _bucket_call(
                    self._claim_many, ks, [k], _CLAIM_INDEXES, args(len(ms), False, (), ms, "")
                )
                for k, ms in wins.items()
            ]
        )
        rows = sorted((row for rows in acted for row in rows), key=lambda r: str(r[0]))
        for row in rows:
            reserved.pop(row[1], None)
        if reserved:
            await self._release(ks, list(reserved.items()), unused=True)
        return [self._claimed(row[2], a.with_history) for row in rows]

    async def _reserve_round(
        self,
        ks: Keyspace,
        now: int,
        expires_at: int,
        limit: int,
        ranked: Sequence[tuple[str, int, Sequence[Any]]],
    ) -> tuple[list[bool], list[str]]:
        """Cluster: :meth:`_reserve` for the dry rows ``ranked`` (claim order), and the
        queues and keys without room after it (QUEUE_ROOM's answer)."""
        flat: list[object] = []
        for _, _, row in ranked:
            flat += [row[1], int(row[2]) + 1, row[3], row[4]]
        got, full = await self._queue_call(
            self._queue_reserve, ks, now, expires_at, limit, len(ranked), *flat, "1"
        )
        return [bool(int(x)) for x in got], [str(x) for x in full]

    async def _queue_call(self, script: AsyncScript, ks: Keyspace, *args: object) -> Any:
        """A script on the queues' slot ({g}): reservations on a cluster."""
        return await self._run_script(script, [ks.queues], ks.prefix, *args)

    async def _reserve(
        self,
        ks: Keyspace,
        now: int,
        expires_at: int,
        limit: int,
        runs: Sequence[tuple[str, int, str, str | None]],
    ) -> list[bool]:
        """Cluster: reserve a place for each of ``runs`` (escaped id, the token its
        claim will have, queue, key) in claim order, at most ``limit`` (or share the
        reservation another claim of that token holds). A claim granted a place gives
        its share back (:meth:`_release`, ``unused``) unless it wins the bucket."""
        flat: list[object] = []
        for h, token, queue, key in runs:
            flat += [h, token, queue, key or ""]
        got = await self._queue_call(
            self._queue_reserve, ks, now, expires_at, limit, len(runs), *flat
        )
        return [bool(int(x)) for x in got]

    async def _release(
        self, ks: Keyspace, runs: Sequence[tuple[str, int]], *, unused: bool = False
    ) -> None:
        """Cluster: give back the reservations of ``runs`` (escaped id, token).

        After the operation itself is done: if the {g} slot cannot be reached, the
        places stay reserved until the leases they were for would have expired (more
        counted than leased, never fewer), and the operation's own answer stands."""
        flat: list[object] = []
        for h, token in runs:
            flat += [h, token, "1" if unused else "0"]
        with contextlib.suppress(StoreUnavailableError):
            await self._queue_call(self._queue_release, ks, len(runs), *flat)

    async def _forget(self, ks: Keyspace, runs: Sequence[str]) -> None:
        """Cluster: drop the reservations of ``runs`` (escaped ids), which hold no lease
        any more whatever lease they were for (see :meth:`_release` on failures)."""
        with contextlib.suppress(StoreUnavailableError):
            await self._queue_call(self._queue_forget, ks, len(runs), *runs)

    async def heartbeat(self, run_id: str, lease: Lease, lease_ms: int, now: int) -> Lease:
        a = arguments.renewal(run_id, lease, lease_ms, now)
        expires_at = a.now + a.lease_ms
        ks = await self._ks()
        if self._cluster:
            # The reservation first: a lease never outlives it.
            extended = await self._queue_call(
                self._queue_extend, ks, escape(a.run_id), a.lease.token, expires_at, a.now
            )
            if extended == "lost":
                raise LeaseLostError(
                    a.run_id, f"run {a.run_id!r}: the lease expired and its place was given up"
                )
        reply = await self._run_script(
            self._heartbeat,
            ks.run_keys(a.run_id),
            ks.run_tag(a.run_id),
            escape(a.run_id),
            a.lease.owner,
            a.lease.token,
            expires_at,
            a.now,
            self._limits(ks)[0],
        )
        if reply[0] != "ok":
            raise self._lease_error(a.run_id, reply[0])
        return Lease(a.lease.owner, a.lease.token, expires_at)

    async def append_events(
        self,
        run_id: str,
        lease: Lease,
        expected_next_index: int,
        events: Sequence[NewEvent],
        now: int,
        *,
        consume: Sequence[InboxRef] = (),
    ) -> int:
        log = arguments.log_write(
            run_id,
            lease,
            expected_next_index,
            events,
            now,
            consume,
            max_bytes=self.max_payload_bytes,
        )
        ks = await self._ks()
        reply = await self._run_script(
            self._append,
            ks.run_keys(log.run_id),
            ks.run_tag(log.run_id),
            escape(log.run_id),
            log.lease.owner,
            log.lease.token,
            *self._log_args(log),
        )
        self._raise_for(log, reply)
        return int(reply[1])

    def _raise_for(self, log: arguments.LogWrite, reply: Sequence[Any]) -> None:
        if reply[0] == "conflict":
            raise LogConflictError(log.run_id, log.expected, int(reply[1]))
        if reply[0] != "ok":
            raise self._lease_error(log.run_id, reply[0])

    async def settle_run(
        self,
        run_id: str,
        lease: Lease,
        expected_next_index: int,
        events: Sequence[NewEvent],
        outcome: Outcome,
        now: int,
        *,
        consume: Sequence[InboxRef] = (),
    ) -> Run:
        a = arguments.settlement(
            run_id,
            lease,
            expected_next_index,
            events,
            outcome,
            now,
            consume,
            max_bytes=self.max_payload_bytes,
        )
        log, result = a.log, a.outcome
        wait = result.wait
        ks = await self._ks()
        reply = await self._run_script(
            self._settle,
            ks.run_keys(log.run_id),
            ks.run_tag(log.run_id),
            escape(log.run_id),
            log.lease.owner,
            log.lease.token,
            *self._log_args(log),
            result.status.value,
            result.output or "",
            result.error or "",
            "" if wait is None else wait.kind.value,
            "" if wait is None else wait.step_id,
            "" if wait is None or wait.key is None else wait.key,
            "" if wait is None or wait.wake_at is None else wait.wake_at,
            "" if wait is None or wait.meta is None else wait.meta,
        )
        self._raise_for(log, reply)
        if self._cluster:
            await self._release(ks, [(escape(log.run_id), log.lease.token)])
        return self._run(reply[1])

    async def read_events(
        self, run_id: str, from_index: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        run_id = validation.check_id(run_id, "run_id")
        from_index = validation.check_index(from_index, "from_index")
        limit = validation.check_optional_limit(limit)
        end = -1 if limit is None else from_index + limit - 1
        key = (await self._ks()).events(run_id)
        records = await self._io(lambda: self._client.lrange(key, from_index, end))
        return self._events(run_id, cast("list[str]", records), from_index)

    async def read_inbox(self, run_id: str, *, include_consumed: bool = False) -> list[InboxEntry]:
        run_id = validation.check_id(run_id, "run_id")
        include_consumed = validation.check_bool(include_consumed, "include_consumed")
        ks = await self._ks()
        flat, consumed = await self._run_script(
            self._read_inbox, ks.run_keys(run_id), ks.run_tag(run_id), escape(run_id)
        )
        return self._inbox(run_id, flat, set(consumed), include_consumed)

    async def subscribe_events(
        self, run_id: str, from_index: int = 0
    ) -> AsyncIterator[StoredEvent]:
        # No push channel yet (keyspace notifications could add one): polling is the
        # contract's guarantee.
        async for event in poll_events(self, run_id, from_index, interval=0.2):
            yield event

    # -- wake-ups ------------------------------------------------------------------
    async def _deliver(self, d: arguments.Delivery) -> DeliveryResult:
        field = _field(InboxRef(d.kind, d.key))
        record = json.dumps([d.name, d.step_id, d.payload, d.meta, d.now], ensure_ascii=False)
        ks = await self._ks()
        reply = await self._run_script(
            self._deliver_script,
            ks.run_keys(d.run_id),
            ks.run_tag(d.run_id),
            escape(d.run_id),
            field,
            record,
            d.now,
        )
        kind = reply[0]
        if kind == "notfound":
            return NotFound(d.run_id)
        if kind == "duplicate":
            return Duplicate(self._entry(d.run_id, field, reply[1], bool(reply[2])))
        run = self._run(reply[1])
        if kind == "closed":
            return Closed(run)
        entry = self._entry(d.run_id, field, record, False)
        return Delivered(run, entry) if kind == "delivered" else Buffered(run, entry)

    async def deliver_signal(
        self,
        run_id: str,
        signal_id: str,
        name: str,
        payload: JSON,
        now: int,
        *,
        step_id: str | None = None,
        meta: JSON = None,
    ) -> DeliveryResult:
        return await self._deliver(
            arguments.signal(
                run_id,
                signal_id,
                name,
                payload,
                now,
                step_id,
                meta,
                max_bytes=self.max_payload_bytes,
            )
        )

    async def deliver_approval(
        self,
        run_id: str,
        approval_id: str,
        approved: bool,
        now: int,
        *,
        feedback: JSON = None,
        meta: JSON = None,
    ) -> DeliveryResult:
        return await self._deliver(
            arguments.approval(
                run_id, approval_id, approved, now, feedback, meta, max_bytes=self.max_payload_bytes
            )
        )

    async def fire_due_timers(self, now: int, limit: int) -> list[InboxEntry]:
        now = validation.check_now(now)
        limit = validation.check_limit(limit)
        # Deadlines first: a run they end has no timer left to fire.
        error = codec.encode_error(arguments.TIMED_OUT_ERROR)
        rows: list[Any] = []
        while len(rows) < limit:
            got = await self._merged(
                self._fire_deadlines,
                ("deadlines",),
                limit - len(rows),
                lambda n, dry: [now, n, "1" if dry else "0", error],
            )
            fired = [row for row in got if len(row) == 6]
            rows += fired
            if fired and self._cluster:
                # A run that timed out, and the leased runs its cascade cancelled, hold
                # no lease: their queue places are free at once.
                ks = await self._ks()
                await self._forget(ks, [h for row in fired for h in (row[1], *row[5])])
            # Firings go one after another: a due run the cascade of an earlier one
            # ended takes no place in `limit`, so the runs after it are read next.
            if len(fired) == len(got):
                break
        if len(rows) < limit:
            rows += await self._merged(
                self._fire_timers,
                ("timers",),
                limit - len(rows),
                lambda n, dry: [now, n, "1" if dry else "0"],
            )
        return [self._entry(row[2], row[3], row[4], False) for row in rows]

    # -- schedules -------------------------------------------------------------------
    async def upsert_schedule(
        self,
        schedule_id: str,
        workflow_id: str,
        spec: ScheduleSpec,
        now: int,
        *,
        workflow_version: str | None = None,
        overlap: Overlap = Overlap.SKIP,
        input: JSON = None,
        enabled: bool = True,
    ) -> Schedule:
        a = arguments.schedule_declaration(
            schedule_id,
            workflow_id,
            spec,
            now,
            workflow_version,
            overlap,
            input,
            enabled,
            max_bytes=self.max_payload_bytes,
        )
        ks = await self._ks()
        k = ks.schedule_bucket(a.schedule_id)
        flat = await self._run_script(
            self._upsert_schedule,
            [ks.schedule(a.schedule_id), ks.index(k, "schedules"), ks.index(k, "sched_due")],
            ks.tag(k),
            escape(a.schedule_id),
            a.schedule_id,
            a.workflow_id,
            a.workflow_version or "",
            codec.encode_spec(a.spec),
            a.overlap.value,
            a.input or "",
            "1" if a.enabled else "0",
            a.now,
            next_fire_at(a.spec, a.now),
        )
        return _schedule(self._fields(flat))

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        schedule_id = validation.check_schedule_id(schedule_id)
        key = (await self._ks()).schedule(schedule_id)
        fields = await self._io(lambda: self._client.hgetall(key))
        return _schedule(cast("dict[str, str]", fields)) if fields else None

    async def list_schedules(self, *, workflow_id: str | None = None) -> list[Schedule]:
        workflow_id = validation.check_optional_id(workflow_id, "workflow_id")
        ks = await self._ks()

        async def members() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for k in range(ks.buckets):
                pipe.zrange(ks.index(k, "schedules"), 0, -1)
            return await pipe.execute()

        named = [(k, s) for k, got in enumerate(await self._io(members)) for s in got]

        async def load() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for k, s in named:
                pipe.hgetall(ks.schedule_in(k, s))
            return await pipe.execute()

        rows = [_schedule(cast("dict[str, str]", f)) for f in await self._io(load) if f]
        rows.sort(key=lambda r: r.schedule_id)
        return [r for r in rows if workflow_id is None or r.workflow_id == workflow_id]

    async def delete_schedule(self, schedule_id: str) -> bool:
        schedule_id = validation.check_schedule_id(schedule_id)
        ks = await self._ks()
        k = ks.schedule_bucket(schedule_id)
        deleted = await self._run_script(
            self._delete_schedule,
            [ks.schedule(schedule_id), ks.index(k, "schedules"), ks.index(k, "sched_due")],
            ks.tag(k),
            escape(schedule_id),
        )
        return bool(deleted)

    async def _due_schedules(
        self, ks: Keyspace, now: int, limit: int, skip: Sequence[int]
    ) -> tuple[list[_Due], bool]:
        """Due schedules in (next_fire_at, id) order: from each bucket the ``limit``
        after its first ``skip[k]`` due ones, merged. Also says whether a bucket may hold
        more (then only the candidates that surely come first are returned)."""

        async def members() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for k in range(ks.buckets):
                pipe.zrangebyscore(
                    ks.index(k, "sched_due"), "-inf", now, start=skip[k], num=limit, withscores=True
                )
            return await pipe.execute()

        per_bucket = cast("list[list[tuple[str, float]]]", await self._io(members))
        ranked = sorted((int(score), s, k) for k, got in enumerate(per_bucket) for s, score in got)
        full = [(int(got[-1][1]), got[-1][0]) for got in per_bucket if len(got) == limit]
        if full:
            boundary = min(full)
            ranked = [x for x in ranked if (x[0], x[1]) <= boundary]

        async def load() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for _, s, k in ranked:
                pipe.hgetall(ks.schedule_in(k, s))
            return await pipe.execute()

        rows = await self._io(load) if ranked else []
        due: list[_Due] = []
        for (_, s, k), f in zip(ranked, rows, strict=True):
            # A row is read after the index: it may have been advanced meanwhile.
            if f and f["enabled"] == "1" and int(f["next"]) <= now:
                after = next_fire_at(codec.decode_spec(f["spec"]), now)
                due.append(_Due(k, s, f["next"], f["spec"], after))
        return due, bool(full)

    async def fire_due_schedules(self, now: int, limit: int) -> list[ScheduleTick]:
        now = validation.check_now(now)
        limit = validation.check_limit(limit)
        ks = await self._ks()
        ticks: list[ScheduleTick] = []
        skip = [0] * ks.buckets
        # A buffer_one schedule whose last run is still going stays due without
        # counting against the limit: rounds go on past such schedules.
        while len(ticks) < limit:
            due, more = await self._due_schedules(ks, now, limit, skip)
            if not due:
                break
            fired = await self._fire(ks, now, limit - len(ticks), due)
            ticks += fired
            done = {escape(t.schedule_id) for t in fired}
            for d in due:
                if d.member not in done:
                    skip[d.bucket] += 1
            if not more:
                break
        return ticks

    async def _fire(
        self, ks: Keyspace, now: int, limit: int, due: list[_Due]
    ) -> list[ScheduleTick]:
        def args(
            chosen: Sequence[_Due], position: Callable[[int], int], n: int, dry: bool
        ) -> list[object]:
            flat: list[object] = [now, n, "1" if dry else "0"]
            for d in chosen:
                flat += [position(d.bucket), d.member, d.fire_at, d.spec, d.after]
            return flat

        names = ("schedules", "sched_due")
        if not self._cluster:
            rows = await self._many(
                self._fire_schedules,
                ks,
                range(ks.buckets),
                names,
                args(due, lambda k: k + 1, limit, False),
            )
            return [_tick(row) for row in rows]
        # Cluster: each bucket says which of its candidates would tick (dry), the first
        # `limit` of those in the global order tick, each bucket firing its own.
        by_bucket: dict[int, list[_Due]] = {}
        for d in due:
            by_bucket.setdefault(d.bucket, []).append(d)
        buckets = list(by_bucket)
        peeks = await self._pipelined(
            [
                _bucket_call(
                    self._fire_schedules,
                    ks,
                    [k],
                    names,
                    args(by_bucket[k], lambda _: 1, limit, True),
                )
                for k in buckets
            ]
        )
        eligible = {escape(row[0]) for rows in peeks for row in rows}
        chosen = [d for d in due if d.member in eligible][:limit]
        mine: dict[int, list[_Due]] = {}
        for d in chosen:
            mine.setdefault(d.bucket, []).append(d)
        acted = await self._pipelined(
            [
                _bucket_call(
                    self._fire_schedules, ks, [k], names, args(ds, lambda _: 1, len(ds), False)
                )
                for k, ds in mine.items()
            ]
        )
        order = {d.member: i for i, d in enumerate(due)}
        ticks = [_tick(row) for rows in acted for row in rows]
        return sorted(ticks, key=lambda t: order[escape(t.schedule_id)])

    # -- queues ----------------------------------------------------------------------
    async def upsert_queue(
        self,
        name: str,
        now: int,
        *,
        concurrency: int | None = None,
        per_key_concurrency: int | None = None,
        rate_limit: RateLimit | None = None,
    ) -> Queue:
        queue = queue_config(name, now, concurrency, per_key_concurrency, rate_limit)
        ks = await self._ks()
        rate = queue.rate_limit
        flat = await self._run_script(
            self._upsert_queue_script,
            [ks.queue(queue.name), ks.queues],
            escape(queue.name),
            queue.name,
            queue.concurrency or "",
            queue.per_key_concurrency or "",
            "" if rate is None else rate.count,
            "" if rate is None else rate.period_ms,
            queue.updated_at,
            self.wake_channel,
        )
        return _queue(self._fields(flat))

    async def get_queue(self, name: str) -> Queue | None:
        name = validation.check_id(name, "name")
        key = (await self._ks()).queue(name)
        fields = await self._io(lambda: self._client.hgetall(key))
        return _queue(cast("dict[str, str]", fields)) if fields else None

    async def list_queues(self) -> list[Queue]:
        ks = await self._ks()
        rows = await self._run_script(self._list_queues, [ks.queues], ks.meta("queue:"))
        return [_queue(self._fields(flat)) for flat in rows if flat]

    # -- operations and health -------------------------------------------------------
    @property
    def migrator(self) -> RedisMigrator:
        """The keyspace migrations (what ``workflow migrate`` runs)."""
        return RedisMigrator(self._client, self.keys, url_hint=self._url_hint)

    async def create_schema(self) -> None:
        """Upgrade the keyspace to the adapter's head revision (idempotent)."""
        await self._io(lambda: self.migrator.upgrade("head"), bounded=False)
        self._buckets_known = False  # read the count the keyspace now has

    async def schema_status(self) -> SchemaStatus:
        current = await self._io(self.migrator.current)
        return SchemaStatus(current, self.migrator.head)

    async def durability_problems(self) -> list[str]:
        """What in the server's persistence settings can lose acknowledged writes
        (empty when AOF is on and nothing is evicted); see :mod:`.durability`."""
        return await self._io(lambda: durability.all_problems(self._client))

    async def verify_schema(self) -> None:
        """Raise :class:`SchemaVersionError` unless the keyspace is at the head revision.

        Also reads the keyspace's bucket count, so a store :func:`open_store` opened
        does not pay that read on its first operation."""
        await self._io(self.migrator.verify)
        await self._ks()

    async def close(self) -> None:
        self._closed = True
        await self._watchers.close()
        await self._client.aclose()


@dataclass(frozen=True, slots=True)
class _Due:
    """A due schedule as read: its bucket, escaped id, tick, spec and next tick."""

    bucket: int
    member: str
    fire_at: str
    spec: str
    after: int


def _tick(row: Sequence[Any]) -> ScheduleTick:
    sid, fire_at, outcome, run_id, after = row
    return ScheduleTick(sid, int(fire_at), TickOutcome(outcome), run_id or None, int(after))


def _schedule(f: dict[str, str]) -> Schedule:
    last_fired = f.get("last_fired")
    return Schedule(
        schedule_id=f["id"],
        workflow_id=f["wf"],
        workflow_version=f.get("ver"),
        spec=codec.decode_spec(f["spec"]),
        overlap=Overlap(f["overlap"]),
        input=codec.decode(f.get("input")),
        enabled=f["enabled"] == "1",
        next_fire_at=int(f["next"]),
        last_fired_at=None if last_fired is None else int(last_fired),
        updated_at=int(f["updated"]),
        last_run_id=f.get("last_run"),
    )


def _queue(f: dict[str, str]) -> Queue:
    def limit(name: str) -> int | None:
        value = f.get(name)
        return None if value is None else int(value)

    count, period = limit("rc"), limit("rp")
    rate = None if count is None or period is None else RateLimit(count, period)
    return Queue(f["name"], limit("conc"), limit("pkc"), rate, int(f["updated"]))


def _field(ref: InboxRef) -> str:
    return f"{ref.kind.value}:{ref.key}"


async def open_store(url: str, **options: object) -> RedisStore:
    """Entry point for ``redis://`` and ``rediss://`` URLs.

    ``prefix``, ``buckets`` and ``cluster`` come from the options or else from the
    URL's query parameters of those names (an option wins, and then the URL's value is
    not read); other query parameters go to redis-py, and one it does not know is an
    :class:`InvalidArgumentError`. Options:
    ``prefix``, ``max_payload_bytes``, ``verify_schema`` (default ``True``: raise
    :class:`SchemaVersionError` unless the keyspace is at the head revision),
    ``require_durable`` (default ``False``: the persistence settings that can lose
    acknowledged writes are logged as warnings; ``True`` raises
    :class:`StoreConfigurationError` instead), ``cluster`` (default ``False``; also the
    URL's ``cluster=true``: the URL names a node of a Redis Cluster), ``buckets``
    (default 16; only used when ``create_schema`` creates the keyspace),
    ``operation_timeout`` (seconds a round trip may take, default 10; also the URL's).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise InvalidArgumentError(f"not a Redis URL: {redact_url(url)!r}")
    unknown = set(options) - set(OPEN_OPTIONS)
    if unknown:
        raise unknown_options("Redis store option", unknown, OPEN_OPTIONS)
    prefix = options.pop("prefix", None)
    max_bytes = options.pop("max_payload_bytes", None)
    verify = check_flag("verify_schema", options.pop("verify_schema", True))
    require_durable = check_flag("require_durable", options.pop("require_durable", False))
    cluster = options.pop("cluster", None)
    buckets = options.pop("buckets", None)
    operation_timeout = options.pop("operation_timeout", None)
    if operation_timeout is not None:
        operation_timeout = check_operation_timeout(operation_timeout)
    if prefix is not None and not isinstance(prefix, str):
        raise InvalidArgumentError("prefix must be a str")
    if max_bytes is not None and type(max_bytes) is not int:
        raise InvalidArgumentError("max_payload_bytes must be an int")
    if cluster is not None and type(cluster) is not bool:
        raise InvalidArgumentError("cluster must be a bool")
    if buckets is not None and type(buckets) is not int:
        raise InvalidArgumentError("buckets must be an int")
    # The URL's prefix, buckets and cluster are read by from_url (options win).
    store = RedisStore.from_url(
        url,
        prefix=prefix,
        max_payload_bytes=max_bytes,
        cluster=cluster,
        buckets=buckets,
        operation_timeout=operation_timeout,
    )
    try:
        if verify:
            await store.verify_schema()
        problems = await store.durability_problems()
        if problems and require_durable:
            raise StoreConfigurationError(
                f"Redis at {store._url_hint} may lose acknowledged writes: {'; '.join(problems)}"
            )
    except BaseException:
        await store.close()
        raise
    durability.warn_once(store._url_hint, problems)
    return store


def _bucket_call(
    script: AsyncScript,
    ks: Keyspace,
    buckets: Iterable[int],
    names: Sequence[str],
    args: Sequence[object],
) -> _ScriptCall:
    """A many-run script's call over ``buckets``: their indexes ``names`` as its keys,
    ``ARGV`` the bucket count, their tags, then ``args`` (lua.buckets)."""
    chosen = list(buckets)
    keys = [ks.index(k, name) for k in chosen for name in names]
    return script, keys, [len(chosen), *(ks.tag(k) for k in chosen), *args]


def _raised_in_driver(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by redis-py's code (its innermost frame is there)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module == "redis" or module.startswith("redis.")


def _count(text: str, name: str) -> int:
    """A URL's ``buckets=`` or ``max_payload_bytes=`` value: ASCII digits only
    (``str.isdigit`` also accepts ``²``, which ``int`` refuses)."""
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgumentError(f"{name} must be a whole number, not {text!r}")
    return int(text)


URL_OPTIONS = ("prefix", "buckets", "cluster", "max_payload_bytes", "operation_timeout")
"""The store's own query options; every other goes to redis-py."""
OPEN_OPTIONS = (
    "prefix",
    "max_payload_bytes",
    "verify_schema",
    "require_durable",
    "cluster",
    "buckets",
    "operation_timeout",
)
"""The keyword options of :func:`open_store`."""


def _operation() -> str:
    """The store method running the current round trip (for an error message): the
    innermost frame on the stack that is one of the contract's operations. Looked up
    only when a call fails, so the hot path pays nothing for it."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_name
        if name in OPERATION_NAMES and frame.f_globals.get("__name__") == __name__:
            return name
        frame = frame.f_back
    return "reach the server"


@functools.cache
def redis_py_options() -> frozenset[str]:
    """The query options redis-py reads from a URL or passes to its connections."""
    names = set(URL_QUERY_ARGUMENT_PARSERS)
    for connection in (AbstractConnection, SSLConnection):
        names.update(inspect.signature(connection.__init__).parameters)
    # Not options a URL can set (objects, classes, the store's own settings) or
    # redis-py's internal bookkeeping.
    internal = ("orig_", "maint", "oss_", "event_", "himport", "_")
    objects = {"self", "args", "kwargs", "host", "port", "parser_class", "encoder_class"}
    objects |= {"redis_connect_func", "retry", "credential_provider", "driver_info"}
    objects |= {"decode_responses", "ssl_context"}
    return frozenset(n for n in names if n not in objects and not n.startswith(internal))


def _flag(text: str) -> bool:
    """A URL's ``cluster=`` value."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise InvalidArgumentError(f"cluster must be true or false, not {text!r}")
