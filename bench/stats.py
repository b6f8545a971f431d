"""Medians with their spread, the one way results are summarised."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Spread:
    """The median of several rounds, with the lowest and highest round."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("a spread needs at least one value")
        return cls(statistics.median(values), min(values), max(values))

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high}


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Spread:
    """Round-by-round ratios: each pair was measured back to back, so a noisy round
    slows both sides and the ratio stays put."""
    if len(numerators) != len(denominators):
        raise ValueError("ratios need paired rounds")
    return Spread.of([a / b for a, b in zip(numerators, denominators, strict=True)])


@dataclass(frozen=True, slots=True)
class Percentiles:
    """The 50th and 99th percentiles of a sample (latencies, in seconds)."""

    p50: float
    p99: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        if len(values) < 2:
            raise ValueError("percentiles need at least two values")
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cls(statistics.median(values), cuts[98], len(values))

    def as_dict(self, scale: float = 1.0) -> dict[str, float]:
        return {"p50": self.p50 * scale, "p99": self.p99 * scale, "n": self.n}
