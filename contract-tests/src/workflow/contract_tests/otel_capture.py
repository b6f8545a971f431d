"""What the runtime reports to OpenTelemetry, captured in memory for tests.

The API lets a process set its global tracer and meter providers once: :func:`capturing`
sets SDK providers with an in-memory span exporter and metric reader on first use and
reuses them after. Spans are sampled only inside :func:`capturing` (a sampler switched
on and off), so the tests that run later in the same process see a runtime that traces
nothing, as without a provider (no trace context is stored with their runs). Metrics
are cumulative: tests compare totals, or tell their data points apart by their own
workflow ids. Needs ``opentelemetry-sdk`` (tests ``pytest.importorskip`` it).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class _Switch(Sampler):
    """Samples every span while on, none while off."""

    on = False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        sampler = ALWAYS_ON if self.on else ALWAYS_OFF
        return sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "on" if self.on else "off"


@dataclass(frozen=True)
class Capture:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished_spans(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> Iterator[Any]:
        """The data points of the metric called ``name`` (cumulative since the start)."""
        data = self.metrics.get_metrics_data()
        if data is None:
            return
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        yield from metric.data.data_points


_SWITCH = _Switch()


@contextlib.contextmanager
def capturing() -> Iterator[Capture]:
    """Spans sampled and exported to memory while inside (the exporter emptied first)."""
    found = _providers()
    found.spans.clear()
    _SWITCH.on = True
    try:
        yield found
    finally:
        _SWITCH.on = False


@functools.cache
def _providers() -> Capture:
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=_SWITCH)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return Capture(spans, reader)
