"""The typed errors of the store contract.

Every error a store raises derives from :class:`WorkflowStoreError`; driver
exceptions never leak raw (stores wrap them, keeping the original as ``__cause__``).
"""

from __future__ import annotations


class WorkflowStoreError(Exception):
    """Base class of every error raised by a workflow store."""

    retryable: bool = False


class InvalidArgumentError(WorkflowStoreError, ValueError):
    """An argument is malformed (empty id, ``limit`` out of range, negative ``now``...).

    Raised before anything is written.
    """


class PayloadError(InvalidArgumentError):
    """A payload is not a JSON value the contract allows, or is too large.

    Raised before anything is written. ``path`` locates the offending value
    (``$.items[3].price``).
    """

    def __init__(self, message: str, *, path: str = "$") -> None:
        super().__init__(message)
        self.path = path


class UnknownStoreError(InvalidArgumentError):
    """No installed store handles this URL (the message names the package to install)."""


class LogConflictError(WorkflowStoreError):
    """``expected_next_index`` did not match the run's log; nothing was appended."""

    def __init__(self, run_id: str, expected: int, current: int) -> None:
        super().__init__(
            f"event log of run {run_id!r} is at index {current}, not {expected}: "
            "another writer appended first; reload the run and replay"
        )
        self.run_id = run_id
        self.expected = expected
        self.current = current


class LeaseLostError(WorkflowStoreError):
    """The lease used for a write is no longer the run's current lease."""

    def __init__(self, run_id: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"lease on run {run_id!r} is no longer held: the run was claimed by "
            "another worker, settled, or deleted; stop working on it"
        )
        self.run_id = run_id


class RunCancelledError(LeaseLostError):
    """The lease was revoked because the run was cancelled."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id, f"run {run_id!r} was cancelled; its lease is revoked")


class RunTimedOutError(RunCancelledError):
    """The lease was revoked because the run's deadline fired (status ``timed_out``).

    A :class:`RunCancelledError`: whoever stops work on a cancelled run stops here too."""

    def __init__(self, run_id: str) -> None:
        LeaseLostError.__init__(
            self, run_id, f"run {run_id!r} timed out (its deadline passed); its lease is revoked"
        )


class SchemaVersionError(WorkflowStoreError):
    """The database schema is not at a revision this adapter can work with."""

    def __init__(self, message: str, *, current: str | None, required: str) -> None:
        super().__init__(message)
        self.current = current
        self.required = required


class StoreUnavailableError(WorkflowStoreError):
    """The backend cannot be reached or failed mid-operation. Retryable."""

    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(f"{message} (retryable: the operation may be retried)")


class StoreConfigurationError(WorkflowStoreError):
    """The store is pointed at something it cannot use: the database or file is missing,
    authentication failed, permission is denied, or the tables are missing (not
    migrated). Not retryable: the message says what to fix."""


class StoreOperationError(WorkflowStoreError):
    """The backend rejected an operation for a reason that is neither the deployment's
    nor transient (a syntax or data error: a bug in the store). Not retryable."""
