"""Turning rows into contract records (and records' parts into column values)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from workflow.runtime import codec
from workflow.runtime.records import (
    InboxEntry,
    InboxKind,
    Lease,
    Overlap,
    ParentPolicy,
    Queue,
    RateLimit,
    Run,
    RunStatus,
    Schedule,
    StoredEvent,
    Wait,
    WaitKind,
)
from workflow.runtime.validation import EncodedWait

Row = Mapping[Any, Any]

RUN_COLUMNS = (
    "run_id",
    "workflow_id",
    "workflow_version",
    "status",
    "input",
    "output",
    "error",
    "wait_kind",
    "wait_step_id",
    "wait_key",
    "wait_meta",
    "wake_at",
    "lease_owner",
    "lease_token",
    "lease_expires_at",
    "next_event_index",
    "created_at",
    "updated_at",
    "ready_at",
    "queue",
    "priority",
    "partition_key",
    "deadline_at",
    "parent_run_id",
    "parent_policy",
)
INBOX_COLUMNS = ("kind", "key", "name", "step_id", "payload", "meta", "received_at", "consumed")
EVENT_COLUMNS = ("event_index", "type", "step_id", "data", "created_at")


def _int(value: Any) -> int:
    # MySQL drivers may hand back Decimal for BIGINT arithmetic results.
    return int(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def wait_from_row(row: Row) -> Wait | None:
    kind = row["wait_kind"]
    if kind is None:
        return None
    wk = WaitKind(kind)
    key = row["wait_key"]
    return Wait(
        wk,
        row["wait_step_id"],
        # A child wait names the child's run id, as a signal wait names the signal.
        name=key if wk in (WaitKind.SIGNAL, WaitKind.CHILD) else None,
        approval_id=key if wk is WaitKind.APPROVAL else None,
        wake_at=_opt_int(row["wake_at"]),
        meta=codec.decode(row["wait_meta"]),
    )


def lease_from_row(row: Row) -> Lease | None:
    owner = row["lease_owner"]
    if owner is None:
        return None
    return Lease(owner, _int(row["lease_token"]), _int(row["lease_expires_at"]))


def run_from_row(row: Row) -> Run:
    return Run(
        run_id=row["run_id"],
        workflow_id=row["workflow_id"],
        workflow_version=row["workflow_version"],
        status=RunStatus(row["status"]),
        input=codec.decode(row["input"]),
        output=codec.decode(row["output"]),
        error=codec.decode_error(row["error"]),
        wait=wait_from_row(row),
        lease=lease_from_row(row),
        next_event_index=_int(row["next_event_index"]),
        created_at=_int(row["created_at"]),
        updated_at=_int(row["updated_at"]),
        ready_at=_opt_int(row["ready_at"]),
        queue=row["queue"],
        priority=_int(row["priority"]),
        partition_key=row["partition_key"],
        deadline_at=_opt_int(row["deadline_at"]),
        parent_run_id=row["parent_run_id"],
        parent_policy=None if row["parent_policy"] is None else ParentPolicy(row["parent_policy"]),
    )


def entry_from_row(run_id: str, row: Row | Sequence[Any]) -> InboxEntry:
    if not isinstance(row, Mapping):
        row = dict(zip(INBOX_COLUMNS, row, strict=True))
    return InboxEntry(
        run_id=run_id,
        kind=InboxKind(row["kind"]),
        key=row["key"],
        name=row["name"],
        step_id=row["step_id"],
        payload=codec.decode(row["payload"]),
        meta=codec.decode(row["meta"]),
        received_at=_int(row["received_at"]),
        consumed=bool(row["consumed"]),
    )


def event_from_row(run_id: str, row: Row | Sequence[Any]) -> StoredEvent:
    if not isinstance(row, Mapping):
        row = dict(zip(EVENT_COLUMNS, row, strict=True))
    return StoredEvent(
        run_id=run_id,
        index=_int(row["event_index"]),
        type=row["type"],
        step_id=row["step_id"],
        data=codec.decode(row["data"]),
        created_at=_int(row["created_at"]),
    )


def entries_from_json(run_id: str, text: str | None) -> list[InboxEntry]:
    """Inbox rows aggregated into a JSON array of arrays (one round trip with a claim)."""
    if not text:
        return []
    entries = [entry_from_row(run_id, item) for item in json.loads(text)]
    entries.sort(key=lambda e: (e.received_at, e.kind.value, e.key))
    return entries


def events_from_json(run_id: str, text: str | None) -> list[StoredEvent]:
    if not text:
        return []
    events = [event_from_row(run_id, item) for item in json.loads(text)]
    events.sort(key=lambda e: e.index)
    return events


def schedule_from_row(row: Row) -> Schedule:
    return Schedule(
        schedule_id=row["schedule_id"],
        workflow_id=row["workflow_id"],
        workflow_version=row["workflow_version"],
        spec=codec.decode_spec(row["spec"]),
        overlap=Overlap(row["overlap"]),
        input=codec.decode(row["input"]),
        enabled=bool(row["enabled"]),
        next_fire_at=_int(row["next_fire_at"]),
        last_fired_at=_opt_int(row["last_fired_at"]),
        updated_at=_int(row["updated_at"]),
        last_run_id=row["last_run_id"],
    )


def wait_values(wait: EncodedWait | None) -> dict[str, Any]:
    """Column values that store ``wait`` on a run (all NULL for no wait)."""
    if wait is None:
        return {
            "wait_kind": None,
            "wait_step_id": None,
            "wait_key": None,
            "wait_meta": None,
            "wake_at": None,
        }
    return {
        "wait_kind": wait.kind.value,
        "wait_step_id": wait.step_id,
        "wait_key": wait.key,
        "wait_meta": wait.meta,
        "wake_at": wait.wake_at,
    }


def queued_values(now: int) -> dict[str, Any]:
    """Column values of a run put (back) in the queue: woken, yielded or fired."""
    return {
        "status": RunStatus.QUEUED.value,
        "ready_at": now,
        "updated_at": now,
        **wait_values(None),
    }


def queue_from_row(row: Row) -> Queue:
    count, period = row["rate_count"], row["rate_period_ms"]
    return Queue(
        name=row["name"],
        concurrency=_opt_int(row["concurrency"]),
        per_key_concurrency=_opt_int(row["per_key_concurrency"]),
        rate_limit=None if count is None else RateLimit(_int(count), _int(period)),
        updated_at=_int(row["updated_at"]),
    )


def queue_values(queue: Queue) -> dict[str, Any]:
    """The columns ``upsert_queue`` writes (the rate window is kept: re-declaring a
    queue must not hand out a second allowance)."""
    rate = queue.rate_limit
    return {
        "name": queue.name,
        "concurrency": queue.concurrency,
        "per_key_concurrency": queue.per_key_concurrency,
        "rate_count": None if rate is None else rate.count,
        "rate_period_ms": None if rate is None else rate.period_ms,
        "updated_at": queue.updated_at,
    }
