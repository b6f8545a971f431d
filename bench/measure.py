"""Timing batches of calls, side by side with the raw floor, and counting statements."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from workflow.runtime import Claimed, Finish
from workflow.store.sql import SQLStore
from workflow.store.sql.statements import recording

from .hot_ops import LEASE_MS, Call, Env, HotOp
from .raw_floor import FLOOR_RUN, RawFloor
from .stats import Spread, ratios


@dataclass(frozen=True)
class Settings:
    rounds: int
    batch_seconds: float
    """Target duration of one timed batch (each side, each round)."""
    warmup_calls: int
    """Calls of the first, untimed batch (at least 2); statements are counted there."""
    min_batch: int = 10
    max_batch: int = 20_000
    max_setup: int = 2_000
    """Most runs (or schedules) one batch may set up. Keeps the stores small: the
    memory store scans every run in claim_runnable and fire_due_*, so a batch sized
    from a fast warm-up on an empty store would otherwise grow quadratically."""


@dataclass(frozen=True)
class Statements:
    per_call: float
    first_call: tuple[str, ...]
    """The first word of each statement of one call, in order."""


@dataclass(frozen=True)
class Warmup:
    rate: float
    statements: Statements | None


@dataclass(frozen=True)
class OpResult:
    op: HotOp
    store_rate: Spread
    batch: int
    statements: Statements | None = None
    raw_rate: Spread | None = None
    raw_batch: int | None = None
    ratio: Spread | None = None


async def timed(call: Call, n: int) -> float:
    """Calls per second over ``n`` sequential calls. The garbage collector runs as it
    would in production (a forced collection here would cost ~0.1 s per batch)."""
    start = time.perf_counter()
    for i in range(n):
        await call(i)
    return n / (time.perf_counter() - start)


def _batch_size(rate: float, settings: Settings, setup_per_call: int = 1) -> int:
    most = min(settings.max_batch, settings.max_setup // setup_per_call)
    return max(settings.min_batch, min(most, round(rate * settings.batch_seconds)))


async def add_floor_row(env: Env) -> None:
    """The finished run the raw floor statements read and write."""
    store = env.setup
    await store.create_run(FLOOR_RUN, "bench", None, None, env.now())
    claim = await store.claim_run(FLOOR_RUN, "setup", LEASE_MS, env.now())
    assert isinstance(claim, Claimed), claim
    await store.settle_run(FLOOR_RUN, claim.lease, 0, [], Finish(), env.now())


def _recording(sql: SQLStore | None) -> contextlib.AbstractContextManager[list[str]]:
    return contextlib.nullcontext([]) if sql is None else recording(sql)


async def warm_up(env: Env, op: HotOp, settings: Settings, sql: SQLStore | None) -> Warmup:
    """A first batch that warms caches and connections, counts the statements (the
    first call on its own) and estimates the rate the timed batches are sized from."""
    n = settings.warmup_calls
    call = await op.prepare(env, n)
    with _recording(sql) as first:
        await call(0)
    with _recording(sql) as rest:
        rate = await timed(lambda i: call(i + 1), n - 1)
    if sql is None:
        return Warmup(rate, None)
    return Warmup(rate, Statements((len(first) + len(rest)) / n, tuple(first)))


async def measure(
    op: HotOp,
    env: Env,
    settings: Settings,
    *,
    sql: SQLStore | None = None,
    floor: RawFloor | None = None,
) -> OpResult:
    """Warm up and size the batches, then time store and raw batches alternately
    (A B A B ...) for ``settings.rounds`` rounds. ``env`` holds a store just emptied."""
    if floor is not None:
        await add_floor_row(env)
    warm = await warm_up(env, op, settings, sql)
    batch = _batch_size(warm.rate, settings, op.setup_per_call)
    raw_call = None if floor is None else floor.call(op.floor)
    raw_batch = 0
    if raw_call is not None:
        # The raw statement needs no setup: warm it up longer, it is the noisier side.
        raw_rate = await timed(raw_call, settings.warmup_calls * 10)
        raw_batch = _batch_size(raw_rate, settings)
    store_rates: list[float] = []
    raw_rates: list[float] = []
    for _ in range(settings.rounds):
        call = await op.prepare(env, batch)
        store_rates.append(await timed(call, batch))
        if raw_call is not None:
            raw_rates.append(await timed(raw_call, raw_batch))
    statements = warm.statements
    if not raw_rates:
        return OpResult(op, Spread.of(store_rates), batch, statements)
    return OpResult(
        op,
        Spread.of(store_rates),
        batch,
        statements,
        Spread.of(raw_rates),
        raw_batch,
        ratios(store_rates, raw_rates),
    )
