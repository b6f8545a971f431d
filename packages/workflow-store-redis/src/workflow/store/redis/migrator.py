"""Keyspace migrations: Alembic revision files run by a small runner.

Alembic's ``ScriptDirectory`` owns the revision graph (files in ``migrations/versions``,
``down_revision`` links, one head); this runner walks it and calls each revision's
``async upgrade(ctx)`` / ``downgrade(ctx)`` with a :class:`MigrationContext`. The
current revision lives in the key ``P{g}:revision``. A migration run holds the lock
key ``P{g}:migration_lock`` (``SET NX PX``), so two processes never migrate one
keyspace at once; the holder renews it while it migrates (so a long migration keeps
it), and a crashed holder's lock expires on its own. Redis has no transactional DDL:
each revision must be written so that running it again after an interruption
finishes the job (the revision key is only advanced after a revision completed).

On Redis Cluster the same code runs through the cluster client: ``SCAN`` visits
every primary (redis-py's cluster ``scan_iter``), and every other command goes to the
node of its key's slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from workflow.runtime.errors import InvalidArgumentError, SchemaVersionError
from workflow.runtime.hints import shell_command

from .keys import Keyspace

Client = aioredis.Redis | RedisCluster
"""What the store and the migrations talk through: a server or a cluster client."""

LOCATION = str(Path(__file__).with_name("migrations"))
_LOCK_MS = 10 * 60 * 1000
"""How long a crashed migration run blocks the next one (the lock then expires). A
running migration renews it every third of that, so it never expires under one."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Revision:
    revision: str
    down_revision: str | None
    doc: str


@dataclass(frozen=True, slots=True)
class MigrationContext:
    """What a revision's ``upgrade``/``downgrade`` works with."""

    client: Client
    keys: Keyspace
    """The keyspace's prefix, and the bucket count a revision creating buckets uses."""

    async def scan(self, pattern: str) -> list[str]:
        """Every key matching ``pattern`` (on a cluster: on every primary), collected
        before the caller changes any (SCAN may repeat keys that move meanwhile)."""
        found = {_text(k) async for k in self.client.scan_iter(match=pattern, count=1000)}
        return sorted(found)

    async def delete_all_keys(self) -> None:
        """Remove every key of this instance (its prefix) except the migration lock."""
        lock = self.keys.meta("migration_lock")
        for key in await self.scan(self.keys.pattern):
            if key != lock:
                await self.client.unlink(key)


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", LOCATION)
    return ScriptDirectory.from_config(config)


def head() -> str:
    heads = _script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"{LOCATION} has {len(heads)} heads, expected one")
    return heads[0]


