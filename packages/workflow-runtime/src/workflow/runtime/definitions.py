"""Workflow definitions: a handler registered under an id and a version, and the
schedules declared next to it.

```python
from workflow.runtime import Context, cron, workflow

@workflow("order", version="2", schedules=[cron("0 2 * * *", timezone="Europe/Berlin")])
async def order(ctx: Context, input: dict) -> dict:
    ...
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from .records import JSON, CronSpec, IntervalSpec, JSONLike, Overlap, ScheduleSpec
from .schedules import validate_spec
from .validation import check_id, check_optional_id, check_schedule_id
from .workflow_errors import UnknownWorkflowError, WorkflowDefinitionError

if TYPE_CHECKING:
    from .engine import Context

InputT = TypeVar("InputT", bound=JSONLike)
"""A workflow's input type."""
OutputT = TypeVar("OutputT", bound=JSONLike)
"""A workflow's output type."""

Handler: TypeAlias = Callable[["Context", InputT], Awaitable[OutputT]]
"""``async def handler(ctx, input) -> output``: input and output are payloads (JSON)."""


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A schedule declared in code; the runtime reconciles it into the store."""

    spec: ScheduleSpec
    schedule_id: str | None = None
    """Defaults to ``"<workflow_id>/<spec>"`` once attached to a workflow."""
    input: JSON = None
    overlap: Overlap = Overlap.SKIP

    def resolved_id(self, workflow_id: str) -> str:
        if self.schedule_id is not None:
            return self.schedule_id
        if isinstance(self.spec, CronSpec):
            return f"{workflow_id}/cron {self.spec.expression} {self.spec.timezone}"
        return f"{workflow_id}/every {self.spec.every_ms} ms"


def cron(
    expression: str,
    *,
    timezone: str = "UTC",
    id: str | None = None,
    input: JSON = None,
    overlap: Overlap | str = Overlap.SKIP,
) -> Scheduled:
    """A cron schedule (5 fields, or 6 with seconds first) in an IANA time zone,
    evaluated by ``cronsim`` (DST-correct)."""
    return _scheduled(CronSpec(expression, timezone), id, input, overlap)


def every(
    seconds: float,
    *,
    id: str | None = None,
    input: JSON = None,
    overlap: Overlap | str = Overlap.SKIP,
    anchor_ms: int = 0,
) -> Scheduled:
    """An interval schedule: ticks at ``anchor_ms + k * seconds``."""
    return _scheduled(IntervalSpec(round(seconds * 1000), anchor_ms), id, input, overlap)


def _scheduled(
    spec: ScheduleSpec, id: str | None, input: JSON, overlap: Overlap | str
) -> Scheduled:
    # Checked where it is declared: a typo fails at import, not at the first tick.
    validate_spec(spec)
    if id is not None:
        check_schedule_id(id)
    return Scheduled(spec, id, input, Overlap(overlap))


@dataclass(frozen=True, slots=True)
class Workflow(Generic[InputT, OutputT]):
    """A workflow: ``handler`` registered as ``workflow_id`` at ``version``.

    Generic in the handler's input and output types, so that
    ``Runtime.start(wf, input)`` and ``Runtime.result(run_id, workflow=wf)`` are
    checked against them."""

    workflow_id: str
    handler: Handler[InputT, OutputT]
    version: str | None = "1"
    schedules: tuple[Scheduled, ...] = field(default=())

    def __post_init__(self) -> None:
        check_id(self.workflow_id, "workflow_id")
        check_optional_id(self.version, "version")
        ids = [s.resolved_id(self.workflow_id) for s in self.schedules]
        for schedule_id in ids:
            check_schedule_id(schedule_id)
        if len(set(ids)) != len(ids):
            raise WorkflowDefinitionError(
                f"workflow {self.workflow_id!r} declares two schedules with the same id: {ids}"
            )


def workflow(
    workflow_id: str, *, version: str | None = "1", schedules: Sequence[Scheduled] = ()
) -> Callable[[Handler[InputT, OutputT]], Workflow[InputT, OutputT]]:
    """Decorator: register ``async def handler(ctx, input)`` as a :class:`Workflow`."""

    def register(handler: Handler[InputT, OutputT]) -> Workflow[InputT, OutputT]:
        return Workflow(workflow_id, handler, version, tuple(schedules))

    return register


class WorkflowSet:
    """The workflows a runtime knows, by id and version.

    Several versions of one workflow may be registered: new runs start on the one
    registered last, runs in flight replay on the version they started with.
    """

    def __init__(self, workflows: Iterable[Workflow[Any, Any]]) -> None:
        self._by_key: dict[tuple[str, str | None], Workflow[Any, Any]] = {}
        self._latest: dict[str, Workflow[Any, Any]] = {}
        for wf in workflows:
            if not isinstance(wf, Workflow):
                raise WorkflowDefinitionError(
                    f"expected a Workflow (use the @workflow decorator), got {type(wf).__name__}"
                )
            key = (wf.workflow_id, wf.version)
            if key in self._by_key:
                raise WorkflowDefinitionError(
                    f"workflow {wf.workflow_id!r} version {wf.version!r} is registered twice"
                )
            self._by_key[key] = wf
            self._latest[wf.workflow_id] = wf
        # Schedules live in the store by id alone: a second workflow declaring the same
        # id would silently overwrite the first one's schedule on every reconcile.
        owners: dict[str, str] = {}
        for wf in self._latest.values():
            for scheduled in wf.schedules:
                schedule_id = scheduled.resolved_id(wf.workflow_id)
                other = owners.setdefault(schedule_id, wf.workflow_id)
                if other != wf.workflow_id:
                    raise WorkflowDefinitionError(
                        f"schedule id {schedule_id!r} is declared by both workflow {other!r} "
                        f"and workflow {wf.workflow_id!r}; give each schedule its own id"
                    )

    def __iter__(self) -> Iterator[Workflow[Any, Any]]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._latest)

    def latest(self, workflow_id: str) -> Workflow[Any, Any]:
        try:
            return self._latest[workflow_id]
        except KeyError:
            known = ", ".join(sorted(self._latest)) or "none"
            raise UnknownWorkflowError(
                f"no workflow {workflow_id!r} is registered with this runtime (registered: {known})"
            ) from None

    def get(self, workflow_id: str, version: str | None) -> Workflow[Any, Any]:
        wf = self._by_key.get((workflow_id, version))
        if wf is None:
            have = sorted(str(v) for (w, v) in self._by_key if w == workflow_id)
            raise UnknownWorkflowError(
                f"this worker cannot run workflow {workflow_id!r} version {version!r} "
                f"(registered versions: {', '.join(have) or 'none'}); a worker with that "
                "version must pick it up"
            )
        return wf
