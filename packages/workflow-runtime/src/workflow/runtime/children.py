"""Child runs as workflow code sees them: the handle ``ctx.start_child`` returns, the
deterministic id a child gets, and what the engine asks the runtime to create one.

A child's id is derived from its parent's id, the step that started it and its
workflow, so that every replay of the parent (after a crash between the child's
creation and the record of it, say) names the same run and ``create_run`` answers
``Existing`` instead of creating a second one. The id keeps the parent's *placement*
(its id up to the last ``@``), so that a whole tree lives where its root lives (the
Redis store places runs by it: ``docs/semantics.md``, Children).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Generic, Protocol

from .definitions import OutputT, Workflow
from .records import JSON, ParentPolicy, Run
from .results import CreateResult

CHILD_ID_MARK = "@child-"
"""What separates a child's id from its parent's placement."""
CHILD_DIGEST_CHARS = 24
"""Hex digits of the digest in a child's id (96 bits: no two children of one tree meet)."""


def placement_of(run_id: str) -> str:
    """The part of ``run_id`` a store may place a run by: up to its last ``@`` (the
    whole id without one)."""
    head, at, _ = run_id.rpartition("@")
    return head if at else run_id


def child_run_id_for(parent_run_id: str, step_id: str, workflow_id: str) -> str:
    """The id of the child that step ``step_id`` of run ``parent_run_id`` starts as a run
    of ``workflow_id``: ``<parent's placement>@child-<24 hex digits>``. The same on every
    replay, unique per parent, step and workflow."""
    # JSON of the triple: an unambiguous encoding, whatever characters the ids hold.
    digest = hashlib.sha256(json.dumps([parent_run_id, step_id, workflow_id]).encode())
    return f"{placement_of(parent_run_id)}{CHILD_ID_MARK}{digest.hexdigest()[:CHILD_DIGEST_CHARS]}"


@dataclass(frozen=True, slots=True)
class ChildRun(Generic[OutputT]):
    """A child run started by ``ctx.start_child``: pass it to ``ctx.child_result`` to
    wait for its output (typed as its workflow's output when started from a typed
    :class:`Workflow`)."""

    run_id: str
    """The child's run id (see :func:`child_run_id_for`)."""
    step_id: str
    """The parent's step that started it."""
    workflow_id: str


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What the engine asks the runtime to create for ``ctx.start_child``."""

    parent: Run
    run_id: str
    workflow: Workflow[Any, Any] | str
    input: JSON
    policy: ParentPolicy
    deadline_at: int | None
    queue: str | None
    priority: int
    partition_key: str | None


class ChildStarter(Protocol):
    """Creates a child run (the :class:`~workflow.runtime.Runtime` driving the parent):
    resolves its workflow, creates it with its parent link, and wakes or hands it to a
    worker of the process. Store errors propagate."""

    async def __call__(self, spec: ChildSpec) -> CreateResult: ...


__all__ = [
    "CHILD_ID_MARK",
    "ChildRun",
    "ChildSpec",
    "ChildStarter",
    "child_run_id_for",
    "placement_of",
]