class RedisMigrator:
    """The migrations of one keyspace (one prefix); what ``workflow migrate`` drives."""

    def __init__(self, client: Client, keys: Keyspace, *, url_hint: str) -> None:
        self.context: MigrationContext = MigrationContext(client, keys)
        self.url_hint = url_hint

    @property
    def head(self) -> str:
        return head()

    def history(self) -> list[Revision]:
        """Every revision, oldest first."""
        revisions = list(_script().walk_revisions())
        revisions.reverse()
        return [
            Revision(r.revision, _single(r.down_revision), (r.doc or "").strip()) for r in revisions
        ]

    def knows(self, revision: str) -> bool:
        return any(r.revision == revision for r in self.history())

    async def current(self) -> str | None:
        value = await self.context.client.get(self.context.keys.meta("revision"))
        return None if value is None else _text(value)

    async def verify(self) -> None:
        """Raise :class:`SchemaVersionError` unless the keyspace is at our head."""
        current, required = await self.current(), self.head
        if current == required:
            return
        fix = f"run `{shell_command('workflow', 'migrate', 'upgrade', '--url', self.url_hint)}`"
        prefix = self.context.keys.prefix
        if current is None:
            message = (
                f"Redis keyspace under prefix {prefix!r} has no workflow revision; "
                f"the adapter needs revision {required}: {fix}"
            )
        elif not self.knows(current):
            message = (
                f"Redis keyspace under prefix {prefix!r} is at revision {current}, which "
                f"this adapter does not know (it needs {required}): it was migrated by a "
                "newer version of the adapter; upgrade the package"
            )
        else:
            message = (
                f"Redis keyspace under prefix {prefix!r} is at revision {current} "
                f"(adapter needs {required}): {fix}"
            )
        raise SchemaVersionError(message, current=current, required=required)

    async def upgrade(self, revision: str = "head") -> None:
        async with self._locked():
            current = await self.current()
            steps = self._walk(revision, current, current)
            steps.reverse()  # iterate_revisions walks from the target down
            for step in steps:
                await step.module.upgrade(self.context)
                await self._set(step.revision)

    async def downgrade(self, revision: str) -> None:
        async with self._locked():
            current = await self.current()
            if current is None:
                return
            target = None if revision == "base" else revision
            for step in self._walk(current, target, current):
                if step.revision == target:
                    break
                await step.module.downgrade(self.context)
                await self._set(_single(step.down_revision))

    def _walk(self, upper: str | None, lower: str | None, current: str | None) -> list[Any]:
        """The revisions from ``upper`` down to ``lower``; a revision Alembic cannot
        find becomes the contract's error, not Alembic's."""
        try:
            return list(_script().iterate_revisions(upper, lower))
        except RevisionError as exc:
            if current is not None and not self.knows(current):
                raise SchemaVersionError(
                    f"Redis keyspace under prefix {self.context.keys.prefix!r} is at revision "
                    f"{current}, which this adapter does not know (it needs {self.head}): it "
                    "was migrated by a newer version of the adapter; upgrade the package",
                    current=current,
                    required=self.head,
                ) from None
            known = ", ".join(r.revision for r in self.history())
            raise InvalidArgumentError(
                f"no such revision: {exc} (known: base, head, {known})"
            ) from None

    def offline_sql(self, revision: str = "head", *, downgrade_from: str | None = None) -> str:
        raise InvalidArgumentError(
            "Redis migrations change keys, not SQL: there is nothing to render offline; "
            "run `workflow migrate upgrade` against the server instead"
        )

    async def _set(self, revision: str | None) -> None:
        key = self.context.keys.meta("revision")
        if revision is None:
            await self.context.client.delete(key)
        else:
            await self.context.client.set(key, revision)

    def _locked(self) -> _Lock:
        return _Lock(self.context)


class _Lock:
    """``SET NX PX`` lock on the keyspace, renewed while held and released only by its
    holder (both fenced by the holder's random token)."""

    def __init__(self, ctx: MigrationContext, ttl_ms: int = _LOCK_MS) -> None:
        self._ctx = ctx
        self._token = uuid.uuid4().hex
        self._ttl_ms = ttl_ms
        self._renewer: asyncio.Task[None] | None = None
        self.lost = False
        """Whether a renewal found the lock gone or someone else's (it expired, or was
        removed by hand, while this holder migrated)."""

    @property
    def key(self) -> str:
        return self._ctx.keys.meta("migration_lock")

    async def __aenter__(self) -> None:
        key = self.key
        if not await self._ctx.client.set(key, self._token, nx=True, px=self._ttl_ms):
            left = int(await self._ctx.client.pttl(key))
            if left >= 0:
                when = f"it expires in {left // 1000} s unless its holder renews it"
            elif left == -1:
                when = "it has no expiry, so it was not set by a migration"
            else:
                when = "it has just been released"
            raise SchemaVersionError(
                f"another process is migrating the keyspace under prefix "
                f"{self._ctx.keys.prefix!r} (lock key {key!r}; {when}); retry when it is "
                f"done. If no migration is running (one crashed), remove the stale lock "
                f"by hand: {shell_command('redis-cli', 'DEL', key)} (with -c on a cluster)",
                current=None,
                required=head(),
            )
        self._renewer = asyncio.create_task(self._keep())

    async def renew(self) -> bool:
        """Reset the lock's expiry if this holder still holds it; whether it does."""
        held = await self._ctx.client.eval(_RENEW, 1, self.key, self._token, self._ttl_ms)
        return bool(held)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3 / 1000)
            if not await self.renew():
                self.lost = True
                return

    async def __aexit__(self, *exc: object) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            # A renewal that failed (the server went away) must not hide how the
            # migration ended: the release below reports a dead server anyway.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._renewer
        await self._ctx.client.eval(_RELEASE, 1, self.key, self._token)
        if self.lost and exc[0] is None:
            raise SchemaVersionError(
                f"the migration lock {self.key!r} expired or was removed while this process "
                "migrated, so another process may have migrated at the same time: run "
                "`workflow migrate upgrade` again (revisions finish an interrupted run)",
                current=None,
                required=head(),
            )


def _single(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value[0]) if len(value) == 1 else ",".join(value)


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
