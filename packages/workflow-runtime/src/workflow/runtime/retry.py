"""Retry policies: how often a failing step (or a failing run) is tried, and how long
to wait in between.

A policy only computes; the engine records every failed attempt and the time of the
next one in the run's log, so attempts and backoff survive a crash of the worker.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by ``max_attempts``.

    Attempt ``n`` (1-based) that fails waits ``initial_delay * backoff ** (n - 1)``
    seconds (at most ``max_delay``), spread by ``jitter`` (0.1 = +-10 %) so that many
    runs failing together do not retry in lockstep. ``max_attempts=1`` means no retry.

    ``retry_on`` names the exception types worth retrying (default: every
    ``Exception``); ``give_up_on`` names types that are never retried even when they
    match ``retry_on`` (a declined card, a validation error).
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if type(self.max_attempts) is not int or self.max_attempts < 1:
            raise InvalidArgumentError(
                f"RetryPolicy.max_attempts must be an int >= 1, got {self.max_attempts!r}"
            )
        for name in ("initial_delay", "backoff", "max_delay", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidArgumentError(
                    f"RetryPolicy.{name} must be a number >= 0, got {value!r}"
                )
        if self.backoff < 1:
            raise InvalidArgumentError(f"RetryPolicy.backoff must be >= 1, got {self.backoff!r}")
        if self.jitter > 1:
            raise InvalidArgumentError(f"RetryPolicy.jitter must be <= 1, got {self.jitter!r}")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt: the first failure is final."""
        return cls(max_attempts=1)

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether ``attempt`` (1-based), which failed with ``error``, gets another try."""
        return (
            attempt < self.max_attempts
            and isinstance(error, self.retry_on)
            and not isinstance(error, self.give_up_on)
        )

    def delay_ms(self, attempt: int, *, rng: random.Random | None = None) -> int:
        """Milliseconds to wait after failed ``attempt`` (1-based) before the next one."""
        base = min(self.initial_delay * self.backoff ** (attempt - 1), self.max_delay)
        if self.jitter:
            base *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0, round(base * 1000))


DEFAULT_STEP_RETRY = RetryPolicy()
"""Steps without ``retry=``: three attempts, 1 s then 2 s apart."""

DEFAULT_RUN_RETRY = RetryPolicy(max_attempts=5, initial_delay=1.0, max_delay=60.0)
"""Runs whose slice fails (an exception in workflow code, a non-deterministic replay):
five attempts, then the run ends ``errored``. (A run of a workflow the worker does not
register is put back for another worker, not counted.)"""
