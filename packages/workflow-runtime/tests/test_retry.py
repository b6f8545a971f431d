"""RetryPolicy: which failures retry, and how long the backoff is."""

from __future__ import annotations

import random

import pytest

from workflow.runtime import InvalidArgumentError, RetryPolicy


def test_delays_grow_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, initial_delay=0.5, backoff=3, max_delay=10, jitter=0)
    assert [policy.delay_ms(n) for n in range(1, 6)] == [500, 1_500, 4_500, 10_000, 10_000]


def test_jitter_spreads_delays_within_its_bounds() -> None:
    policy = RetryPolicy(initial_delay=1, jitter=0.25)
    rng = random.Random(7)
    delays = {policy.delay_ms(1, rng=rng) for _ in range(200)}
    assert min(delays) >= 750
    assert max(delays) <= 1_250
    assert len(delays) > 50


def test_should_retry_counts_attempts_and_honours_the_exception_filters() -> None:
    policy = RetryPolicy(max_attempts=3, retry_on=(OSError,), give_up_on=(PermissionError,))
    assert policy.should_retry(ConnectionError("x"), 1)
    assert policy.should_retry(ConnectionError("x"), 2)
    assert not policy.should_retry(ConnectionError("x"), 3)
    assert not policy.should_retry(ValueError("x"), 1)
    assert not policy.should_retry(PermissionError("x"), 1)
    assert not RetryPolicy.never().should_retry(OSError(), 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 1.5},
        {"initial_delay": -1},
        {"backoff": 0.5},
        {"jitter": 2},
        {"max_delay": True},
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
