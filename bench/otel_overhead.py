"""What OpenTelemetry costs a run: CPU per run with the API absent, with the API but no
provider configured, and with an SDK tracer and meter provider (spans made and handed
to an exporter that drops them). A measurement, not a test: it prints figures.

    python -m bench.otel_overhead [--runs 300] [--rounds 5]

Each mode runs in a fresh interpreter (a process can set its global providers once,
and the API's absence needs an interpreter that never imported it), on the in-memory
store so that the runtime's own CPU is what is measured. The modes are interleaved
round by round, so a noisy moment slows every mode of that round alike, and the ratios
to the absent mode are taken round by round (:func:`bench.stats.ratios`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from .stats import Spread, ratios

MODES = ("absent", "unconfigured", "configured")

PROBE = """
import asyncio, json, sys, time

mode, runs = sys.argv[1], int(sys.argv[2])
if mode == "absent":
    sys.modules["opentelemetry"] = None  # import opentelemetry raises ImportError
elif mode == "configured":
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))

from workflow.runtime import InMemoryStore, Runtime, workflow


@workflow("three")
async def three(ctx, n):
    a = await ctx.step("a", lambda: n + 1)
    b = await ctx.step("b", lambda: a + 1)
    return await ctx.step("c", lambda: b + 1)


async def batch(runtime, count):
    for i in range(count):
        await runtime.start("three", i)
    await runtime.run_until_idle()


async def main():
    runtime = Runtime(InMemoryStore(), [three], concurrency=32)
    await batch(runtime, 20)  # warm-up: imports, caches
    started = time.process_time()
    await batch(runtime, runs)
    print(json.dumps((time.process_time() - started) / runs))


asyncio.run(main())
"""


def cpu_per_run(mode: str, runs: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    value: float = json.loads(out.stdout)
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs per mode and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            seconds[mode].append(cpu_per_run(mode, args.runs))
    print(f"CPU per run (3 steps, in-memory store), median of {args.rounds} rounds:")
    for mode in MODES:
        spread = Spread.of(seconds[mode])
        print(
            f"  {mode:<13} {spread.median * 1e6:8.0f} µs"
            f"  (min {spread.low * 1e6:.0f}, max {spread.high * 1e6:.0f})"
        )
    for mode in MODES[1:]:
        ratio = ratios(seconds[mode], seconds["absent"])
        print(f"  {mode} / absent: {ratio.median:.3f} (min {ratio.low:.3f}, max {ratio.high:.3f})")


if __name__ == "__main__":
    main()
