"""Queue arguments and limits, shared by every store (``docs/semantics.md``, Queues).

The checks of ``queue``, ``priority``, ``partition_key``, ``queues`` and a queue's
limits live here, so every store refuses the same input with the same message; so does
the refusal of a store that does not declare ``Capability.QUEUES``, and the fixed-window
arithmetic of the rate limit, which every store must compute alike from the caller's
``now``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from . import validation
from .errors import InvalidArgumentError
from .records import DEFAULT_QUEUE, Queue, RateLimit

MAX_PRIORITY = 2**31 - 1
"""Priorities are ``-MAX_PRIORITY..MAX_PRIORITY``: a 32-bit SQL integer holds them."""
MAX_QUEUE_LIMIT = 1_000_000
"""The largest ``concurrency``, ``per_key_concurrency`` and ``RateLimit.count``."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new run goes: its queue, priority and partition key, checked."""

    queue: str = DEFAULT_QUEUE
    priority: int = 0
    partition_key: str | None = None

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_PLACEMENT


DEFAULT_PLACEMENT = Placement()


def placement(queue: object, priority: object, partition_key: object) -> Placement:
    return Placement(
        validation.check_id(queue, "queue"),
        validation.check_int(priority, "priority", -MAX_PRIORITY, MAX_PRIORITY),
        validation.check_optional_id(partition_key, "partition_key"),
    )


def check_queues(queues: object) -> frozenset[str] | None:
    """``claim_runnable(queues=)``: ``None`` (every queue) or a non-empty collection of
    queue ids (not a bare string, which would be a collection of characters)."""
    if queues is None:
        return None
    if isinstance(queues, str | bytes) or not isinstance(queues, Collection) or not queues:
        raise InvalidArgumentError(
            f"queues must be None or a non-empty collection of queue ids; got {queues!r}"
        )
    return frozenset(validation.check_id(q, "queues item") for q in queues)


def refuse_placement(p: Placement) -> None:
    """What a store without ``Capability.QUEUES`` does with a non-default placement:
    refuse it (it would neither keep the queue's limits nor the priority order)."""
    for name, value, default in (
        ("queue", p.queue, DEFAULT_QUEUE),
        ("priority", p.priority, 0),
        ("partition_key", p.partition_key, None),
    ):
        if value != default:
            raise InvalidArgumentError(
                f"{name}={value!r}: this store does not declare Capability.QUEUES "
                f"(only {name}={default!r} is accepted)"
            )


def serves_default(queues: frozenset[str] | None) -> bool:
    """Whether ``claim_runnable(queues=)`` covers the default queue: on a store without
    ``Capability.QUEUES`` every run is there, so the filter is all or nothing."""
    return queues is None or DEFAULT_QUEUE in queues


def _optional_limit(value: object, what: str) -> int | None:
    return None if value is None else validation.check_int(value, what, 1, MAX_QUEUE_LIMIT)


def queue_config(
    name: object,
    now: object,
    concurrency: object,
    per_key_concurrency: object,
    rate_limit: object,
) -> Queue:
    """``upsert_queue``'s arguments, checked, as the ``Queue`` it stores."""
    checked_name = validation.check_id(name, "name")
    checked_now = validation.check_now(now)
    rate: RateLimit | None = None
    if rate_limit is not None:
        if type(rate_limit) is not RateLimit:
            raise InvalidArgumentError(
                f"rate_limit must be None or a RateLimit(count, period_ms); got {rate_limit!r}"
            )
        rate = RateLimit(
            validation.check_int(rate_limit.count, "rate_limit.count", 1, MAX_QUEUE_LIMIT),
            validation.check_int(
                rate_limit.period_ms, "rate_limit.period_ms", 1, validation.MAX_MS
            ),
        )
    return Queue(
        checked_name,
        _optional_limit(concurrency, "concurrency"),
        _optional_limit(per_key_concurrency, "per_key_concurrency"),
        rate,
        checked_now,
    )


def window_start(now: int, period_ms: int) -> int:
    """The start of the fixed rate window holding ``now`` (aligned to the epoch)."""
    return now - now % period_ms


class LimitGate:
    """The queue limits as one claim sees them at one ``now``: every store decides
    with it, so they all count alike. Give it the configured queues, their rate
    windows (``name -> (window_start, claims in it)``) and the runs leased now, per
    queue and per ``(queue, key)``; ask :meth:`has_room`, then :meth:`take` each place
    handed out. :attr:`windows` ends up holding the windows to write back."""

    def __init__(
        self,
        queues: Mapping[str, Queue],
        windows: Mapping[str, tuple[int, int]],
        leased: Mapping[str, int],
        keyed: Mapping[tuple[str, str], int],
        now: int,
    ) -> None:
        self._queues = queues
        self._now = now
        self._leased = Counter(leased)
        self._keyed = Counter(keyed)
        self.windows: dict[str, tuple[int, int]] = dict(windows)
        self.changed: set[str] = set()
        """The queues whose window a claim used (the rows to write back)."""

    def _window(self, queue: Queue) -> tuple[int, int]:
        assert queue.rate_limit is not None
        start = window_start(self._now, queue.rate_limit.period_ms)
        latest, used = self.windows.get(queue.name, (start, 0))
        # A caller whose clock is behind counts in the latest window: never a reset.
        return (start, 0) if start > latest else (latest, used)

    def has_room(self, queue_name: str, key: str | None) -> bool:
        """Whether one more run of ``queue_name`` with ``key`` may be claimed."""
        queue = self._queues.get(queue_name)
        if queue is None:
            return True
        if queue.concurrency is not None and self._leased[queue_name] >= queue.concurrency:
            return False
        if (
            queue.per_key_concurrency is not None
            and key is not None
            and self._keyed[(queue_name, key)] >= queue.per_key_concurrency
        ):
            return False
        return queue.rate_limit is None or self._window(queue)[1] < queue.rate_limit.count

    def take(self, queue_name: str, key: str | None) -> None:
        """One more run leased (after :meth:`has_room` said yes)."""
        self._leased[queue_name] += 1
        if key is not None:
            self._keyed[(queue_name, key)] += 1
        queue = self._queues.get(queue_name)
        if queue is not None and queue.rate_limit is not None:
            start, used = self._window(queue)
            self.windows[queue_name] = (start, used + 1)
            self.changed.add(queue_name)


def holds_places(queue: Queue | None) -> bool:
    """Whether the queue limits how many runs are leased at once: then a lease that
    expired has given its place up, and a heartbeat cannot take it back."""
    return queue is not None and (
        queue.concurrency is not None or queue.per_key_concurrency is not None
    )


def is_limited(queue: Queue | None) -> bool:
    return queue is not None and (holds_places(queue) or queue.rate_limit is not None)
