"""OpenTelemetry spans and metrics for runs, slices and steps (the ``otel`` extra).

Everything here works without OpenTelemetry installed: the API is imported on first
use, and when it is missing every helper is a no-op. With the API installed but no
SDK provider configured, spans are not even started (:func:`tracing_on` is one
``isinstance`` check), so an application that does not export telemetry pays next to
nothing (``bench/otel_overhead.py`` measures it).

Names follow the OpenTelemetry conventions where there are some (``db.system``,
``db.operation.name`` on store spans; see :mod:`workflow.runtime.traced_store`); the
workflow's own attributes are under ``workflow.``.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .history import EventType
from .records import Run, StoredEvent

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram
    from opentelemetry.trace import Span, Tracer

T = TypeVar("T")

INSTRUMENTATION_NAME = "workflow.runtime"


@dataclass(frozen=True, slots=True)
class _Instruments:
    tracer: Tracer
    tracer_provider: Callable[[], object]
    default_providers: tuple[type, ...]
    """The API's own providers (a proxy until one is set, or the no-op one)."""
    runs_started: Counter
    runs_finished: Counter
    runs_failed: Counter
    step_duration: Histogram
    claim_lag: Histogram


@functools.cache
def _instruments() -> _Instruments | None:
    """The tracer and the metric instruments, or ``None`` without OpenTelemetry. The
    API's tracer and meter follow the global providers, also those set later."""
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        return None
    meter = metrics.get_meter(INSTRUMENTATION_NAME)
    return _Instruments(
        tracer=trace.get_tracer(INSTRUMENTATION_NAME),
        tracer_provider=trace.get_tracer_provider,
        default_providers=(trace.ProxyTracerProvider, trace.NoOpTracerProvider),
        runs_started=meter.create_counter(
            "workflow.runs.started", unit="{run}", description="Runs created by start()"
        ),
        runs_finished=meter.create_counter(
            "workflow.runs.finished", unit="{run}", description="Runs that finished"
        ),
        runs_failed=meter.create_counter(
            "workflow.runs.failed", unit="{run}", description="Runs that ended errored"
        ),
        step_duration=meter.create_histogram(
            "workflow.step.duration", unit="s", description="Time one step attempt ran"
        ),
        claim_lag=meter.create_histogram(
            "workflow.claim.lag",
            unit="s",
            description="Time from a run becoming runnable to a worker starting its slice",
        ),
    )


def available() -> bool:
    """Whether the OpenTelemetry API is installed."""
    return _instruments() is not None


_tracing_set = False
"""Whether a real tracer provider was seen: the API sets the global one once for good,
so once seen it stays (and the check is one global read)."""


def tracing_on() -> bool:
    """Whether spans would be recorded: the API is installed and an SDK (or any real)
    tracer provider is set. The API's default providers record nothing."""
    global _tracing_set
    if _tracing_set:
        return True
    instruments = _instruments()
    if instruments is None:
        return False
    _tracing_set = not isinstance(instruments.tracer_provider(), instruments.default_providers)
    return _tracing_set


def tracer() -> Tracer | None:
    """The runtime's tracer when spans are recorded, else ``None``."""
    instruments = _instruments()
    return instruments.tracer if instruments is not None and tracing_on() else None


# -- start ---------------------------------------------------------------------------
@contextlib.contextmanager
def start_span(workflow_id: str, run_id: str) -> Iterator[dict[str, str] | None]:
    """The span of a ``start()``; yields the trace context to store with the run (a
    propagator carrier), or ``None`` when tracing is off or the span is not sampled
    (nothing to store: no round trip spent on it)."""
    active = tracer()
    if active is None:
        yield None
        return
    from opentelemetry import propagate

    with active.start_as_current_span(
        f"workflow.start {workflow_id}",
        attributes={"workflow.id": workflow_id, "workflow.run_id": run_id},
    ) as span:
        if not span.get_span_context().trace_flags.sampled:
            # Not sampled: the run's spans would not be either; nothing to carry.
            yield None
            return
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield carrier


def run_started(workflow_id: str) -> None:
    instruments = _instruments()
    if instruments is not None:
        instruments.runs_started.add(1, {"workflow.id": workflow_id})


# -- a slice -----------------------------------------------------------------------------
def stored_trace_context(events: list[StoredEvent] | None) -> Mapping[str, str] | None:
    """The carrier a run's ``TRACE_CONTEXT`` event holds (its first event when
    present; ``None`` without one)."""
    for event in events or ():
        if event.type == EventType.TRACE_CONTEXT and isinstance(event.data, dict):
            return {k: v for k, v in event.data.items() if isinstance(v, str)}
    return None


class SliceRecord:
    """What a slice span learns at its end (see :func:`slice_span`)."""

    def __init__(self, span: Span | None, workflow_id: str) -> None:
        self._span = span
        self._workflow_id = workflow_id

    def ended(self, outcome: str) -> None:
        """Record the slice's outcome (a ``DriveOutcome`` value); a run that finished
        or failed counts in the run metrics."""
        if self._span is not None:
            self._span.set_attribute("workflow.outcome", outcome)
        instruments = _instruments()
        if instruments is None:
            return
        attributes = {"workflow.id": self._workflow_id}
        if outcome == "finished":
            instruments.runs_finished.add(1, attributes)
        elif outcome == "failed":
            instruments.runs_failed.add(1, attributes)


@contextlib.contextmanager
def slice_span(run: Run, events: list[StoredEvent] | None, now: int) -> Iterator[SliceRecord]:
    """The span of one slice of ``run``, a child of the span that started the run when
    its events carry a trace context (so a worker in another process continues the
    trace); records the claim lag (from ``run.ready_at`` to ``now``)."""
    instruments = _instruments()
    if instruments is None:
        yield SliceRecord(None, run.workflow_id)
        return
    if run.ready_at is not None:
        lag_s = max(0, now - run.ready_at) / 1000
        instruments.claim_lag.record(lag_s, {"workflow.id": run.workflow_id})
    active = tracer()
    if active is None:
        yield SliceRecord(None, run.workflow_id)
        return
    from opentelemetry import propagate

    carrier = stored_trace_context(events)
    parent = propagate.extract(carrier) if carrier is not None else None
    with active.start_as_current_span(
        f"workflow.run {run.workflow_id}",
        context=parent,
        attributes={
            "workflow.id": run.workflow_id,
            "workflow.run_id": run.run_id,
            "workflow.event_index": run.next_event_index,
        },
    ) as span:
        yield SliceRecord(span, run.workflow_id)


# -- a step ------------------------------------------------------------------------------
def traced_step(run_id: str, step_id: str, attempt: int, call: Awaitable[T]) -> Awaitable[T]:
    """``call`` (one attempt of a step's function) inside a span, its time recorded in
    the step duration histogram; ``call`` itself without OpenTelemetry."""
    instruments = _instruments()
    if instruments is None:
        return call
    return _timed_step(instruments, run_id, step_id, attempt, call)


async def _timed_step(
    instruments: _Instruments, run_id: str, step_id: str, attempt: int, call: Awaitable[T]
) -> T:
    outcome = "error"
    started = time.perf_counter()
    try:
        if tracing_on():
            attributes: dict[str, Any] = {
                "workflow.run_id": run_id,
                "workflow.step_id": step_id,
                "workflow.step.attempt": attempt,
            }
            with instruments.tracer.start_as_current_span("workflow.step", attributes=attributes):
                result = await call
        else:
            result = await call
        outcome = "ok"
        return result
    finally:
        instruments.step_duration.record(
            time.perf_counter() - started, {"workflow.step.outcome": outcome}
        )
