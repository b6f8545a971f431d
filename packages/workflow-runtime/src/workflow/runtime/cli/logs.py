"""The worker's log lines: ``workflow.*`` records to stderr, as text or JSON lines.

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
    """Log ``workflow.*`` records to stderr as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("workflow")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
