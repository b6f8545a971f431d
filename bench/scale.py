"""``python -m bench scale``: does an operation slow down as the store fills up?

Per store and per size (``--quick``: 1k and 5k; default: 10k and 100k; ``--full``
adds 1M), on an emptied store seeded fast (see :mod:`bench.seeding`):

- ``claim_runnable`` (limit 10) with ``size`` queued runs;
- ``list_runs`` (limit 10) page 1, and the last page (page ``size / 10``, reached
  with the keyset cursor of the row before it);
- ``fire_due_timers`` (limit 10) with ``size`` paused runs whose timers are due;
- ``fire_due_schedules`` (limit 10) with ``size`` due schedules;
- ``append_events`` of 1 event on a run holding 10 events vs 10,000 events (appended
  1,000 per call through the API).

Each is timed over ``calls`` sequential calls (one connection) after two untimed
ones; the result is the median latency and the ratio against the smallest size.
Each call must find what was seeded (10 claims, 10 timers, 10 ticks, a full page),
so a seeding mistake fails loudly instead of timing an empty operation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from workflow.runtime import Claimed, ExecutionStore, NewEvent
from workflow.runtime.cursor import encode_cursor

from .seeding import queued_id, seed_queued, seed_schedules, seed_timers
from .stats import Spread
from .targets import TARGETS, ServerMissing

LIMIT = 10
EVENTS_LARGE = 10_000
EVENTS_PER_CALL = 1_000
LEASE_MS = 10**9
BASE = 1_700_000_000_000


@dataclass(frozen=True)
class ScaleSettings:
    sizes: tuple[int, ...]
    calls: int


QUICK = ScaleSettings((1_000, 5_000), calls=5)
DEFAULT = ScaleSettings((10_000, 100_000), calls=30)
FULL = ScaleSettings((10_000, 100_000, 1_000_000), calls=30)


@dataclass(frozen=True)
class Latency:
    store: str
    op: str
    size: int
    """Seeded items (events for append_events)."""
    ms: Spread
    """Per call, over the timed calls: median (min-max)."""
    seed_s: float = 0.0


@dataclass
class ScaleReport:
    started: datetime
    settings: ScaleSettings
    results: list[Latency] = field(default_factory=list)
    worker_memory: dict[str, object] | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def ratios(self) -> list[tuple[str, str, int, int, float]]:
        """(store, op, small, large, large/small median latency) per op and size."""
        out = []
        firsts: dict[tuple[str, str], Latency] = {}
        for r in self.results:
            first = firsts.setdefault((r.store, r.op), r)
            if r is not first:
                out.append((r.store, r.op, first.size, r.size, r.ms.median / first.ms.median))
        return out


async def _latencies(call: Callable[[int], Awaitable[object]], calls: int) -> Spread:
    for i in range(2):
        await call(-1 - i)
    ms: list[float] = []
    for i in range(calls):
        began = time.perf_counter()
        await call(i)
        ms.append((time.perf_counter() - began) * 1000)
    return Spread(statistics.median(ms), min(ms), max(ms))


def _expect(what: str, got: int, want: int) -> None:
    if got != want:
        raise RuntimeError(f"scale: {what} returned {got} items, expected {want} (bad seeding?)")


async def _runs_ops(
    store: ExecutionStore, size: int, calls: int
) -> list[tuple[str, Spread, float]]:
    began = time.perf_counter()
    await seed_queued(store, size, BASE)
    seeded = time.perf_counter() - began
    now = BASE + size + 1

    async def page_one(i: int) -> object:
        page = await store.list_runs(limit=LIMIT)
        _expect("list_runs page 1", len(page.items), LIMIT)
        return page

    # Newest first: the last page holds runs 9..0; its cursor is run 10's position.
    last = encode_cursor(BASE + LIMIT, queued_id(LIMIT))

    async def page_last(i: int) -> object:
        page = await store.list_runs(limit=LIMIT, cursor=last)
        _expect("list_runs last page", len(page.items), LIMIT)
        return page

    async def claim(i: int) -> object:
        claims = await store.claim_runnable("scale", LEASE_MS, LIMIT, now)
        _expect("claim_runnable", len(claims), LIMIT)
        return claims

    out = [
        ("list_runs page 1", await _latencies(page_one, calls), seeded),
        (f"list_runs last page ({size // LIMIT:,})", await _latencies(page_last, calls), seeded),
        ("claim_runnable", await _latencies(claim, calls), seeded),
    ]
    return out


async def _timers(store: ExecutionStore, size: int, calls: int) -> tuple[Spread, float]:
    began = time.perf_counter()
    await seed_timers(store, size, BASE)
    seeded = time.perf_counter() - began
    now = BASE + size + 1

    async def fire(i: int) -> object:
        entries = await store.fire_due_timers(now, LIMIT)
        _expect("fire_due_timers", len(entries), LIMIT)
        return entries

    return await _latencies(fire, calls), seeded


async def _schedules(store: ExecutionStore, size: int, calls: int) -> tuple[Spread, float]:
    began = time.perf_counter()
    await seed_schedules(store, size, BASE)
    seeded = time.perf_counter() - began
    now = BASE + size + 1

    async def fire(i: int) -> object:
        ticks = await store.fire_due_schedules(now, LIMIT)
        _expect("fire_due_schedules", len(ticks), LIMIT)
        return ticks

    return await _latencies(fire, calls), seeded


async def _append(store: ExecutionStore, events: int, calls: int) -> tuple[Spread, float]:
    run_id = f"log-{events}"
    began = time.perf_counter()
    await store.create_run(run_id, "scale", None, None, BASE)
    claim = await store.claim_run(run_id, "scale", LEASE_MS, BASE)
    assert isinstance(claim, Claimed), claim
    index = 0
    while index < events:
        n = min(EVENTS_PER_CALL, events - index)
        batch = [NewEvent("STEP_COMPLETED", {"i": index + j}, f"s{index + j}") for j in range(n)]
        index = await store.append_events(run_id, claim.lease, index, batch, BASE)
    seeded = time.perf_counter() - began
    lease, at = claim.lease, index

    async def append(i: int) -> object:
        nonlocal at
        at = await store.append_events(
            run_id, lease, at, [NewEvent("STEP_COMPLETED", {"i": at}, f"s{at}")], BASE
        )
        return at

    return await _latencies(append, calls), seeded


async def run_store(name: str, settings: ScaleSettings, report: ScaleReport) -> None:
    async with TARGETS[name]() as target:
        event_sizes = (10, EVENTS_LARGE)
        for size in settings.sizes:
            for op, spread, seeded in await _runs_ops(await target.fresh(), size, settings.calls):
                _add(report, Latency(name, op.split(" (")[0], size, spread, seeded), op)
            spread, seeded = await _timers(await target.fresh(), size, settings.calls)
            _add(report, Latency(name, "fire_due_timers", size, spread, seeded))
            spread, seeded = await _schedules(await target.fresh(), size, settings.calls)
            _add(report, Latency(name, "fire_due_schedules", size, spread, seeded))
        store = await target.fresh()
        for events in event_sizes:
            spread, seeded = await _append(store, events, settings.calls)
            _add(report, Latency(name, "append_events", events, spread, seeded))


def _add(report: ScaleReport, r: Latency, label: str | None = None) -> None:
    report.results.append(r)
    print(
        f"  {r.store:<8} {label or r.op:<32} {r.size:>9,}: {r.ms.median:8.2f} ms"
        f" ({r.ms.low:.2f}-{r.ms.high:.2f}), seeded in {r.seed_s:.1f} s",
        flush=True,
    )


async def run_scale(stores: Sequence[str], settings: ScaleSettings) -> ScaleReport:
    report = ScaleReport(datetime.now(UTC), settings)
    for name in stores:
        print(f"== scale {name}", flush=True)
        try:
            await run_store(name, settings, report)
        except ServerMissing as exc:
            print(f"!!! SKIPPED {name}: {exc}", flush=True)
            report.skipped[name] = str(exc)
    return report
