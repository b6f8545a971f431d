"""Where the Redis store keeps things, for the raw floor and the bulk seeding.

Two key layouts exist: one hash tag per run plus global ``{g}`` indexes (up to
commit 243a463), and fixed buckets ``{b<k>}`` that each hold their runs and their own
indexes (in progress). The benchmark must not call the store to write or read, so
it addresses keys itself, through the store's own ``Keyspace`` and whichever layout
that has. A layout this module does not know shows up as a seeding check failing
loudly (a claim that returns fewer runs than were seeded), never as a quiet number.
"""

from __future__ import annotations

from typing import Any

from workflow.store.redis.keys import escape


class Layout:
    def __init__(self, keys: Any) -> None:
        self.keys = keys
        self.bucketed = hasattr(keys, "buckets")
        """The bucket layout (``Keyspace.buckets``), else the global-index one."""

    def run(self, run_id: str) -> str:
        return str(self.keys.run(run_id))

    def _run_bucket(self, run_id: str) -> int:
        return int(self.keys.run_bucket(run_id))

    def run_index(self, name: str, run_id: str) -> str:
        """The index ``name`` (``queued``, ``timers``, ``created``…) holding ``run_id``."""
        if self.bucketed:
            return str(self.keys.index(self._run_bucket(run_id), name))
        return str(self.keys.index(name))

    def created_by_workflow(self, workflow_id: str, run_id: str) -> str:
        if self.bucketed:
            return str(self.keys.created_by_workflow(self._run_bucket(run_id), workflow_id))
        return str(self.keys.created_by_workflow(workflow_id))

    def schedule(self, schedule_id: str) -> str:
        return str(self.keys.schedule(schedule_id))

    def schedule_index(self, name: str, schedule_id: str) -> str:
        if self.bucketed:
            return str(self.keys.index(self.keys.schedule_bucket(schedule_id), name))
        return str(self.keys.index(name))

    def member(self, schedule_id: str) -> str:
        return escape(schedule_id)

    def created_indexes(self) -> list[tuple[str, str, str]]:
        """Every list-order index, with the text before and after an escaped run id
        that makes the run's hash key."""
        if self.bucketed:
            return [
                (str(self.keys.index(b, "created")), f"{self.keys.tag(b)}:run:", "")
                for b in range(int(self.keys.buckets))
            ]
        return [(str(self.keys.index("created")), f"{self.keys.prefix}{{wf:", "}:run")]
