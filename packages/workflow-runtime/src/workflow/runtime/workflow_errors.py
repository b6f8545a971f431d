"""Errors of the engine and the runtime (the store's errors live in ``errors``).

Workflow code sees :class:`StepFailedError` (a step's final, recorded error) and
:class:`WaitTimeoutError` (a signal or approval that did not come in time); both come
back identically on every replay, because their cause is in the run's log. Raising
:class:`WorkflowFailed` ends the run ``errored`` at once; any other exception escaping
workflow code counts as a failed attempt of the run and is retried with backoff.
"""

from __future__ import annotations

from .records import ErrorInfo, Run, RunStatus


class WorkflowError(Exception):
    """Base class of the engine's and the runtime's errors."""


class WorkflowDefinitionError(WorkflowError):
    """Workflow code used the context wrongly: a bad or repeated step id, a reserved id,
    two context operations awaited at the same time."""


class NonDeterminismError(WorkflowError):
    """Replay met a different operation than the log recorded at the same position.

    Workflow code must take the same path through its context operations on every
    replay; deploying changed code under the same workflow version breaks that.
    """

    def __init__(
        self,
        run_id: str,
        position: int,
        recorded: tuple[str, str] | None,
        requested: tuple[str, str] | None,
        *,
        detail: str | None = None,
    ) -> None:
        def name(op: tuple[str, str] | None) -> str:
            return "the end of the workflow" if op is None else f"{op[0]} {op[1]!r}"

        super().__init__(
            f"non-deterministic replay of run {run_id!r}: "
            + (
                detail
                or f"at position {position} the log recorded {name(recorded)}, but the "
                f"workflow code asked for {name(requested)}; keep the code of a workflow "
                "version unchanged while runs of it are in flight (register changed code "
                "under a new version, or branch on ctx.patched(...))"
            )
        )
        self.run_id = run_id
        self.position = position
        self.recorded = recorded
        self.requested = requested


class StepFailedError(WorkflowError):
    """A step failed for good (its retries ran out, or its error is not retried).

    ``error`` is the recorded error of the last attempt; ``attempts`` how many ran.
    """

    def __init__(self, step_id: str, error: ErrorInfo, attempts: int) -> None:
        super().__init__(
            f"step {step_id!r} failed after {attempts} attempt(s): {error.type}: {error.message}"
        )
        self.step_id = step_id
        self.error = error
        self.attempts = attempts


class StepTimeoutError(WorkflowError, TimeoutError):
    """One attempt of a step ran longer than its ``timeout`` (retried like any failure)."""

    def __init__(self, step_id: str, timeout: float) -> None:
        super().__init__(f"step {step_id!r} did not finish within {timeout:g} s")
        self.step_id = step_id
        self.timeout = timeout


class WaitTimeoutError(WorkflowError, TimeoutError):
    """A signal or approval wait reached its ``timeout`` first."""

    def __init__(self, step_id: str, what: str) -> None:
        super().__init__(f"{what} (step {step_id!r}) timed out")
        self.step_id = step_id


class ChildFailedError(WorkflowError):
    """A child run ended ``errored``, ``cancelled`` or ``timed_out`` (``ctx.child``,
    ``ctx.child_result``). Recorded in the parent's log, so every replay raises it
    alike; uncaught, it ends the parent ``errored`` with code ``child_failed``.

    ``status``: how the child ended; ``error``: the child's error as its end reported
    it (type, message and code; no traceback)."""

    def __init__(
        self, step_id: str, child_run_id: str, status: RunStatus, error: ErrorInfo | None
    ) -> None:
        detail = f": {error.type}: {error.message}" if error is not None else ""
        super().__init__(
            f"child run {child_run_id!r} (step {step_id!r}) ended {status.value}{detail}"
        )
        self.step_id = step_id
        self.child_run_id = child_run_id
        self.status = status
        self.error = error


class ChildTimeoutError(WaitTimeoutError):
    """``ctx.child_result(..., timeout=)`` (or ``ctx.child(..., timeout=)``) gave up
    waiting: the child did not end in time. Only the wait ends: the child runs on (a
    later ``child_result`` may wait for it again)."""

    def __init__(self, step_id: str, child_run_id: str) -> None:
        super().__init__(step_id, f"wait for child run {child_run_id!r}")
        self.child_run_id = child_run_id


class WorkflowFailed(WorkflowError):
    """Raise from workflow code to end the run ``errored`` at once, without retries."""

    def __init__(self, message: str, *, code: str = "workflow_failed") -> None:
        super().__init__(message)
        self.code = code


class ChildrenUnsupportedError(WorkflowFailed):
    """Workflow code started a child run on a store that does not declare
    ``Capability.CHILDREN``. Uncaught, it ends the run ``errored`` at once (code
    ``children_unsupported``): retrying on the same store cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="children_unsupported")


class UnknownWorkflowError(WorkflowError, LookupError):
    """No workflow of that id (and version) is registered with the runtime."""


class RunNotFoundError(WorkflowError, LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} in this store")
        self.run_id = run_id


class RunConflictError(WorkflowError):
    """``start`` with a run id that another workflow's run already uses."""

    def __init__(self, run: Run, workflow_id: str) -> None:
        super().__init__(
            f"run id {run.run_id!r} is taken by a run of workflow {run.workflow_id!r}, "
            f"not {workflow_id!r}; choose another run id"
        )
        self.run = run


class RunFailedError(WorkflowError):
    """``result`` of a run that ended ``errored`` or ``cancelled``."""

    def __init__(self, run: Run) -> None:
        error = run.error
        detail = f"{error.type}: {error.message}" if error else "no error recorded"
        super().__init__(f"run {run.run_id!r} ended {run.status.value}: {detail}")
        self.run = run
        self.error = error


class ResultTimeoutError(WorkflowError, TimeoutError):
    """``result(wait=...)`` gave up before the run ended."""

    def __init__(self, run: Run, waited: float) -> None:
        super().__init__(
            f"run {run.run_id!r} is still {run.status.value} after waiting {waited:g} s"
        )
        self.run = run
