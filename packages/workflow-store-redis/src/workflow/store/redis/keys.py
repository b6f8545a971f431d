"""The Redis key layout: escaping, hash tags and the instance prefix.

Every identifier goes into a key as the lowercase hex of its UTF-8 bytes. That escape
is injective (two ids never share a key), yields only ``[0-9a-f]`` (so no ``{``, ``}``
or ``:`` can break a hash tag or a key's structure, whatever Unicode the id holds),
and preserves order: comparing the hex strings byte by byte orders them exactly like
the ids in code-point order (UTF-8 preserves code-point order, and every byte becomes
two fixed-width digits). The sorted-set indexes rely on that last property: members
are escaped ids, and Redis breaks score ties by member bytes, which therefore is
``(score, id)`` order as the contract requires.

Layout, for prefix ``P`` (default ``wf:``) and run id hex ``H``::

    P{wf:H}:run        hash     the run's fields
    P{wf:H}:events     list     event records, index = list position
    P{wf:H}:inbox      hash     "<kind>:<key>" -> entry record
    P{wf:H}:consumed   set      inbox fields that were consumed
    P{g}:queued       zset     queued runs, score ready_at
    P{g}:leases       zset     running runs, score lease expires_at
    P{g}:timers       zset     paused runs with a wake_at, score wake_at
    P{g}:terminal     zset     terminal runs, score updated_at (retention)
    P{g}:created      zset     every run, score 0, member "<created_at:015d>:H" (lex order)
    P{g}:created:W    zset     the same for workflow id hex W
    P{g}:sched:S      hash     schedule id hex S
    P{g}:schedules    zset     every schedule, score 0, member S
    P{g}:sched_due    zset     enabled schedules, score next_fire_at
    P{g}:revision     string   keyspace revision

The keys of one run share the hash tag ``{wf:H}``, so a script that touches only one
run touches one cluster slot. The global indexes share the tag ``{g}``: scripts that
update a run and an index touch two slots, which Redis Cluster refuses; this store
therefore targets a standalone Redis (or a primary with replicas). See the package
notes for the cluster plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflow.runtime.errors import InvalidArgumentError

DEFAULT_PREFIX = "wf:"
CREATED_AT_WIDTH = 15
"""Digits of ``created_at`` in list-order members: ``MAX_MS`` has 15 digits."""
_MAX_PREFIX_LENGTH = 200


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


def created_member(created_at: int, run_id: str) -> str:
    """List-order member: fixed-width time then the escaped id, so lex order is
    ``(created_at, run_id)`` order."""
    return f"{created_at:0{CREATED_AT_WIDTH}d}:{escape(run_id)}"


@dataclass(frozen=True, slots=True)
class Keyspace:
    """The keys of one store instance (one prefix)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    def run_tag(self, run_id: str) -> str:
        """The common start of every key of one run (ends with its hash tag)."""
        return self.run_tag_escaped(escape(run_id))

    def run_tag_escaped(self, escaped: str) -> str:
        """:meth:`run_tag` from an escaped id (an index member)."""
        return f"{self.prefix}{{wf:{escaped}}}"

    def run(self, run_id: str) -> str:
        return f"{self.run_tag(run_id)}:run"

    def events(self, run_id: str) -> str:
        return f"{self.run_tag(run_id)}:events"

    def inbox(self, run_id: str) -> str:
        return f"{self.run_tag(run_id)}:inbox"

    def consumed(self, run_id: str) -> str:
        return f"{self.run_tag(run_id)}:consumed"

    @property
    def global_tag(self) -> str:
        return f"{self.prefix}{{g}}"

    def index(self, name: str) -> str:
        """A global index key (``queued``, ``leases``, ``timers``, ``terminal``,
        ``created``, ``schedules``, ``sched_due``, ``revision``)."""
        return f"{self.global_tag}:{name}"

    def created_by_workflow(self, workflow_id: str) -> str:
        return f"{self.global_tag}:created:{escape(workflow_id)}"

    def schedule(self, schedule_id: str) -> str:
        return f"{self.global_tag}:sched:{escape(schedule_id)}"

    @property
    def pattern(self) -> str:
        """A SCAN pattern matching every key of this instance and no other's.

        Every key is ``prefix{tag}…`` and a prefix holds no brace, so ``prefix{*`` cannot
        match the keys of an instance whose prefix merely starts with ours (``wf:`` and
        ``wf:t2:``)."""
        special = "*?[]\\"
        return "".join("\\" + c if c in special else c for c in self.prefix) + "{*"
