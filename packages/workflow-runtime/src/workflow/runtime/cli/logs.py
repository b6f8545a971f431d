"""The worker's log lines: every record to stderr, as text or JSON lines.

Every logger goes through the one handler, not only ``workflow.*``: a library's
record (psycopg's "query cancellation failed", redis-py's) and a Python warning would
otherwise be printed raw by Python's last-resort handler, and a JSON log would carry
lines that are not JSON. ``workflow.*`` records at the chosen level, other loggers'
from ``WARNING`` (or the chosen level, if higher), warnings as ``py.warnings`` records.

JSON comes from python-json-logger (maintained, handles exceptions, extra fields and
values JSON cannot hold); the text form is ours: a timestamp, the level, the message,
then the record's structured fields as ``key=value``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def json_formatter() -> logging.Formatter:
    """One JSON object per line: ``ts`` (Unix seconds), ``level``, ``logger``, ``msg``,
    the record's extra fields, and ``exc`` when it carries an exception."""
    return JsonFormatter(
        "{created}{levelname}{name}{message}",
        style="{",
        rename_fields={
            "created": "ts",
            "levelname": "level",
            "name": "logger",
            "message": "msg",
            "exc_info": "exc",
        },
        json_ensure_ascii=False,
    )


class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.123Z INFO    message  key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<7} {record.getMessage()}"
        if fields:
            line = f"{line}  {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Log every record to stderr as text or JSON lines (see the module docs)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter())
    chosen = logging.getLevelName(level.upper())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(chosen, logging.WARNING))
    ours = logging.getLogger("workflow")
    ours.handlers[:] = []
    ours.setLevel(chosen)
    ours.propagate = True
    # Off, then on: a no-op if an earlier call left it on, even after something else
    # (a test harness) put its own ``warnings.showwarning`` back in the meantime.
    logging.captureWarnings(False)
    logging.captureWarnings(True)
