"""Timing batches of calls, side by side with the raw floor, and counting statements.

Two modes: one caller (sequential calls: the store uses one connection), and
``callers`` concurrent callers, each with its own prepared state and each awaiting
its calls one after another, so the store uses up to ``callers`` connections of its
pool; the raw floor then runs on as many connections of its own, each writing its
own floor row.

Each timed batch also reports its CPU time per call (``bench.cpu``): this process's
(every thread, so SQLite's and PyMySQL's connection threads too) and the server's
for this process's connections where it can be read. The ops targets are stated in
CPU per call, which a busy neighbour disturbs far less than calls per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from workflow.runtime import Claimed, Finish

from .counting import Recorder, redis_commands
from .cpu import CpuCost, Meter, ServerCpu, Spent, cpu_ratio, per_unit
from .hot_ops import LEASE_MS, Call, Env, HotOp
from .raw_floor import FLOOR_RUN, RawFloor
from .stats import Spread, ratios


@dataclass(frozen=True)
class Settings:
    rounds: int
    batch_seconds: float
    """Target duration of one timed batch (each side, each round)."""
    warmup_calls: int
    """Calls of the first, untimed batch (at least 3); statements are counted there,
    leaving out the first call."""
    min_batch: int = 10
    max_batch: int = 20_000
    concurrent_ops: tuple[str, ...] | None = None
    """Operations measured with concurrent callers too (None: every one)."""
    max_setup: int = 2_000
    """Most runs (or schedules) one batch may set up. Keeps the stores small: the
    memory store scans every run in claim_runnable and fire_due_*, so a batch sized
    from a fast warm-up on an empty store would otherwise grow quadratically."""


@dataclass(frozen=True)
class Statements:
    per_call: float
    """Mean over the warm-up calls after the first (the first call may make one-off
    round trips: loading a script, reading the keyspace's bucket count)."""
    one_call: tuple[str, ...]
    """The first word of each statement of the second call, in order (Redis: one
    label per round trip, see ``counting.redis_round_trips``)."""
    unit: str = "stmts"
    commands_per_call: float | None = None
    """Redis only: commands per call (a pipeline of n commands counts n)."""


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
    callers: int = 1
    store_cpu: CpuCost | None = None
    """CPU seconds per store call (client, and server where measured)."""
    raw_cpu: CpuCost | None = None
    """CPU seconds per raw floor statement."""
    cpu_ratio: Spread | None = None
    """raw client CPU per call / store client CPU per call, per round: the share of
    the store's client CPU one raw statement would cost (≥ 0.8 is the target)."""
    whole_server: bool = False
    """The server CPU is the whole server's (Redis)."""


async def timed(call: Call, n: int) -> float:
    """Calls per second over ``n`` sequential calls. The garbage collector runs as it
    would in production (a forced collection here would cost ~0.1 s per batch)."""
    start = time.perf_counter()
    for i in range(n):
        await call(i)
    return n / (time.perf_counter() - start)


async def timed_together(calls: Sequence[Call], n: int) -> float:
    """Calls per second of all callers together, each making ``n`` sequential calls."""

    async def loop(call: Call) -> None:
        for i in range(n):
            await call(i)

    start = time.perf_counter()
    await asyncio.gather(*(loop(call) for call in calls))
    return len(calls) * n / (time.perf_counter() - start)


async def metered(calls: Sequence[Call], n: int, server: ServerCpu | None) -> tuple[float, Spent]:
    """:func:`timed` (one call sequence) or :func:`timed_together`, with the batch's
    CPU cost per call (sampled outside the timing)."""
    meter = Meter(server)
    await meter.start()
    rate = await (timed(calls[0], n) if len(calls) == 1 else timed_together(calls, n))
    return rate, per_unit(await meter.stop(), n * len(calls))


def _cpu(
    store: Sequence[Spent], raw: Sequence[Spent]
) -> tuple[CpuCost, CpuCost | None, Spread | None]:
    if not raw:
        return CpuCost.of(store), None, None
    return CpuCost.of(store), CpuCost.of(raw), cpu_ratio(raw, store)


def _batch_size(rate: float, settings: Settings, setup_per_call: int = 1) -> int:
    most = min(settings.max_batch, settings.max_setup // setup_per_call)
    return max(settings.min_batch, min(most, round(rate * settings.batch_seconds)))


async def add_floor_row(env: Env, run_id: str = FLOOR_RUN) -> None:
    """The finished run the raw floor statements read and write."""
    store = env.setup
    await store.create_run(run_id, "bench", None, None, env.now())
    claim = await store.claim_run(run_id, "setup", LEASE_MS, env.now())
    assert isinstance(claim, Claimed), claim
    await store.settle_run(run_id, claim.lease, 0, [], Finish(), env.now())


def _recording(recorder: Recorder | None) -> contextlib.AbstractContextManager[list[str]]:
    return contextlib.nullcontext([]) if recorder is None else recorder()


async def warm_up(
    env: Env, op: HotOp, settings: Settings, recorder: Recorder | None, unit: str = "stmts"
) -> Warmup:
    """A first batch that warms caches and connections, counts the statements (the
    first call on its own) and estimates the rate the timed batches are sized from."""
    n = max(3, settings.warmup_calls)
    call = await op.prepare(env, n)
    with _recording(recorder):
        await call(0)  # one-off round trips (script loads, bucket count) stay out
    with _recording(recorder) as second:
        await call(1)
    with _recording(recorder) as rest:
        rate = await timed(lambda i: call(i + 2), n - 2)
    if recorder is None:
        return Warmup(rate, None)
    sent = [*second, *rest]
    # Commands behind round trips are Redis's (pipelines); SQLite hops and D1 requests
    # have none.
    commands = redis_commands(sent) / (n - 1) if unit == "round trips" else None
    return Warmup(rate, Statements(len(sent) / (n - 1), tuple(second), unit, commands))


async def _warm_up_together(env: Env, op: HotOp, settings: Settings, callers: int) -> float:
    n = max(1, settings.warmup_calls // 2)
    calls = [await op.prepare(env, n) for _ in range(callers)]
    return await timed_together(calls, n)


async def measure(
    op: HotOp,
    env: Env,
    settings: Settings,
    *,
    recorder: Recorder | None = None,
    floor: RawFloor | None = None,
    unit: str = "stmts",
    server: ServerCpu | None = None,
) -> OpResult:
    """Warm up and size the batches, then time store and raw batches alternately
    (A B A B ...) for ``settings.rounds`` rounds. ``env`` holds a store just emptied;
    ``server`` samples the server's CPU (None: client CPU only)."""
    if floor is not None:
        await add_floor_row(env)
    warm = await warm_up(env, op, settings, recorder, unit)
    batch = _batch_size(warm.rate, settings, op.setup_per_call)
    raw_call = None if floor is None else floor.call(op.floor)
    raw_batch = 0
    if raw_call is not None:
        # The raw statement needs no setup: warm it up longer, it is the noisier side.
        raw_rate = await timed(raw_call, settings.warmup_calls * 10)
        raw_batch = _batch_size(raw_rate, settings)
    store_rates: list[float] = []
    raw_rates: list[float] = []
    store_cpu: list[Spent] = []
    raw_cpu: list[Spent] = []
    for _ in range(settings.rounds):
        call = await op.prepare(env, batch)
        rate, spent = await metered([call], batch, server)
        store_rates.append(rate)
        store_cpu.append(spent)
        if raw_call is not None:
            rate, spent = await metered([raw_call], raw_batch, server)
            raw_rates.append(rate)
            raw_cpu.append(spent)
    statements = warm.statements
    cpu = _cpu(store_cpu, raw_cpu)
    whole = server is not None and server.whole_server
    if not raw_rates:
        return OpResult(op, Spread.of(store_rates), batch, statements, store_cpu=cpu[0])
    return OpResult(
        op,
        Spread.of(store_rates),
        batch,
        statements,
        Spread.of(raw_rates),
        raw_batch,
        ratios(store_rates, raw_rates),
        store_cpu=cpu[0],
        raw_cpu=cpu[1],
        cpu_ratio=cpu[2],
        whole_server=whole,
    )


async def measure_together(
    op: HotOp,
    env: Env,
    settings: Settings,
    callers: int,
    floors: Sequence[RawFloor] = (),
    server: ServerCpu | None = None,
) -> OpResult:
    """:func:`measure` with ``callers`` concurrent callers on both sides. Statements
    are not counted here (the one-caller mode does). ``floors``: one raw floor per
    caller (or none), each given its own floor row."""
    for k, raw in enumerate(floors):
        raw.run_id = f"{FLOOR_RUN}-{k}"
        await add_floor_row(env, raw.run_id)
    rate = await _warm_up_together(env, op, settings, callers)
    per_caller = max(1, _batch_size(rate, settings, op.setup_per_call) // callers)
    raw_calls = [raw.call(op.floor) for raw in floors]
    raw_per_caller = 0
    if raw_calls:
        raw_rate = await timed_together(raw_calls, max(2, settings.warmup_calls * 10 // callers))
        raw_per_caller = max(2, _batch_size(raw_rate, settings) // callers)
    store_rates: list[float] = []
    raw_rates: list[float] = []
    store_cpu: list[Spent] = []
    raw_cpu: list[Spent] = []
    for _ in range(settings.rounds):
        calls = [await op.prepare(env, per_caller) for _ in range(callers)]
        rate, spent = await metered(calls, per_caller, server)
        store_rates.append(rate)
        store_cpu.append(spent)
        if raw_calls:
            rate, spent = await metered(raw_calls, raw_per_caller, server)
            raw_rates.append(rate)
            raw_cpu.append(spent)
    cpu = _cpu(store_cpu, raw_cpu)
    if not raw_rates:
        return OpResult(
            op, Spread.of(store_rates), per_caller * callers, callers=callers, store_cpu=cpu[0]
        )
    return OpResult(
        op,
        Spread.of(store_rates),
        per_caller * callers,
        None,
        Spread.of(raw_rates),
        raw_per_caller * callers,
        ratios(store_rates, raw_rates),
        callers,
        cpu[0],
        cpu[1],
        cpu[2],
        server is not None and server.whole_server,
    )
