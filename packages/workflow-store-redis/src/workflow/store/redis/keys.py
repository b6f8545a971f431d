"""The Redis key layout: buckets, hash tags, escaping and the instance prefix.

Every identifier goes into a key as the lowercase hex of its UTF-8 bytes. That escape
is injective (two ids never share a key), yields only ``[0-9a-f]`` (so no ``{``, ``}``
or ``:`` can break a hash tag or a key's structure, whatever Unicode the id holds),
and preserves order: comparing the hex strings byte by byte orders them exactly like
the ids in code-point order (UTF-8 preserves code-point order, and every byte becomes
two fixed-width digits). The sorted-set indexes rely on that last property: members
are escaped ids, and Redis breaks score ties by member bytes, which therefore is
``(score, id)`` order as the contract requires.

**Buckets.** A keyspace has ``B`` buckets (default 16, fixed when the keyspace is
created and kept in ``P{g}:buckets``). A run lives in bucket
``crc32(placement) mod B``, where the placement is the run id up to its last ``@``
(the whole id when it has none); a schedule lives in bucket ``crc32(schedule id) mod
B``. So the runs a schedule fires (``<schedule id>@<fire_at>``) share their schedule's
bucket, and firing a schedule touches one bucket. Every key of a bucket, the run keys
*and* the bucket's indexes, carries the hash tag ``{b<k>}``: in Redis Cluster a
bucket is one slot, so every script touches one slot.

Layout, for prefix ``P`` (default ``wf:``), bucket tag ``T = P{b<k>}``, run id hex
``H``, workflow id hex ``W`` and schedule id hex ``S``::

    T:run:H         hash     the run's fields
    T:events:H      list     event records, index = list position
    T:inbox:H       hash     "<kind>:<key>" -> entry record
    T:consumed:H    set      inbox fields that were consumed
    T:queued        zset     the bucket's queued runs, score ready_at
    T:ready         zset     the same in claim order, score 0, member
                             "<2**31-1-priority:010d>:<ready_at:015d>:H" (lex order)
    T:qr:Q          zset     the same for the runs of queue hex Q
    T:ql:Q          zset     queue Q's running runs, score lease expires_at
    T:qk:Q:K        zset     the same for partition key hex K of queue Q
    T:leases        zset     running runs, score lease expires_at
    T:timers        zset     paused runs with a wake_at, score wake_at
    T:terminal      zset     terminal runs, score updated_at (retention)
    T:deadlines     zset     live runs with a deadline, score deadline_at
    T:created       zset     every run, score 0, member "<created_at:015d>:H" (lex order)
    T:created:W     zset     the same for workflow id hex W
    T:status:N      zset     the same for the runs whose status is N ("queued", …)
    T:sched:S       hash     a schedule
    T:schedules     zset     every schedule of the bucket, score 0, member S
    T:sched_due     zset     enabled schedules, score next_fire_at
    P{g}:queue:Q    hash     queue Q's limits and rate window
    P{g}:queues     zset     every configured queue hex, score 0 (lex order)
    P{g}:qres:Q     zset     cluster: queue Q's reserved places, member H, score the
                             lease's expires_at (P{g}:qres:Q:K per partition key)
    P{g}:qhold      hash     cluster: H -> "<token>:<Q>:<K>:<rate window>:<claims>"
    P{g}:qfull:Q    set      cluster: the key hexes of queue Q found full
    P{g}:revision   string   keyspace revision
    P{g}:buckets    string   B
    P{g}:migration_lock      held while a migration runs

A global order (claims by ``ready_at``, listing by ``created_at``, timers, retention,
due schedules) is the merge of the buckets' sorted sets: on a standalone server one
script reads every bucket at once; on a cluster the store asks every bucket (one
slot each) and merges in Python. ``docs/stores/redis.md`` has the costs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from workflow.runtime.errors import InvalidArgumentError

DEFAULT_PREFIX = "wf:"
DEFAULT_BUCKETS = 16
MAX_BUCKETS = 1024
CREATED_AT_WIDTH = 15
"""Digits of ``created_at`` in list-order members: ``MAX_MS`` has 15 digits."""
_MAX_PREFIX_LENGTH = 200
STATUSES = ("queued", "running", "paused", "finished", "errored", "cancelled", "timed_out")
RUN_INDEXES = (
    "queued",
    "ready",
    "leases",
    "timers",
    "terminal",
    "deadlines",
    "created",
    *(f"status:{status}" for status in STATUSES),
)
"""The bucket indexes a run may be in (besides its workflow's ``created:W``)."""


def escape(identifier: str) -> str:
    """The key-safe, order-preserving form of an identifier (hex of its UTF-8)."""
    return identifier.encode("utf-8").hex()


def unescape(escaped: str) -> str:
    return bytes.fromhex(escaped).decode("utf-8")


def check_prefix(prefix: object) -> str:
    """A key prefix: printable ASCII without braces (a brace would start a hash tag)."""
    if type(prefix) is not str or not prefix:
        raise InvalidArgumentError("key prefix must be a non-empty str")
    if len(prefix) > _MAX_PREFIX_LENGTH:
        raise InvalidArgumentError(f"key prefix is longer than {_MAX_PREFIX_LENGTH} characters")
    if not all(" " < c <= "~" for c in prefix) or "{" in prefix or "}" in prefix:
        raise InvalidArgumentError(
            f"key prefix {prefix!r} must be printable ASCII without spaces, '{{' or '}}'"
        )
    return prefix


def check_buckets(buckets: object) -> int:
    if type(buckets) is not int or not 1 <= buckets <= MAX_BUCKETS:
        raise InvalidArgumentError(f"buckets must be an int between 1 and {MAX_BUCKETS}")
    return buckets


def created_member(created_at: int, run_id: str) -> str:
    """List-order member: fixed-width time then the escaped id, so lex order is
    ``(created_at, run_id)`` order."""
    return f"{created_at:0{CREATED_AT_WIDTH}d}:{escape(run_id)}"


def run_placement(run_id: str) -> str:
    """What decides a run's bucket: the id up to its last ``@`` (a schedule's runs
    ``<schedule id>@<fire_at>`` land with the schedule), else the whole id."""
    head, at, _ = run_id.rpartition("@")
    return head if at else run_id


def bucket_of(placement: str, buckets: int) -> int:
    # crc32: stable across processes and versions (Python's hash() is salted).
    return zlib.crc32(placement.encode("utf-8")) % buckets


@dataclass(frozen=True, slots=True)
class Keyspace:
    """The keys of one store instance (one prefix, ``buckets`` buckets)."""

    prefix: str = DEFAULT_PREFIX
    buckets: int = DEFAULT_BUCKETS

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_buckets(self.buckets)

    # -- buckets ---------------------------------------------------------------------
    def tag(self, bucket: int) -> str:
        """The common start of every key of a bucket (ends with its hash tag)."""
        return f"{self.prefix}{{b{bucket}}}"

    @property
    def tags(self) -> list[str]:
        return [self.tag(k) for k in range(self.buckets)]

    def run_bucket(self, run_id: str) -> int:
        return bucket_of(run_placement(run_id), self.buckets)

    def schedule_bucket(self, schedule_id: str) -> int:
        return bucket_of(schedule_id, self.buckets)

    def index(self, bucket: int, name: str) -> str:
        """A bucket index (``queued``, ``leases``, ``timers``, ``terminal``,
        ``created``, ``schedules``, ``sched_due``)."""
        return f"{self.tag(bucket)}:{name}"

    # -- runs ------------------------------------------------------------------------
    def run_tag(self, run_id: str) -> str:
        return self.tag(self.run_bucket(run_id))

    def run(self, run_id: str) -> str:
        return f"{self.run_tag(run_id)}:run:{escape(run_id)}"

    def events(self, run_id: str) -> str:
        return f"{self.run_tag(run_id)}:events:{escape(run_id)}"

    def inbox(self, run_id: str) -> str:
        return f"{self.run_tag(run_id)}:inbox:{escape(run_id)}"

    def consumed(self, run_id: str) -> str:
        return f"{self.run_tag(run_id)}:consumed:{escape(run_id)}"

    def run_in(self, bucket: int, escaped: str) -> str:
        """A run's hash from its bucket and escaped id (an index member)."""
        return f"{self.tag(bucket)}:run:{escaped}"

    def created_by_workflow(self, bucket: int, workflow_id: str) -> str:
        return f"{self.tag(bucket)}:created:{escape(workflow_id)}"

    def run_keys(self, run_id: str, workflow_id: str | None = None) -> list[str]:
        """Every key a one-run script may touch (declared as the script's KEYS, so a
        cluster routes it and checks it stays in one slot)."""
        k = self.run_bucket(run_id)
        keys = [self.run(run_id), self.events(run_id), self.inbox(run_id), self.consumed(run_id)]
        keys += [self.index(k, name) for name in RUN_INDEXES]
        if workflow_id is not None:
            keys.append(self.created_by_workflow(k, workflow_id))
        return keys

    # -- schedules -------------------------------------------------------------------
    def schedule(self, schedule_id: str) -> str:
        return self.schedule_in(self.schedule_bucket(schedule_id), escape(schedule_id))

    def schedule_in(self, bucket: int, escaped: str) -> str:
        return f"{self.tag(bucket)}:sched:{escaped}"

    # -- queues ----------------------------------------------------------------------
    def queue(self, name: str) -> str:
        """A queue's limits and rate window (the scripts derive it: ``queue_key``)."""
        return self.meta(f"queue:{escape(name)}")

    @property
    def queues(self) -> str:
        """Every configured queue's hex (list order)."""
        return self.meta("queues")

    # -- keyspace metadata -----------------------------------------------------------
    def meta(self, name: str) -> str:
        """A keyspace-wide key (``revision``, ``buckets``, ``migration_lock``)."""
        return f"{self.prefix}{{g}}:{name}"

    @property
    def pattern(self) -> str:
        """A SCAN pattern matching every key of this instance and no other's.

        Every key is ``prefix{tag}…`` and a prefix holds no brace, so ``prefix{*`` cannot
        match the keys of an instance whose prefix merely starts with ours (``wf:`` and
        ``wf:t2:``)."""
        return _glob(self.prefix) + "{*"

    def glob(self, rest: str) -> str:
        """A SCAN pattern: the prefix (glob-escaped) followed by ``rest`` (a pattern)."""
        return _glob(self.prefix) + rest


def _glob(text: str) -> str:
    special = "*?[]\\"
    return "".join("\\" + c if c in special else c for c in text)
